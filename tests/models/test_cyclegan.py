"""The CycleGAN networks (spec D1, D2): shapes, the improved generator's single transposed
convolution, widths, the PatchGAN score map, and rebuilding from a checkpoint spec."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autocontour.models.cyclegan import (
    GAN_NETWORKS,
    ImprovedResnetGenerator,
    PatchDiscriminator,
    ResidualBlock,
    ResnetGenerator,
    count_layers,
    gan_network_from_spec,
    gan_network_spec,
)


@pytest.mark.parametrize("cls", [ResnetGenerator, ImprovedResnetGenerator])
@pytest.mark.parametrize("size", [(32, 32), (16, 48)])
def test_generators_keep_the_image_size_and_range(cls: type, size: tuple[int, int]) -> None:
    net = cls(base_channels=4)
    y = net(torch.randn(2, 1, *size) * 3)
    assert y.shape == (2, 1, *size)
    assert float(y.detach().abs().max()) <= 1.0  # tanh: images in [-1, 1]


def test_the_original_has_9_blocks_and_only_transposed_up_sampling() -> None:
    net = ResnetGenerator(base_channels=4)
    assert count_layers(net, ResidualBlock) == 9
    assert count_layers(net, nn.ConvTranspose2d) == 2 and count_layers(net, nn.Upsample) == 0
    deep = ResnetGenerator(base_channels=4, n_down=3)
    assert count_layers(deep, nn.ConvTranspose2d) == 3


@pytest.mark.parametrize("n_down", [2, 3, 4])
def test_the_improved_generator_keeps_exactly_one_transposed_convolution(n_down: int) -> None:
    net = ImprovedResnetGenerator(base_channels=4, n_down=n_down)
    assert count_layers(net, nn.ConvTranspose2d) == 1
    assert count_layers(net, nn.Upsample) == n_down - 1  # resize, then convolve
    assert count_layers(net, ResidualBlock) == 2
    # the kept one is the coarsest step: the first up-sampling layer after the blocks
    ups = [m for m in net.net if isinstance(m, nn.ConvTranspose2d | nn.Upsample)]
    assert isinstance(ups[0], nn.ConvTranspose2d)


def test_the_improved_generator_is_smaller() -> None:
    params = lambda net: sum(p.numel() for p in net.parameters())
    assert params(ImprovedResnetGenerator()) < params(ResnetGenerator()) / 3


def test_widths_are_configurable() -> None:
    net = ResnetGenerator(base_channels=3, n_blocks=1)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].out_channels == 3 and convs[1].out_channels == 6
    disc = PatchDiscriminator(base_channels=5, n_layers=2)
    assert next(m for m in disc.modules() if isinstance(m, nn.Conv2d)).out_channels == 5


def test_patch_discriminator_gives_a_score_map() -> None:
    disc = PatchDiscriminator(base_channels=4)
    assert disc(torch.randn(3, 1, 32, 32)).shape == (3, 1, 2, 2)
    assert disc(torch.randn(1, 1, 64, 64)).shape == (1, 1, 6, 6)


def test_a_size_that_cannot_be_down_sampled_is_refused() -> None:
    with pytest.raises(ValueError, match="multiples of 4"):
        ResnetGenerator(base_channels=4)(torch.randn(1, 1, 30, 32))


@pytest.mark.parametrize("kwargs, message", [
    ({"n_down": 0}, "n_down must be"),
    ({"transposed_up": 3}, "transposed_up must lie in"),
    ({"norm": "instanse"}, "did you mean 'instance'"),
    ({"base_channels": 0}, "base_channels must be"),
])
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ResnetGenerator(**kwargs)


@pytest.mark.parametrize("name", list(GAN_NETWORKS))
def test_spec_round_trip(name: str) -> None:
    net = GAN_NETWORKS[name](base_channels=4)
    spec = gan_network_spec(net)
    again = gan_network_from_spec(spec)
    assert type(again) is type(net) and again.arch_kwargs == net.arch_kwargs
    again.load_state_dict(net.state_dict())
    with pytest.raises(ValueError, match="did you mean 'PatchDiscriminator'"):
        gan_network_from_spec({"network_class_name": "PatchDiscriminater", "arch_kwargs": {}})
