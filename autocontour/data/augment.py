"""On-the-fly augmentation for segmentation training (spec A6), built from MONAI dictionary transforms.

Defaults follow seed 004: rotation up to 10 degrees, translation up to 8 pixels, Gaussian noise of
variance 0.001, scaling, elastic deformation, gamma and flips. The seed gives no probabilities or
scaling/gamma/elastic ranges; ours are nnU-Net-like and listed in :class:`AugmentConfig`.

Axes: a sample is a dict ``{"image": (C, z, y, x), "label": (1, z, y, x)}`` (3-D) or
``(C, y, x)`` / ``(1, y, x)`` (2-D), numpy arrays or tensors. ``x`` (the last array axis) is the
patient's left-right axis, as for axial LPS data and the 2-D chest phantom. Images are expected
normalised (z-score or 0..1): the noise variance is absolute.

Left-right mirroring is never a plain flip, because a mirrored left parotid would keep the label
Parotid_L while lying on the patient's right (seed 004 saw this confuse the temporal lobes). It is
either off (the default) or ``"swap"``: the image and label are flipped along x *and* every paired
organ's label is swapped with its partner (``OrganSet.mirror_lookup``), so the mirrored right
parotid is labelled Parotid_L. ``flip_axes`` therefore refuses "x".

Images are resampled bilinearly, labels by nearest neighbour, so labels keep exactly the values of
the organ set. The output is plain tensors: image float32, label uint8.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from monai.transforms import (
    Compose,
    EnsureTyped,
    Flipd,
    Identityd,
    MapLabelValued,
    OneOf,
    Rand2DElasticd,
    Rand3DElasticd,
    RandAdjustContrastd,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
)

from autocontour.errors import InvalidInputError, UnknownOptionError, did_you_mean
from autocontour.organs import OrganSet

LR_MIRROR_MODES = ("off", "swap")
_AXES_3D = {"z": 0, "y": 1, "x": 2}
_AXES_2D = {"y": 0, "x": 1}
_KEYS = ["image", "label"]


@dataclass(frozen=True)
class AugmentConfig:
    """What to augment and how much; saved with a checkpoint (``to_dict``/``from_dict``).

    Attributes:
        rotation_deg: maximum absolute rotation angle (uniform in [-r, r]) [10, seed 004].
        rotation_axes: 3-D: the axes rotated *about*; "z" alone is in-plane (axial) rotation, the
            default because thick slices make out-of-plane rotation a shear in mm. 2-D: ignored.
        scale: relative scaling, factor uniform in [1 - s, 1 + s] per axis.
        translation_px: maximum shift in voxels along every axis [8, seed 004].
        affine_prob: probability of the rotation/scaling/translation step.
        elastic_prob: probability of an elastic deformation.
        elastic_sigma: 3-D: smoothing sigma range (voxels) of the random displacement field.
        elastic_magnitude: 3-D: magnitude range of the displacement before smoothing (MONAI).
        elastic_grid_px: 2-D: spacing of the B-spline control grid (pixels).
        elastic_offset_px: 2-D: range of the control-point displacement std (pixels).
        gamma: gamma range of the contrast change (intensity rescaled to 0..1, stats restored).
        gamma_prob: probability of the gamma change.
        noise_var: variance of the additive Gaussian noise [0.001, seed 004].
        noise_prob: probability of adding noise.
        flip_axes: axes ("z", "y") that may be flipped ("z" is ignored in 2-D); "x" is left-right:
            use ``lr_mirror``.
        flip_prob: probability of a flip, independently per axis.
        lr_mirror: "off" (default, seed 004) or "swap" (mirror and swap paired labels).
        lr_mirror_prob: probability of a left-right mirror when ``lr_mirror="swap"``.

    Raises:
        InvalidInputError: a negative range, a probability outside [0, 1], an unknown axis or
            "x" in ``flip_axes``.
        UnknownOptionError: an unknown ``lr_mirror`` (with the closest choice).
    """

    rotation_deg: float = 10.0
    rotation_axes: tuple[str, ...] = ("z",)
    scale: float = 0.1
    translation_px: float = 8.0
    affine_prob: float = 0.5
    elastic_prob: float = 0.2
    elastic_sigma: tuple[float, float] = (5.0, 8.0)
    elastic_magnitude: tuple[float, float] = (100.0, 200.0)
    elastic_grid_px: float = 32.0
    elastic_offset_px: tuple[float, float] = (1.0, 3.0)
    gamma: tuple[float, float] = (0.7, 1.5)
    gamma_prob: float = 0.3
    noise_var: float = 0.001
    noise_prob: float = 0.15
    flip_axes: tuple[str, ...] = ("z", "y")
    flip_prob: float = 0.5
    lr_mirror: str = "off"
    lr_mirror_prob: float = 0.5

    def __post_init__(self) -> None:
        for name in ("rotation_axes", "flip_axes", "elastic_sigma", "elastic_magnitude",
                     "elastic_offset_px", "gamma"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        mode = str(self.lr_mirror).strip().lower()
        if mode not in LR_MIRROR_MODES:
            raise UnknownOptionError(did_you_mean(f"unknown lr_mirror {self.lr_mirror!r}", mode,
                                                   list(LR_MIRROR_MODES)))
        object.__setattr__(self, "lr_mirror", mode)
        if "x" in self.flip_axes:
            raise InvalidInputError(
                "flip_axes may not contain 'x': a left-right flip would mislabel paired organs; "
                "use lr_mirror='swap' to mirror and swap left/right labels")
        for name in ("rotation_axes", "flip_axes"):
            bad = [a for a in getattr(self, name) if a not in _AXES_3D]
            if bad:
                raise InvalidInputError(f"{name}: unknown axes {bad} (choices: z, y, x)")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_prob") and not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"{f.name} must lie in [0, 1], got {value}")
            if isinstance(value, int | float) and value < 0:
                raise InvalidInputError(f"{f.name} must not be negative, got {value}")
        for name in ("elastic_sigma", "elastic_magnitude", "elastic_offset_px", "gamma"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise InvalidInputError(f"{name} must be a range 0 <= low <= high, got {(lo, hi)}")
        if self.gamma[0] <= 0:
            raise InvalidInputError(f"gamma must be positive, got {self.gamma}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise UnknownOptionError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UnknownOptionError(did_you_mean(f"unknown augmentation option {unknown[0]!r}",
                                                   unknown[0], sorted(known)))
        return cls(**data)


def build_augmentation(config: AugmentConfig, organs: OrganSet, spatial_dims: int,
                       seed: int | None = 0) -> Compose:
    """The augmentation pipeline for dict samples {"image": (C, ...), "label": (1, ...)}.

    Args:
        config: what to apply.
        organs: the label set; its left/right pairs are swapped by ``lr_mirror="swap"``.
        spatial_dims: 3 for (z, y, x) patches, 2 for (y, x) slices.
        seed: seeds every random transform; ``Compose.set_random_state(seed)`` re-seeds later.

    Returns:
        A MONAI ``Compose`` (callable dict -> dict) whose output holds an image float32 tensor
        and a label uint8 tensor of the input shapes.

    Raises:
        InvalidInputError: ``spatial_dims`` other than 2 or 3.
    """
    if spatial_dims not in (2, 3):
        raise InvalidInputError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    axes = _AXES_3D if spatial_dims == 3 else _AXES_2D
    steps: list[Callable] = []
    if config.lr_mirror == "swap" and config.lr_mirror_prob > 0:
        steps.append(_lr_mirror_swap(organs, axes["x"], config.lr_mirror_prob))
    steps += [RandFlipd(_KEYS, prob=config.flip_prob, spatial_axis=axes[a])
              for a in config.flip_axes if a in axes and config.flip_prob > 0]
    if config.affine_prob > 0:
        steps.append(RandAffined(
            _KEYS, prob=config.affine_prob, rotate_range=rotate_range(config, spatial_dims),
            scale_range=(config.scale,) * spatial_dims,
            translate_range=(config.translation_px,) * spatial_dims,
            mode=("bilinear", "nearest"), padding_mode=("border", "zeros")))
    if config.elastic_prob > 0:
        steps.append(_elastic(config, spatial_dims))
    if config.gamma_prob > 0:
        steps.append(RandAdjustContrastd("image", prob=config.gamma_prob, gamma=config.gamma,
                                         retain_stats=True))
    if config.noise_prob > 0:
        steps.append(RandGaussianNoised("image", prob=config.noise_prob, mean=0.0,
                                        std=math.sqrt(config.noise_var), sample_std=False))
    steps.append(EnsureTyped(_KEYS, data_type="tensor", dtype=(torch.float32, torch.uint8),
                             track_meta=False))
    pipeline = Compose(steps)
    if seed is not None:
        pipeline.set_random_state(seed=seed)
    return pipeline


def rotate_range(config: AugmentConfig, spatial_dims: int) -> tuple[float, ...]:
    """MONAI ``rotate_range`` in radians: 2-D one angle; 3-D angles about array axes (z, y, x)."""
    r = math.radians(config.rotation_deg)
    if spatial_dims == 2:
        return (r,)
    return tuple(r if axis in config.rotation_axes else 0.0 for axis in _AXES_3D)


def _elastic(config: AugmentConfig, spatial_dims: int) -> Callable:
    common = {"prob": config.elastic_prob, "mode": ("bilinear", "nearest"),
              "padding_mode": ("border", "zeros")}
    if spatial_dims == 3:
        return Rand3DElasticd(_KEYS, sigma_range=config.elastic_sigma,
                              magnitude_range=config.elastic_magnitude, **common)
    return Rand2DElasticd(_KEYS, spacing=config.elastic_grid_px,
                          magnitude_range=config.elastic_offset_px, **common)


def _lr_mirror_swap(organs: OrganSet, lr_axis: int, prob: float) -> OneOf:
    """With probability ``prob``: flip image and label along ``lr_axis`` and swap L/R labels."""
    table = organs.mirror_lookup()
    moved = [v for v in range(256) if table[v] != v]
    swap = Compose([Flipd(_KEYS, spatial_axis=lr_axis),
                    MapLabelValued("label", orig_labels=moved,
                                   target_labels=[table[v] for v in moved], dtype=np.uint8)])
    return OneOf([swap, Identityd(_KEYS)], weights=[prob, 1.0 - prob])
