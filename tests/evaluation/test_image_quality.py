"""MS-SSIM and the Fréchet distance on known inputs."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from autocontour.evaluation.image_quality import frechet_distance, ms_ssim, ms_ssim_scales


@pytest.fixture
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    base = 0.5 + 0.3 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    return (base + 0.02 * rng.standard_normal((64, 64))).astype(np.float32)


def test_identical_and_degraded(image: np.ndarray) -> None:
    assert ms_ssim(image, image, scales=3, win=7) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    scores = [float(ms_ssim(image, np.clip(image + s * rng.standard_normal(image.shape), 0, 1),
                            win=7)) for s in (0.02, 0.1, 0.3)]
    assert 1 > scores[0] > scores[1] > scores[2] >= 0
    batch = ms_ssim(np.stack([image, image]), np.stack([image, 1 - image]), win=7)
    assert batch.shape == (2,) and batch[0] == pytest.approx(1.0) and batch[1] < 0.5


def test_one_scale_is_ssim(image: np.ndarray) -> None:
    other = np.clip(image + 0.1 * np.random.default_rng(2).standard_normal(image.shape), 0, 1)
    ours = float(ms_ssim(image, other, scales=1))
    # scikit-image's Gaussian SSIM averages over the whole image minus a border of 5 pixels
    # (the same "valid" area as ours) when use_sample_covariance is off
    ref = structural_similarity(image, other.astype(np.float32), data_range=1.0,
                                gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ours == pytest.approx(ref, abs=2e-3)


def test_scales_and_errors(image: np.ndarray) -> None:
    assert ms_ssim_scales(256) == 5 and ms_ssim_scales(64) == 3 and ms_ssim_scales(64, 7) == 4
    with pytest.raises(ValueError, match="hold a 11-pixel window at 3 scale"):
        ms_ssim(image, image, scales=4)
    with pytest.raises(ValueError, match="different shapes"):
        ms_ssim(image, image[:32])
    with pytest.raises(ValueError, match="window must be odd"):
        ms_ssim(image, image, win=4)


def test_frechet_distance() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shifted = a + np.array([1.0, 2.0, 0.0])
    assert frechet_distance(a, shifted) == pytest.approx(5.0, rel=1e-6)
    # 1-D Gaussians: (m1 - m2)^2 + s1^2 + s2^2 - 2 s1 s2
    x = rng.standard_normal((20000, 1))
    y = 3.0 * rng.standard_normal((20000, 1)) + 0.5
    s1, s2 = x.std(ddof=1), y.std(ddof=1)
    expect = (x.mean() - y.mean()) ** 2 + (s1 - s2) ** 2
    assert frechet_distance(x, y) == pytest.approx(expect, rel=1e-6)
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(a, a[:, :2])
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(a[:1], a)


def test_five_scale_ms_ssim_equals_the_pytorch_msssim_package():
    """The field's implementation refuses images under 161 px (hence ours, with fewer scales
    there); where both run they agree."""
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    import torch
    from scipy import ndimage

    rng = np.random.default_rng(0)
    x = ndimage.gaussian_filter(rng.random((3, 192, 192)), (0, 3, 3)).astype(np.float32)
    x = (x - x.min()) / (x.max() - x.min())
    y = np.clip(x + 0.05 * rng.standard_normal(x.shape), 0, 1).astype(np.float32)
    reference = pytorch_msssim.ms_ssim(torch.from_numpy(x)[:, None], torch.from_numpy(y)[:, None],
                                       data_range=1.0, size_average=False).numpy()
    assert ms_ssim(x, y) == pytest.approx(reference, abs=1e-4)
