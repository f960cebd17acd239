"""Lesion labels for the synthesis: the organ-mask filter and random labels made from real ones."""

from __future__ import annotations

import numpy as np
import pytest

from autocontour.errors import InvalidInputError
from autocontour.synthesis.multimodal.lesions import (
    LesionTransform,
    draw_lesion,
    lesion_inside,
    random_lesion,
    transform_lesion,
)


def _organ(n: int = 32, lo: int = 8, hi: int = 24) -> np.ndarray:
    organ = np.zeros((n, n), np.uint8)
    organ[lo:hi, lo:hi] = 1
    return organ


def _lesion(rows: slice, cols: slice, n: int = 32, value: int = 1) -> np.ndarray:
    out = np.zeros((n, n), np.uint8)
    out[rows, cols] = value
    return out


def test_lesion_inside_filter() -> None:
    organ = _organ()
    assert lesion_inside(_lesion(slice(10, 14), slice(10, 14)), organ)
    half_out = _lesion(slice(10, 14), slice(6, 10))  # columns 6, 7 outside, 8, 9 inside
    assert not lesion_inside(half_out, organ)
    assert lesion_inside(half_out, organ, min_fraction=0.5)
    assert not lesion_inside(half_out, organ, min_fraction=0.51)
    assert not lesion_inside(np.zeros((32, 32)), organ)  # an empty lesion adds nothing
    with pytest.raises(InvalidInputError, match="organ mask"):
        lesion_inside(np.zeros((8, 8)), organ)
    with pytest.raises(InvalidInputError, match="min_fraction"):
        lesion_inside(half_out, organ, min_fraction=0.0)


def test_transform_identity_flip_scale_rotate_translate() -> None:
    # An L shape (asymmetric) with two label values.
    les = np.zeros((32, 32), np.uint8)
    les[10:18, 10:12] = 1
    les[16:18, 12:16] = 2
    rows, cols = np.nonzero(les)
    c = (float(rows.mean()), float(cols.mean()))
    same = transform_lesion(les, LesionTransform(1.0, 0.0, False, False, c))
    assert np.array_equal(same, les)
    flipped = transform_lesion(les, LesionTransform(1.0, 0.0, False, True, c))
    assert flipped.sum() == les.sum() and set(np.unique(flipped)) == {0, 1, 2}
    # Left/right mirror about the centroid: the foot now points to smaller columns.
    assert np.nonzero(flipped == 2)[1].mean() < np.nonzero(flipped == 1)[1].mean()
    bar = _lesion(slice(14, 16), slice(10, 22))  # 2 x 12
    cb = (14.5, 15.5)
    turned = transform_lesion(bar, LesionTransform(1.0, 90.0, False, False, cb))
    r, k = np.nonzero(turned)
    assert (np.ptp(r) + 1, np.ptp(k) + 1) == (12, 2)
    big = transform_lesion(bar, LesionTransform(2.0, 0.0, False, False, cb))
    assert abs(int(big.sum()) - 4 * 24) <= 8
    moved = transform_lesion(bar, LesionTransform(1.0, 0.0, False, False, (5.5, 20.5)))
    r, k = np.nonzero(moved)
    assert (r.mean(), k.mean()) == (5.5, 20.5)
    with pytest.raises(InvalidInputError, match="empty"):
        transform_lesion(np.zeros((8, 8)), LesionTransform(1.0, 0.0, False, False, (4, 4)))
    with pytest.raises(InvalidInputError, match="scale must be positive"):
        transform_lesion(bar, LesionTransform(0.0, 0.0, False, False, cb))


def test_random_lesion_lands_in_the_organ_and_is_seeded() -> None:
    les = _lesion(slice(2, 6), slice(2, 6))
    organ = _organ()
    a, ta = random_lesion(les, np.random.default_rng(1), organ)
    b, tb = random_lesion(les, np.random.default_rng(1), organ)
    assert np.array_equal(a, b) and ta == tb
    assert organ[round(ta.centre[0]), round(ta.centre[1])] == 1
    assert 0.7 <= ta.scale <= 1.3 and -180 <= ta.rotation_deg <= 180


def test_draw_lesion_redraws_until_inside() -> None:
    organ = _organ()
    real = [np.zeros((32, 32), np.uint8), _lesion(slice(0, 6), slice(0, 6), value=2)]
    rng = np.random.default_rng(7)
    for _ in range(5):
        label, _t, k = draw_lesion(real, organ, rng)
        assert k == 1  # the empty label is never chosen
        assert lesion_inside(label, organ) and set(np.unique(label)) == {0, 2}
    # A lesion as large as the organ cannot fit (with rotations it would stick out).
    huge = [_lesion(slice(4, 28), slice(4, 28))]
    with pytest.raises(InvalidInputError, match="no lesion fitted"):
        draw_lesion(huge, organ, np.random.default_rng(0), max_tries=20)
    with pytest.raises(InvalidInputError, match="no non-empty"):
        draw_lesion([np.zeros((32, 32))], organ, rng)
    with pytest.raises(InvalidInputError, match="organ mask is empty"):
        draw_lesion(real, np.zeros((32, 32)), rng)
    with pytest.raises(InvalidInputError, match="has shape"):
        draw_lesion([np.ones((8, 8))], organ, rng)
