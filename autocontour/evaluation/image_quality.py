"""Image-synthesis metrics: MS-SSIM between images and the Fréchet distance between two sets of
feature vectors (seed 003 §5.1; spec E9).

* :func:`ms_ssim`: multi-scale structural similarity (Wang, Simoncelli and Bovik 2003): SSIM's
  contrast-structure term at each of ``scales`` scales (2×2 average pooling between them) and
  its luminance term at the coarsest, combined with the standard exponents (0.0448, 0.2856,
  0.3001, 0.2363, 0.1333); Gaussian window σ 1.5 of ``win`` pixels, K1 = 0.01, K2 = 0.03,
  "valid" filtering (no padding), negative contrast-structure values set to 0 (as common
  implementations do, so the product stays defined). The five standard scales need images of
  at least 11 × 2^4 = 176 pixels; smaller images get fewer scales (the largest number whose
  coarsest image still holds a window), with the first exponents renormalised to sum to 1, and
  the value is then not comparable to a five-scale one: say how many scales were used. Why not
  the ``pytorch-msssim`` package: it refuses images of 160 pixels or less, whatever the number
  of scales, and the experiments here run at 64-128 pixels; at five scales the two agree (a
  test compares them).
* :func:`frechet_distance`: ``‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½)`` between two sets of
  feature vectors: FID's formula. FID proper uses an Inception-v3 network trained on ImageNet;
  with features of another network the number is a Fréchet distance in that network's feature
  space and is not comparable to published FID values.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

#: The exponents of the five scales (Wang et al. 2003).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim_scales(size: int, win: int = 11, most: int = 5) -> int:
    """The most scales (≤ ``most``) at which an image of side ``size`` still holds a window."""
    scales = 0
    while scales < most and size // 2 ** scales >= win:
        scales += 1
    return scales


def _gaussian(win: int, sigma: float, device: torch.device) -> torch.Tensor:
    x = torch.arange(win, dtype=torch.float64, device=device) - (win - 1) / 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    return (g / g.sum()).float()


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, g: torch.Tensor, data_range: float
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image the mean SSIM and the mean contrast-structure term, ``(B,)`` each."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    win = g.numel()
    kx, ky = g.view(1, 1, 1, win), g.view(1, 1, win, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, kx), ky)

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    luminance = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return (luminance * cs).flatten(1).mean(1), cs.flatten(1).mean(1)


def ms_ssim(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, data_range: float = 1.0,
            scales: int | None = None, win: int = 11, sigma: float = 1.5) -> np.ndarray:
    """MS-SSIM of each pair of 2-D images (see the module docstring).

    Args:
        x, y: images ``(H, W)`` or ``(B, H, W)`` (or ``(B, 1, H, W)``), the same shape.
        data_range: the images' value range (1 for images in 0..1).
        scales: how many scales (1..5); None: as many as the size allows
            (:func:`ms_ssim_scales`). One scale is plain SSIM.
        win, sigma: the Gaussian window's size (odd) and width.

    Returns:
        float64 ``(B,)`` (a 0-d array for one pair of 2-D images), 1 for identical images.

    Raises:
        ValueError: shapes differ, a bad window, or images too small for ``scales``.
    """
    a = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float()
    b = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).float()
    if a.shape != b.shape:
        raise ValueError(f"ms_ssim: images of different shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    single = a.ndim == 2
    if a.ndim == 2:
        a, b = a[None, None], b[None, None]
    elif a.ndim == 3:
        a, b = a[:, None], b[:, None]
    if a.ndim != 4 or a.shape[1] != 1:
        raise ValueError(f"ms_ssim expects (H, W), (B, H, W) or (B, 1, H, W), got "
                         f"{tuple(a.shape)}")
    if win < 3 or win % 2 == 0:
        raise ValueError(f"ms_ssim: the window must be odd and at least 3, got {win}")
    side = min(a.shape[-2:])
    n = ms_ssim_scales(side, win) if scales is None else int(scales)
    if not 1 <= n <= 5 or side // 2 ** (n - 1) < win:
        raise ValueError(f"ms_ssim: images of {side} pixels hold a {win}-pixel window at "
                         f"{ms_ssim_scales(side, win)} scale(s), not {scales}")
    weights = torch.tensor(MS_SSIM_WEIGHTS[:n], dtype=torch.float64)
    weights = weights / weights.sum()
    g = _gaussian(win, sigma, a.device)
    values = []
    for k in range(n):
        ssim, cs = _ssim_terms(a, b, g, data_range)
        values.append((ssim if k == n - 1 else cs).double().clamp_min(0.0))
        if k < n - 1:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    stacked = torch.stack(values, dim=1)  # (B, n)
    out = torch.prod(stacked ** weights[None], dim=1).cpu().numpy()
    return out[0] if single else out


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to two sets of feature vectors ``(N, D)``.

    Raises:
        ValueError: not 2-D, different feature sizes, or fewer than 2 vectors in a set.
    """
    from scipy import linalg

    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"frechet_distance expects two (N, D) arrays of the same D, got "
                         f"{a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("frechet_distance needs at least 2 vectors in each set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():  # a singular product (few vectors) is handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b)
    if not np.all(np.isfinite(root)):  # a singular product: regularise, as FID code does
        eps = 1e-6 * np.eye(len(cov_a))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            root = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    root = np.real(root)
    value = float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * root))
    return max(value, 0.0)
