"""Optional behaviour of a training run, as callbacks (no trainer subclasses).

A callback is any object with some of the hook methods of :class:`Callback`; the trainer calls
each hook on every rank, in the order the callbacks were given. The built-in ones write the
metrics log and the loss curves; the trainer adds them on rank 0 only. Raising in a hook stops
the run (the last checkpoint stays on disk, so ``resume`` continues from it).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocontour.evaluation.plots import plot_loss_curves

if TYPE_CHECKING:
    from autocontour.training.engine import Trainer

Row = dict[str, Any]
CSV_HEAD = ("epoch", "step", "train_loss", "val_loss", "val_dice_mean")
CSV_TAIL = ("lr", "seconds")


class Callback:
    """Hooks of a training run; override the ones you need (all do nothing here).

    ``trainer`` exposes ``config``, ``env`` (rank), ``state`` (epoch, step, best metric),
    ``network``, ``organs`` (the data set's), ``scored`` (the organs trained on and validated,
    ``TrainConfig.organs``) and ``out`` (the run folder).
    """

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch (after a resume: with the restored state)."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Before epoch ``epoch`` (0-based) draws its patches."""

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        """After optimiser step ``step`` (1-based, counted over the run) with its batch loss."""

    def on_epoch_end(self, trainer: Trainer, row: Row) -> None:
        """After an epoch, its validation and checkpoint; ``row`` is its metrics-log row."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last epoch (not after an error)."""


def read_rows(path: Path) -> list[Row]:
    """The rows of a ``metrics.jsonl`` (empty when absent)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MetricsLog(Callback):
    """``metrics.jsonl`` (one JSON row per epoch) and ``metrics.csv`` (the same, as a table).

    Columns: epoch (1-based, completed), step, train_loss, val_loss and val_dice_mean (blank
    without validation), ``dice_<organ>`` per organ, lr, seconds (since the run started, resumed
    runs included). A resumed run drops rows written after its checkpoint and appends.
    """

    def __init__(self, out: Path) -> None:
        self.jsonl = Path(out) / "metrics.jsonl"
        self.csv = Path(out) / "metrics.csv"

    def on_fit_start(self, trainer: Trainer) -> None:
        rows = [r for r in read_rows(self.jsonl) if r["epoch"] <= trainer.state.epoch]
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
        self._write_csv(rows, trainer)

    def on_epoch_end(self, trainer: Trainer, row: Row) -> None:
        with self.jsonl.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        self._write_csv(read_rows(self.jsonl), trainer)

    def _write_csv(self, rows: list[Row], trainer: Trainer) -> None:
        columns = [*CSV_HEAD, *(f"dice_{name}" for name in trainer.scored.names), *CSV_TAIL]
        with self.csv.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, columns, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: "" if v is None else v for k, v in row.items()})


class LossCurves(Callback):
    """``loss_curves.png`` (``evaluation.plots.plot_loss_curves``), redrawn after validation."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)

    def on_epoch_end(self, trainer: Trainer, row: Row) -> None:
        if row.get("val_dice_mean") is None:
            return
        plot_loss_curves(self.out / "metrics.jsonl", self.out / "loss_curves.png")
