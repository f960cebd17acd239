"""Φ, the scoring network of the Quality Awareness Module (spec C2, seed 002 chapter 3).

Seed 002 feeds the image concatenated with its one-hot label (n + 1 channels) to a "VGG-like"
network whose last layer is replaced by an average pooling, giving one absolute score per
sample; the training engine turns the scores of a batch into loss weights
(``autocontour.training.qam``). The seed gives no layers; this is a small VGG: per level two
3×3 convolutions with LeakyReLU, the first of them strided (stride 2 replaces VGG's max pooling
and makes the network cheap next to the segmenter it weighs), then a 1×1 convolution to one
channel and a global average pooling. No normalisation layer: a BatchNorm would mix the samples
of the batch that Φ is meant to tell apart, and an InstanceNorm would rescale the label channels
(whose areas carry part of what Φ judges).

With the defaults (channels 8/16/32/32) Φ has 36 497 parameters plus 72 per input channel in
2-D (38 873 for the head-and-neck organ set's 33 channels) and 109 073 plus 216 per input channel
in 3-D, against 8.1 million in the default ``ResUNet2D`` and 5.1 million in the default
``UNet3D``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn


class QualityNet(nn.Module):
    """Φ(x; y): one absolute quality score per sample from the image and its one-hot label.

    Args:
        spatial_dims: 2 (axial slices, input ``(B, C, Y, X)``) or 3 (``(B, C, Z, Y, X)``).
        in_channels: image channels + label classes (seed 002's n + 1).
        channels: channels of each level; each level halves the grid (any input size works: a
            level on a 1-voxel-wide axis keeps it at 1).

    Attributes:
        spatial_dims, arch_kwargs: as the registered networks have them.

    Raises:
        ValueError: ``spatial_dims`` not 2 or 3, or a channel count below 1.
    """

    def __init__(self, spatial_dims: int, in_channels: int,
                 channels: Sequence[int] = (8, 16, 32, 32)) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"QualityNet: spatial_dims must be 2 or 3, got {spatial_dims}")
        if in_channels < 1 or not channels or min(channels) < 1:
            raise ValueError(f"QualityNet: channel counts must be at least 1, got "
                             f"in_channels={in_channels}, channels={list(channels)}")
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers += [conv(previous, width, 3, stride=2, padding=1), nn.LeakyReLU(0.01),
                       conv(width, width, 3, padding=1), nn.LeakyReLU(0.01)]
            previous = width
        self.features = nn.Sequential(*layers)
        self.head = conv(previous, 1, 1)
        self.spatial_dims = spatial_dims
        self.arch_kwargs: dict[str, Any] = {"spatial_dims": spatial_dims,
                                            "in_channels": in_channels,
                                            "channels": [int(c) for c in channels]}

    def forward(self, x: Tensor) -> Tensor:
        """Scores ``(B,)`` of ``x`` = image ⊕ one-hot label, ``(B, in_channels, *spatial)``."""
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(f"QualityNet: expected a {self.spatial_dims + 2}-D input "
                             f"(B, C, *spatial), got shape {tuple(x.shape)}")
        return torch.flatten(self.head(self.features(x)), 1).mean(1)
