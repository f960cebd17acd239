"""Does this CT show what the model was trained on, and are the contours where anatomy puts them?

Two checks around the networks (spec: "refuse input it was not made for"):

**Before contouring** the CT's axial slices are sorted into body regions from the image alone, by
landmarks that hold for any adult CT in HU (no network, no training, about 0.1 s):

============== ===============================================================================
region         a slice is put here when
============== ===============================================================================
thorax         the largest air region inside the body (< -500 HU: lung) covers more than
               12 % of the body's cross-section and at least 30 cm²
legs           two body parts of similar size (the smaller at least 40 % of the larger),
               the larger under 350 cm²
head-neck      one body part under 350 cm² (a head is about 150-250 cm², a neck 100-150)
abdomen-pelvis one body part of 350 cm² or more, without lung
none           no body part of 20 cm²
============== ===============================================================================

The model's :class:`TrainingRecord` says which regions its training CTs showed and how many mm
of them. A CT is refused (a pelvis or a chest CT given to the head-and-neck model), unless
forced, when its extent of those regions is under 20 % of the smallest extent in training, or
when under half of its slices show them and their extent is under half the smallest in training
(a chest CT that reaches into the neck). A CT with part of the anatomy (the lower half of a
head) is contoured, with a warning that organs outside its field of view will be missing; a CT
with more (a whole body for a head-and-neck model) is contoured too.

**After contouring** every organ is compared with the training cases: its volume with their
range, its side with its name (an organ named ``_L`` must lie on the patient's left of the body's
midline), and its height with the organs it lay above or below in every training case. An organ
is *removed* (left out of the RTSTRUCT, with the reason in the report) when it is clearly wrong:
on the wrong side by more than 5 mm, or a volume more than 4x outside the training range (unless
the CT's field of view cuts it). Anything else out of range is *flagged*: kept, and named in the
report, the CLI table and the overview.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from autocontour.errors import InvalidInputError
from autocontour.io.grid import canonical
from autocontour.io.volume import LabelMap, Volume
from autocontour.organs import OrganSet

REGIONS = ("head-neck", "thorax", "abdomen-pelvis", "legs", "none")
#: The regions of a body site's CTs, for models without a training record.
SITE_REGIONS: dict[str, tuple[str, ...]] = {
    "head-neck": ("head-neck",), "pelvis": ("abdomen-pelvis",), "chest": ("thorax",)}
BODY_HU = -500.0
"""Body (and its parts) is what is denser than this; lung and air are below it."""
MIN_PART_CM2, SMALL_PART_CM2 = 20.0, 350.0
LUNG_FRACTION, LUNG_MIN_CM2 = 0.12, 30.0
LEGS_RATIO = 0.4
PIXEL_MM = 4.0
"""Slices are looked at with pixels of about this size (fast, and plenty for landmarks)."""
REFUSE_EXTENT = 0.2
"""A CT is refused when its extent of the model's regions is below this share of the smallest
extent in training ..."""
MOSTLY_OTHER = 0.5
"""... or when fewer than this share of its slices show them and their extent is below this
share of the smallest extent in training (a chest CT that reaches into the neck)."""
PARTIAL_EXTENT = 0.8
"""Below this share a warning says organs outside the field of view will be missing."""
SIDE_TOLERANCE_MM = 5.0
VOLUME_FLAG, VOLUME_REMOVE = 2.0, 4.0
"""An organ's volume outside [min / f, max * f] of training is flagged (f = 2) or removed (4)."""
ABOVE_MIN_GAP_MM = 10.0
"""Pairs of organs kept in the record: one above the other by at least this in every case."""


class AnatomyError(InvalidInputError):
    """The CT does not show the anatomy the model was trained on."""


