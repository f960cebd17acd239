"""Grid steps: resampling and the region-of-interest crop centred on organs.

Both move labels with the image (nearest neighbour / the same box) and leave a record that maps
predictions back onto the input grid exactly. They work on any direction matrix: sizes and
spacings are along the index axes, and resampling goes through SimpleITK with the full geometry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy import ndimage

from autocontour.data.steps import (
    CropRecord,
    ResampleRecord,
    SourceInfo,
    Step,
    check_choice,
    crop_pair,
    optional_tuple,
)
from autocontour.errors import InvalidInputError
from autocontour.io.grid import resample_image, resample_labels
from autocontour.io.volume import Geometry, LabelMap, Volume

CENTRES = ("centroid", "box")


def resampled_geometry(g: Geometry, spacing: tuple[float, float, float] | None = None,
                       shape: tuple[int, int, int] | None = None) -> Geometry:
    """The grid covering the same field of view as ``g`` with a new spacing or shape.

    Args:
        g: the input grid.
        spacing: target (x, y, z) mm; the shape becomes round(extent / spacing) (at least 1) and
            the grid is centred on the input's centre.
        shape: target (z, y, x) voxels; the spacing becomes extent / shape, so the outer voxel
            edges stay where they were.

    Returns:
        The new grid (direction and Frame of Reference kept), or ``g`` when neither is given.
    """
    if spacing is None and shape is None:
        return g
    size = np.asarray(g.shape[::-1], dtype=float)
    old = np.asarray(g.spacing)
    if shape is not None:
        new_size = np.asarray(shape[::-1], dtype=float)
        new = size * old / new_size
    else:
        new = np.asarray(spacing, dtype=float)
        new_size = np.maximum(1.0, np.round(size * old / new))
    d = g.direction_matrix
    centre = np.asarray(g.origin) + d @ (old * (size - 1) / 2)
    origin = centre - d @ (new * (new_size - 1) / 2)
    return Geometry(tuple(int(n) for n in new_size[::-1]), tuple(new), tuple(origin),
                    g.direction, g.frame_of_reference_uid)


@dataclass(frozen=True)
class Resample(Step):
    """Resample to a target spacing or a fixed grid size (image linear, labels nearest).

    Seed 002 resampled every CT to z = 72 slices and 256x256 in plane: ``shape=(72, 256, 256)``.
    Seed 004 did not resample: neither argument (a no-op that still records the grid).

    Args:
        spacing: target (x, y, z) spacing in mm.
        shape: target (z, y, x) grid size.

    Raises:
        InvalidInputError: both given, or a non-positive value.
    """

    kind: ClassVar[str] = "resample"
    spacing: tuple[float, float, float] | None = None
    shape: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "spacing", optional_tuple(self.spacing, float, 3,
                                                           "resample spacing (x, y, z) mm"))
        object.__setattr__(self, "shape", optional_tuple(self.shape, int, 3,
                                                         "resample shape (z, y, x)"))
        if self.spacing is not None and self.shape is not None:
            raise InvalidInputError("resample: give a target spacing or a target shape, not both")

    def apply(self, image: Volume, labels: LabelMap | None,
              source: SourceInfo) -> tuple[Volume, LabelMap | None, ResampleRecord]:
        target = resampled_geometry(image.geometry, self.spacing, self.shape)
        if target.mismatch(image.geometry) is None:
            return image, labels, ResampleRecord(self.kind, image.geometry, image.geometry)
        out = resample_image(image, target)
        moved = resample_labels(labels, target) if labels is not None else None
        return out, moved, ResampleRecord(self.kind, image.geometry, target)


@dataclass(frozen=True)
class CropToLabels(Step):
    """A fixed-size box centred on some organs (seed 004's 3-D-small model: 64x64x16 voxels
    centred on the 2-D model's chiasm and pituitary).

    The organs are found in the label map passed to ``apply``: the truth at training time, the
    coarse model's prediction at inference. The box is shifted to stay inside the image; along
    an axis shorter than the box it takes the whole axis (the output is then smaller).

    Args:
        organs: organ names to centre on (their union).
        size_vox: box size (z, y, x) in voxels; or
        size_mm: box size in mm along the index axes (x, y, z), like spacing.
        centre: "centroid" (centre of mass of the organs) or "box" (centre of their bounding box).

    Raises:
        InvalidInputError: no organ, not exactly one size; at apply, no label map or none of the
            organs present.
        UnknownOptionError: an unknown centre, or (at apply) an organ not in the label map's set.
    """

    kind: ClassVar[str] = "crop_labels"
    organs: tuple[str, ...] = ()
    size_vox: tuple[int, int, int] | None = None
    size_mm: tuple[float, float, float] | None = None
    centre: str = "centroid"

    def __post_init__(self) -> None:
        organs = (self.organs,) if isinstance(self.organs, str) else tuple(self.organs)
        if not organs:
            raise InvalidInputError("crop_labels: name at least one organ to centre on")
        object.__setattr__(self, "organs", tuple(str(o) for o in organs))
        object.__setattr__(self, "size_vox", optional_tuple(self.size_vox, int, 3,
                                                            "crop_labels size_vox (z, y, x)"))
        object.__setattr__(self, "size_mm", optional_tuple(self.size_mm, float, 3,
                                                           "crop_labels size_mm (x, y, z)"))
        if (self.size_vox is None) == (self.size_mm is None):
            raise InvalidInputError("crop_labels: give exactly one of size_vox and size_mm")
        check_choice(self.centre, CENTRES, "crop_labels centre")

    def apply(self, image: Volume, labels: LabelMap | None,
              source: SourceInfo) -> tuple[Volume, LabelMap | None, CropRecord]:
        if labels is None:
            raise InvalidInputError(
                f"crop_labels needs a label map holding {', '.join(self.organs)} to centre on "
                "(at inference: the coarse model's prediction)")
        values = [labels.organs.by_name(name).label for name in self.organs]
        mask = np.isin(labels.array, values)
        if not mask.any():
            raise InvalidInputError(
                f"crop_labels: none of {', '.join(self.organs)} is present in the label map")
        if self.centre == "centroid":
            centre = np.asarray(ndimage.center_of_mass(mask))
        else:
            box = ndimage.find_objects(mask.astype(np.uint8))[0]
            centre = np.array([(s.start + s.stop - 1) / 2 for s in box])
        shape = np.asarray(image.shape)
        if self.size_vox is not None:
            size = np.asarray(self.size_vox)
        else:
            size = np.ceil(np.asarray(self.size_mm[::-1]) / np.asarray(image.spacing[::-1]))
        size = np.minimum(size.astype(int), shape)
        start = np.clip(np.round(centre - (size - 1) / 2).astype(int), 0, shape - size)
        stop = start + size
        return crop_pair(image, labels, tuple(start.tolist()), tuple(stop.tolist()), self.kind)
