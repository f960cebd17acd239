"""Each loss term of seed 003 on a toy case whose value is worked out by hand."""

from __future__ import annotations

import pytest
import torch

from autocontour.synthesis.multimodal import losses as L


def full(value: float, shape=(1, 1, 2, 2)) -> torch.Tensor:
    return torch.full(shape, float(value))


CORNER = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])  # a mask with one pixel of four set


def test_squared_norm_mean_and_sum() -> None:
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # two samples
    assert L.squared_norm(a).item() == pytest.approx((2.5 + 12.5) / 2)  # per-sample means
    assert L.squared_norm(a, "sum").item() == pytest.approx((5 + 25) / 2)  # per-sample sums
    with pytest.raises(ValueError, match="reduction"):
        L.squared_norm(a, "max")
    with pytest.raises(ValueError, match="batch axis"):
        L.squared_norm(torch.tensor(1.0))


def test_eq6_mask() -> None:
    assert L.mask_loss(full(1), full(0)).item() == pytest.approx(1.0)
    assert L.mask_loss(full(1), full(0), "sum").item() == pytest.approx(4.0)


def test_eq7_reconstruction() -> None:
    # |s - s_r|^2 = 0.25 everywhere; m_r x s_r is 0.5 on one pixel of four: 0.25 / 4.
    value = L.reconstruction_loss(full(1), full(0.5), CORNER)
    assert value.item() == pytest.approx(0.25 + 0.0625)


def test_eq8_eq9_latent() -> None:
    assert L.latent_critic_loss(full(1), full(0)).item() == 0.0  # a perfect critic
    assert L.latent_critic_loss(full(0.5), full(0.5)).item() == pytest.approx(0.25 + 0.25)
    assert L.latent_encoder_loss(full(0.5)).item() == pytest.approx(0.25)
    assert L.latent_encoder_loss(full(1)).item() == 0.0


def test_eq10_eq11_maps() -> None:
    assert L.map_critic_loss(full(1), full(0)).item() == 0.0
    assert L.map_critic_loss(full(0), full(1)).item() == pytest.approx(2.0)
    # (0 - 1)^2 + mean((1 x 0.5)^2 on one pixel of four) = 1 + 0.0625.
    assert L.map_generator_loss(full(0), full(0.5), CORNER).item() == pytest.approx(1.0625)


def test_eq13_eq14_acgan() -> None:
    ones, zeros, idx = [full(1), full(1)], [full(0), full(0)], [full(0), full(1)]
    assert L.acgan_critic_loss(ones, idx, zeros, idx).item() == 0.0  # perfect on 2 modalities
    # Modality 1's fake image classified as 0: (0 - 1)^2 = 1; both fakes scored 1: 1 + 1.
    assert L.acgan_critic_loss(ones, idx, ones, [full(0), full(0)]).item() == pytest.approx(3.0)
    assert L.acgan_generator_loss(ones, idx).item() == 0.0
    # Fakes scored 0 ((0-1)^2 each) and both classified 0 (modality 1 off by one): 1 + 1 + 0 + 1.
    assert L.acgan_generator_loss(zeros, [full(0), full(0)]).item() == pytest.approx(3.0)
    # The class target is the modality index: 3 modalities all classified 0 -> 0 + 1 + 4.
    three = [full(1)] * 3
    assert L.acgan_generator_loss(three, [full(0)] * 3).item() == pytest.approx(5.0)
    with pytest.raises(ValueError, match="one tensor per modality"):
        L.acgan_critic_loss(ones, idx, zeros, [full(0)])
    with pytest.raises(ValueError, match="one tensor per modality"):
        L.acgan_generator_loss([], [])


def test_eq15_to_eq18() -> None:
    assert L.lesion_loss(full(1), [full(0.5), full(1)]).item() == pytest.approx(0.25)
    a, b = full(0.2), full(0.7)
    # converted[j][i]: modality j's image converted to i; 0 -> 1 perfect, 1 -> 0 off by 1.
    assert L.registration_loss([a, b], [[None, b], [a + 1, None]]).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="2 x 2"):
        L.registration_loss([a, b], [[None, b]])
    with pytest.raises(ValueError, match="missing"):
        L.registration_loss([a, b], [[None, None], [a, None]])
    total = L.generator_total_loss(torch.tensor(1.0), torch.tensor(2.0), torch.tensor(3.0))
    assert total.item() == 6.0
    assert L.generator_total_loss(torch.tensor(1.0), None, torch.tensor(3.0)).item() == 4.0
    # Per modality: |1 - 0|^2 = 1, plus the masked term on one pixel of four: 0.25.
    value = L.pretrain_loss([full(1), full(1)], [full(0), full(0)], [CORNER, CORNER])
    assert value.item() == pytest.approx(2 * 1.25)


def test_gradients_reach_the_generator_output() -> None:
    x = full(0.3).requires_grad_()
    L.acgan_generator_loss([x * 2], [x]).backward()
    # d/dx [mean((2x - 1)^2) + mean((x - 0)^2)] = 4(2x - 1) + 2x = -1.6 + 0.6 = -1.0 per pixel,
    # divided by the 4 pixels of the mean.
    assert torch.allclose(x.grad, torch.full_like(x, -0.25))