@dataclass(frozen=True)
class SliceRegions:
    """The body region of each axial slice of a CT (inferior to superior).

    Attributes:
        regions: one of :data:`REGIONS` per slice, in LPS slice order (index 0 most inferior).
        slice_mm: slice spacing in mm.
    """

    regions: tuple[str, ...]
    slice_mm: float

    def extent_mm(self, regions: Iterable[str]) -> float:
        """mm of the CT (slices x spacing) whose region is one of ``regions``."""
        wanted = set(regions)
        return sum(r in wanted for r in self.regions) * self.slice_mm

    def fractions(self) -> dict[str, float]:
        """Share of the slices per region present (sums to 1)."""
        n = max(len(self.regions), 1)
        return {r: round(self.regions.count(r) / n, 3) for r in REGIONS if r in self.regions}

    def describe(self) -> str:
        """e.g. "abdomen-pelvis 92%, none 8%"."""
        return ", ".join(f"{r} {f:.0%}" for r, f in sorted(self.fractions().items(),
                                                           key=lambda item: -item[1]))


def slice_regions(volume: Volume) -> SliceRegions:
    """Sort the axial slices of a CT into body regions (module table).

    Args:
        volume: a CT in HU, any orientation (it is brought into LPS layout first).

    Returns:
        The regions, inferior to superior.
    """
    ct = canonical(volume, "LPS")
    sx, sy, sz = ct.spacing
    step = max(1, round(PIXEL_MM / max(min(sx, sy), 1e-6)))
    array = np.asarray(ct.array[:, ::step, ::step], dtype=np.float32)
    pixel_cm2 = (sx * step) * (sy * step) / 100.0
    return SliceRegions(tuple(_region(s, pixel_cm2) for s in array), float(sz))


def _region(slice_hu: np.ndarray, pixel_cm2: float) -> str:
    dense = ndimage.binary_opening(slice_hu > BODY_HU, iterations=1)  # cuts a thin couch off
    parts, n = ndimage.label(dense)
    if n == 0:
        return "none"
    sizes = np.sort(ndimage.sum(dense, parts, range(1, n + 1)))[::-1] * pixel_cm2
    if sizes[0] < MIN_PART_CM2:
        return "none"
    largest = parts == (int(np.argmax(ndimage.sum(dense, parts, range(1, n + 1)))) + 1)
    filled = ndimage.binary_fill_holes(largest)
    air = filled & ~largest
    if air.any():
        pockets, m = ndimage.label(air)
        lung = float(np.max(ndimage.sum(air, pockets, range(1, m + 1)))) * pixel_cm2
        area = float(filled.sum()) * pixel_cm2
        if lung >= LUNG_MIN_CM2 and lung > LUNG_FRACTION * area:
            return "thorax"
    if len(sizes) > 1 and sizes[0] < SMALL_PART_CM2 and sizes[1] >= LEGS_RATIO * sizes[0]:
        return "legs"
    return "head-neck" if sizes[0] < SMALL_PART_CM2 else "abdomen-pelvis"


