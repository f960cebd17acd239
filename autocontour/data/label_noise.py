"""Label-noise simulation for the noisy-label experiments (spec C1, seed 002 chapter 3).

A chosen fraction of the training samples gets noisy masks: in each such sample every structure
is dilated or eroded (50/50) by n pixels, n uniform over an integer range; by default each
structure draws its own operation and n (``draw="structure"``), with ``draw="sample"`` one
operation and one n serve every structure of the sample (seed 002's n_i, i the sample). The
record says exactly which samples are noisy and what was done, so an experiment can compare the
weights the QAM gives clean and noisy samples. Only the samples passed in are touched: give it the
training split and never the test labels.

Rules (ours where the seed is silent):

* Levels: "low" is n in [1, 8], as in seed 002's table (its text says 0-8; we use the table),
  "high" is [5, 13]; an explicit (min_px, max_px) is accepted.
* Morphology is in-plane (per axial slice, 2-D) with a Euclidean disk of radius n (the set
  x^2 + y^2 <= n^2, as ``skimage.morphology.disk(n)``), computed exactly with a distance
  transform, so dilation by n grows a disk's radius by n. The image edge counts as background.
* An erosion that would empty the structure (in the whole sample) stops at the largest n that
  leaves at least one voxel; the record keeps the drawn ``n`` and the ``n_applied``.
* Collisions: dilation claims only voxels that are background in the original map; voxels of
  other structures keep their original labels, and where two dilations claim the same background
  voxel the smaller structure wins (as ``LabelMap.from_masks``). Eroded voxels become background.
  So no value outside the organ set ever appears.
* ``unit="case"``: a sample is a whole label map (one op and n per structure for all its
  slices). ``unit="slice"``: every axial slice of every map is a sample, named
  :func:`slice_id` (for 2-D training); a 2-D (y, x) map is one slice.
* ``draw="sample"``: seed 002 writes the offset as n_i with i the sample (image) and shows whole
  label maps expanded or shrunk (its figure 3.1); it never says whether the structures of one
  image share it. "sample" reads it so: one op and one n per noisy sample, applied to each of its
  structures (each erosion still capped for its own structure). "structure" (the default, and
  the behaviour before the option) gives every structure its own draw.
* Exactly round-half-up(fraction x N) samples are noisy, chosen at random; everything is drawn
  from ``numpy.random.default_rng(seed)`` in sorted sample order, so a seed reproduces the output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from autocontour.errors import InvalidInputError, UnknownOptionError, did_you_mean
from autocontour.organs import OrganSet

LEVELS: dict[str, tuple[int, int]] = {"low": (1, 8), "high": (5, 13)}
UNITS = ("case", "slice")
DRAWS = ("structure", "sample")


def slice_id(case_id: str, z: int) -> str:
    """The sample ID of slice ``z`` of ``case_id`` in ``unit="slice"`` mode."""
    return f"{case_id}/{z}"


@dataclass(frozen=True)
class LabelNoiseConfig:
    """How much label noise to simulate.

    Attributes:
        fraction: share of samples made noisy, in [0, 1] [0, 0.25, 0.5, 0.75 in seed 002].
        level: "low" ([1, 8] px), "high" ([5, 13] px) or an explicit (min_px, max_px).
        unit: "case" or "slice" (see the module docstring).
        seed: seed of every random choice.
        draw: "structure" (each structure of a noisy sample its own op and n) or "sample" (one
            op and n for all its structures; see the module docstring).

    Raises:
        InvalidInputError: a fraction outside [0, 1] or a bad explicit range.
        UnknownOptionError: an unknown level, unit or draw name (with the closest choice).
    """

    fraction: float = 0.0
    level: str | tuple[int, int] = "low"
    unit: str = "case"
    seed: int = 0
    draw: str = "structure"

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.fraction) <= 1.0:
            raise InvalidInputError(f"noise fraction must lie in [0, 1], got {self.fraction!r}")
        if isinstance(self.level, str):
            key = self.level.strip().lower()
            if key not in LEVELS:
                raise UnknownOptionError(did_you_mean(f"unknown noise level {self.level!r}", key,
                                                       list(LEVELS)))
            object.__setattr__(self, "level", key)
        else:
            lo, hi = (int(v) for v in self.level)
            if not 0 <= lo <= hi:
                raise InvalidInputError(
                    f"noise level must be (min_px, max_px) with 0 <= min <= max, got {self.level!r}")
            object.__setattr__(self, "level", (lo, hi))
        unit = str(self.unit).strip().lower()
        if unit not in UNITS:
            raise UnknownOptionError(did_you_mean(f"unknown noise unit {self.unit!r}", unit,
                                                   list(UNITS)))
        object.__setattr__(self, "unit", unit)
        draw = str(self.draw).strip().lower()
        if draw not in DRAWS:
            raise UnknownOptionError(did_you_mean(f"unknown noise draw {self.draw!r}", draw,
                                                   list(DRAWS)))
        object.__setattr__(self, "draw", draw)

    @property
    def n_range(self) -> tuple[int, int]:
        """(min_px, max_px), both inclusive."""
        return LEVELS[self.level] if isinstance(self.level, str) else self.level

    def to_dict(self) -> dict[str, Any]:
        level = self.level if isinstance(self.level, str) else list(self.level)
        return {"fraction": float(self.fraction), "level": level, "unit": self.unit,
                "seed": int(self.seed), "draw": self.draw}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelNoiseConfig:
        level = data.get("level", "low")
        return cls(float(data.get("fraction", 0.0)),
                   level if isinstance(level, str) else tuple(level),
                   data.get("unit", "case"), int(data.get("seed", 0)),
                   data.get("draw", "structure"))


@dataclass(frozen=True)
class StructureNoise:
    """What was done to one structure of one sample: op "dilate"/"erode", n drawn and applied."""

    op: str
    n: int
    n_applied: int


@dataclass(frozen=True)
class SampleNoise:
    """One sample's record; ``structures`` maps organ names to what was done (empty if clean)."""

    sample_id: str
    noisy: bool
    structures: dict[str, StructureNoise] = field(default_factory=dict)


