"""The combined model of seed 004 (spec B4): several networks, one organ set, one rule.

A :class:`ContourModel` holds one or more member networks that all see the same preprocessed
CT (the model grid) and a per-organ rule that says which member each organ's contour comes
from. Seed 004 combined three:

* a 2-D U-Net on axial slices (good for organs drawn on thick slices),
* a 3-D U-Net on the body crop (good for large organs with 3-D context),
* a 3-D-small U-Net for the optic chiasm and the pituitary, run only on a 16x64x64 (z, y, x)
  region centred on the 2-D model's prediction of those two organs.

A plain training checkpoint is a model with one member, so one code path contours with either.
The rule is chosen from validation Dice (:func:`choose_rule`), saved with the model and printed
(:meth:`ContourModel.rule_table`).

How member outputs combine: organ c's probability is the probability its chosen member gives
c; the background is ``1 - max_c`` of those (with a single member, its own background). The
arg-max of the result is what a clinician expects ("the parotids come from the 3-D model"),
and it stays a smooth field that can be interpolated onto the CT's own grid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from autocontour.data.recipes import Recipe
from autocontour.errors import InvalidInputError, did_you_mean
from autocontour.inference.checks import InputExpectations
from autocontour.io.volume import Geometry, Volume
from autocontour.models.inferer import SlidingWindowInferer
from autocontour.organs import OrganSet

#: Seed 004's 3-D-small region (z, y, x voxels) and the organs it is for.
SMALL_ROI_SIZE = (16, 64, 64)
SMALL_ROI_ORGANS = ("OpticChiasm", "Pituitary")


@dataclass(frozen=True)
class RoiSpec:
    """Where a region member runs, placed by another member's prediction.

    Two kinds of region:

    * ``margin_mm`` None (seed 004's 3-D-small): a box of ``size`` voxels of the model grid
      centred on the centroid of the centring member's prediction of ``organs``;
    * ``margin_mm`` set (a member on its own, finer grid): the bounding box of that prediction
      grown by ``margin_mm`` on every side, on the member's grid, and at least ``size`` voxels.

    Attributes:
        size: (z, y, x) voxels: the box (fixed kind) or its smallest size (bounding-box kind).
        organs: the organs whose prediction (their union) places the box.
        centre_from: the whole-volume member whose prediction places the box.
        margin_mm: the bounding-box kind's margin; None for the fixed kind.
    """

    size: tuple[int, int, int]
    organs: tuple[str, ...]
    centre_from: str
    margin_mm: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"size": list(self.size), "organs": list(self.organs),
                               "centre_from": self.centre_from}
        if self.margin_mm is not None:
            out["margin_mm"] = float(self.margin_mm)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoiSpec:
        margin = data.get("margin_mm")
        return cls(tuple(int(s) for s in data["size"]), tuple(data["organs"]),
                   str(data["centre_from"]), None if margin is None else float(margin))


@dataclass
class Member:
    """One network of a model.

    Attributes:
        name: e.g. "2d", "3d", "3d_small".
        net: the network (eval mode), output channel c = label value c.
        patch_size: its sliding window (z, y, x); z is 1 for a 2-D network.
        roi: for a region member, where it runs; None for a whole-volume member.
        recipe: the member's own preprocessing (a finer grid than the model's, for small
            organs: seed 004's 3-D-small idea at clinical resolution); None: the model's.
            A member with its own recipe is a region member with a bounding-box region.
    """

    name: str
    net: nn.Module
    patch_size: tuple[int, int, int]
    roi: RoiSpec | None = None
    recipe: Recipe | None = None


@dataclass
class FinePart:
    """Probabilities a member on its own grid gave, for its organs, in its box.

    Attributes:
        member: the member's name.
        probabilities: ``(classes, z, y, x)`` float32 on ``geometry``: the member's organs
            (every other organ 0) and the background ``1 - max`` of them.
        geometry: the box on the member's grid (LPS, mm; the CT's Frame of Reference).
        organs: the organs it gives.
    """

    member: str
    probabilities: Tensor
    geometry: Geometry
    organs: list[str]


@dataclass
class Combined:
    """What :func:`combined_probabilities` returns.

    Attributes:
        probabilities: ``(classes, Z, Y, X)`` on the model grid; organs that a member on its own
            grid gives are 0 here (the background takes their place) and come in ``parts``.
        warnings: e.g. a region member that could not be placed and fell back to another.
        parts: what members on their own grid gave (painted over the labels after regridding).
    """

    probabilities: Tensor
    warnings: list[str]
    parts: list[FinePart] = field(default_factory=list)


@dataclass
class ContourModel:
    """Member networks, the rule that combines them, and what a CT must look like for them.

    Attributes:
        name: the model's name (reports, RTSTRUCT series description).
        organs: the organ set (label values = output channels).
        recipe: the preprocessing every member was trained with.
        expect: modality, spacing and orientation of the training data (input checks).
        members: name -> member.
        rule: organ name -> the member its contour comes from.
        fallback: organ name -> a whole-volume member to use when a region member cannot be
            placed (the member centring it found none of its organs).
        largest_component: organ name -> keep only its largest connected component.
        info: provenance (version, training command and time, validation Dice).

    Raises:
        InvalidInputError: a rule that names an unknown member or organ, a region member whose
            centring member is missing or is itself a region member.
    """

    name: str
    organs: OrganSet
    recipe: Recipe
    expect: InputExpectations
    members: dict[str, Member]
    rule: dict[str, str]
    fallback: dict[str, str] = field(default_factory=dict)
    largest_component: dict[str, bool] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.members:
            raise InvalidInputError(f"model {self.name!r} has no member network")
        for organ, member in {**self.rule, **self.fallback}.items():
            if organ not in self.organs.names:
                raise InvalidInputError(f"model {self.name!r}: the rule names organ {organ!r}, "
                                        f"not in organ set {self.organs.name!r}")
            if member not in self.members:
                raise InvalidInputError(f"model {self.name!r}: organ {organ} comes from member "
                                        f"{member!r}, which the model does not have")
        for m in self.members.values():
            if m.recipe is not None and (m.roi is None or m.roi.margin_mm is None):
                raise InvalidInputError(f"model {self.name!r}: member {m.name!r} has its own "
                                        "grid but no bounding-box region (roi.margin_mm)")
            if m.roi is None:
                continue
            source = self.members.get(m.roi.centre_from)
            if source is None or source.roi is not None:
                raise InvalidInputError(f"model {self.name!r}: region member {m.name!r} is "
                                        f"centred by {m.roi.centre_from!r}, which is not a "
                                        "whole-volume member")

    @property
    def classes(self) -> int:
        """Output channels: the largest label value + 1."""
        return max(self.organs.labels) + 1

    def member_for(self, organ: str) -> str:
        """The member an organ comes from (the first whole-volume member if the rule is silent)."""
        return self.rule.get(organ) or next(n for n, m in self.members.items() if m.roi is None)

    def resolve_organs(self, organs: Iterable[str] | None) -> list[str]:
        """Organ names asked for (any case) -> this model's names, in organ-set order.

        Raises:
            InvalidInputError: a name the model does not contour (with the closest one).
        """
        if organs is None:
            return list(self.organs.names)
        by_key = {n.lower(): n for n in self.organs.names}
        wanted = set()
        for name in organs:
            key = str(name).strip().lower()
            if key not in by_key:
                raise InvalidInputError(did_you_mean(
                    f"model {self.name!r} does not contour {name!r}", key, list(by_key)) +
                    f" (it contours: {', '.join(self.organs.names)})")
            wanted.add(by_key[key])
        return [n for n in self.organs.names if n in wanted]

    def rule_table(self) -> str:
        """The per-organ rule as aligned text, with the validation Dice it was chosen from."""
        dices = self.info.get("validation_dice", {})
        names = list(self.members)
        head = f"{'organ':<18}{'from':<10}" + "".join(f"{n:>10}" for n in names) + "  LCC"
        lines = [head]
        for organ in self.organs.names:
            cells = []
            for n in names:
                value = dices.get(n, {}).get(organ)
                cells.append(f"{value:>10.3f}" if isinstance(value, float) else f"{'-':>10}")
            lcc = "yes" if self.largest_component.get(organ, False) else "no"
            lines.append(f"{organ:<18}{self.member_for(organ):<10}{''.join(cells)}  {lcc}")
        return "\n".join(lines)

    def to(self, device: torch.device | str) -> ContourModel:
        """Move the networks (and the generators of the recipes' channel steps) to ``device``."""
        device = str(torch.device(device))
        for m in self.members.values():
            m.net.to(device).eval()
            if m.recipe is not None:
                m.recipe = m.recipe.to(device)
        self.recipe = self.recipe.to(device)
        return self


StageHook = Callable[[str], None]


def combined_probabilities(model: ContourModel, image: Tensor, *, organs: Sequence[str],
                           tta: bool = False, device: torch.device | str = "cpu",
                           on_stage: StageHook | None = None, grid: Geometry | None = None,
                           canonical: Volume | None = None, amp: bool = False) -> Combined:
    """Probabilities of every class on the model grid, each organ from its member.

    Args:
        model: the model.
        image: ``(1, C, Z, Y, X)`` preprocessed CT (any device; moved to ``device``).
        organs: the organs wanted (model names); the others get probability 0.
        tta: also predict the left-right mirrored CT (paired organs swapped) and average.
        device: where the networks run.
        on_stage: called with a stage name (e.g. "network 3d") when that stage finishes.
        grid: the geometry of ``image`` (the model grid), and
        canonical: the CT before preprocessing (canonically oriented): both needed to run a
            member on its own grid; without them, that member's organs come from the member
            that places its box (as on the model grid in validation).

    Returns:
        :class:`Combined`: probabilities on the CPU, warnings, and the parts of members on
        their own grid.
    """
    wanted = set(organs)
    fine_ok = grid is not None and canonical is not None
    rule = {o: model.member_for(o) for o in organs}
    deferred: dict[str, list[str]] = {}  # own-grid member -> its organs
    for organ, name in list(rule.items()):
        member = model.members[name]
        if member.recipe is not None and member.roi is not None:
            if fine_ok:
                deferred.setdefault(name, []).append(organ)
            # its estimate on the model grid: used where the box cannot be placed
            rule[organ] = model.fallback.get(organ) or member.roi.centre_from
    needed = set(rule.values())
    for name in list(needed):
        roi = model.members[name].roi
        if roi is not None:
            needed.add(roi.centre_from)
    order = [n for n, m in model.members.items() if n in needed and m.roi is None]
    regions = [n for n, m in model.members.items() if n in needed and m.roi is not None]
    mirror = model.organs.mirror_lookup()[:model.classes]
    x = image.to(device)
    spatial = tuple(image.shape[2:])
    probs = torch.zeros((model.classes, *spatial), dtype=torch.float32)
    single = len(needed) == 1 and not regions
    centres: dict[str, np.ndarray | None] = {}
    extents: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    warnings: list[str] = []

    def run_whole(name: str, fill: Sequence[str]) -> None:
        member = model.members[name]
        inferer = SlidingWindowInferer(member.patch_size, amp=amp)
        p = inferer.probabilities(member.net, x, tta=tta,
                                                                  mirror=mirror)
        for organ in fill:
            label = model.organs.by_name(organ).label
            probs[label] = p[label]
        if single:
            unwanted = [o.label for o in model.organs if o.name not in wanted]
            probs[0] = p[0] + (p[unwanted].sum(0) if unwanted else 0.0)
        for r in [*regions, *deferred]:
            roi = model.members[r].roi
            if roi is None or roi.centre_from != name or r in centres or r in extents:
                continue
            labels = [model.organs.by_name(o).label for o in roi.organs]
            if r in deferred:
                extents[r] = _extent(p, labels)
            else:
                centres[r] = _centroid(p, labels)
        if on_stage:
            on_stage(f"network {name}")

    for name in order:
        run_whole(name, [o for o in organs if rule[o] == name])
    for name in regions:
        member = model.members[name]
        assert member.roi is not None
        centre = centres.get(name)
        mine = [o for o in organs if rule[o] == name]
        if centre is None:
            backups = {o: model.fallback.get(o) or order[0] for o in mine}
            warnings.append(
                f"the {member.roi.centre_from} model found none of {', '.join(member.roi.organs)}"
                f" to centre the {name} region on; {', '.join(mine)} taken from "
                f"{', '.join(sorted(set(backups.values())))} instead")
            for backup in sorted(set(backups.values())):
                run_whole(backup, [o for o, b in backups.items() if b == backup])
            continue
        box = roi_box(centre, member.roi.size, spatial)
        crop = _crop(x, box, member.roi.size)
        inferer = SlidingWindowInferer(member.patch_size, amp=amp)
        p = inferer.probabilities(member.net, crop, tta=tta,
                                                                  mirror=mirror)
        for organ in mine:
            label = model.organs.by_name(organ).label
            probs[label] = 0.0
            probs[(label, *box.target)] = p[(label, *box.source)]
        if on_stage:
            on_stage(f"network {name}")
    parts: list[FinePart] = []
    for name, mine in deferred.items():
        member = model.members[name]
        assert member.roi is not None and grid is not None and canonical is not None
        extent = extents.get(name)
        if extent is None:
            backups = sorted({rule[o] for o in mine})
            warnings.append(f"the {member.roi.centre_from} model found none of "
                            f"{', '.join(member.roi.organs)} to place the {name} region on; "
                            f"{', '.join(mine)} taken from {', '.join(backups)} instead")
            continue
        parts.append(_run_own_grid(model, member, mine, extent, grid, canonical, tta, device,
                                   amp))
        for organ in mine:  # the part replaces the coarse estimate
            label = model.organs.by_name(organ).label
            if single:
                probs[0] += probs[label]
            probs[label] = 0.0
        if on_stage:
            on_stage(f"network {name}")
    if not single:
        probs[0] = 1.0 - probs[1:].amax(0) if model.classes > 1 else 1.0
    return Combined(probs, warnings, parts)


def _run_own_grid(model: ContourModel, member: Member, organs: Sequence[str],
                  extent: tuple[np.ndarray, np.ndarray], grid: Geometry, canonical: Volume,
                  tta: bool, device: torch.device | str, amp: bool = False) -> FinePart:
    """Run a member on its own grid, in the box its organs' coarse extent gives."""
    assert member.recipe is not None and member.roi is not None
    assert member.roi.margin_mm is not None
    pre = member.recipe.apply(canonical)
    fine = pre.image.geometry
    lo, hi = extent  # (z, y, x) model-grid indices of the coarse prediction
    corners = np.array([[x, y, z] for z in (lo[0], hi[0]) for y in (lo[1], hi[1])
                        for x in (lo[2], hi[2])], dtype=float)
    mm = grid.index_to_physical(corners)
    margin = member.roi.margin_mm
    idx = np.concatenate([fine.physical_to_index(mm.min(0)[None] - margin),
                          fine.physical_to_index(mm.max(0)[None] + margin)])[:, ::-1]  # z, y, x
    first, last = np.floor(idx.min(0)), np.ceil(idx.max(0))
    size = tuple(int(max(s, last[a] - first[a] + 1)) for a, s in enumerate(member.roi.size))
    box = roi_box((first + last) / 2.0, size, fine.shape)
    x = torch.from_numpy(pre.stacked())[None]
    crop = _crop(x.to(device), box, size)
    mirror = model.organs.mirror_lookup()[:model.classes]
    inferer = SlidingWindowInferer(member.patch_size, amp=amp)
    p = inferer.probabilities(member.net, crop, tta=tta,
                                                              mirror=mirror)
    shape = tuple(s.stop - s.start for s in box.target)
    out = torch.zeros((model.classes, *shape), dtype=torch.float32)
    for organ in organs:
        label = model.organs.by_name(organ).label
        out[label] = p[(label, *box.source)].float().cpu()
    out[0] = 1.0 - out[1:].amax(0)
    start = np.array([[box.target[2].start, box.target[1].start, box.target[0].start]], float)
    origin = tuple(float(v) for v in fine.index_to_physical(start)[0])
    geometry = Geometry(shape, fine.spacing, origin, fine.direction, fine.frame_of_reference_uid)
    return FinePart(member.name, out, geometry, list(organs))


def _extent(p: Tensor, labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray] | None:
    """First and last (z, y, x) index of the voxels whose arg-max is one of ``labels``."""
    zyx = _winning(p, labels)
    return None if zyx is None else (zyx.min(0).values.numpy(), zyx.max(0).values.numpy())


def _winning(p: Tensor, labels: Sequence[int]) -> Tensor | None:
    """Indices (N, 3) of the voxels whose arg-max is one of ``labels``; None if there is none."""
    winner = p.argmax(0)
    mask = torch.zeros_like(winner, dtype=torch.bool)
    for label in labels:
        mask |= winner == label
    return mask.nonzero() if bool(mask.any()) else None


def _centroid(p: Tensor, labels: Sequence[int]) -> np.ndarray | None:
    """Index centroid (z, y, x) of the voxels whose arg-max is one of ``labels``; None if none."""
    zyx = _winning(p, labels)
    return None if zyx is None else zyx.double().mean(0).numpy()


@dataclass(frozen=True)
class RoiBox:
    """A region on the model grid and where it sits inside the (possibly padded) crop."""

    target: tuple[slice, slice, slice]  # in the volume
    source: tuple[slice, slice, slice]  # in the crop
    start: tuple[int, int, int]         # crop corner in volume indices (may be negative)


def roi_box(centre: Sequence[float], size: Sequence[int], shape: Sequence[int]) -> RoiBox:
    """The box of ``size`` centred on ``centre``, shifted inside the volume where it fits.

    Where the volume is smaller than the box along an axis, the box starts before the volume
    (the crop is padded there).
    """
    start, target, source = [], [], []
    for c, s, n in zip(centre, size, shape, strict=True):
        lo = round(float(c)) - s // 2
        lo = min(max(lo, 0), n - s) if n >= s else -((s - n) // 2)
        start.append(lo)
        t0, t1 = max(lo, 0), min(lo + s, n)
        target.append(slice(t0, t1))
        source.append(slice(t0 - lo, t1 - lo))
    return RoiBox(tuple(target), tuple(source), tuple(start))


def _crop(x: Tensor, box: RoiBox, size: Sequence[int]) -> Tensor:
    """The region of ``x`` (1, C, Z, Y, X), padded with the image minimum outside it."""
    out = torch.full((*x.shape[:2], *size), float(x.min()), dtype=x.dtype, device=x.device)
    out[(slice(None), slice(None), *box.source)] = x[(slice(None), slice(None), *box.target)]
    return out


def choose_rule(member_dice: Mapping[str, Mapping[str, float]], organs: Sequence[str],
                members: Mapping[str, Member] | None = None
                ) -> tuple[dict[str, str], dict[str, str]]:
    """Pick each organ's member by validation Dice (spec B4).

    Args:
        member_dice: member -> organ -> mean validation Dice (members that do not cover an
            organ leave it out, e.g. a region member only scores its own organs).
        organs: the organs to decide.
        members: the members (to know which are whole-volume, for the fall-backs); without it
            every member counts as whole-volume.

    Returns:
        (rule, fallback): organ -> best member (ties: the first member in ``member_dice``
        order); organ -> best whole-volume member (the fall-back for a region member). An
        organ no member scored (in no validation case, predicted by none) goes to the first
        whole-volume member.

    Raises:
        InvalidInputError: no member at all.
    """
    whole_members = [n for n in member_dice if members is None or
                     (n in members and members[n].roi is None)]
    if not whole_members:
        raise InvalidInputError("choose_rule needs at least one whole-volume member")
    rule, fallback = {}, {}
    for organ in organs:
        scored = [(name, d[organ]) for name, d in member_dice.items() if organ in d]
        if not scored:
            rule[organ] = fallback[organ] = whole_members[0]
            continue
        rule[organ] = max(scored, key=lambda item: item[1])[0]
        whole = [(n, v) for n, v in scored
                 if members is None or (n in members and members[n].roi is None)]
        if whole:
            fallback[organ] = max(whole, key=lambda item: item[1])[0]
    return rule, fallback
