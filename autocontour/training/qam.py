"""Training on inconsistent contours: the Quality Awareness and Overfitting Control Modules.

Seed 002 chapter 3 (spec C2, C3; published as "Pick-and-Learn", MICCAI 2019). Alongside the
segmenter, a small network Φ (:class:`~autocontour.models.qam.QualityNet`) reads each sample's
image concatenated with its one-hot label and gives it an absolute score s_i; a softmax over the
batch turns the scores into weights Θ_i (Θ_i ≥ 0, Σ Θ_i = 1), and the training loss becomes
Σ Θ_i · L_i with L_i the sample's segmentation loss. One backward pass of that loss trains both
networks: the segmenter learns most from the samples with high weight, and Φ, with its own Adam
[lr 1e-4], learns which samples to weigh. Φ serves only in training: it is saved in the run's
checkpoints (so a run resumes exactly) and never in an exported model.

**What Φ learns, and why the OCM.** This is a joint *minimisation*, as in the seed: the
gradient of the loss with respect to a score is dLoss/ds_i = Θ_i · (L_i − Σ_j Θ_j L_j), so Φ
raises the scores of samples whose loss is below the batch's weighted mean and lowers the
others. A sample whose contour disagrees with what the segmenter learns from the rest (a dilated,
eroded or shifted contour) keeps a high loss, so Φ learns to give it less weight, from the
image and label alone. Unbounded, the same gradient has a degenerate end: all the weight on the
easiest sample of each batch (the seed saw QAM alone overfit badly at high noise). The OCM,
Γ(t) = λ·tanh(t) between Φ and the softmax [λ = 2], bounds every score to (−λ, λ), so any two
weights of a batch differ by less than a factor e^(2λ) (≈ 55 at λ = 2): the easiest sample
can get at most e^(2λ) / (e^(2λ) + B − 1) of the batch, and no sample is ever silenced. Without
the OCM (``ocm: false``) the ratio is unbounded (the seed's "QAM" rows of table 3.1).

**Early lock-in.** Φ judges the samples by how the *current* segmenter does on them. At the start
the segmenter knows nothing, and the samples that are easy then are not always the clean ones
(on a small disk task, contours dilated by 5-13 px had a lower Dice + CE loss than clean ones in
the first steps). If Φ settles on them before the segmenter has learnt what most contours agree
on, the segmenter learns from those samples, their loss falls, and the choice holds: the OCM
bounds the weights, but its tanh is flat at the bound, so it does not undo the choice. Seen in
1 of 16 seeds of that task with Φ's learning rate a third of the segmenter's, in none of 16 with a
tenth (the source's Φ learns at 1e-4); 20 steps of equal weights first only moved the failure to
another seed. Keep Φ's learning rate well below the segmenter's.

**Batches.** The softmax runs over the batch one process draws in one step: ``batch_size``
patches, each from a case drawn at random (``PatchDataset``), so a batch mixes cases in 3-D as
in 2-D (seed 002 could not use the QAM on its 3-D model, which trained at batch 1; here
``batch_size`` must be at least 2). Under DDP each rank weighs its own local batch (no gather
across ranks; the weights of a rank sum to 1, and DDP averages the ranks' gradients as usual);
Φ's gradients are averaged over the ranks like the segmenter's.

**Input.** Image channels + one channel per class of the segmenter's output (background
included: seed 002's n + 1 for a one-channel image), at the patch's grid; the labels are those
the loss sees (with ``TrainConfig.organs`` the other organs are already background).

Config (``TrainConfig.sample_weighting``)::

    sample_weighting: {name: qam, lr: 1.0e-4, ocm: true, ocm_lambda: 2.0,
                       channels: [8, 16, 32, 32]}
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autocontour.artifacts.config import SampleWeightingConfig
from autocontour.errors import InvalidInputError
from autocontour.models.qam import QualityNet


class QualityAwareness(nn.Module):
    """The QAM (with the OCM when ``ocm_lambda`` is set): per-sample loss weights of a batch.

    A :class:`~autocontour.training.engine.SampleWeighting` and the module to train jointly
    (``TrainableModule(qam, lr)``); ``Trainer(config)`` builds one from
    ``config.sample_weighting`` by itself.

    Args:
        phi: the scoring network; its ``in_channels`` must be image channels + ``classes``.
        classes: label classes of the one-hot input (background included).
        ocm_lambda: λ of the OCM; None for the QAM alone (unbounded scores).

    Raises:
        InvalidInputError: ``classes`` below 2 or ``ocm_lambda`` not positive.
    """

    def __init__(self, phi: nn.Module, classes: int, ocm_lambda: float | None = 2.0) -> None:
        super().__init__()
        if classes < 2:
            raise InvalidInputError(f"QAM: a label needs at least 2 classes (background and "
                                    f"one structure), got {classes}")
        if ocm_lambda is not None and not (math.isfinite(ocm_lambda) and ocm_lambda > 0):
            raise InvalidInputError(f"QAM: ocm_lambda must be a positive number, got "
                                    f"{ocm_lambda!r}")
        self.phi = phi
        self.classes = int(classes)
        self.ocm_lambda = None if ocm_lambda is None else float(ocm_lambda)

    @classmethod
    def from_config(cls, config: SampleWeightingConfig, spatial_dims: int, image_channels: int,
                    classes: int) -> QualityAwareness:
        """The configured QAM for a segmenter of ``spatial_dims`` with ``classes`` outputs."""
        phi = QualityNet(spatial_dims, image_channels + classes, config.channels)
        return cls(phi, classes, config.ocm_lambda if config.ocm else None)

    def max_weight_ratio(self) -> float:
        """The bound on the ratio of two weights of a batch: e^(2λ) (inf without the OCM)."""
        return math.inf if self.ocm_lambda is None else math.exp(2.0 * self.ocm_lambda)

    def scores(self, image: Tensor, label: Tensor) -> Tensor:
        """Φ's absolute scores ``(B,)`` (float32) of images ``(B, C, *S)``, labels ``(B, 1, *S)``.

        Raises:
            InvalidInputError: shapes that do not fit, or a label value of ``classes`` or more.
        """
        if (label.ndim != image.ndim or label.shape[1] != 1 or label.shape[0] != image.shape[0]
                or label.shape[2:] != image.shape[2:]):
            raise InvalidInputError(f"QAM: labels {tuple(label.shape)} do not fit images "
                                    f"{tuple(image.shape)} (expected (B, 1, *S) and (B, C, *S))")
        labels = label[:, 0].long()
        if labels.numel() and int(labels.max()) >= self.classes:
            raise InvalidInputError(f"QAM: label value {int(labels.max())} needs more than its "
                                    f"{self.classes} classes")
        onehot = F.one_hot(labels, self.classes).movedim(-1, 1).to(image.dtype)
        return self.phi(torch.cat([image, onehot], 1)).float()

    def bound(self, scores: Tensor) -> Tensor:
        """The OCM: Γ(t) = λ·tanh(t) (the scores unchanged without it)."""
        return scores if self.ocm_lambda is None else self.ocm_lambda * torch.tanh(scores)

    def forward(self, image: Tensor, label: Tensor) -> Tensor:
        """Weights Θ ``(B,)``: softmax over the batch of the (bounded) scores; they sum to 1."""
        return torch.softmax(self.bound(self.scores(image, label)), 0)

    def weights(self, batch: dict, per_sample_loss: Tensor) -> Tensor:
        """The batch's weights ``(B,)`` for the engine (``SampleWeighting``)."""
        theta = self(batch["image"], batch["label"])
        if theta.shape != per_sample_loss.shape:
            raise InvalidInputError(f"QAM: {tuple(theta.shape)} weights for "
                                    f"{tuple(per_sample_loss.shape)} per-sample losses")
        return theta.to(per_sample_loss.dtype)
