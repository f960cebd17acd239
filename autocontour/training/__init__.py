"""Training: config, losses, the training loop, checkpoints, k-fold and DDP (spec B5, B6, B8).

* :class:`TrainConfig`: the frozen, validated run configuration (YAML in, saved in checkpoints).
* :class:`Trainer`: ``Trainer(config, callbacks, extra_modules, sample_weighting).fit(resume)``.
* :class:`SegmentationLoss`: CE/BCE/Dice/DiceCE per sample, deep supervision, recurrent passes.
* :class:`QualityAwareness`: the QAM + OCM of seed 002 (spec C2, C3), learned per-sample loss
  weights; ``TrainConfig.sample_weighting`` switches it on (:mod:`autocontour.training.qam`).
* :func:`run_folds`: k-fold cross-validation with a per-fold and mean ± sd summary.
* :func:`load_checkpoint`: a run's checkpoint, checked (the format is
  :mod:`autocontour.artifacts.files`; a network to predict with: ``load_trained_network``).
"""

from autocontour.artifacts.config import (
    LossConfig,
    NetworkConfig,
    PlateauConfig,
    SampleWeightingConfig,
    SamplingConfig,
    TrainConfig,
)
from autocontour.training.callbacks import Callback
from autocontour.training.checkpoint import load_checkpoint
from autocontour.training.engine import FitResult, SampleWeighting, TrainableModule, Trainer
from autocontour.training.kfold import run_folds
from autocontour.training.losses import SegmentationLoss, deep_supervision_weights
from autocontour.training.qam import QualityAwareness

__all__ = [
    "Callback",
    "FitResult",
    "LossConfig",
    "NetworkConfig",
    "PlateauConfig",
    "QualityAwareness",
    "SampleWeighting",
    "SampleWeightingConfig",
    "SamplingConfig",
    "SegmentationLoss",
    "TrainConfig",
    "TrainableModule",
    "Trainer",
    "deep_supervision_weights",
    "load_checkpoint",
    "run_folds",
]
