"""Largest-connected-component post-processing and the per-organ rule that switches it on."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from autocontour.errors import InvalidInputError
from autocontour.inference.postprocess import choose_largest_component, keep_largest_component


def _naive(labels: np.ndarray, values: list[int]) -> np.ndarray:
    """The obvious version (whole-volume labelling per organ), as the oracle."""
    out = labels.copy()
    for v in values:
        mask = out == v
        components, count = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
        if count > 1:
            sizes = np.bincount(components.ravel())
            sizes[0] = 0
            out[mask & (components != sizes.argmax())] = 0
    return out


def test_smaller_blob_removed_other_labels_and_input_untouched() -> None:
    labels = np.zeros((10, 12, 14), np.uint8)
    labels[1:4, 1:4, 1:4] = 1          # 27 voxels: kept
    labels[7:9, 8:10, 10:12] = 1       # 8 voxels, far away: removed
    labels[5:7, 1:3, 9:13] = 2         # another organ, two pieces, not asked for
    labels[1:2, 9:11, 9:11] = 2
    before = labels.copy()
    out = keep_largest_component(labels, [1])
    np.testing.assert_array_equal(labels, before)
    assert out.dtype == np.uint8 and out is not labels
    assert int((out == 1).sum()) == 27 and not out[7:9, 8:10, 10:12].any()
    np.testing.assert_array_equal(out == 2, before == 2)


def test_diagonal_contact_is_one_piece() -> None:
    """26-connectivity: voxels touching only at a corner belong together."""
    labels = np.zeros((4, 4, 4), np.int16)
    labels[0, 0, 0] = labels[1, 1, 1] = labels[2, 2, 2] = 3
    labels[3, 0, 3] = 3
    out = keep_largest_component(labels, [3, 0, 7])  # 0 and absent 7 are ignored
    assert out.dtype == np.int16
    assert int((out == 3).sum()) == 3 and out[3, 0, 3] == 0


def test_matches_the_naive_version_on_scattered_islands() -> None:
    rng = np.random.default_rng(4)
    labels = np.zeros((37, 41, 30), np.uint8)
    for v in (1, 2, 5):
        for _ in range(6):  # pieces of random size anywhere: many clusters, far apart
            z, y, x = rng.integers(0, (34, 38, 27))
            sz, sy, sx = rng.integers(1, 5, 3)
            labels[z:z + sz, y:y + sy, x:x + sx] = v
    labels[rng.random(labels.shape) < 0.01] = 2  # salt
    np.testing.assert_array_equal(keep_largest_component(labels, [1, 2, 5]),
                                  _naive(labels, [1, 2, 5]))


def test_empty_and_absent_labels() -> None:
    empty = np.zeros((3, 3, 3), np.uint8)
    np.testing.assert_array_equal(keep_largest_component(empty, [1, 2]), empty)
    assert keep_largest_component(empty, []).shape == (3, 3, 3)
    assert choose_largest_component([empty], [empty], [1]) == {1: True}


def test_bad_input_raises() -> None:
    with pytest.raises(InvalidInputError, match="3-D integer"):
        keep_largest_component(np.zeros((3, 3), np.uint8), [1])
    with pytest.raises(InvalidInputError, match="3-D integer"):
        keep_largest_component(np.zeros((3, 3, 3), np.float32), [1])
    with pytest.raises(InvalidInputError, match=">= 0"):
        keep_largest_component(np.full((3, 3, 3), -1, np.int8), [1])
    with pytest.raises(InvalidInputError, match="predictions"):
        choose_largest_component([np.zeros((2, 2, 2), np.uint8)], [], [1])
    with pytest.raises(InvalidInputError, match="differ"):
        choose_largest_component([np.zeros((2, 2, 2), np.uint8)], [np.zeros((2, 2, 3), np.uint8)],
                                 [1])


def _case(truth_pieces: list[tuple[slice, ...]], pred_pieces: list[tuple[slice, ...]],
          value: int) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = np.zeros((12, 12, 12), np.uint8), np.zeros((12, 12, 12), np.uint8)
    for box in truth_pieces:
        truth[box] = value
    for box in pred_pieces:
        pred[box] = value
    return pred, truth


def test_choose_per_organ() -> None:
    main = np.s_[1:5, 1:5, 1:5]
    second = np.s_[8:11, 8:11, 8:11]  # a second real piece (a split organ)
    island = np.s_[9:10, 0:2, 9:10]   # a false-positive blob
    # Organ 1: the truth comes in two pieces and the prediction finds both -> keeping the
    # largest throws away a true piece: False. Organ 2: a false-positive island -> True.
    split_pred, split_truth = _case([main, second], [main, second], 1)
    fp_pred, fp_truth = _case([main], [main, island], 2)
    # Organ 3: one clean piece (a tie) -> True; organ 4: nowhere -> True.
    tie_pred, tie_truth = _case([main], [main], 3)
    preds = [split_pred, fp_pred, tie_pred]
    truths = [split_truth, fp_truth, tie_truth]
    assert choose_largest_component(preds, truths, [1, 2, 3, 4]) == {
        1: False, 2: True, 3: True, 4: True}


def test_choose_uses_the_mean_over_cases() -> None:
    """One case gains a little, another loses a lot: the mean decides (False)."""
    main, second = np.s_[1:5, 1:5, 1:5], np.s_[8:11, 8:11, 8:11]
    gain = _case([main], [main, np.s_[10:11, 0:1, 10:11]], 1)     # 1-voxel island
    loss = _case([main, second], [main, second], 1)               # a 27-voxel true piece
    preds, truths = [gain[0], loss[0]], [gain[1], loss[1]]
    assert choose_largest_component(preds, truths, [1]) == {1: False}
    assert choose_largest_component(preds[:1], truths[:1], [1]) == {1: True}
