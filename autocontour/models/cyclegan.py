"""CycleGAN networks for CT ↔ MR synthesis (spec D1, D2): 2-D generators and a PatchGAN critic.

* :class:`ResnetGenerator`: the original CycleGAN generator — a 7×7 stem, ``n_down`` stride-2
  convolutions, ``n_blocks`` residual blocks (9 in the original), ``n_down`` stride-2
  *transposed* convolutions back up, a 7×7 output convolution and ``tanh`` (images in [-1, 1]).
* :class:`ImprovedResnetGenerator`: seed 000's improvement (D2) — the same encoder, 2 residual
  blocks, and up-sampling by "nearest-neighbour resize, then a 3×3 convolution" everywhere except
  the coarsest up-sampling step, which keeps its transposed convolution (exactly one in the whole
  network). Resize-convolution cannot produce the checkerboard pattern a stride-2 transposed
  convolution makes where its kernels overlap unevenly, and the 2 blocks make the network small.
* :class:`PatchDiscriminator`: the 70×70 PatchGAN of pix2pix/CycleGAN at the default depth — a
  map of real/fake scores, one per overlapping patch (no sigmoid: the loss decides how the scores
  are compared, MSE or L1, spec D4).

All are 2-D, with every width configurable so tests run tiny ones. Each network carries
``arch_kwargs`` (its resolved constructor arguments) and is rebuilt from
:func:`gan_network_spec` by :func:`gan_network_from_spec` (an explicit registry,
:data:`GAN_NETWORKS`), like the segmentation networks of :mod:`autocontour.models.registry`.
:func:`translate_slices` runs a 2-D generator over every axial slice of a volume (the one
conversion code of ``pseudo-mri convert`` and of the pseudo-MRI recipe step).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autocontour.errors import closest_choice

_NORMS: dict[str, Callable[[int], nn.Module]] = {
    "instance": lambda c: nn.InstanceNorm2d(c, affine=False),
    "batch": nn.BatchNorm2d,
}


def _norm(name: str, channels: int) -> nn.Module:
    if name not in _NORMS:
        close = closest_choice(name, _NORMS)
        hint = f"; did you mean {close!r}?" if close else ""
        raise ValueError(f"unknown norm {name!r}{hint} (choices: {', '.join(_NORMS)})")
    return _NORMS[name](channels)


def _positive(what: str, value: int, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{what} must be a whole number of at least {low}, got {value!r}")
    return value


class ResidualBlock(nn.Module):
    """Two reflect-padded 3×3 convolutions (norm, ReLU between) added to the input."""

    def __init__(self, channels: int, norm: str = "instance") -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(norm, channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """The CycleGAN ResNet generator (spec D1); ``transposed_up`` < ``n_down`` gives D2's variant.

    Input ``(B, in_channels, Y, X)`` with Y and X multiples of ``2 ** n_down``; output
    ``(B, out_channels, Y, X)`` in [-1, 1].

    Attributes:
        arch_kwargs: the constructor's arguments, JSON-safe (for checkpoints).
        size_multiple: each input size must be a multiple of this (``2 ** n_down``).

    Args:
        in_channels, out_channels: image channels in and out.
        base_channels: channels after the stem (64 in the original); doubled by every
            down-sampling.
        n_blocks: residual blocks at the bottom (9 in the original for 256×256 images).
        n_down: stride-2 down-samplings (and as many up-samplings).
        transposed_up: how many up-sampling steps, counted from the coarsest, use a stride-2
            transposed convolution; the others resize (nearest) and then convolve. None: all
            (the original).
        norm: "instance" (the original) or "batch".

    Raises:
        ValueError: a size below 1 (``n_blocks`` may be 0), ``transposed_up`` outside
            [0, n_down], an unknown norm.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, base_channels: int = 64,
                 n_blocks: int = 9, n_down: int = 2, transposed_up: int | None = None,
                 norm: str = "instance") -> None:
        super().__init__()
        _positive("in_channels", in_channels)
        _positive("out_channels", out_channels)
        _positive("base_channels", base_channels)
        _positive("n_blocks", n_blocks, low=0)
        _positive("n_down", n_down)
        transposed_up = n_down if transposed_up is None else transposed_up
        if not isinstance(transposed_up, int) or not 0 <= transposed_up <= n_down:
            raise ValueError(f"transposed_up must lie in [0, n_down={n_down}], got "
                             f"{transposed_up!r}")
        self.arch_kwargs: dict[str, Any] = {
            "in_channels": in_channels, "out_channels": out_channels,
            "base_channels": base_channels, "n_blocks": n_blocks, "n_down": n_down,
            "transposed_up": transposed_up, "norm": norm}
        self.size_multiple = 2 ** n_down
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, base_channels, 7),
                                   _norm(norm, base_channels), nn.ReLU(inplace=True)]
        c = base_channels
        for _ in range(n_down):
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), _norm(norm, 2 * c),
                       nn.ReLU(inplace=True)]
            c *= 2
        layers += [ResidualBlock(c, norm) for _ in range(n_blocks)]
        for i in range(n_down):
            if i < transposed_up:
                layers.append(nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1,
                                                 output_padding=1))
            else:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                           nn.Conv2d(c, c // 2, 3)]
            layers += [_norm(norm, c // 2), nn.ReLU(inplace=True)]
            c //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.size_multiple
        if x.ndim != 4 or x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(f"{type(self).__name__} needs (B, C, Y, X) with Y and X multiples "
                             f"of {m}, got {tuple(x.shape)}")
        return self.net(x)


class ImprovedResnetGenerator(ResnetGenerator):
    """Seed 000's generator (spec D2): 2 residual blocks, resize-convolution up-sampling with one
    transposed convolution kept (the coarsest step). Arguments as :class:`ResnetGenerator`."""

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, base_channels: int = 64,
                 n_blocks: int = 2, n_down: int = 2, transposed_up: int = 1,
                 norm: str = "instance") -> None:
        super().__init__(in_channels=in_channels, out_channels=out_channels,
                         base_channels=base_channels, n_blocks=n_blocks, n_down=n_down,
                         transposed_up=transposed_up, norm=norm)


class PatchDiscriminator(nn.Module):
    """The PatchGAN discriminator: a map of unbounded real/fake scores, one per image patch.

    A 4×4 stride-2 convolution and LeakyReLU(0.2) (no norm), ``n_layers - 1`` more stride-2
    convolutions doubling the width (capped at 8× ``base_channels``) with norm, one stride-1
    convolution, and a 1-channel stride-1 convolution. With ``n_layers=3`` each score sees a
    70×70 patch. Inputs need Y, X of at least ``2 ** n_layers * 2`` or so for a non-empty map.

    Args:
        in_channels: image channels.
        base_channels: width of the first convolution (64 in the original).
        n_layers: stride-2 convolutions (3 in the original).
        norm: "instance" (CycleGAN) or "batch".
    """

    def __init__(self, *, in_channels: int = 1, base_channels: int = 64, n_layers: int = 3,
                 norm: str = "instance") -> None:
        super().__init__()
        _positive("in_channels", in_channels)
        _positive("base_channels", base_channels)
        _positive("n_layers", n_layers)
        self.arch_kwargs: dict[str, Any] = {"in_channels": in_channels,
                                            "base_channels": base_channels,
                                            "n_layers": n_layers, "norm": norm}
        c = base_channels
        layers: list[nn.Module] = [nn.Conv2d(in_channels, c, 4, stride=2, padding=1),
                                   nn.LeakyReLU(0.2, inplace=True)]
        for i in range(1, n_layers + 1):
            nxt = base_channels * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(c, nxt, 4, stride=stride, padding=1), _norm(norm, nxt),
                       nn.LeakyReLU(0.2, inplace=True)]
            c = nxt
        layers.append(nn.Conv2d(c, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


#: Name → class of every CycleGAN network a checkpoint may name.
GAN_NETWORKS: dict[str, type[nn.Module]] = {
    "ResnetGenerator": ResnetGenerator,
    "ImprovedResnetGenerator": ImprovedResnetGenerator,
    "PatchDiscriminator": PatchDiscriminator,
}


def gan_network_spec(net: nn.Module) -> dict[str, Any]:
    """``{"network_class_name", "arch_kwargs"}`` of a network of :data:`GAN_NETWORKS`."""
    name = type(net).__name__
    if name not in GAN_NETWORKS:
        raise ValueError(f"{name} is not a CycleGAN network ({', '.join(GAN_NETWORKS)})")
    return {"network_class_name": name, "arch_kwargs": json.loads(json.dumps(net.arch_kwargs))}


def gan_network_from_spec(spec: Mapping[str, Any]) -> nn.Module:
    """Rebuild the network a :func:`gan_network_spec` describes (weights not included).

    Raises:
        ValueError: an unknown class name (with the closest one) or bad arguments.
    """
    name = str(spec.get("network_class_name"))
    if name not in GAN_NETWORKS:
        close = closest_choice(name, GAN_NETWORKS)
        hint = f"; did you mean {close!r}?" if close else ""
        raise ValueError(f"unknown CycleGAN network {name!r}{hint}")
    try:
        return GAN_NETWORKS[name](**dict(spec.get("arch_kwargs") or {}))
    except TypeError as exc:
        raise ValueError(f"bad arguments for {name}: {exc}") from None


def count_layers(net: nn.Module, kind: type[nn.Module]) -> int:
    """How many sub-modules of ``net`` are of type ``kind`` (e.g. ``nn.ConvTranspose2d``)."""
    return sum(isinstance(m, kind) for m in net.modules())


@torch.inference_mode()
def translate_slices(unit: np.ndarray, generator: nn.Module, batch_slices: int = 4,
                     device: str | torch.device = "cpu",
                     on_batch: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Run ``generator`` on every axial slice of a normalised volume (z, y, x) in [-1, 1].

    Slices are padded (with -1, the background) to a multiple of the generator's
    ``size_multiple`` and cropped back. ``on_batch(done, total)`` after every batch of slices.
    """
    m = int(getattr(generator, "size_multiple", 1))
    nz, ny, nx = unit.shape
    py, px = -ny % m, -nx % m
    out = np.empty(unit.shape, np.float32)
    for k in range(0, nz, batch_slices):
        x = torch.from_numpy(np.ascontiguousarray(unit[k:k + batch_slices], np.float32))
        x = F.pad(x[:, None], (px // 2, px - px // 2, py // 2, py - py // 2), value=-1.0)
        y = generator(x.to(device)).float().cpu()[:, 0]
        out[k:k + batch_slices] = y[:, py // 2:py // 2 + ny, px // 2:px // 2 + nx].numpy()
        if on_batch is not None:
            on_batch(min(k + batch_slices, nz), nz)
    return out