@dataclass(frozen=True)
class NoiseRecord:
    """Which samples are noisy and how; JSON round trip with ``to_dict``/``from_dict``."""

    config: LabelNoiseConfig
    samples: tuple[SampleNoise, ...]
    _noisy: dict[str, bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_noisy", {s.sample_id: s.noisy for s in self.samples})

    def noisy_ids(self) -> list[str]:
        return [s.sample_id for s in self.samples if s.noisy]

    def is_noisy(self, sample_id: str) -> bool:
        """Raises KeyError for an ID that is not in the record."""
        return self._noisy[sample_id]

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "samples": [
            {"id": s.sample_id, "noisy": s.noisy,
             "structures": {k: vars(v) for k, v in s.structures.items()}} for s in self.samples]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NoiseRecord:
        samples = tuple(SampleNoise(s["id"], bool(s["noisy"]),
                                    {k: StructureNoise(**v) for k, v in s["structures"].items()})
                        for s in data["samples"])
        return cls(LabelNoiseConfig.from_dict(data["config"]), samples)


def apply_label_noise(samples: dict[str, np.ndarray], organs: OrganSet, config: LabelNoiseConfig
                      ) -> tuple[dict[str, np.ndarray], NoiseRecord]:
    """Make a fraction of the given label maps noisy (see the module docstring for the rules).

    Args:
        samples: sample (case) ID -> integer label map, (z, y, x) or (y, x). Not modified.
        organs: the label set; only its structures are perturbed.
        config: fraction, level, unit and seed.

    Returns:
        (label maps, record): the same IDs; a map with no noisy part is the input array itself
        (not a copy), others are new arrays of the input dtype.

    Raises:
        InvalidInputError: a map that is not 2-D/3-D integers or holds values outside ``organs``.
    """
    for sample, labels in samples.items():
        _check(sample, labels, organs)
    units = [(case, z) for case in sorted(samples)
             for z in (range(_slices(samples[case])) if config.unit == "slice" else [None])]
    rng = np.random.default_rng(config.seed)
    n_noisy = math.floor(config.fraction * len(units) + 0.5)
    chosen = set(rng.choice(len(units), size=n_noisy, replace=False).tolist())
    lo, hi = config.n_range
    out = dict(samples)
    records = []
    for i, (case, z) in enumerate(units):
        sample = case if z is None else slice_id(case, z)
        if i not in chosen:
            records.append(SampleNoise(sample, False))
            continue
        if out[case] is samples[case]:
            out[case] = samples[case].copy()
        volume = out[case].reshape((-1, *out[case].shape[-2:]))  # a view, (z, y, x)
        part = volume if z is None else volume[z:z + 1]
        present = [o for o in organs if np.any(part == o.label)]
        if config.draw == "sample":
            shared = ("dilate" if rng.random() < 0.5 else "erode", int(rng.integers(lo, hi + 1)))
            draws = dict.fromkeys((o.label for o in present), shared)
        else:
            draws = {o.label: ("dilate" if rng.random() < 0.5 else "erode",
                               int(rng.integers(lo, hi + 1))) for o in present}
        part[...], applied = _perturb(part, draws)
        records.append(SampleNoise(sample, True, {
            o.name: StructureNoise(draws[o.label][0], draws[o.label][1], applied[o.label])
            for o in present}))
    return out, NoiseRecord(config, tuple(records))


def _check(sample: str, labels: np.ndarray, organs: OrganSet) -> None:
    if not isinstance(labels, np.ndarray) or labels.ndim not in (2, 3):
        raise InvalidInputError(f"sample {sample!r}: a label map must be a 2-D or 3-D array, got "
                                f"{getattr(labels, 'shape', type(labels))}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise InvalidInputError(f"sample {sample!r}: label map must hold integers, got "
                                f"{labels.dtype}")
    unknown = sorted(set(np.unique(labels).tolist()) - {0} - set(organs.labels))
    if unknown:
        raise InvalidInputError(f"sample {sample!r}: label values {unknown} are not in organ set "
                                f"{organs.name!r}")


def _slices(labels: np.ndarray) -> int:
    return 1 if labels.ndim == 2 else labels.shape[0]


def _perturb(labels: np.ndarray, draws: dict[int, tuple[str, int]]
             ) -> tuple[np.ndarray, dict[int, int]]:
    """Dilate/erode each structure of a (z, y, x) map in-plane; returns (new map, n applied)."""
    out = labels.copy()
    applied: dict[int, int] = {}
    claims: list[tuple[int, int, tuple[slice, ...], np.ndarray]] = []
    for value, (op, n) in draws.items():
        mask = labels == value
        box = _box(mask, n + 1)
        if op == "erode":
            depth = _inplane_distance(mask[box], inside=True)
            applied[value] = min(n, math.ceil(float(depth.max())) - 1)
            out[box][mask[box] & (depth <= applied[value])] = 0
        else:
            grown = (_inplane_distance(mask[box], inside=False) <= n) & (labels[box] == 0)
            applied[value] = n
            claims.append((int(mask.sum()), value, box, grown))
    for _, value, box, grown in sorted(claims, key=lambda c: -c[0]):  # smaller structure wins
        out[box][grown] = value
    return out, applied


def _box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """Bounding box of ``mask`` (z, y, x) widened in-plane by ``margin``, clipped to the array."""
    zs, ys, xs = (np.flatnonzero(np.any(mask, axis=a)) for a in ((1, 2), (0, 2), (0, 1)))
    return (slice(zs[0], zs[-1] + 1),
            slice(max(0, ys[0] - margin), min(mask.shape[1], ys[-1] + 1 + margin)),
            slice(max(0, xs[0] - margin), min(mask.shape[2], xs[-1] + 1 + margin)))


def _inplane_distance(mask: np.ndarray, inside: bool) -> np.ndarray:
    """Per-slice Euclidean distance (pixels) in a (z, y, x) crop.

    ``inside``: for mask voxels, the distance to the nearest background voxel (the image edge
    counts as background; 0 elsewhere); else for every voxel, the distance to the nearest mask
    voxel (infinite on slices without the structure).
    """
    out = np.zeros(mask.shape) if inside else np.full(mask.shape, np.inf)
    for z in np.flatnonzero(mask.any(axis=(1, 2))):
        if inside:
            out[z] = ndimage.distance_transform_edt(np.pad(mask[z], 1))[1:-1, 1:-1]
        else:
            out[z] = ndimage.distance_transform_edt(~mask[z])
    return out


# --- single-organ contour errors (the dataset audit's test) --------------------------------------

#: The kinds of contouring error :func:`corrupt_organ` makes, as a clinic's contours show them.
CORRUPTIONS = ("dilate", "erode", "shift", "swap", "missing_slices")


@dataclass(frozen=True)
class Corruption:
    """One contouring error made in a case (what :func:`corrupt_organ` did).

    Attributes:
        kind: one of :data:`CORRUPTIONS`.
        organs: the organs whose contour changed (both of a pair for "swap").
        amount: pixels grown or shrunk (in-plane), pixels moved ("shift"), slices removed
            ("missing_slices"); 0 for "swap".
        detail: e.g. the shift vector (dy, dx) or the slice range removed.
    """

    kind: str
    organs: tuple[str, ...]
    amount: int
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "organs": list(self.organs), "amount": self.amount,
                "detail": self.detail}