@dataclass(frozen=True)
class TrainingRecord:
    """What a model's training CTs looked like, saved in the model file.

    Attributes:
        site: the body site (the organ set's name, e.g. "head-neck").
        cases: how many training cases it was computed from.
        regions: share of all training slices per body region.
        extent_mm: (min, max) over the cases of the mm of the model's regions in one CT.
        spacing_mm: ((min x, y, z), (max x, y, z)) voxel sizes.
        fov_mm: ((min x, y, z), (max x, y, z)) field of view (size x spacing).
        organ_cc: organ -> (min, max) volume in cm³ over the cases that contain it.
        above: (upper, lower, smallest gap in mm): organ pairs one above the other by at least
            :data:`ABOVE_MIN_GAP_MM` in every case that has both.
    """

    site: str
    cases: int
    regions: dict[str, float]
    extent_mm: tuple[float, float]
    spacing_mm: tuple[tuple[float, ...], tuple[float, ...]]
    fov_mm: tuple[tuple[float, ...], tuple[float, ...]]
    organ_cc: dict[str, tuple[float, float]]
    above: tuple[tuple[str, str, float], ...] = ()

    def model_regions(self) -> tuple[str, ...]:
        """The regions the model is for: those of at least 5 % of the training slices."""
        return tuple(r for r, f in self.regions.items() if f >= 0.05 and r != "none")

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site, "cases": self.cases, "regions": dict(self.regions),
                "extent_mm": list(self.extent_mm),
                "spacing_mm": [list(v) for v in self.spacing_mm],
                "fov_mm": [list(v) for v in self.fov_mm],
                "organ_cc": {k: list(v) for k, v in self.organ_cc.items()},
                "above": [list(a) for a in self.above]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingRecord:
        """Read :meth:`to_dict` output (every key present, no other).

        Raises:
            InvalidInputError: missing or unknown keys, or values of the wrong kind.
        """
        keys = ("site", "cases", "regions", "extent_mm", "spacing_mm", "fov_mm", "organ_cc",
                "above")
        if not isinstance(data, Mapping) or set(data) != set(keys):
            got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise InvalidInputError(f"training record must have the keys {', '.join(keys)}; "
                                    f"got {got}")
        try:
            return cls(str(data["site"]), int(data["cases"]),
                       {str(k): float(v) for k, v in data["regions"].items()},
                       (float(data["extent_mm"][0]), float(data["extent_mm"][1])),
                       (tuple(map(float, data["spacing_mm"][0])),
                        tuple(map(float, data["spacing_mm"][1]))),
                       (tuple(map(float, data["fov_mm"][0])),
                        tuple(map(float, data["fov_mm"][1]))),
                       {str(k): (float(v[0]), float(v[1])) for k, v in data["organ_cc"].items()},
                       tuple((str(a), str(b), float(g)) for a, b, g in data["above"]))
        except (TypeError, ValueError, IndexError, KeyError, AttributeError) as exc:
            raise InvalidInputError(f"malformed training record ({exc})") from None


def record_training_data(cases: Iterable[tuple[Volume, LabelMap]],
                         organs: OrganSet) -> TrainingRecord:
    """The :class:`TrainingRecord` of a model's training cases (CTs and their labels).

    Raises:
        InvalidInputError: no case.
    """
    site_regions = SITE_REGIONS.get(organs.name)
    counts: dict[str, int] = {}
    extents, spacings, fovs = [], [], []
    volumes: dict[str, list[float]] = {}
    heights: list[dict[str, float]] = []
    for ct, labels in cases:
        regions = slice_regions(ct)
        for r in regions.regions:
            counts[r] = counts.get(r, 0) + 1
        extents.append(regions)
        spacings.append(ct.spacing)
        fovs.append(tuple(n * s for n, s in zip(ct.shape[::-1], ct.spacing, strict=True)))
        for name, cc in labels.volumes_cc().items():
            if cc > 0:
                volumes.setdefault(name, []).append(cc)
        heights.append(organ_heights(labels))
    if not extents:
        raise InvalidInputError("a training record needs at least one case")
    total = sum(counts.values())
    fractions = {r: round(c / total, 3) for r, c in sorted(counts.items())}
    wanted = tuple(r for r, f in fractions.items() if f >= 0.05 and r != "none") or site_regions \
        or ("head-neck",)
    spans = [e.extent_mm(wanted) for e in extents]
    names = sorted({n for h in heights for n in h})
    above = []
    for a in names:
        for b in names:
            gaps = [h[a] - h[b] for h in heights if a in h and b in h]
            if a != b and gaps and min(gaps) >= ABOVE_MIN_GAP_MM:
                above.append((a, b, round(min(gaps), 1)))
    def floats(values: np.ndarray, digits: int) -> tuple[float, ...]:
        return tuple(round(float(v), digits) for v in values)

    return TrainingRecord(
        organs.name, len(extents), fractions, (float(min(spans)), float(max(spans))),
        (floats(np.min(spacings, 0), 4), floats(np.max(spacings, 0), 4)),
        (floats(np.min(fovs, 0), 1), floats(np.max(fovs, 0), 1)),
        {n: (round(min(v), 3), round(max(v), 3)) for n, v in sorted(volumes.items())},
        tuple(above))


