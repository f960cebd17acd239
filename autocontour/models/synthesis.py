"""Networks of the multi-modal lesion-guided synthesis (seed 003, §4.2-4.3; spec E3, E5).

The source adapts two families: VGG11 for the encoder E_s and the critics D_z, D_s, D, and U-Net
for the generators G_s, G_m and G. Here, all 2-D, channel-first ``(B, C, H, W)``:

* :class:`VGG11Features`: VGG11's convolution layout (1, 1, 2, 2, 2 convolutions of widths
  w, 2w, 4w, 8w, 8w, each stage ended by a 2×2 max-pool), with batch norm and LeakyReLU and the
  number of stages (``pools``) chosen to fit the input size; ``width=64`` and ``pools=5`` is VGG11.
* :class:`StructureEncoder` (E_s): VGG11 features then two 1×1 heads, ``f_mean`` and ``f_logvar``
  ``(B, latent_channels, H / 2^pools, W / 2^pools)``; :func:`reparameterise` gives
  ``f = f_mean + exp(0.5 f_logvar) z``.
* :class:`StructureDecoder` (G_s): the expanding half of a U-Net (no encoder to skip from): from
  a latent map up ``ups`` times (transposed 2×2 convolution, two 3×3 convolutions) to a map in
  0..1 (sigmoid).
* :class:`UNetGenerator2D`: a U-Net (``depth`` down/up stages, skips) with an optional condition
  vector (the one-hot modality) broadcast over the bottleneck and joined to it by concatenation,
  as the source's G ("在编码缩小尺寸阶段的最后层输出后叠加输入的条件矩阵"). Without a condition
  it is the mask generator G_m. Output: sigmoid (images and masks in 0..1).
* :class:`VGG11Discriminator` (D_z, D_s): VGG11 features and a 3×3 convolution to one channel: a
  matrix of real/fake scores, no sigmoid (the losses are LSGAN squared errors).
* :class:`ACGANDiscriminator` (D): the same trunk with two heads of two layers each, the
  real/fake matrix ``d`` and the modality matrix ``c`` (regressed to the modality index i).

Every network stores its constructor arguments in ``arch_kwargs``; :func:`synthesis_network`
rebuilds one from its class name and those (the registry :data:`SYNTHESIS_NETWORKS`).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import torch
from torch import nn

#: VGG11's convolutions per stage (each stage ends in a max-pool) and width multipliers.
VGG11_STAGES = ((1, 1), (1, 2), (2, 4), (2, 8), (2, 8))


def _check_positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _conv(cin: int, cout: int, norm: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(*_conv(cin, cout), *_conv(cout, cout))


def _check_input(x: torch.Tensor, channels: int, multiple: int, name: str) -> None:
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} expects (B, {channels}, H, W), got {tuple(x.shape)}")
    if x.shape[2] % multiple or x.shape[3] % multiple:
        raise ValueError(f"{name}: H and W must be multiples of {multiple}, got "
                         f"{tuple(x.shape[2:])}")


class VGG11Features(nn.Module):
    """VGG11's convolution trunk, the first ``pools`` stages (1..5), width ``width`` (64: VGG11).

    Output ``(B, width * m, H / 2^pools, W / 2^pools)`` with ``m`` the last stage's multiplier.
    """

    def __init__(self, in_channels: int, width: int = 64, pools: int = 5) -> None:
        super().__init__()
        _check_positive("in_channels", in_channels)
        _check_positive("width", width)
        if not 1 <= _check_positive("pools", pools) <= len(VGG11_STAGES):
            raise ValueError(f"pools must be 1..{len(VGG11_STAGES)}, got {pools}")
        layers: list[nn.Module] = []
        cin = in_channels
        for n_conv, mult in VGG11_STAGES[:pools]:
            for k in range(n_conv):
                layers += _conv(cin, width * mult, norm=not (cin == in_channels and k == 0))
                cin = width * mult
            layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)
        self.out_channels = cin
        self.pools = pools

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class StructureEncoder(nn.Module):
    """E_s: structure map ``(B, in_channels, H, W)`` -> ``(f_mean, f_logvar)``, each
    ``(B, latent_channels, H / 2^pools, W / 2^pools)``.

    Raises:
        ValueError: a non-positive size, or (in ``forward``) a wrong input shape.
    """

    def __init__(self, in_channels: int = 1, latent_channels: int = 8, width: int = 64,
                 pools: int = 3) -> None:
        super().__init__()
        self.arch_kwargs = {"in_channels": in_channels, "latent_channels": latent_channels,
                            "width": width, "pools": pools}
        _check_positive("latent_channels", latent_channels)
        self.features = VGG11Features(in_channels, width, pools)
        self.mean = nn.Conv2d(self.features.out_channels, latent_channels, 1)
        self.logvar = nn.Conv2d(self.features.out_channels, latent_channels, 1)

    def forward(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_input(s, self.arch_kwargs["in_channels"], 2 ** self.features.pools,
                     "StructureEncoder")
        h = self.features(s)
        return self.mean(h), self.logvar(h)


def reparameterise(f_mean: torch.Tensor, f_logvar: torch.Tensor,
                   z: torch.Tensor) -> torch.Tensor:
    """``f = f_mean + exp(0.5 × f_logvar) × z`` (§4.2.2), ``z`` ~ N(0, 1) of the same shape."""
    return f_mean + torch.exp(0.5 * f_logvar) * z


class StructureDecoder(nn.Module):
    """G_s: latent ``(B, latent_channels, h, w)`` -> map ``(B, out_channels, h 2^ups, w 2^ups)``
    in 0..1.

    Widths from the bottom: ``width * 2^(ups-1)`` halving at each up-sampling to ``width``.
    """

    def __init__(self, latent_channels: int = 8, out_channels: int = 1, width: int = 64,
                 ups: int = 3) -> None:
        super().__init__()
        self.arch_kwargs = {"latent_channels": latent_channels, "out_channels": out_channels,
                            "width": width, "ups": ups}
        for name in ("latent_channels", "out_channels", "width", "ups"):
            _check_positive(name, self.arch_kwargs[name])
        widths = [width * 2 ** k for k in range(ups, -1, -1)]  # bottom ... top
        self.bottom = _double_conv(latent_channels, widths[0])
        self.ups = nn.ModuleList(nn.ConvTranspose2d(a, b, 2, stride=2)
                                 for a, b in pairwise(widths))
        self.convs = nn.ModuleList(_double_conv(b, b) for b in widths[1:])
        self.head = nn.Conv2d(widths[-1], out_channels, 1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        _check_input(f, self.arch_kwargs["latent_channels"], 1, "StructureDecoder")
        h = self.bottom(f)
        for up, conv in zip(self.ups, self.convs, strict=True):
            h = conv(up(h))
        return torch.sigmoid(self.head(h))


class UNetGenerator2D(nn.Module):
    """A 2-D U-Net generator, optionally conditioned at the bottleneck (G, G_m).

    Args:
        in_channels: input channels (G: the noise-fused structure map and the lesion label, 2;
            G_m: the structure map, 1).
        out_channels: output channels (1).
        width: channels of the first stage; stage k has ``width * 2^k``.
        depth: number of 2×2 down-samplings (H and W must be multiples of 2^depth).
        condition_channels: length of the condition vector (the number of modalities); 0: none.

    Forward: ``x (B, in_channels, H, W)``, ``condition (B, condition_channels)`` (one-hot) or None
    -> ``(B, out_channels, H, W)`` in 0..1.

    Raises:
        ValueError: bad sizes; in ``forward``, a wrong input shape or a missing/unexpected
            condition.
    """

    def __init__(self, in_channels: int = 2, out_channels: int = 1, width: int = 64,
                 depth: int = 4, condition_channels: int = 0) -> None:
        super().__init__()
        self.arch_kwargs = {"in_channels": in_channels, "out_channels": out_channels,
                            "width": width, "depth": depth,
                            "condition_channels": condition_channels}
        for name in ("in_channels", "out_channels", "width", "depth"):
            _check_positive(name, self.arch_kwargs[name])
        if isinstance(condition_channels, bool) or condition_channels < 0:
            raise ValueError(f"condition_channels must be 0 or more, got {condition_channels!r}")
        widths = [width * 2 ** k for k in range(depth + 1)]
        self.downs = nn.ModuleList()
        cin = in_channels
        for w in widths[:-1]:
            self.downs.append(_double_conv(cin, w))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _double_conv(widths[-2], widths[-1])
        # The condition joins the bottleneck's output; a 1x1 convolution mixes it in.
        self.join = nn.Sequential(
            nn.Conv2d(widths[-1] + condition_channels, widths[-1], 1),
            nn.LeakyReLU(0.2, inplace=True))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[k + 1], widths[k], 2, stride=2)
                                 for k in reversed(range(depth)))
        self.convs = nn.ModuleList(_double_conv(2 * widths[k], widths[k])
                                   for k in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        a = self.arch_kwargs
        _check_input(x, a["in_channels"], 2 ** a["depth"], "UNetGenerator2D")
        n = a["condition_channels"]
        if n and (condition is None or tuple(condition.shape) != (x.shape[0], n)):
            got = None if condition is None else tuple(condition.shape)
            raise ValueError(f"UNetGenerator2D expects a condition of shape ({x.shape[0]}, {n}), "
                             f"got {got}")
        if not n and condition is not None:
            raise ValueError("UNetGenerator2D was built without a condition (condition_channels "
                             "= 0) but was given one")
        skips = []
        h = x
        for down in self.downs:
            h = down(h)
            skips.append(h)
            h = self.pool(h)
        h = self.bottleneck(h)
        if n and condition is not None:
            cond = condition.to(h.dtype)[:, :, None, None].expand(-1, -1, *h.shape[2:])
            h = torch.cat([h, cond], dim=1)
        h = self.join(h)
        for up, conv, skip in zip(self.ups, self.convs, reversed(skips), strict=True):
            h = conv(torch.cat([up(h), skip], dim=1))
        return torch.sigmoid(self.head(h))


class VGG11Discriminator(nn.Module):
    """D_z / D_s: VGG11 trunk and a 3×3 convolution to a real/fake score matrix
    ``(B, 1, H / 2^pools, W / 2^pools)`` (no sigmoid).
    """

    def __init__(self, in_channels: int = 1, width: int = 64, pools: int = 4) -> None:
        super().__init__()
        self.arch_kwargs = {"in_channels": in_channels, "width": width, "pools": pools}
        self.features = VGG11Features(in_channels, width, pools)
        self.head = nn.Conv2d(self.features.out_channels, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.arch_kwargs["in_channels"], 2 ** self.features.pools,
                     type(self).__name__)
        return self.head(self.features(x))


class ACGANDiscriminator(nn.Module):
    """D: VGG11 trunk and two heads of two layers each: ``d`` (real/fake) and ``c`` (modality).

    Forward: ``x (B, in_channels, H, W)`` -> ``(d, c)``, each ``(B, 1, H / 2^pools, W / 2^pools)``;
    ``c`` is regressed to the modality index i (eq. 13-14), so it is a plain number, no softmax.
    """

    def __init__(self, in_channels: int = 1, width: int = 64, pools: int = 4) -> None:
        super().__init__()
        self.arch_kwargs = {"in_channels": in_channels, "width": width, "pools": pools}
        self.features = VGG11Features(in_channels, width, pools)
        c = self.features.out_channels

        def head() -> nn.Sequential:
            return nn.Sequential(*_conv(c, c, norm=False), nn.Conv2d(c, 1, 3, padding=1))

        self.real_fake = head()
        self.modality = head()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_input(x, self.arch_kwargs["in_channels"], 2 ** self.features.pools,
                     "ACGANDiscriminator")
        h = self.features(x)
        return self.real_fake(h), self.modality(h)


#: Class name -> constructor, for rebuilding a saved network from ``arch_kwargs``.
SYNTHESIS_NETWORKS: dict[str, Callable[..., nn.Module]] = {
    cls.__name__: cls
    for cls in (StructureEncoder, StructureDecoder, UNetGenerator2D, VGG11Discriminator,
                ACGANDiscriminator)
}


def synthesis_network(name: str, arch_kwargs: dict[str, Any]) -> nn.Module:
    """Rebuild a synthesis network from its class name and ``arch_kwargs``.

    Raises:
        ValueError: an unknown name (the message lists the choices).
    """
    if name not in SYNTHESIS_NETWORKS:
        raise ValueError(f"unknown synthesis network {name!r}; choices: "
                         f"{', '.join(SYNTHESIS_NETWORKS)}")
    return SYNTHESIS_NETWORKS[name](**arch_kwargs)