def corrupt_organ(labels: np.ndarray, organs: OrganSet, organ: str, kind: str, amount: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, Corruption]:
    """One contouring error in one organ of a (z, y, x) label map; the input is not modified.

    Kinds (the errors of a clinic's contours the dataset audit must find):

    * ``"dilate"`` / ``"erode"``: grown or shrunk in-plane by ``amount`` pixels, with the rules
      of :func:`apply_label_noise` (growth claims background only; an erosion keeps at least
      one voxel).
    * ``"shift"``: moved ``amount`` pixels in-plane in a random direction; it overwrites
      background only and what leaves the array is lost.
    * ``"swap"``: the organ and its left/right partner exchange labels (``amount`` unused).
    * ``"missing_slices"``: the contour removed on ``amount`` consecutive slices of its extent
      (at a random place, always leaving at least one slice).

    Raises:
        InvalidInputError: not a 3-D integer map, the organ absent from the map, a swap of an
            unpaired organ or ``amount`` below 1 (other kinds).
        UnknownOptionError: an unknown kind or organ name (with the closest choice).
    """
    _check("labels", labels, organs)
    if labels.ndim != 3:
        raise InvalidInputError(f"corrupt_organ: a (z, y, x) label map is needed, got "
                                f"{labels.shape}")
    if kind not in CORRUPTIONS:
        raise UnknownOptionError(did_you_mean(f"unknown corruption {kind!r}", kind,
                                              list(CORRUPTIONS)))
    target = organs.by_name(organ)
    mask = labels == target.label
    if not mask.any():
        raise InvalidInputError(f"corrupt_organ: {organ} is absent from the label map")
    if kind != "swap" and int(amount) < 1:
        raise InvalidInputError(f"corrupt_organ: amount must be at least 1, got {amount}")
    amount = int(amount)
    if kind in ("dilate", "erode"):
        out, applied = _perturb(labels, {target.label: (kind, amount)})
        return out, Corruption(kind, (organ,), applied[target.label])
    out = labels.copy()
    if kind == "swap":
        partner = next((r if o is target else o for o, r in organs.pairs()
                        if target in (o, r)), None)
        if partner is None:
            raise InvalidInputError(f"corrupt_organ: {organ} has no left/right partner to "
                                    "swap with")
        other = labels == partner.label
        out[mask], out[other] = partner.label, target.label
        return out, Corruption(kind, (organ, partner.name), 0)
    if kind == "shift":
        angle = rng.uniform(0.0, 2.0 * np.pi)
        dy, dx = (int(np.rint(amount * np.sin(angle))), int(np.rint(amount * np.cos(angle))))
        moved = ndimage.shift(mask, (0, dy, dx), order=0, mode="constant", cval=False)
        out[mask] = 0
        out[moved & (out == 0)] = target.label
        return out, Corruption(kind, (organ,), amount, {"dy_dx_px": [dy, dx]})
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    count = min(amount, len(zs) - 1)
    if count < 1:
        raise InvalidInputError(f"corrupt_organ: {organ} lies on one slice; no slice range can "
                                "be removed")
    first = int(rng.integers(0, len(zs) - count + 1))
    removed = zs[first:first + count]
    for z in removed:
        out[z][mask[z]] = 0
    return out, Corruption(kind, (organ,), int(count),
                           {"slices": [int(removed[0]), int(removed[-1])]})
