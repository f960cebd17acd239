"""The synthesis networks (seed 003): shapes, the condition, the VGG11 layout, bad inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autocontour.models.synthesis import (
    ACGANDiscriminator,
    StructureDecoder,
    StructureEncoder,
    UNetGenerator2D,
    VGG11Discriminator,
    VGG11Features,
    reparameterise,
    synthesis_network,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_vae_encoder_decoder_shapes_and_sample() -> None:
    enc = StructureEncoder(in_channels=1, latent_channels=3, width=4, pools=3)
    dec = StructureDecoder(latent_channels=3, out_channels=1, width=4, ups=3)
    s = torch.rand(2, 1, 32, 32)
    mean, logvar = enc(s)
    assert mean.shape == logvar.shape == (2, 3, 4, 4)
    z = torch.randn_like(mean)
    f = reparameterise(mean, logvar, z)
    assert torch.allclose(f, mean + torch.exp(0.5 * logvar) * z)
    s_r = dec(f)
    assert s_r.shape == (2, 1, 32, 32) and 0 <= s_r.min() and s_r.max() <= 1
    assert dec(torch.randn(1, 3, 4, 4)).shape == (1, 1, 32, 32)  # s_g = G_s(z)


def test_critics_give_score_matrices() -> None:
    dz = VGG11Discriminator(in_channels=3, width=4, pools=2)
    assert dz(torch.randn(2, 3, 4, 4)).shape == (2, 1, 1, 1)
    ds = VGG11Discriminator(in_channels=1, width=4, pools=3)
    assert ds(torch.rand(2, 1, 32, 32)).shape == (2, 1, 4, 4)
    d = ACGANDiscriminator(in_channels=1, width=4, pools=3)
    real_fake, modality = d(torch.rand(2, 1, 32, 32))
    assert real_fake.shape == modality.shape == (2, 1, 4, 4)
    assert not torch.equal(real_fake, modality)


def test_mask_generator_and_conditional_generator() -> None:
    g_m = UNetGenerator2D(in_channels=1, out_channels=1, width=4, depth=2)
    assert g_m(torch.rand(1, 1, 16, 16)).shape == (1, 1, 16, 16)
    g = UNetGenerator2D(in_channels=2, out_channels=1, width=4, depth=3, condition_channels=4)
    g.eval()
    x = torch.rand(1, 2, 32, 32).expand(4, -1, -1, -1)
    cond = torch.eye(4).requires_grad_()
    out = g(x, cond)  # the same input, each modality's one-hot condition
    assert out.shape == (4, 1, 32, 32) and 0 <= out.min() and out.max() <= 1
    for i in range(1, 4):  # the condition changes the output (a little, untrained)
        assert not torch.equal(out[0], out[i])
    out.sum().backward()
    assert (cond.grad.abs().sum(dim=1) > 0).all()  # and gradients reach it
    with pytest.raises(ValueError, match="condition of shape \\(1, 4\\)"):
        g(x[:1])
    with pytest.raises(ValueError, match="without a condition"):
        g_m(torch.rand(1, 1, 16, 16), torch.eye(1))


def test_vgg11_layout_at_full_width() -> None:
    convs = [m for m in VGG11Features(3, width=64, pools=5).modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 256, 512, 512, 512, 512]
    pools = [m for m in VGG11Features(3, 64, 5).modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 5


@pytest.mark.parametrize(("build", "x", "match"), [
    (lambda: StructureEncoder(1, 2, 4, 3), torch.rand(1, 1, 20, 20), "multiples of 8"),
    (lambda: StructureEncoder(1, 2, 4, 3), torch.rand(1, 2, 16, 16), "expects \\(B, 1, H, W\\)"),
    (lambda: UNetGenerator2D(2, 1, 4, 2), torch.rand(1, 2, 6, 8), "multiples of 4"),
    (lambda: ACGANDiscriminator(1, 4, 2), torch.rand(1, 1, 8), "expects"),
])
def test_bad_inputs(build, x, match) -> None:
    with pytest.raises(ValueError, match=match):
        build()(x)


@pytest.mark.parametrize(("build", "match"), [
    (lambda: VGG11Features(1, 4, 6), "pools must be 1..5"),
    (lambda: UNetGenerator2D(2, 1, 0, 2), "width must be a positive"),
    (lambda: UNetGenerator2D(2, 1, 4, 2, condition_channels=-1), "0 or more"),
    (lambda: StructureDecoder(2, 1, 4, 0), "ups must be a positive"),
    (lambda: synthesis_network("Nope", {}), "unknown synthesis network"),
])
def test_bad_sizes(build, match) -> None:
    with pytest.raises(ValueError, match=match):
        build()


def test_rebuilt_from_arch_kwargs() -> None:
    g = UNetGenerator2D(in_channels=2, width=4, depth=2, condition_channels=3)
    again = synthesis_network(type(g).__name__, g.arch_kwargs)
    again.load_state_dict(g.state_dict())  # same layout, same parameter shapes
    x, c = torch.rand(1, 2, 8, 8), torch.eye(3)[:1]
    g.eval(), again.eval()
    assert torch.equal(g(x, c), again(x, c))
