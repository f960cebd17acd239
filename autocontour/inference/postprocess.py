"""Largest-connected-component post-processing, as nnU-Net does it, and the rule that picks it.

A network sometimes paints a few voxels of an organ far from the organ (a "parotid" in the
other cheek, a spot of "bladder" in the bowel). Keeping each organ's largest connected piece
removes such islands, but it is wrong for an organ that really comes in pieces in the labels
(a split contour, a structure cut by the field of view). So, as in nnU-Net, it is switched on
per organ only where validation shows it does not lower Dice (:func:`choose_largest_component`).

Connectivity is full 3-D (26 neighbours, ``generate_binary_structure(3, 3)``): two voxels
touching at an edge or a corner are one piece. With anisotropic voxels (thick slices) a thin
organ that runs obliquely across slices touches the next slice only diagonally, and 6-connectivity
would cut it into pieces and throw most of it away.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy import ndimage

from autocontour.errors import InvalidInputError
from autocontour.evaluation.overlap import dice

_STRUCTURE = ndimage.generate_binary_structure(3, 3)  # 26-connectivity
_BLOCK = 4  # edge of the coarse blocks that group an organ's voxels into clusters


def keep_largest_component(labels: np.ndarray, label_values: Iterable[int]) -> np.ndarray:
    """Keep only the largest 3-D connected piece of each organ named; the rest becomes 0.

    Each organ is handled inside its own bounding box (``scipy.ndimage.find_objects``), so the
    work and the temporaries (a boolean mask, an int32 component map) are the size of the organ's
    box; an organ whose box a far island stretches over the volume is first split into coarse
    clusters (see ``_clean_organ``). A 512x512x400 map with 25 organs, each with far islands,
    takes about a second. Removing voxels of one organ never changes another, so the order of
    ``label_values`` does not matter. Of two largest pieces of the same size, one is kept (the
    same one every time).

    Args:
        labels: ``(z, y, x)`` integer label map, values >= 0 (0 = background).
        label_values: the organs to clean; 0, repeats and values absent from ``labels`` are
            ignored.

    Returns:
        A new array of the same shape and dtype (``labels`` is not changed).

    Raises:
        InvalidInputError: ``labels`` is not a 3-D integer array, holds negative values, or a
            label value is negative.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise InvalidInputError(
            f"labels must be a 3-D integer array (z, y, x), got {labels.dtype} {labels.shape}")
    wanted = sorted({int(v) for v in label_values} - {0})
    if wanted and wanted[0] < 0:
        raise InvalidInputError(f"label values must be >= 0, got {wanted[0]}")
    out = labels.copy()
    wanted = [v for v in wanted if v <= np.iinfo(out.dtype).max]  # others cannot be present
    if not wanted or out.size == 0:
        return out
    if np.issubdtype(out.dtype, np.signedinteger) and out.min() < 0:
        raise InvalidInputError(f"labels must be >= 0, got {out.min()}")
    boxes = ndimage.find_objects(out, max_label=wanted[-1])
    for value in wanted:
        box = boxes[value - 1]
        if box is not None:  # None: organ absent
            _clean_organ(out[box], value)
    return out


def _clean_organ(region: np.ndarray, value: int) -> None:
    """Set to 0, in place, every voxel of ``value`` in ``region`` outside its largest piece.

    An island far from the organ stretches the organ's bounding box over most of the volume,
    and labelling (and counting) components over such a box for every organ is what makes a
    naive version slow. So the organ's voxels are first grouped into coarse clusters: blocks of
    ``_BLOCK`` voxels per axis holding any of them, connected by 26-connectivity. Voxels that
    touch lie in the same or neighbouring blocks, so every piece lies inside one cluster;
    pieces are then labelled voxel by voxel only inside each cluster's own box.
    """
    mask = region == value
    clusters, count = ndimage.label(_block_any(mask), structure=_STRUCTURE)
    if count == 1:
        _keep_largest_in(region, mask)
        return
    pieces = []  # (size, cluster index, fine box, cluster mask within its box)
    best = (-1, -1)
    for k, coarse in enumerate(ndimage.find_objects(clusters), start=1):
        fine = tuple(slice(c.start * _BLOCK, min(c.stop * _BLOCK, n))
                     for c, n in zip(coarse, mask.shape, strict=True))
        mine = mask[fine] & _upsample(clusters[coarse] == k, [f.stop - f.start for f in fine])
        components, n_pieces = ndimage.label(mine, structure=_STRUCTURE)
        largest = int(np.bincount(components.ravel(), minlength=n_pieces + 1)[1:].max())
        pieces.append((fine, mine))
        if largest > best[0]:
            best = (largest, k - 1)
    for k, (fine, mine) in enumerate(pieces):
        if k == best[1]:
            _keep_largest_in(region[fine], mine)
        else:
            region[fine][mine] = 0