def organ_heights(labels: LabelMap) -> dict[str, float]:
    """Organ -> height (patient z in mm, LPS: larger is superior) of its centroid."""
    out = {}
    centroids = _centroids(labels)
    for name, point in centroids.items():
        out[name] = float(point[2])
    return out


def _centroids(labels: LabelMap, sizes: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Organ -> centroid in patient coordinates (LPS mm), for the organs present.

    Each organ is looked at inside its bounding box only (a whole 512 x 512 x 160 label map per
    organ would cost seconds); ``sizes``, when given, receives each organ's voxel count.
    """
    array = labels.array
    boxes = ndimage.find_objects(array, max_label=max((o.label for o in labels.organs),
                                                      default=0))
    out = {}
    for organ in labels.organs:
        box = boxes[organ.label - 1] if organ.label <= len(boxes) else None
        if box is None:
            continue
        zyx = np.nonzero(array[box] == organ.label)
        if sizes is not None:
            sizes[organ.name] = int(zyx[0].size)
        centre = np.array([idx.mean() + s.start for idx, s in zip(zyx, box, strict=True)])
        out[organ.name] = np.asarray(labels.geometry.index_to_physical(centre[::-1]))
    return out


@dataclass(frozen=True)
class AnatomyCheck:
    """The body regions of a CT and what the model makes of them."""

    regions: SliceRegions
    model_regions: tuple[str, ...]
    extent_mm: float
    needed_mm: float
    refusal: str | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"regions": self.regions.fractions(), "model_regions": list(self.model_regions),
                "extent_mm": round(self.extent_mm, 1), "needed_mm": round(self.needed_mm, 1),
                "refusal": self.refusal, "warnings": list(self.warnings)}


def check_anatomy(ct: Volume, site: str, record: TrainingRecord | None, model: str,
                  name: str = "input", regions: SliceRegions | None = None) -> AnatomyCheck:
    """Compare a CT's body regions with the model's training CTs (module docstring).

    Args:
        ct: the CT (any orientation).
        site: the model's body site (its organ set's name), used without a record.
        record: the model's training record, or None (an older model file).
        model: the model's name, for messages.
        name: how messages name the CT.
        regions: the CT's :func:`slice_regions` when already known (choosing among models).

    Returns:
        The check; ``refusal`` says in one line why the CT should not be contoured (None when
        it may be).
    """
    regions = regions or slice_regions(ct)
    if record is not None:
        wanted, smallest = record.model_regions() or SITE_REGIONS.get(site, ()), \
            record.extent_mm[0]
    else:
        wanted, smallest = SITE_REGIONS.get(site, ()), 0.0
    if not wanted:
        return AnatomyCheck(regions, (), 0.0, 0.0)
    extent = regions.extent_mm(wanted)
    share = extent / max(regions.extent_mm(REGIONS), 1e-6)
    needed = REFUSE_EXTENT * smallest if share >= MOSTLY_OTHER else MOSTLY_OTHER * smallest
    if record is None and extent == 0 and set(regions.regions) - {"none"}:
        # No record (a training checkpoint, an older model file): refuse only a CT that shows
        # a body, none of it of the model's site.
        needed = regions.slice_mm
    warnings: list[str] = []
    refusal = None
    if extent < needed:
        trained = (f"with at least {smallest:.0f} mm of it ({needed:.0f} mm needed)"
                   if record is not None else "")
        refusal = (f"{name}: this CT shows {regions.describe()} of its slices and only "
                   f"{extent:.0f} mm of {' / '.join(wanted)} anatomy, but model {model} was "
                   f"trained on {site} CTs {trained}".rstrip())
    elif record is not None and extent < PARTIAL_EXTENT * smallest:
        warnings.append(f"{name}: partial field of view: {extent:.0f} mm of "
                        f"{' / '.join(wanted)} anatomy against at least {smallest:.0f} mm in "
                        "training; organs outside the CT are missing")
    if record is not None:
        warnings += _range_warnings(ct, record, name)
    return AnatomyCheck(regions, tuple(wanted), extent, needed, refusal, tuple(warnings))


def _range_warnings(ct: Volume, record: TrainingRecord, name: str) -> list[str]:
    out = []
    fov = [n * s for n, s in zip(ct.shape[::-1], ct.spacing, strict=True)]
    low, high = record.fov_mm
    for axis, value, lo, hi in zip("xyz", fov, low, high, strict=True):
        if value > 2.0 * hi or value < 0.5 * lo:
            out.append(f"{name}: field of view {value:.0f} mm along {axis} is outside the "
                       f"training range {lo:.0f}-{hi:.0f} mm")
    return out


@dataclass(frozen=True)
class OrganFlag:
    """An organ the checks after contouring found wrong (removed) or doubtful (flagged)."""

    organ: str
    action: str  # "removed" or "flagged"
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"organ": self.organ, "action": self.action, "reason": self.reason}


def check_organs(labels: LabelMap, ct: Volume, record: TrainingRecord | None
                 ) -> list[OrganFlag]:
    """Check the contoured organs' volumes, sides and heights (module docstring).

    Args:
        labels: the result on the CT's grid.
        ct: the CT (for the body midline and the field of view).
        record: the model's training record; without one only the sides are checked.

    Returns:
        One flag per doubtful or wrong organ (an organ removed is not flagged again).
    """
    flags: dict[str, OrganFlag] = {}
    sizes: dict[str, int] = {}
    centroids = _centroids(labels, sizes)
    midline = _midline_x(ct, labels)
    for organ in labels.organs:
        if organ.name not in centroids or organ.side is None or midline is None:
            continue
        x = float(centroids[organ.name][0])  # LPS: +x is the patient's left
        wrong = (x < midline - SIDE_TOLERANCE_MM) if organ.side == "L" \
            else (x > midline + SIDE_TOLERANCE_MM)
        if wrong:
            side = "right" if organ.side == "L" else "left"
            flags[organ.name] = OrganFlag(organ.name, "removed",
                                          f"lies on the patient's {side} "
                                          f"({abs(x - midline):.0f} mm from the midline)")
    if record is None:
        return list(flags.values())
    cut = _cut_by_fov(labels)
    voxel_cc = float(np.prod(labels.spacing)) / 1000.0
    for name, voxels in sizes.items():
        cc = voxels * voxel_cc
        if name in flags or name not in record.organ_cc:
            continue
        lo, hi = record.organ_cc[name]
        where = f"{cc:.2f} cm³ against {lo:.2f}-{hi:.2f} cm³ in training"
        if (cc > hi * VOLUME_REMOVE or cc < lo / VOLUME_REMOVE) and name not in cut:
            flags[name] = OrganFlag(name, "removed", f"volume {where}")
        elif cc > hi * VOLUME_FLAG or cc < lo / VOLUME_FLAG:
            note = "; cut by the field of view" if name in cut else ""
            flags[name] = OrganFlag(name, "flagged", f"volume {where}{note}")
    heights = {n: float(p[2]) for n, p in centroids.items() if n not in flags}
    for upper, lower, gap in record.above:
        if upper in heights and lower in heights and heights[upper] < heights[lower] - 5.0:
            for organ, other, how in ((upper, lower, "below"), (lower, upper, "above")):
                if organ not in flags:
                    flags[organ] = OrganFlag(organ, "flagged",
                                             f"lies {how} {other}; in every training case it "
                                             f"lay {'above' if how == 'below' else 'below'} it "
                                             f"(by {gap:.0f} mm or more)")
    return list(flags.values())


def _midline_x(ct: Volume, labels: LabelMap) -> float | None:
    """Patient x (LPS mm) of the body's centre on the slices that hold organs."""
    array = labels.array
    zs = np.nonzero(array.reshape(array.shape[0], -1).any(1))[0]
    if zs.size == 0:
        return None
    step = max(1, round(PIXEL_MM / max(min(ct.spacing[:2]), 1e-6)))  # about 4 mm pixels
    body = ct.array[zs[0]:zs[-1] + 1, ::step, ::step] > BODY_HU
    if not body.any():
        return None
    centre = np.asarray(ndimage.center_of_mass(body), dtype=float) * (1, step, step)
    centre[0] += zs[0]
    return float(ct.geometry.index_to_physical(centre[::-1])[0])


