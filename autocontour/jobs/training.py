"""The train job behind ``autocontour train``: one fold or every fold of a training config.

Progress is reported after every optimiser step (fraction of all steps of the folds asked for,
with the batch loss) and after every epoch (its validation Dice); a cancellation stops the run
after the step it is noticed in, and the last checkpoint stays on disk so ``resume`` continues
from it. Under ``torchrun`` every rank runs the job; :attr:`TrainResult.is_main` says which one
should report.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from autocontour.artifacts.config import TrainConfig
from autocontour.jobs.base import CancelCheck, ProgressCallback, Reporter
from autocontour.training.callbacks import Callback, Row
from autocontour.training.distributed import distributed_session, env_from_environment
from autocontour.training.engine import FitResult
from autocontour.training.kfold import run_folds

if TYPE_CHECKING:
    from autocontour.training.engine import Trainer


@dataclass(frozen=True)
class TrainRequest:
    """A training run.

    Attributes:
        config: a training config YAML file, or the config itself.
        fold: train this fold; None: the config's fold (unless ``all_folds``).
        all_folds: train every fold and write the cross-validation summary.
        resume: continue from the last checkpoints.
        device: "cpu" or "cuda" to override the config's device; None: the config's.
    """

    config: str | Path | TrainConfig
    fold: int | None = None
    all_folds: bool = False
    resume: bool = False
    device: str | None = None


@dataclass
class TrainResult:
    """fold -> how its run ended; ``is_main`` is False on the other ranks of a DDP run."""

    config: TrainConfig
    folds: dict[int, FitResult]
    is_main: bool


class _Report(Callback):
    """Turns the trainer's hooks into job progress reports and cancellation checks."""

    def __init__(self, reporter: Reporter, steps_per_fold: int, folds: int) -> None:
        self.reporter = reporter
        self.total = steps_per_fold * folds
        self.offset = 0  # steps of the folds already finished
        self.fold_steps = steps_per_fold

    def on_fit_start(self, trainer: Trainer) -> None:
        self.fold = trainer.config.fold

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        self.reporter.note(f"fold {self.fold}", f"step {step} loss {loss:.4f}",
                           (self.offset + step) / self.total)
        self.reporter.check()

    def on_epoch_end(self, trainer: Trainer, row: Row) -> None:
        dice = row.get("val_dice_mean")
        self.reporter.note(f"fold {self.fold} epoch {row['epoch']}",
                           f"mean validation Dice {dice:.4f}" if dice is not None else "",
                           (self.offset + row["step"]) / self.total)

    def on_fit_end(self, trainer: Trainer) -> None:
        self.offset += self.fold_steps


def train(request: TrainRequest, progress: ProgressCallback | None = None,
          cancel: CancelCheck | None = None) -> TrainResult:
    """Train the fold(s) the request asks for.

    Raises:
        InvalidInputError: an unreadable or invalid config, a missing data set, a fold that does
            not exist (see :class:`~autocontour.training.Trainer`).
        UnknownOptionError: an unknown option in the config (with the closest one).
        OutputExistsError: a run folder that already holds a checkpoint, without ``resume``.
        JobCancelled: ``cancel`` said stop (the last checkpoint stays; resume continues).
    """
    config = (request.config if isinstance(request.config, TrainConfig)
              else TrainConfig.from_yaml(request.config))
    if request.device:
        config = replace(config, device=request.device)
    folds: str | int = "all" if request.all_folds else (
        config.fold if request.fold is None else request.fold)
    count = config.folds if folds == "all" else 1
    reporter = Reporter([], progress, cancel, job=f"training {config.out}",
                        kept="the last checkpoint stays; resume continues from it")
    reporter.check()
    report = _Report(reporter, config.epochs * config.steps_per_epoch, count)
    with distributed_session():
        results = run_folds(config, folds, resume=request.resume, progress=False,
                            callbacks=[report])
    return TrainResult(config, results, env_from_environment().is_main)
