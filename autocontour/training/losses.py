"""Segmentation losses with one value per sample, deep supervision and recurrent passes.

Every loss here first gives a ``(B,)`` tensor, one value per sample, before any reduction: the
noisy-label training of spec C2 weights samples with a learned module (loss = sum_i Theta_i L_i),
and the plain mean of the per-sample values equals MONAI's batch-reduced loss (every sample has
the same number of voxels).

Targets are integer label maps ``(B, 1, *spatial)`` (the organ set's label values, 0 =
background); outputs are logits ``(B, C, *spatial)`` with C = the number of classes. The loss also
accepts what the networks return in training mode:

* a **stacked deep-supervision tensor** ``(B, heads, C, *spatial)`` (MONAI ``DynUNet``): head
  *i* weighs 2^-i, the weights normalised to sum 1 (nnU-Net's halving weights); a head on a
  coarser grid than the target is scored against the target down-sampled by nearest neighbour.
* a **list of recurrent passes** (the recurrent 3-D U-Net's ``forward(x, return_all=True)``,
  spec B3 "cycle"), all on the target's grid: every pass is scored and the losses are averaged
  (``cycle_reduction="mean"``) or summed.
* a **list of deep-supervision outputs** on ever coarser grids (nnU-Net's format, full
  resolution first): a list with any output off the target's grid is weighted like the stacked
  heads.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from torch import Tensor, nn

from autocontour.artifacts.config import CYCLE_REDUCTIONS, LOSSES, LossConfig, check_option
from autocontour.errors import InvalidInputError

Output = Tensor | Sequence[Tensor]


def deep_supervision_weights(heads: int) -> Tensor:
    """nnU-Net's weights of ``heads`` outputs, full resolution first: 2^-i, normalised to sum 1."""
    weights = torch.tensor([0.5**i for i in range(heads)], dtype=torch.float32)
    return weights / weights.sum()


