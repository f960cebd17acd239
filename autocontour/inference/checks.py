"""Checks an image before a model contours it.

A network trained on head-first-supine CTs in Hounsfield units gives confident nonsense for an
MR, for a CT read without its rescale, or for an array stored feet-first. :func:`check_input`
refuses what cannot be contoured (with a message that says what to give instead) and warns about
what the pipeline repairs (spacing, orientation). The orientation repair itself is
:func:`autocontour.io.grid.canonical`: the same image with its axes permuted/flipped (or, for an
oblique grid, resampled) into the training layout, every voxel keeping its LPS position so the
contours map back exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from autocontour.errors import InvalidInputError, UnknownOptionError
from autocontour.inference.anatomy import TrainingRecord
from autocontour.io.grid import check_orientation_code, is_axis_aligned, obliquity_deg
from autocontour.io.volume import Volume

MODALITIES = ("CT", "MR")
AIR_PERCENTILE_MAX_HU = -500.0
"""A CT in HU has air (-1000 HU) around the patient: its 1st percentile lies below this."""
SPACING_FACTOR = 2.0
"""An axis whose spacing differs from the training median by more than this factor is warned."""
THICK_SLICE_MM = 5.0
"""Slices thicker than this lose small organs (lens, chiasm, cochlea) between them."""
ANISOTROPY_MAX = 10.0
"""Largest / smallest voxel side above which contours follow visible steps."""
SAMPLE_VOXELS = 1_000_000
"""Intensity percentiles are computed on at most this many voxels (a fixed random subset)."""

_POSITIONS = {"RAS": "head-first prone", "RPI": "feet-first supine", "LAI": "feet-first prone"}


@dataclass(frozen=True)
class InputExpectations:
    """What a model was trained on, so an input can be checked against it.

    Attributes:
        modality: "CT" or "MR".
        spacing: median training voxel size (x, y, z) in mm, or None when unknown (no spacing
            check).
        orientation: orientation code of the model's array layout (e.g. "LPS": columns to the
            patient's left, rows posterior, slices superior).
        record: what the training CTs looked like (body regions, field of view, organ volumes
            and positions) for the anatomy checks; None for models built before it existed.

    Raises:
        UnknownOptionError: a modality other than CT/MR, or an invalid orientation code.
        InvalidInputError: a spacing that is not three positive numbers.
    """

    modality: str = "CT"
    spacing: tuple[float, float, float] | None = None
    orientation: str = "LPS"
    record: TrainingRecord | None = None

    def __post_init__(self) -> None:
        modality = str(self.modality).strip().upper()
        if modality not in MODALITIES:
            raise UnknownOptionError(f"model modality {self.modality!r} is not one of "
                                     f"{', '.join(MODALITIES)}")
        object.__setattr__(self, "modality", modality)
        object.__setattr__(self, "orientation", check_orientation_code(self.orientation))
        if self.spacing is not None:
            try:
                spacing = tuple(float(s) for s in self.spacing)
            except (TypeError, ValueError):
                spacing = ()
            if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
                raise InvalidInputError(
                    f"expected spacing must be 3 positive numbers (x, y, z) in mm, "
                    f"got {self.spacing!r}")
            object.__setattr__(self, "spacing", spacing)

    def to_dict(self) -> dict[str, Any]:
        return {"modality": self.modality,
                "spacing": list(self.spacing) if self.spacing is not None else None,
                "orientation": self.orientation,
                "record": self.record.to_dict() if self.record is not None else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputExpectations:
        """Read :meth:`to_dict` output: every key present, no other (never a silent default).

        Raises:
            InvalidInputError: ``data`` is not a mapping, lacks a key or has an unknown one, or
                holds a bad spacing.
            UnknownOptionError: an unknown modality or orientation code.
        """
        if not isinstance(data, dict):
            raise InvalidInputError(f"input expectations must be a mapping, got "
                                    f"{type(data).__name__}")
        keys = ("modality", "spacing", "orientation", "record")
        wrong = sorted(set(data) ^ set(keys))
        if wrong:
            raise InvalidInputError(f"input expectations must have exactly the keys "
                                    f"{', '.join(keys)}; missing or unknown: {', '.join(wrong)}")
        spacing, record = data["spacing"], data["record"]
        return cls(modality=data["modality"],
                   spacing=tuple(spacing) if spacing is not None else None,
                   orientation=data["orientation"],
                   record=TrainingRecord.from_dict(record) if record is not None else None)


def check_input(volume: Volume, expect: InputExpectations, name: str = "input") -> list[str]:
    """Refuse an image the model cannot contour; list what the pipeline will repair.

    Refused: an axis of fewer than 2 voxels (a single slice), a Modality tag other than the
    model's, NaN or infinite values, a constant image, and (for a CT model) intensities without
    air near -1000 HU (an MR, or a CT read without its rescale); for an MR model, intensities
    with such air (a CT in HU). Warned: a spacing more than 2x from the training median on any
    axis, slices thicker than 5 mm or voxels more than 10x longer than wide, an oblique grid
    (resampled) and an orientation other than the model's (reoriented).

    Args:
        volume: the image as read, any orientation and size.
        expect: what the model was trained on.
        name: how messages name the image (a path, a series).

    Returns:
        Warnings, each naming ``name`` and saying what was done about it; empty when the image
        looks like the training data.

    Raises:
        InvalidInputError: the image is refused; the message starts with ``name``.
    """
    _check_shape(volume, name)
    _check_modality_tag(volume, expect, name)
    _check_values(volume, expect, name)
    return _spacing_warnings(volume, expect, name) + _orientation_warnings(volume, expect, name)


# ---------------------------------------------------------------------------------------------
# Refusals.

def _check_shape(volume: Volume, name: str) -> None:
    nz, ny, nx = volume.shape
    if nz < 2:
        raise InvalidInputError(
            f"{name}: a single slice (shape z, y, x = {volume.shape}): the model contours 3-D "
            "volumes; give the whole series")
    if ny < 2 or nx < 2:
        raise InvalidInputError(
            f"{name}: slices of {ny}x{nx} pixels (shape z, y, x = {volume.shape}): not an image "
            "the model can contour")


def _check_modality_tag(volume: Volume, expect: InputExpectations, name: str) -> None:
    modality = (volume.modality or "").strip().upper()
    if modality and modality != expect.modality:
        raise InvalidInputError(
            f"{name}: the model contours {expect.modality} images and this image's Modality is "
            f"{modality}; give the {expect.modality} series of the patient instead")


def _check_values(volume: Volume, expect: InputExpectations, name: str) -> None:
    array = volume.array
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
            or array.dtype == bool):
        raise InvalidInputError(f"{name}: pixel type {array.dtype} is not a number")
    if np.issubdtype(array.dtype, np.floating):
        bad = sum(int(np.count_nonzero(~np.isfinite(array[k:k + 16])))
                  for k in range(0, array.shape[0], 16))
        if bad:
            raise InvalidInputError(
                f"{name}: {bad} voxel(s) are NaN or infinite; the image is damaged or was "
                "written from a failed computation")
    lo, hi = float(array.min()), float(array.max())
    if lo == hi:
        raise InvalidInputError(f"{name}: constant value {_num(lo)}: no anatomy to contour")
    sample = _sample(array)
    p1, p999 = (float(v) for v in np.percentile(sample, [1.0, 99.9]))
    found = f"intensities {_num(lo)}..{_num(hi)} (1st percentile {_num(p1)})"
    if expect.modality == "CT" and p1 > AIR_PERCENTILE_MAX_HU:
        integers = bool(np.all(sample == np.round(sample)))
        if integers and -100.0 <= p1 <= 300.0 and p999 >= 1300.0:
            hint = ("this looks like a CT stored without rescale (stored values, air near 0): "
                    "HU = stored x RescaleSlope + RescaleIntercept (usually -1024); apply the "
                    "rescale, or if it is an MR give the CT series")
        else:
            hint = ("is it an MR, or a CT without rescale (stored values; HU = stored x "
                    "RescaleSlope + RescaleIntercept)? Give the CT in Hounsfield units")
        raise InvalidInputError(
            f"{name}: {found}: no air near -1000 HU, so this is not a CT in Hounsfield units; "
            f"{hint}")
    if expect.modality == "MR" and p1 <= AIR_PERCENTILE_MAX_HU:
        raise InvalidInputError(
            f"{name}: {found}: air near -1000 HU, as in a CT in Hounsfield units; the model "
            "contours MR images: give the MR series")


def _sample(array: np.ndarray) -> np.ndarray:
    """At most SAMPLE_VOXELS values as float64, a fixed random subset (no full-size copy)."""
    if array.size <= SAMPLE_VOXELS:
        return np.asarray(array, dtype=np.float64).ravel()
    rng = np.random.default_rng(0)
    flat = rng.integers(0, array.size, SAMPLE_VOXELS)
    return array[np.unravel_index(flat, array.shape)].astype(np.float64)


# ---------------------------------------------------------------------------------------------
# Warnings.

def _spacing_warnings(volume: Volume, expect: InputExpectations, name: str) -> list[str]:
    spacing = np.asarray(volume.spacing, dtype=float)
    warnings = []
    if expect.spacing is not None:
        model = np.asarray(expect.spacing, dtype=float)
        ratio = spacing / model
        if np.any(ratio > SPACING_FACTOR) or np.any(ratio < 1.0 / SPACING_FACTOR):
            effect = ("small organs may lose detail" if np.any(ratio < 1.0 / SPACING_FACTOR)
                      and not np.any(ratio > SPACING_FACTOR) else
                      "interpolated where the image is coarser: small organs may be missed "
                      "or blocky")
            warnings.append(
                f"{name}: spacing {_mm(spacing)} mm is far from the model's {_mm(model)} mm; "
                f"resampled to the model's grid ({effect})")
    if spacing[2] > THICK_SLICE_MM:
        warnings.append(
            f"{name}: slices are {_mm(spacing[2:])} mm thick (over {_mm([THICK_SLICE_MM])} mm): "
            "small organs (lens, chiasm, cochlea) may fall between slices and contours are "
            "coarse along z; contoured anyway")
    elif spacing.max() / spacing.min() > ANISOTROPY_MAX:
        warnings.append(
            f"{name}: voxels of {_mm(spacing)} mm are {spacing.max() / spacing.min():.0f}x "
            "longer than wide: contours show steps along the long axis; contoured anyway")
    return warnings


def _orientation_warnings(volume: Volume, expect: InputExpectations, name: str) -> list[str]:
    geometry = volume.geometry
    if not is_axis_aligned(geometry):
        return [(f"{name}: the grid is oblique ({obliquity_deg(geometry):.1f} degrees from the "
                f"patient axes); resampled onto an axis-aligned {expect.orientation} grid with "
                "linear interpolation for the network; the contours are mapped back to the "
                "original grid")]
    code = geometry.orientation_code
    if code == expect.orientation:
        return []
    known = _POSITIONS.get(code) if expect.orientation == "LPS" else None
    stored = f"{code} ({known})" if known else code
    return [(f"{name}: stored in {stored} orientation, the model's is {expect.orientation}; "
            "reoriented for the network (axes permuted/flipped, no resampling) and the "
            "contours map back to the original grid")]


# ---------------------------------------------------------------------------------------------
# Helpers.

def _mm(values: Any) -> str:
    """Sizes in mm as '0.49x0.49x1.0': two decimals at most, one at least."""
    out = []
    for v in np.ravel(values):
        text = f"{float(v):.2f}".rstrip("0")
        out.append(text + "0" if text.endswith(".") else text)
    return "x".join(out)


def _num(value: float) -> str:
    """An intensity for a message: whole numbers for HU-like values, 3 digits for small ones."""
    if abs(value) >= 10 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.3g}"
