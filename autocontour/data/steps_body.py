"""The body crop of seed 004: cut away air, the couch and the arms/shoulders around the patient.

The box is found on a coarse copy of the CT (every n-th voxel, about 2 mm apart) so that a
512x512x160 CT takes a fraction of a second; the box is then widened to whole voxels of the full
grid, so nothing inside the coarse body is lost.

How (all thresholds in HU, on the image as read, i.e. after rescale slope/intercept):

1. ``body = CT > threshold_hu``.
2. Couch: a morphological opening (ellipsoid of ``opening_mm``) breaks thin dense plates (the
   tabletop's shells) and thin bridges from the patient; the largest connected component is the
   patient. Dense voxels within ``opening_mm`` of it are the body (the skin the opening shaved
   off); dense voxels further away (the couch, separate arms) may not fall inside the box: its
   margin stops just before them.
3. Arms (for head & neck): in each slice along the patient's S-I axis, blobs whose centre lies
   left or right of the main body blob are dropped; and when some slices are wider than
   ``arm_width_ratio`` x the median slice width (shoulders), the left-right extent is limited to
   that of the other slices (head and neck).
4. The box is the body's bounding box plus ``margin_mm`` on every side, clipped to the image.

Without ``remove_couch`` there is no opening (a couch touching the patient stays in the box);
without both flags the margin is not kept off the couch and arms either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy import ndimage

from autocontour.data.steps import Box, CropRecord, SourceInfo, Step, crop_pair
from autocontour.errors import InvalidInputError
from autocontour.io.volume import Geometry, LabelMap, Volume

COARSE_MM = 2.0  # the body is found on a grid of about this spacing


@dataclass(frozen=True)
class CropBody(Step):
    """Crop to the patient's body without couch and arms (seed 004); the box is recorded.

    Args:
        threshold_hu: body threshold in HU (after rescale slope/intercept).
        margin_mm: margin around the body, except towards the couch and cut-off arms.
        remove_couch: open the mask and keep the patient component; keep the box off the couch.
        remove_arms: drop lateral blobs per slice and limit the width to the head/neck extent.
        opening_mm: radius of the opening (thicker than the couch shells, thinner than a neck).
        arm_width_ratio: a slice wider than this times the median width counts as shoulders.

    Raises:
        InvalidInputError: non-positive sizes; at apply, no voxel above the threshold (an image
            that is not in HU, e.g. after scaling).
    """

    kind: ClassVar[str] = "crop_body"
    threshold_hu: float = -500.0
    margin_mm: float = 10.0
    remove_couch: bool = True
    remove_arms: bool = True
    opening_mm: float = 5.0
    arm_width_ratio: float = 1.25

    def __post_init__(self) -> None:
        for name in ("threshold_hu", "margin_mm", "opening_mm", "arm_width_ratio"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.margin_mm < 0 or self.opening_mm <= 0 or self.arm_width_ratio <= 1:
            raise InvalidInputError(
                f"crop_body: need margin_mm >= 0, opening_mm > 0, arm_width_ratio > 1; got "
                f"{self.margin_mm}, {self.opening_mm}, {self.arm_width_ratio}")

    def needs_source_values(self) -> bool:
        return True

    def apply(self, image: Volume, labels: LabelMap | None,
              source: SourceInfo) -> tuple[Volume, LabelMap | None, CropRecord]:
        start, stop = self.box(image)
        return crop_pair(image, labels, start, stop, self.kind)

    def box(self, image: Volume) -> tuple[Box, Box]:
        """The crop box ``[start, stop)`` in (z, y, x) indices of ``image``.

        Raises:
            InvalidInputError: no voxel above ``threshold_hu``.
        """
        g = image.geometry
        spacing = np.asarray(g.spacing[::-1])  # (z, y, x)
        stride = coarse_stride(spacing)
        coarse_spacing = spacing * stride
        dense = image.array[::stride[0], ::stride[1], ::stride[2]] > self.threshold_hu
        if not dense.any():
            raise InvalidInputError(
                f"crop_body: no voxel above {self.threshold_hu:g} HU (maximum "
                f"{float(image.array.max()):g}); the body crop needs a CT in HU, before scaling")
        ball = _ellipsoid(self.opening_mm, coarse_spacing)
        body = _largest_component(_opening(dense, ball) if self.remove_couch else dense)
        if not body.any():  # everything thinner than the opening: fall back to the raw mask
            body = _largest_component(dense)
        if self.remove_arms:
            body = _without_arms(body, g, self.arm_width_ratio)
        near = ndimage.binary_dilation(body, ball)
        others = dense & ~near  # the couch, cut-off arms: kept out of the margin
        lo_c, hi_c = _bounds(dense & near)  # the skin the opening shaved off comes back
        shape = np.asarray(g.shape)
        lo = lo_c * stride
        hi = np.minimum(hi_c * stride + stride - 1, shape - 1)
        margin = np.ceil(self.margin_mm / spacing).astype(int)
        start, stop = np.maximum(lo - margin, 0), np.minimum(hi + 1 + margin, shape)
        if self.remove_couch or self.remove_arms:
            before, after = _obstacles(others, lo_c, hi_c)
            start = np.where(before >= 0, np.minimum(np.maximum(start, before * stride + 1), lo),
                             start)
            stop = np.where(after >= 0, np.maximum(np.minimum(stop, after * stride), hi + 1), stop)
        return tuple(int(v) for v in start), tuple(int(v) for v in stop)


def coarse_stride(spacing: np.ndarray) -> np.ndarray:
    """Every how many voxels (per axis) the body is looked for: the nearest whole number to
    ``COARSE_MM`` / spacing, at least 1 (0.5 mm -> 4, 1 mm -> 2, 2 mm and coarser -> 1).

    Rounding, not flooring: a 1.016 mm grid (the head-and-neck model's 1 mm member) found the
    body on every voxel, 4.5 times slower, for a box no better at its 10 mm margin.
    """
    return np.maximum(1, np.round(COARSE_MM / np.asarray(spacing, float))).astype(int)


def _ellipsoid(radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """Boolean ellipsoid of ``radius_mm`` on a grid of ``spacing`` (z, y, x), at least 3 wide."""
    r = np.maximum(1, np.round(radius_mm / spacing)).astype(int)
    zz, yy, xx = np.ogrid[-r[0]:r[0] + 1, -r[1]:r[1] + 1, -r[2]:r[2] + 1]
    return (zz / r[0]) ** 2 + (yy / r[1]) ** 2 + (xx / r[2]) ** 2 <= 1.0


def _opening(mask: np.ndarray, ball: np.ndarray) -> np.ndarray:
    """Morphological opening that does not erode a body cut off by the image border."""
    eroded = ndimage.binary_erosion(mask, ball, border_value=1)
    return ndimage.binary_dilation(eroded, ball)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labelled, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    return labelled == int(np.argmax(sizes))


def _bounds(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    box = ndimage.find_objects(mask.astype(np.uint8))[0]
    return np.array([s.start for s in box]), np.array([s.stop - 1 for s in box])


def _patient_axes(g: Geometry) -> tuple[int, int]:
    """Array axes (0 = z, 1 = y, 2 = x) closest to the patient's S-I and left-right axes."""
    d = np.abs(g.direction_matrix)  # rows: L, P, S; columns: index axes x, y, z
    return 2 - int(np.argmax(d[2])), 2 - int(np.argmax(d[0]))


def _without_arms(body: np.ndarray, g: Geometry, ratio: float) -> np.ndarray:
    """Drop blobs beside the body in each S-I slice; limit the width to the head/neck extent."""
    si, lr = _patient_axes(g)
    if si == lr:
        return body
    body = np.moveaxis(body.copy(), (si, lr), (0, 2))  # (si, other, lr)
    extents = np.full((body.shape[0], 2), -1)
    for k, plane in enumerate(body):
        labelled, n = ndimage.label(plane)
        if n == 0:
            continue
        sizes = np.bincount(labelled.ravel())[1:]
        main = int(np.argmax(sizes)) + 1
        cols = np.nonzero((labelled == main).any(axis=0))[0]
        centres = ndimage.center_of_mass(plane, labelled, range(1, n + 1))
        lateral = [i + 1 for i, c in enumerate(centres) if not cols[0] <= c[1] <= cols[-1]]
        if lateral:
            plane[np.isin(labelled, lateral)] = False
        cols = np.nonzero(plane.any(axis=0))[0]
        extents[k] = cols[0], cols[-1]
    present = extents[:, 0] >= 0
    widths = extents[:, 1] - extents[:, 0] + 1
    narrow = present & (widths <= ratio * np.median(widths[present]))
    if narrow.sum() < present.sum():
        lo, hi = extents[narrow, 0].min(), extents[narrow, 1].max()
        body[:, :, :lo] = False
        body[:, :, hi + 1:] = False
    return np.moveaxis(body, (0, 2), (si, lr))


def _obstacles(others: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per axis, the nearest index of ``others`` before ``lo`` and after ``hi`` (-1 if none),
    counting only voxels inside the box [lo, hi] on the other two axes."""
    before, after = np.full(3, -1), np.full(3, -1)
    for axis in range(3):
        box = [slice(int(a), int(b) + 1) for a, b in zip(lo, hi, strict=True)]
        box[axis] = slice(None)
        rest = tuple(a for a in range(3) if a != axis)
        profile = others[tuple(box)].any(axis=rest)
        below = np.nonzero(profile[:lo[axis]])[0]
        above = np.nonzero(profile[hi[axis] + 1:])[0]
        if below.size:
            before[axis] = below[-1]
        if above.size:
            after[axis] = hi[axis] + 1 + above[0]
    return before, after
