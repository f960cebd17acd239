"""Per-sample losses, their mean against MONAI's reduced losses, deep supervision, cycles."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceLoss

from autocontour.errors import InvalidInputError, UnknownOptionError
from autocontour.training import SegmentationLoss, deep_supervision_weights

CLASSES = 4


def batch(spatial: tuple[int, ...] = (4, 8, 8), b: int = 3, seed: int = 0
          ) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn((b, CLASSES, *spatial), generator=g)
    target = torch.randint(0, CLASSES, (b, 1, *spatial), generator=g)
    return logits, target


@pytest.mark.parametrize("name", ["ce", "bce", "dice", "dicece"])
@pytest.mark.parametrize("spatial", [(4, 8, 8), (8, 8)])
def test_per_sample_shape_and_mean(name: str, spatial: tuple[int, ...]) -> None:
    logits, target = batch(spatial)
    per_sample = SegmentationLoss(name, reduction="none")(logits, target)
    assert per_sample.shape == (3,)
    assert torch.allclose(per_sample.mean(), SegmentationLoss(name)(logits, target))
    # Each value is the loss of that sample alone.
    single = SegmentationLoss(name).per_sample(logits[1:2], target[1:2])
    assert torch.allclose(per_sample[1], single[0])


def test_mean_equals_monai_reduced_losses() -> None:
    logits, target = batch()
    kw = {"to_onehot_y": True, "softmax": True, "include_background": False}
    assert torch.allclose(SegmentationLoss("dicece")(logits, target),
                          DiceCELoss(**kw)(logits, target), atol=1e-6)
    assert torch.allclose(SegmentationLoss("dice")(logits, target),
                          DiceLoss(**kw)(logits, target), atol=1e-6)
    with_bg = SegmentationLoss("dice", include_background=True)(logits, target)
    assert torch.allclose(with_bg, DiceLoss(**{**kw, "include_background": True})(logits, target))
    assert torch.allclose(SegmentationLoss("ce")(logits, target),
                          F.cross_entropy(logits, target[:, 0]))
    onehot = F.one_hot(target[:, 0], CLASSES).movedim(-1, 1).float()
    assert torch.allclose(SegmentationLoss("bce")(logits, target),
                          F.binary_cross_entropy_with_logits(logits, onehot))


def test_batch_dice_equals_monai_batch_loss_and_is_shared_by_samples() -> None:
    logits, target = batch()
    loss = SegmentationLoss("dicece", batch_dice=True, reduction="none")
    per_sample = loss(logits, target)
    dice = DiceLoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
    ce = F.cross_entropy(logits, target[:, 0], reduction="none").flatten(1).mean(1)
    assert torch.allclose(per_sample, ce + dice(logits, target), atol=1e-6)
    assert torch.allclose(per_sample.mean(), DiceCELoss(
        to_onehot_y=True, softmax=True, include_background=False, batch=True)(logits, target),
        atol=1e-6)


def test_batch_dice_weighs_an_organ_seen_in_one_sample_fully() -> None:
    """Class 3 lies in sample 0 only, and the network has learnt to suppress it (the state in
    which small organs get stuck): per-sample Dice dilutes its pull by the batch size."""
    logits = torch.zeros((4, CLASSES, 8, 8))
    logits[:, 0], logits[:, 3] = 2.0, -4.0
    logits.requires_grad_(True)
    target = torch.zeros((4, 1, 8, 8), dtype=torch.long)
    target[0, 0, 2:4, 2:4] = 3
    target[:, 0, 5:, 5:] = 1  # a big organ in every sample

    def grad_on_small(batch_dice: bool) -> float:
        logits.grad = None
        SegmentationLoss("dice", batch_dice=batch_dice)(logits, target).backward()
        return float(-logits.grad[0, 3, 2:4, 2:4].sum())

    assert grad_on_small(True) > 3 * grad_on_small(False) > 0


def test_deep_supervision_halving_weights() -> None:
    assert torch.allclose(deep_supervision_weights(3), torch.tensor([4, 2, 1]) / 7)
    loss = SegmentationLoss("dicece")
    logits, target = batch()
    heads = torch.stack([logits, logits * 0.5, logits.flip(-1)], dim=1)  # (B, 3, C, z, y, x)
    expected = sum(w * loss.per_sample(h, target)
                   for w, h in zip(deep_supervision_weights(3), heads.unbind(1), strict=True))
    assert torch.allclose(loss.per_sample(heads, target), expected)


def test_coarse_heads_are_scored_against_nearest_downsampled_labels() -> None:
    loss = SegmentationLoss("ce")
    logits, target = batch((4, 8, 8))
    coarse = logits[:, :, ::2, ::2, ::2]
    small = F.interpolate(target.float(), size=(2, 4, 4), mode="nearest").long()
    expected = (2 / 3) * loss.per_sample(logits, target) + (1 / 3) * loss.per_sample(coarse, small)
    assert torch.allclose(loss.per_sample([logits, coarse], target), expected)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_recurrent_passes(reduction: str) -> None:
    loss = SegmentationLoss("dice", cycle_reduction=reduction)
    logits, target = batch()
    passes = [logits, logits * 2.0, logits - 1.0]
    each = torch.stack([loss.per_sample(p, target) for p in passes])
    expected = each.mean(0) if reduction == "mean" else each.sum(0)
    assert torch.allclose(loss.per_sample(passes, target), expected)


def test_weighted_sum_trains_weights_and_logits() -> None:
    """Spec C2: loss = sum_i Theta_i L_i reaches the logits and the weights in one backward."""
    logits, target = batch()
    logits.requires_grad_(True)
    scores = torch.zeros(3, requires_grad=True)
    per_sample = SegmentationLoss("dicece").per_sample(logits, target)
    (torch.softmax(scores, 0) * per_sample).sum().backward()
    assert logits.grad is not None and scores.grad is not None
    assert scores.grad.abs().sum() > 0


@pytest.mark.parametrize(("output", "target", "match"), [
    (torch.zeros(2, 4, 8, 8), torch.zeros(2, 1, 4, 4, dtype=torch.long), "do not fit labels"),
    (torch.zeros(2, 4, 8, 8), torch.zeros(3, 1, 8, 8, dtype=torch.long), "do not fit labels"),
    (torch.zeros(2, 4, 8, 8), torch.full((2, 1, 8, 8), 4), "label value 4 needs more"),
    ([], torch.zeros(2, 1, 8, 8, dtype=torch.long), "no output"),
])
def test_bad_shapes(output: object, target: torch.Tensor, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        SegmentationLoss("dicece").per_sample(output, target)


def test_unknown_loss_name() -> None:
    with pytest.raises(UnknownOptionError, match="did you mean 'dice'"):
        SegmentationLoss("dics")


def test_class_subset_dice_scores_only_those_channels() -> None:
    """``classes``: Dice over the chosen channels alone (softmax still over all), CE unchanged."""
    logits, target = batch()
    for batch_dice in (False, True):
        loss = SegmentationLoss("dicece", batch_dice=batch_dice, classes=[3, 1],
                                reduction="none")
        probs = torch.softmax(logits, 1)[:, [1, 3]]
        onehot = F.one_hot(target[:, 0], CLASSES).movedim(-1, 1).float()[:, [1, 3]]
        dice = DiceLoss(include_background=True, batch=batch_dice, reduction="none")(
            probs, onehot)
        ce = F.cross_entropy(logits, target[:, 0], reduction="none").flatten(1).mean(1)
        expected = ce + (dice.mean() if batch_dice else dice.flatten(1).mean(1))
        assert torch.allclose(loss(logits, target), expected, atol=1e-6)
    # Every foreground channel named: the same as the plain loss.
    assert torch.allclose(SegmentationLoss("dice", classes=[1, 2, 3])(logits, target),
                          SegmentationLoss("dice")(logits, target), atol=1e-6)


def test_class_subset_keeps_the_small_organ_gradient() -> None:
    """An organ scored among 3 of 24 never-present channels pulls much harder than among all."""
    classes = 25
    logits = torch.zeros((2, classes, 8, 8))
    logits[:, 0] = 3.0
    logits.requires_grad_(True)
    target = torch.zeros((2, 1, 8, 8), dtype=torch.long)
    target[:, 0, 3:5, 3:5] = 8

    def pull(loss: SegmentationLoss) -> float:
        logits.grad = None
        loss(logits, target).backward()
        return float(-logits.grad[:, 8, 3:5, 3:5].sum())

    assert pull(SegmentationLoss("dice", batch_dice=True, classes=[8, 11])) > 5 * pull(
        SegmentationLoss("dice", batch_dice=True)) > 0


def test_bad_class_subset() -> None:
    logits, target = batch()
    with pytest.raises(InvalidInputError, match="at least one class"):
        SegmentationLoss("dice", classes=[0])
    with pytest.raises(InvalidInputError, match="class 7 needs more than the network's 4"):
        SegmentationLoss("dice", classes=[1, 7])(logits, target)