class SegmentationLoss(nn.Module):
    """CE, BCE, Dice or Dice + CE for integer label maps, per sample.

    Args:
        name: "ce" (softmax cross-entropy), "bce" (sigmoid binary cross-entropy on every class
            of the one-hot target, seed 002), "dice" (MONAI ``DiceLoss`` with softmax and
            one-hot targets) or "dicece" (Dice + CE with weight 1 each, like MONAI
            ``DiceCELoss``).
        include_background: whether the Dice term scores class 0 (CE/BCE always score it).
        cycle_reduction: "mean" or "sum" over the passes of a recurrent network.
        reduction: "mean" (forward returns a scalar) or "none" (forward returns ``(B,)``).
        batch_dice: the Dice term of each class is computed over the whole batch (nnU-Net's
            ``batch_dice``); every sample's value then carries that one batch term, so the mean
            over samples is still the batch loss, but the values no longer separate samples.
        classes: score only these class channels in the Dice term (a network trained on a few
            organs, ``TrainConfig.organs``): the mean over 24 channels of which 22 never occur
            would shrink the few organs' Dice gradient 12-fold. Cross-entropy still sees every
            channel (it pushes the unused ones to zero). None: every class (background as
            ``include_background`` says).

    Raises:
        UnknownOptionError: an unknown name or reduction (with the closest one).
    """

    def __init__(self, name: str = "dicece", include_background: bool = False,
                 cycle_reduction: str = "mean", reduction: str = "mean",
                 batch_dice: bool = False, classes: Sequence[int] | None = None) -> None:
        super().__init__()
        self.name = check_option("loss", name, LOSSES)
        self.cycle_reduction = check_option("cycle_reduction", cycle_reduction, CYCLE_REDUCTIONS)
        self.reduction = check_option("reduction", reduction, ("mean", "none"))
        self.batch_dice = bool(batch_dice)
        self.classes = None
        if classes is not None:
            chosen = sorted({int(c) for c in classes if include_background or int(c) != 0})
            if not chosen or chosen[0] < 0:
                raise InvalidInputError(f"loss: classes must name at least one class channel "
                                        f">= {0 if include_background else 1}, got {classes}")
            self.classes = chosen
        # With a class subset, the softmax over all channels and the one-hot targets are made
        # here and MONAI's Dice sees only the chosen channels.
        subset = self.classes is not None
        self.dice = DiceLoss(include_background=include_background or subset,
                             to_onehot_y=not subset, softmax=not subset, batch=self.batch_dice,
                             reduction="none")

    @classmethod
    def from_config(cls, config: LossConfig, reduction: str = "mean",
                    classes: Sequence[int] | None = None) -> SegmentationLoss:
        return cls(config.name, config.include_background, config.cycle_reduction, reduction,
                   config.batch_dice, classes)

    def forward(self, output: Output, target: Tensor) -> Tensor:
        """The loss: a scalar (reduction "mean") or ``(B,)`` (reduction "none").

        Args:
            output: logits ``(B, C, *spatial)``, a stacked deep-supervision tensor
                ``(B, heads, C, *spatial)`` or a list of recurrent passes (module doc).
            target: integer labels ``(B, 1, *spatial)``.
        """
        per_sample = self.per_sample(output, target)
        return per_sample.mean() if self.reduction == "mean" else per_sample

    def per_sample(self, output: Output, target: Tensor) -> Tensor:
        """One loss value per sample, ``(B,)`` float32, before any reduction over the batch.

        Raises:
            InvalidInputError: shapes that do not fit together, or an empty list of passes.
        """
        if isinstance(output, Sequence):
            if len(output) == 0:
                raise InvalidInputError("the network returned no output to score")
            if any(o.shape[2:] != target.shape[2:] for o in output):
                return self._deep_supervision(list(output), target)
            losses = torch.stack([self.per_sample(o, target) for o in output])
            return losses.mean(0) if self.cycle_reduction == "mean" else losses.sum(0)
        if output.ndim == target.ndim + 1:
            return self._deep_supervision(list(output.unbind(1)), target)
        return self._single(output, target)

    def _deep_supervision(self, heads: list[Tensor], target: Tensor) -> Tensor:
        """Halving-weighted sum over heads (full resolution first), labels resized to each."""
        weights = deep_supervision_weights(len(heads)).to(heads[0].device)
        return sum(w * self._single(h, _resize(target, h.shape[2:]))
                   for w, h in zip(weights, heads, strict=True))

    def _single(self, logits: Tensor, target: Tensor) -> Tensor:
        """(B,) loss of logits (B, C, *spatial) against labels (B, 1, *spatial)."""
        if (logits.ndim != target.ndim or target.shape[1] != 1
                or logits.shape[0] != target.shape[0] or logits.shape[2:] != target.shape[2:]):
            raise InvalidInputError(f"loss: logits {tuple(logits.shape)} do not fit labels "
                                    f"{tuple(target.shape)} (expected (B, C, *S) and (B, 1, *S))")
        logits = logits.float()
        labels = target.long()
        if int(labels.max()) >= logits.shape[1]:
            raise InvalidInputError(f"loss: label value {int(labels.max())} needs more than the "
                                    f"network's {logits.shape[1]} output classes")
        if self.name == "bce":
            onehot = F.one_hot(labels[:, 0], logits.shape[1]).movedim(-1, 1).float()
            return _mean_per_sample(F.binary_cross_entropy_with_logits(logits, onehot,
                                                                       reduction="none"))
        loss = torch.zeros(logits.shape[0], device=logits.device)
        if self.name in ("ce", "dicece"):
            loss = loss + _mean_per_sample(F.cross_entropy(logits, labels[:, 0], reduction="none"))
        if self.name in ("dice", "dicece"):
            dice = self._dice(logits, labels)
            if self.batch_dice:  # one value per class for the whole batch, shared by its samples
                loss = loss + dice.mean()
            else:
                loss = loss + _mean_per_sample(dice)
        return loss

    def _dice(self, logits: Tensor, labels: Tensor) -> Tensor:
        """MONAI's Dice loss per (sample or batch, class): every class, or just ``classes``."""
        if self.classes is None:
            return self.dice(logits, labels)
        if self.classes[-1] >= logits.shape[1]:
            raise InvalidInputError(f"loss: class {self.classes[-1]} needs more than the "
                                    f"network's {logits.shape[1]} output classes")
        picked = torch.tensor(self.classes, device=logits.device)
        probs = torch.softmax(logits, 1).index_select(1, picked)
        onehot = (labels == picked.view(1, -1, *([1] * (labels.ndim - 2)))).float()
        return self.dice(probs, onehot)


def _mean_per_sample(values: Tensor) -> Tensor:
    return values.flatten(1).mean(1)


def _resize(target: Tensor, size: torch.Size) -> Tensor:
    """Labels (B, 1, *S) on another grid ``size`` by nearest neighbour (unchanged if equal)."""
    if target.shape[2:] == size:
        return target
    return F.interpolate(target.float(), size=tuple(size), mode="nearest").to(target.dtype)
