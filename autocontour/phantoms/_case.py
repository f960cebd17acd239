"""The phantom case type and what the 3-D sites share: per-case variation and assembly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.uid import generate_uid

from autocontour.errors import InvalidInputError
from autocontour.io.volume import LabelMap, Volume
from autocontour.organs import OrganSet
from autocontour.phantoms._imaging import finish_ct, finish_mr
from autocontour.phantoms._render import (
    Deformation,
    Pose,
    Structure,
    grid_geometry,
    paint_slabs,
    render,
)

SLICE_MM = 3.0


@dataclass(frozen=True)
class PhantomCase:
    """One synthetic patient: images, labels and what was drawn to make them.

    Attributes:
        case_id: e.g. "hn_s0007".
        site: "head-neck", "pelvis" or "chest".
        ct: int16 HU CT (chest: a float32 radiograph in 0..1, modality "DX").
        mr: float32 MR-like image of the same anatomy on the same grid (None for the chest).
        labels: uint8 label map of the site's organ set.
        meta: JSON-serialisable record of the seed, pose, deformation and per-organ factors.
    """

    case_id: str
    site: str
    ct: Volume
    mr: Volume | None
    labels: LabelMap
    meta: dict[str, Any]


class Variation:
    """Draws a case's random factors from its generator and records each one for ``meta``."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.record: dict[str, Any] = {}

    def stream(self, rng: np.random.Generator) -> Variation:
        """A Variation drawing from ``rng`` into the same record.

        Parts added to a phantom later draw from a stream of their own, so that the draws of the
        older parts, and with them a seed's anatomy, stay what they were.
        """
        other = Variation(rng)
        other.record = self.record
        return other

    def factor(self, name: str, spread: float) -> float:
        """A multiplicative factor uniform in [1 - spread, 1 + spread]."""
        return self.uniform(name, 1.0 - spread, 1.0 + spread)

    def uniform(self, name: str, lo: float, hi: float) -> float:
        value = float(self.rng.uniform(lo, hi))
        self.record[name] = round(value, 4)
        return value

    def choice(self, name: str, options: Sequence[str]) -> str:
        value = str(options[int(self.rng.integers(len(options)))])
        self.record[name] = value
        return value


def check_shape(shape: Sequence[int], minimum: int = 8) -> tuple[int, int, int]:
    """Validate a (z, y, x) grid shape given by a caller.

    Raises:
        InvalidInputError: not three integers, or one smaller than ``minimum``.
    """
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"phantom shape must be 3 integers (z, y, x), got {shape!r}"
        ) from None
    if len(out) != 3 or min(out) < minimum:
        raise InvalidInputError(
            f"phantom shape must be 3 integers (z, y, x), each >= {minimum}, got {shape!r}"
        )
    return out  # type: ignore[return-value]


def frame_uid(site: str, seed: int, shape: Sequence[int]) -> str:
    """A Frame of Reference UID that is the same for the same site, seed and grid."""
    return generate_uid(
        entropy_srcs=["autocontour-phantom", site, str(seed), "x".join(str(s) for s in shape)]
    )


def couch_slabs(
    pose: Pose, support_points: Sequence[Sequence[float]], gap_mm: float, hu: float
) -> list[tuple[float, float, float]]:
    """A flat tabletop (two dense skins round a foam core) just below the patient's back."""
    top = float(pose.to_world(np.asarray(support_points, float))[:, 1].max()) + gap_mm
    return [(top, top + 4.0, hu), (top + 4.0, top + 24.0, -880.0), (top + 24.0, top + 28.0, hu)]


@dataclass(frozen=True)
class Recipe:
    """Everything a 3-D site decides before rendering; :func:`build` does the rest."""

    site: str
    prefix: str
    organs: OrganSet
    fov_mm: float
    structures: list[Structure]
    pose: Pose
    deformation: Deformation
    variation: Variation
    couch_support: list[tuple[float, float, float]]
    mr_weighting: str
    variant: str = ""  # distinguishes cases of one seed that differ by choice (e.g. sex)


def build(recipe: Recipe, seed: int, shape: tuple[int, int, int]) -> PhantomCase:
    """Render a recipe on a grid and wrap the images, labels and record into a PhantomCase."""
    var = recipe.variation
    geometry = grid_geometry(
        shape, recipe.fov_mm, SLICE_MM, frame_uid(recipe.site + recipe.variant, seed, shape)
    )
    img = render(recipe.structures, geometry, recipe.pose, recipe.deformation, seed)
    gap = var.uniform("couch_gap_mm", 2.0, 10.0)
    couch_hu = var.uniform("couch_hu", 250.0, 550.0)
    paint_slabs(img.ct, geometry, couch_slabs(recipe.pose, recipe.couch_support, gap, couch_hu))
    noise_hu = var.uniform("ct_noise_hu", 15.0, 25.0)
    mr_noise = var.uniform("mr_noise", 0.015, 0.03)
    mr_bias = var.uniform("mr_bias", 0.05, 0.15)
    ct = Volume(finish_ct(img.ct, seed, noise_hu), geometry, modality="CT")
    mr = Volume(finish_mr(img.mr, geometry, seed, mr_noise, mr_bias), geometry, modality="MR")
    labels = LabelMap(img.labels, geometry, organs=recipe.organs)
    meta = {
        "seed": int(seed),
        "site": recipe.site,
        "shape": list(shape),
        "spacing_mm": list(geometry.spacing),
        "fov_mm": recipe.fov_mm,
        "pose": recipe.pose.to_dict(),
        "deformation": recipe.deformation.to_dict(),
        "mr_weighting": recipe.mr_weighting,
        "factors": dict(var.record),
    }
    return PhantomCase(f"{recipe.prefix}_s{seed:04d}", recipe.site, ct, mr, labels, meta)
