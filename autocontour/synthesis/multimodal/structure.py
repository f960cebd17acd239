"""Structure feature maps and masks from real images (seed 003, §4.2: Algorithms 1 and 2, eq. 12).

All functions take 2-D images ``(H, W)`` scaled to 0..1 (e.g.
:meth:`autocontour.data.multimodal.MultiModalCase.unit`) and return float32 arrays of 0 and 1
(``fuse_noise`` returns values in 0..1).

The source gives no values for the thresholds α, β, γ and the blur widths σ1, σ2. The defaults
below were chosen on the brain-lesion phantoms (:mod:`autocontour.phantoms.brain_lesion`, 128×128,
1.9 mm pixels, all four modalities) and are shown in ``experiments/results/synthesis/``:

* ``sigma1 = 1.0`` and ``sigma2 = 1.0`` with a 3×3 kernel, the "3 × 3 高斯模糊" of the text;
* ``alpha = 0.35``: a Sobel response (a unit step gives 4) of 0.35 above the map's mean. The
  3×3 blur keeps about 0.45 of a step's peak, so steps of more than about 0.2 of the display
  range survive: the tissue boundaries of the MR-like images (CSF, ventricles, fissure, skull,
  scalp, the tumours), the skull in CT (its grey/white step of 0.05 does not); the 90th
  percentile of the mean-subtracted maps, mostly noise, is 0.3-0.4 on the phantoms' MR, and
  0.25 left speckle in the maps;
* ``beta = 0.3``: the 3×3 kernel (σ = 1) weighs the centre 0.204, a side 0.124 and a corner
  0.075, so after the blur an isolated pixel holds 0.20 (removed), a pixel beside a straight
  one-pixel line 0.27 (not added: lines are not thickened, which at 1.9 mm pixels merged
  neighbouring contours into bands with β = 0.2-0.25), a one-pixel gap in a line 0.25 (not
  closed) and a line pixel 0.45 or more (kept);
* ``gamma = 0.07``: the foreground of an image in 0..1. On the phantoms the air is 0 plus Rician
  noise of σ up to 0.025 (above 0.07 in 2 % of air pixels, scattered, so the median filter
  removes them) and the darkest tissue (MR skull, FLAIR CSF) is 0.14 or more; 0.05 left clusters
  of air noise in the masks of the 240×240 images.

For Algorithm 2: ``alpha = 0.07`` (the foreground threshold, as γ) and ``p = 4`` pixels of
enlargement at 128×128 (the organ grows by about 2 pixels on each side; scale ``p`` with the
image size: the figure script uses 8 at 240×240).

On real data these values are a starting point: images must be scaled to 0..1 first (a CT by a
window, an MR by its percentiles, :meth:`autocontour.data.multimodal.MultiModalCase.unit`), and
α, β, γ checked on a figure like ``experiments/structure_maps_figure.py`` makes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np
from scipy import ndimage

from autocontour.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor")

#: Defaults of Algorithm 1 (see the module docstring for why).
ALPHA = 0.35
BETA = 0.3
GAMMA = 0.07
SIGMA1 = 1.0
SIGMA2 = 1.0
#: Defaults of Algorithm 2.
MASK_ALPHA = 0.07
MASK_ENLARGE_PX = 4
#: Range of the uniform noise z' of eq. (12) (the source's α1 = 0.5, α2 = 0.6).
FUSION_LOW, FUSION_HIGH = 0.5, 0.6


def _image2d(x: np.ndarray, name: str = "image") -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2 or min(a.shape) < 3:
        raise InvalidInputError(f"{name} must be a 2-D array of at least 3x3, got shape {a.shape}")
    return a.astype(np.float32, copy=False)


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """A 3×3 Gaussian blur of standard deviation ``sigma`` (pixels), edges repeated.

    Raises:
        InvalidInputError: ``sigma`` not positive.
    """
    if not sigma > 0:
        raise InvalidInputError(f"the blur sigma must be positive, got {sigma!r}")
    return ndimage.gaussian_filter(np.asarray(x, np.float32), sigma, mode="nearest", radius=1)


def median3(x: np.ndarray) -> np.ndarray:
    """The 3×3 median filter ``medfilt()`` of the algorithms (edges repeated, so that a mask's
    corners are not eaten by an outside of zeros)."""
    return ndimage.median_filter(np.asarray(x, np.float32), size=3, mode="nearest")


def sobel_edges(x: np.ndarray) -> np.ndarray:
    """The vertical- and horizontal-direction Sobel responses ``(2, H, W)`` of an image.

    Kernel ``[[-1, -2, -1], [0, 0, 0], [1, 2, 1]]`` (and its transpose), unnormalised, edges
    repeated; a unit step gives a response of 4.
    """
    x = _image2d(x)
    return np.stack([ndimage.sobel(x, axis=0, mode="nearest"),
                     ndimage.sobel(x, axis=1, mode="nearest")])


def structure_map(
    x: np.ndarray,
    lesion: np.ndarray | None = None,
    alpha: float = ALPHA,
    beta: float = BETA,
    gamma: float = GAMMA,
    sigma1: float = SIGMA1,
    sigma2: float = SIGMA2,
    lesion_margin_px: int = 2,
) -> np.ndarray:
    """Algorithm 1: the binary structure feature map of a grayscale image.

    Steps (the source's line numbers): 2-3 pixel-wise min and max over the two Sobel directions;
    4-5 3×3 Gaussian blur (σ1); 6-7 ``mean(s1) - s1`` and ``s2 - mean(s2)`` (the dark and the
    bright contours stand out of the background); 8-10 threshold each at α and join them;
    11 3×3 Gaussian blur (σ2); 12 threshold the *blurred* map at β (the source writes
    ``(s1 + s2) > β`` there, a typo: that would discard step 11); 13 3×3 median filter;
    14 keep the foreground ``x > γ`` (the prose puts the foreground product before the median
    filter; the algorithm's order is kept). Then, when a lesion label is given, the original lesion's
    structure is removed: the map is set to 0 on the lesion (label > 0) dilated by
    ``lesion_margin_px`` pixels, since the blurred contour of the lesion reaches about that far
    outside its label (our choice; the source only says the lesion mask removes it).

    Args:
        x: image ``(H, W)`` in 0..1.
        lesion: lesion label ``(H, W)``, 0 = background, or None.
        alpha, beta, gamma, sigma1, sigma2: the algorithm's thresholds and blur widths.
        lesion_margin_px: dilation of the lesion mask before removal (0: the label as it is).

    Returns:
        float32 ``(H, W)`` of 0 and 1.

    Raises:
        InvalidInputError: ``x`` not 2-D, a lesion of another shape, a non-positive sigma or a
            negative margin.
    """
    x = _image2d(x)
    edges = sobel_edges(x)
    s1 = gaussian_blur(edges.min(axis=0), sigma1)
    s2 = gaussian_blur(edges.max(axis=0), sigma1)
    s1 = s1.mean() - s1
    s2 = s2 - s2.mean()
    s1 = (s1 > alpha).astype(np.float32)
    s2 = (s2 > alpha).astype(np.float32)
    s = ((s1 + s2) > 0).astype(np.float32)
    s = gaussian_blur(s, sigma2)
    s = (s > beta).astype(np.float32)
    s = median3(s)
    s = s * (x > gamma)
    if lesion is not None:
        s = remove_lesion(s, lesion, lesion_margin_px)
    return s.astype(np.float32)


def remove_lesion(s: np.ndarray, lesion: np.ndarray, margin_px: int = 2) -> np.ndarray:
    """A structure map with 0 on the lesion (label > 0) dilated by ``margin_px`` pixels.

    Raises:
        InvalidInputError: shapes differ, or a negative margin.
    """
    lesion = np.asarray(lesion)
    if lesion.shape != np.shape(s):
        raise InvalidInputError(f"the lesion label has shape {lesion.shape}, the map "
                                f"{np.shape(s)}")
    if margin_px < 0:
        raise InvalidInputError(f"the lesion margin must be 0 or more pixels, got {margin_px}")
    region = lesion > 0
    if margin_px and region.any():
        region = ndimage.binary_dilation(region, iterations=int(margin_px))
    return np.where(region, 0.0, s).astype(np.float32)


def enlarge(m: np.ndarray, p: int) -> np.ndarray:
    """Algorithm 2 lines 3-5: nearest-neighbour resize to ``(H + p, W + p)``, centre crop back.

    The content is magnified about the image centre by ``(W + p) / W``: a region of 0 in the
    middle (the organ in a background mask) grows by about ``p / 2`` pixels on each side.
    Nearest neighbour uses pixel centres: output pixel ``i`` takes input
    ``floor((i + 0.5) * N / (N + p))``; the crop starts at ``p // 2``.

    Raises:
        InvalidInputError: ``p`` negative.
    """
    m = np.asarray(m)
    if p < 0:
        raise InvalidInputError(f"the enlargement p must be 0 or more pixels, got {p}")
    if p == 0:
        return m.copy()
    h, w = m.shape
    rows = np.minimum(((np.arange(h + p) + 0.5) * h / (h + p)).astype(int), h - 1)
    cols = np.minimum(((np.arange(w + p) + 0.5) * w / (w + p)).astype(int), w - 1)
    big = m[rows[:, None], cols[None, :]]
    top, left = p // 2, p // 2
    return big[top:top + h, left:left + w].copy()


def extract_mask(x: np.ndarray, alpha: float = MASK_ALPHA, p: int = MASK_ENLARGE_PX) -> np.ndarray:
    """Algorithm 2: the background mask ``m`` of an image (1 outside the organ, 0 inside).

    ``m = 1 - (x > α)``, enlarged by ``p`` (:func:`enlarge`), then a 3×3 median filter.

    Args:
        x: image ``(H, W)`` in 0..1.
        alpha: foreground threshold.
        p: enlargement in pixels.

    Returns:
        float32 ``(H, W)`` of 0 and 1.

    Raises:
        InvalidInputError: ``x`` not 2-D, or ``p`` negative.
    """
    x = _image2d(x)
    m = 1.0 - (x > alpha).astype(np.float32)
    return median3(enlarge(m, p)).astype(np.float32)


def fuse_noise(s: ArrayT, m: ArrayT, z: ArrayT) -> ArrayT:
    """Eq. (12): ``s' = s + z' × (1 - m) × (1 - s)``.

    Where the structure map is 0 inside the organ (``m = 0``) the noise ``z'`` shows; structure
    lines (``s = 1``) and the background (``m = 1``) are kept as they are. Plain arithmetic, so
    NumPy arrays and PyTorch tensors both work (and gradients pass).

    Args:
        s: structure map, values 0..1, ``(..., H, W)``.
        m: background mask of the same shape (1 outside the organ).
        z: the noise ``z'`` ~ U(0.5, 0.6) of the same shape (:func:`fusion_noise`).
    """
    return s + z * (1 - m) * (1 - s)


def fusion_noise(
    shape: tuple[int, ...], rng: np.random.Generator, low: float = FUSION_LOW,
    high: float = FUSION_HIGH,
) -> np.ndarray:
    """The noise matrix ``z'`` of eq. (12), uniform in [low, high) (source: 0.5, 0.6).

    Raises:
        InvalidInputError: ``low > high``.
    """
    if low > high:
        raise InvalidInputError(f"the noise range must have low <= high, got ({low}, {high})")
    return rng.uniform(low, high, size=shape).astype(np.float32)
