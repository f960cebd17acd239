"""Labels on the input CT's own grid from probabilities on the network's grid.

The network works on a resampled, cropped, canonically oriented grid; the contours must land on
the CT the user gave (any spacing, any direction, e.g. 0.5 mm in-plane or a prone scan stored
with flipped axes). Resampling the label map would give blocky organs; instead each class's
probability is linearly interpolated through physical space (``io.grid.resample_channel``) onto
the CT grid and the arg-max taken there, so organ surfaces are as smooth as the probabilities.

Doing that for every class over the whole CT would need classes x CT voxels of memory (25 x
512 x 512 x 160 float32 = 4 GB). So each organ class is resampled only in the part of the CT
grid that its arg-max region (grown by a margin) covers, the background class over the union
of those parts, and a running best probability (float32, so the result is the exact arg-max
of the interpolated values, as the brute-force version gives) and its class are kept.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from autocontour.errors import GeometryMismatchError, InvalidInputError
from autocontour.io.grid import Box, resample_channel
from autocontour.io.volume import Geometry


def labels_on_grid(probabilities: np.ndarray | torch.Tensor, source: Geometry, target: Geometry,
                   *, margin: int = 2) -> np.ndarray:
    """Arg-max class at each target voxel of the linearly interpolated probabilities.

    Each class ``c > 0`` that is the arg-max somewhere on the source grid is interpolated only
    inside the target box covering its source arg-max box grown by ``margin`` voxels; elsewhere
    it is taken as not winning. That is exact whenever a class can only win at a point whose
    interpolation neighbours include a voxel where it is the arg-max, which is what smooth
    softmax outputs give; a class never the arg-max at any source voxel is never chosen.
    Target voxels outside every organ box, and outside the source grid's field of view, are
    background (0). Ties go to the lower class, as ``argmax`` does.

    Args:
        probabilities: ``(C, z, y, x)`` softmax probabilities on ``source`` (channel 0 =
            background), a NumPy array or a tensor (any device, any float dtype).
        source: the grid of ``probabilities`` (the network's grid).
        target: the grid the labels are wanted on (the input CT's).
        margin: source voxels added around each organ's box; at least 1, so that every
            interpolation neighbour of a voxel where the organ wins is inside its box.

    Returns:
        ``target.shape`` labels: uint8 (uint16 beyond 256 classes), 0 = background. When the
        grids are the same, the plain arg-max.

    Raises:
        GeometryMismatchError: ``probabilities`` is not ``(C, *source.shape)``.
        InvalidInputError: ``margin`` < 1.
    """
    if isinstance(probabilities, torch.Tensor):
        probabilities = probabilities.detach().cpu().numpy()
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 4 or probabilities.shape[1:] != source.shape \
            or probabilities.shape[0] < 1:
        raise GeometryMismatchError(f"probabilities {probabilities.shape} are not (classes, "
                                    f"{', '.join(map(str, source.shape))}) of the source grid")
    if margin < 1:
        raise InvalidInputError(f"margin must be at least 1 voxel, got {margin}")
    dtype = np.uint8 if probabilities.shape[0] <= 256 else np.uint16
    winners = _argmax(probabilities, dtype)
    if source.mismatch(target) is None:
        return winners

    labels = np.zeros(target.shape, dtype)
    source_boxes = ndimage.find_objects(winners)
    boxes = {c: _target_box(box, margin, source, target)
             for c, box in enumerate(source_boxes, start=1) if box is not None}
    boxes = {c: box for c, box in boxes.items() if box is not None}  # None: outside the CT
    if not boxes:
        return labels
    union = tuple(slice(min(b[a].start for b in boxes.values()),
                        max(b[a].stop for b in boxes.values())) for a in range(3))
    best = resample_channel(probabilities[0], source, target, union, outside=1.0)
    chosen = labels[union]
    for c, box in sorted(boxes.items()):
        inner = tuple(slice(b.start - u.start, b.stop - u.start)
                      for b, u in zip(box, union, strict=True))
        value = resample_channel(probabilities[c], source, target, box, outside=0.0)
        region = best[inner]
        wins = value > region  # strictly: ties stay with the lower class, as in argmax
        region[wins] = value[wins]
        chosen[inner][wins] = c
    return labels


def _argmax(probabilities: np.ndarray, dtype: type) -> np.ndarray:
    """Arg-max over classes, slice by slice (no int64 volume), as ``dtype``."""
    out = np.empty(probabilities.shape[1:], dtype)
    for k in range(out.shape[0]):
        out[k] = probabilities[:, k].argmax(0)
    return out


def _target_box(box: Box, margin: int, source: Geometry, target: Geometry) -> Box | None:
    """The target-grid (z, y, x) box holding a source box grown by ``margin`` voxels.

    The grown box's 8 corners (voxel centres) are taken to target continuous indices, whose
    floor/ceil box is clipped to the target grid; None when nothing of it is on the grid.
    """
    lo = [s.start - margin for s in box]
    hi = [s.stop - 1 + margin for s in box]
    corners = np.array([[x, y, z] for z in (lo[0], hi[0]) for y in (lo[1], hi[1])
                        for x in (lo[2], hi[2])], dtype=float)  # (x, y, z) index order
    xyz = target.physical_to_index(source.index_to_physical(corners))
    start = np.maximum(np.floor(xyz.min(0) - 1e-6), 0).astype(int)[::-1]  # (z, y, x)
    stop = np.minimum(np.ceil(xyz.max(0) + 1e-6) + 1, target.shape[::-1]).astype(int)[::-1]
    if np.any(stop <= start):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