def _keep_largest_in(region: np.ndarray, mask: np.ndarray) -> None:
    """Zero the voxels of ``mask`` (an organ's voxels in ``region``) outside its largest piece.

    Ties: the piece found first in array order.
    """
    components, count = ndimage.label(mask, structure=_STRUCTURE)
    if count > 1:
        sizes = np.bincount(components.ravel(), minlength=count + 1)
        sizes[0] = 0
        region[mask & (components != int(np.argmax(sizes)))] = 0


def _block_any(mask: np.ndarray) -> np.ndarray:
    """Whether each ``_BLOCK``-cube of ``mask`` holds a True voxel (a partial last block too)."""
    for axis in range(3):  # axis 0 first: the largest reduction, on contiguous memory
        n = mask.shape[axis] // _BLOCK * _BLOCK
        before = (slice(None),) * axis
        shape = (*mask.shape[:axis], n // _BLOCK, _BLOCK, *mask.shape[axis + 1:])
        parts = [mask[(*before, slice(0, n))].reshape(shape).any(axis=axis + 1)]
        if n < mask.shape[axis]:
            parts.append(mask[(*before, slice(n, None))].any(axis=axis, keepdims=True))
        mask = np.concatenate(parts, axis=axis) if len(parts) > 1 else parts[0]
    return mask


def _upsample(coarse: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Each coarse cell repeated ``_BLOCK`` times per axis, cropped to ``shape``."""
    for axis in range(3):
        coarse = np.repeat(coarse, _BLOCK, axis=axis)
    return coarse[: shape[0], : shape[1], : shape[2]]


def choose_largest_component(predictions: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                             label_values: Iterable[int]) -> dict[int, bool]:
    """Per organ, whether keeping its largest component helps on these validation cases.

    The rule: for each organ, over the cases where the truth or the prediction holds it, compare
    the mean Dice of the prediction as it is with the mean Dice after
    :func:`keep_largest_component` for that organ. True when the mean is at least as high (a tie
    keeps the islands out: a cleaner contour at no cost), False when it is lower. An organ in no
    case has nothing to decide from and gets True. Organs are judged one by one, which is exact:
    removing one organ's islands leaves every other organ's voxels as they were.

    Args:
        predictions: per case, the predicted ``(z, y, x)`` label map.
        truths: per case, the reference label map on the same grid as its prediction.
        label_values: the organs to decide for (0 is ignored).

    Returns:
        ``{label value: apply largest-component post-processing}``.

    Raises:
        InvalidInputError: different numbers of predictions and truths, a prediction and its
            truth of different shapes, or bad label maps (see :func:`keep_largest_component`).
    """
    if len(predictions) != len(truths):
        raise InvalidInputError(
            f"{len(predictions)} predictions but {len(truths)} reference label maps")
    values = sorted({int(v) for v in label_values} - {0})
    before: dict[int, list[float]] = {v: [] for v in values}
    after: dict[int, list[float]] = {v: [] for v in values}
    for case, (pred, truth) in enumerate(zip(predictions, truths, strict=True)):
        pred, truth = np.asarray(pred), np.asarray(truth)
        if pred.shape != truth.shape:
            raise InvalidInputError(
                f"case {case}: prediction {pred.shape} and reference {truth.shape} differ")
        cleaned = keep_largest_component(pred, values)
        for v in values:
            in_pred, in_truth = pred == v, truth == v
            if not (in_pred.any() or in_truth.any()):
                continue
            before[v].append(dice(in_pred, in_truth))
            after[v].append(dice(cleaned == v, in_truth))
    return {v: not before[v] or float(np.mean(after[v])) >= float(np.mean(before[v]))
            for v in values}
