"""Lesion labels for the synthesis (seed 003, §4.3 and the data-set builder, spec E6, E8).

New lesion labels are made from real ones by a random scaling, rotation, flip and translation
(:func:`random_lesion`), and kept only where they fall inside the organ (:func:`lesion_inside`;
the organ is ``1 - m`` for a background mask ``m`` from Algorithm 2 or from the mask generator
G_m); a label that does not fit is re-drawn (:func:`draw_lesion`). All arrays are 2-D ``(H, W)``
integer labels, 0 = background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from autocontour.errors import InvalidInputError


@dataclass(frozen=True)
class LesionTransform:
    """One random transform of a lesion label (recorded so a data set can say how it was made).

    Attributes:
        scale: isotropic scale factor about the lesion's centroid.
        rotation_deg: rotation about the centroid (counter-clockwise in (x, y) with y down).
        flip_y, flip_x: mirror the lesion up/down and left/right about its centroid.
        centre: (row, column) where the lesion's centroid is placed.
    """

    scale: float
    rotation_deg: float
    flip_y: bool
    flip_x: bool
    centre: tuple[float, float]


def _label2d(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise InvalidInputError(f"{name} must be a 2-D array, got shape {a.shape}")
    return a


def lesion_inside(lesion: np.ndarray, organ: np.ndarray, min_fraction: float = 1.0) -> bool:
    """Whether a lesion label falls inside the organ: at least ``min_fraction`` of its pixels.

    An empty lesion is not inside (it would add nothing).

    Args:
        lesion: label (H, W), 0 = background.
        organ: organ mask (H, W), non-zero inside (``1 - m`` of a background mask ``m``).
        min_fraction: share of lesion pixels that must lie in the organ (1.0: all of them).

    Raises:
        InvalidInputError: shapes differ, or ``min_fraction`` outside (0, 1].
    """
    lesion, organ = _label2d(lesion, "lesion"), _label2d(organ, "organ mask")
    if lesion.shape != organ.shape:
        raise InvalidInputError(f"the lesion has shape {lesion.shape}, the organ mask "
                                f"{organ.shape}")
    if not 0.0 < min_fraction <= 1.0:
        raise InvalidInputError(f"min_fraction must be in (0, 1], got {min_fraction}")
    region = lesion > 0
    total = int(region.sum())
    if total == 0:
        return False
    return int((region & (organ > 0)).sum()) >= min_fraction * total - 1e-9


def transform_lesion(lesion: np.ndarray, t: LesionTransform) -> np.ndarray:
    """Apply ``t`` to a lesion label (nearest neighbour, so label values are kept).

    Parts moved outside the image are lost.

    Raises:
        InvalidInputError: not 2-D, an empty lesion, or a scale that is not positive.
    """
    lesion = _label2d(lesion, "lesion")
    if not t.scale > 0:
        raise InvalidInputError(f"the lesion scale must be positive, got {t.scale}")
    rows, cols = np.nonzero(lesion)
    if rows.size == 0:
        raise InvalidInputError("the lesion label is empty: nothing to transform")
    c_in = np.array([rows.mean(), cols.mean()])
    a = np.radians(t.rotation_deg)
    # Output (row, col) -> input (row, col): undo the translation, rotation, scale and flips.
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    flip = np.diag([-1.0 if t.flip_y else 1.0, -1.0 if t.flip_x else 1.0])
    matrix = flip @ rot / t.scale
    offset = c_in - matrix @ np.asarray(t.centre, float)
    out = ndimage.affine_transform(lesion, matrix, offset, output_shape=lesion.shape, order=0,
                                   mode="constant", cval=0)
    return out.astype(lesion.dtype)


def random_transform(
    rng: np.random.Generator,
    shape: tuple[int, int],
    organ: np.ndarray | None = None,
    scale: tuple[float, float] = (0.7, 1.3),
    rotation_deg: float = 180.0,
    flips: bool = True,
) -> LesionTransform:
    """A random :class:`LesionTransform`: scale uniform in ``scale``, rotation uniform in
    ±``rotation_deg``, each flip with probability 1/2 (when ``flips``), and the centre a random
    pixel of ``organ`` (anywhere in ``shape`` when None or empty).
    """
    s = float(rng.uniform(*scale))
    r = float(rng.uniform(-rotation_deg, rotation_deg))
    fy, fx = (bool(rng.integers(2)), bool(rng.integers(2))) if flips else (False, False)
    where = np.argwhere(organ > 0) if organ is not None else np.empty((0, 2))
    if len(where):
        cy, cx = where[int(rng.integers(len(where)))]
    else:
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
    return LesionTransform(s, r, fy, fx, (float(cy), float(cx)))


def random_lesion(
    lesion: np.ndarray,
    rng: np.random.Generator,
    organ: np.ndarray | None = None,
    scale: tuple[float, float] = (0.7, 1.3),
    rotation_deg: float = 180.0,
    flips: bool = True,
) -> tuple[np.ndarray, LesionTransform]:
    """A new lesion label made from a real one by a random scaling, rotation, flip and translation.

    Returns:
        The label (same shape and dtype) and the transform used.

    Raises:
        InvalidInputError: not 2-D or an empty lesion.
    """
    lesion = _label2d(lesion, "lesion")
    t = random_transform(rng, lesion.shape, organ, scale, rotation_deg, flips)
    return transform_lesion(lesion, t), t


def draw_lesion(
    lesions: Sequence[np.ndarray],
    organ: np.ndarray,
    rng: np.random.Generator,
    max_tries: int = 100,
    min_fraction: float = 1.0,
    **kw: float | bool | tuple[float, float],
) -> tuple[np.ndarray, LesionTransform, int]:
    """Draw a lesion label that lies inside the organ: pick a real lesion at random, transform it
    (:func:`random_lesion`), keep it if :func:`lesion_inside`, re-draw otherwise.

    Args:
        lesions: real lesion labels (H, W) to choose from (empty ones are skipped).
        organ: organ mask (H, W), non-zero inside.
        rng: the random generator (the result depends only on it and the inputs).
        max_tries: draws before giving up.
        min_fraction: passed to :func:`lesion_inside`.
        **kw: ``scale``, ``rotation_deg``, ``flips`` for :func:`random_lesion`.

    Returns:
        The label, its transform, and the index of the real lesion it came from.

    Raises:
        InvalidInputError: no non-empty lesion, a shape that differs from the organ mask, an
            empty organ, or no fitting lesion in ``max_tries`` draws (the message says so).
    """
    organ = _label2d(organ, "organ mask")
    usable = [i for i, les in enumerate(lesions) if np.any(np.asarray(les) > 0)]
    if not usable:
        raise InvalidInputError("no non-empty lesion label to draw from")
    for i in usable:
        if np.shape(lesions[i]) != organ.shape:
            raise InvalidInputError(f"lesion {i} has shape {np.shape(lesions[i])}, the organ mask "
                                    f"{organ.shape}")
    if not np.any(organ > 0):
        raise InvalidInputError("the organ mask is empty: no lesion can lie inside it")
    for _ in range(int(max_tries)):
        k = usable[int(rng.integers(len(usable)))]
        label, t = random_lesion(lesions[k], rng, organ, **kw)  # type: ignore[arg-type]
        if lesion_inside(label, organ, min_fraction):
            return label, t, k
    raise InvalidInputError(f"no lesion fitted inside the organ mask in {max_tries} draws "
                            "(lesions too large for the organ?)")
