"""Algorithm 1 (structure maps), Algorithm 2 (masks, the enlarge step) and eq. (12) (noise fusion)
on images whose answer is known: a bright disc on a dark background, with and without a lesion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from autocontour.errors import InvalidInputError
from autocontour.synthesis.multimodal.structure import (
    enlarge,
    extract_mask,
    fuse_noise,
    fusion_noise,
    structure_map,
)

N, R = 64, 20.0


def _radius() -> np.ndarray:
    yy, xx = np.mgrid[:N, :N]
    return np.hypot(yy - (N - 1) / 2, xx - (N - 1) / 2)


def _disc(value: float = 0.8) -> np.ndarray:
    return np.where(_radius() <= R, value, 0.0).astype(np.float32)


def test_disc_edges_on_the_rim_only() -> None:
    s = structure_map(_disc())
    r = _radius()
    assert set(np.unique(s)) == {0.0, 1.0} and s.dtype == np.float32
    # Lines lie on the rim, inside the disc (outside is removed by x > gamma), nothing in the
    # middle, nothing outside.
    assert s[r <= R - 4].sum() == 0
    assert s[r > R].sum() == 0
    rim = (r > R - 2) & (r <= R)  # the two pixel rings just inside the edge
    assert s[rim].mean() == 1.0
    # The rim is closed: every direction from the centre meets it.
    angles = np.degrees(np.arctan2(*np.nonzero(s) - np.array([[(N - 1) / 2], [(N - 1) / 2]])))
    assert len(np.unique(np.floor(angles / 10))) == 36


def test_lesion_structure_removed_with_its_label() -> None:
    x = _disc()
    r = _radius()
    yy, xx = np.mgrid[:N, :N]
    blob = np.hypot(yy - 31.5, xx - 24) <= 5  # a darker lesion inside the disc
    x[blob] = 0.3
    with_lesion = structure_map(x)
    assert with_lesion[np.hypot(yy - 31.5, xx - 24) <= 8].sum() > 10  # its contour is in the map
    removed = structure_map(x, lesion=blob.astype(np.uint8), lesion_margin_px=2)
    grown = ndimage.binary_dilation(blob, iterations=2)
    assert removed[grown].sum() == 0
    assert np.array_equal(removed[~grown], with_lesion[~grown])  # the rest is untouched
    assert removed[(r > R - 2) & (r <= R)].mean() == 1.0
    # With no margin, the lesion's outer contour stays.
    assert structure_map(x, lesion=blob.astype(np.uint8), lesion_margin_px=0)[~blob].sum() > \
        removed.sum()


def test_line_12_thresholds_the_blurred_map() -> None:
    # Were line 12 (s1 + s2) > beta, any beta in (0, 1) would give the same map; thresholding
    # the blurred map (the source's intent) makes lines thinner as beta grows.
    x = _disc()
    counts = [structure_map(x, beta=b).sum() for b in (0.1, 0.3, 0.5)]
    assert counts[0] > counts[1] > counts[2] > 0


def test_noise_below_alpha_gives_no_structure() -> None:
    rng = np.random.default_rng(0)
    flat = np.clip(0.5 + rng.normal(0, 0.01, (N, N)), 0, 1).astype(np.float32)
    assert structure_map(flat).sum() == 0


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"x": np.zeros((4, 4, 4))}, "2-D"),
    ({"sigma1": 0.0}, "sigma must be positive"),
    ({"lesion": np.zeros((3, 3))}, "lesion label has shape"),
    ({"lesion": np.zeros((N, N)), "lesion_margin_px": -1}, "0 or more"),
])
def test_structure_map_invalid(kwargs, match) -> None:
    args = {"x": _disc(), **kwargs}
    with pytest.raises(InvalidInputError, match=match):
        structure_map(**args)


def test_enlarge_by_hand() -> None:
    m = np.ones((8, 8), np.float32)
    m[2:6, 2:6] = 0  # a 4x4 organ in the middle of a background mask
    # p = 2: output pixel i of the 10-pixel resize takes input floor((i + 0.5) * 0.8), i.e.
    # 0 1 2 2 3 4 5 6 6 7; the crop from 1 keeps 1 2 2 3 4 5 6 6: the organ rows 2..5 now fill
    # rows 1..5 (4 pixels grew to 5).
    out = enlarge(m, 2)
    expected = np.ones((8, 8), np.float32)
    expected[1:6, 1:6] = 0
    assert np.array_equal(out, expected)
    # p = 8 doubles every pixel; the central crop is all organ.
    assert not enlarge(m, 8).any()
    assert np.array_equal(enlarge(m, 0), m)
    with pytest.raises(InvalidInputError, match="0 or more"):
        enlarge(m, -1)


def test_extract_mask_is_background_and_enlarged() -> None:
    x = _disc()
    x[2, 2] = 1.0  # an isolated bright pixel in the background: the median filter removes it
    plain = extract_mask(x, p=0)
    r = _radius()
    assert set(np.unique(plain)) == {0.0, 1.0}
    assert np.array_equal(plain == 0, r <= R)  # 1 outside the organ, 0 inside
    assert plain[2, 2] == 1.0
    big = extract_mask(x, p=8)
    # Magnified by 72/64 about the centre: the organ's radius grows from 20 to 22.5 pixels.
    organ = big == 0
    assert abs(np.sqrt(organ.sum() / np.pi) - R * 72 / 64) < 0.75
    assert (organ >= (r <= R)).all()


def test_noise_fusion_formula() -> None:
    s = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    m = np.array([[0.0, 0.0], [1.0, 1.0]], np.float32)
    z = np.full((2, 2), 0.55, np.float32)
    # s' = s + z (1 - m)(1 - s): structure kept, organ without structure gets z, background 0.
    assert np.allclose(fuse_noise(s, m, z), [[1.0, 0.55], [0.0, 1.0]])
    # A soft map: 0.5 + 0.6 * 1 * 0.5 = 0.8.
    assert np.isclose(fuse_noise(np.float32(0.5), np.float32(0.0), np.float32(0.6)), 0.8)
    st = torch.tensor(s, requires_grad=True)
    out = fuse_noise(st, torch.tensor(m), torch.tensor(z))
    out.sum().backward()
    # d s'/d s = 1 - z (1 - m): 0.45 inside the organ, 1 in the background.
    assert torch.allclose(st.grad, torch.tensor([[0.45, 0.45], [1.0, 1.0]]))


def test_fusion_noise_range_and_seed() -> None:
    z = fusion_noise((32, 32), np.random.default_rng(3))
    assert z.min() >= 0.5 and z.max() < 0.6 and z.dtype == np.float32
    assert np.array_equal(z, fusion_noise((32, 32), np.random.default_rng(3)))
    with pytest.raises(InvalidInputError, match="low <= high"):
        fusion_noise((2, 2), np.random.default_rng(0), 0.7, 0.6)


def test_on_the_phantom_every_modality_has_structure_and_no_lesion() -> None:
    from autocontour.phantoms.brain_lesion import MODALITIES, brain_lesion_case, to_unit

    case = brain_lesion_case(2, size=96)
    lesion = case.lesion.array[0]
    for m in MODALITIES:
        x = to_unit(case.images[m].array[0], m)
        s = structure_map(x, lesion)
        mask = extract_mask(x)
        assert s.sum() > 100, m
        assert s[ndimage.binary_dilation(lesion > 0, iterations=2)].sum() == 0
        assert s[mask == 1].sum() < 0.02 * s.sum(), m  # structure lies in the organ
        assert mask[48, 48] == 0 and mask[0, 0] == 1