def _cut_by_fov(labels: LabelMap) -> set[str]:
    """Organs that touch the first or last slice of the CT (the field of view cuts them)."""
    edge = np.union1d(np.unique(labels.array[0]), np.unique(labels.array[-1]))
    return {o.name for o in labels.organs if o.label in edge}


def remove_organs(labels: LabelMap, names: Sequence[str]) -> LabelMap:
    """The label map with these organs set to background."""
    if not names:
        return labels
    array = labels.array.copy()
    for name in names:
        array[array == labels.organs.by_name(name).label] = 0
    return labels.with_array(array)


@dataclass(frozen=True)
class SexDecision:
    """Whose anatomy the organs of one sex only (prostate, cervix CTV) are kept for, and why."""

    sex: str | None  # "male", "female", or None when undecided
    source: str      # "DICOM PatientSex" or "image"
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"sex": self.sex, "source": self.source, "detail": self.detail}


_DICOM_SEX = {"M": "male", "F": "female"}


def decide_sex(ct: Volume, labels: LabelMap, record: TrainingRecord | None
               ) -> SexDecision | None:
    """The patient's sex, for a model with organs of one sex only (None for other models).

    The DICOM header's PatientSex (M or F) decides when present. Otherwise the image does: each
    sex's organs as the networks found them, as a share of their smallest volume in training
    (a real prostate or cervix CTV is at least that; what a network finds of the other sex's
    organ is a few stray voxels); the larger share wins. Nothing found of either: undecided.
    """
    specific = [o for o in labels.organs if o.sex]
    if not specific:
        return None
    header = ct.dicom.header if ct.dicom is not None else None
    stated = str(header.get("PatientSex", "") or "").strip().upper() if header is not None else ""
    if stated in _DICOM_SEX:
        return SexDecision(_DICOM_SEX[stated], "DICOM PatientSex", f"PatientSex {stated}")
    volumes = labels.volumes_cc()
    share: dict[str, float] = {}
    parts = []
    for organ in specific:
        smallest = record.organ_cc.get(organ.name, (1.0, 1.0))[0] if record else 1.0
        value = volumes.get(organ.name, 0.0) / max(smallest, 1e-3)
        share[organ.sex] = share.get(organ.sex, 0.0) + value  # type: ignore[index]
        parts.append(f"{organ.name} {volumes.get(organ.name, 0.0):.1f} cm³ "
                     f"({value:.0%} of the smallest in training)")
    detail = ", ".join(parts) + (f"; DICOM PatientSex {stated!r}" if stated else "")
    if max(share.values()) < 0.1:
        return SexDecision(None, "image", detail + ": neither found")
    return SexDecision(max(share, key=share.__getitem__), "image", detail)


def sex_flags(labels: LabelMap, decision: SexDecision | None) -> list[OrganFlag]:
    """The organs of the other sex, to be removed (none while undecided)."""
    if decision is None or decision.sex is None:
        return []
    return [OrganFlag(o.name, "removed", f"{o.name} is {o.sex} anatomy and the patient is "
                      f"{decision.sex} ({decision.source}: {decision.detail})")
            for o in labels.organs if o.sex and o.sex != decision.sex]


@dataclass
class SafetyReport:
    """What the checks around contouring found, for the report, the CLI and the overview."""

    anatomy: AnatomyCheck | None = None
    forced: bool = False
    organs: list[OrganFlag] = field(default_factory=list)
    sex: SexDecision | None = None

    def removed(self) -> list[str]:
        return [f.organ for f in self.organs if f.action == "removed"]

    def to_dict(self) -> dict[str, Any]:
        return {"anatomy": self.anatomy.to_dict() if self.anatomy else None,
                "forced": self.forced, "organs": [f.to_dict() for f in self.organs],
                "sex": self.sex.to_dict() if self.sex else None}
