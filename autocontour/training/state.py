"""The state of a run between epochs, and its round trip through a checkpoint.

Exact resume: a checkpoint is written at the end of every epoch, after validation and the
scheduler step, with everything the next epoch depends on — weights, every optimiser's moments,
the scheduler and grad-scaler state, the epoch and step counters, the best metric, and every
rank's python/numpy/torch/CUDA generator states. Patches need no saved state: item ``i`` of epoch
``e`` is drawn from ``(seed + rank, e, i)`` (``PatchDataset``), augmentation is re-seeded per
item, and the DataLoader gets its own generator seeded per epoch. Restoring all of it before the
next epoch makes the resumed run repeat the uninterrupted one step for step (on the same
hardware and number of processes; with another number of processes the generators are seeded
afresh and the run continues, no longer bit-identical).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocontour.artifacts.files import generators_payload
from autocontour.errors import InvalidInputError
from autocontour.models.registry import network_spec
from autocontour.training import distributed as ddp
from autocontour.training.checkpoint import load_checkpoint, rng_state, set_rng_state

if TYPE_CHECKING:
    from autocontour.training.engine import Trainer

#: Options a resumed run may change: where things are, how long, on what hardware.
#: (``pseudo_mri``, the generator's file, may move: the recipe, which records the generator's
#: SHA-256, must be the checkpoint's.)
RESUMABLE_CHANGES = ("dataset", "out", "epochs", "device", "num_workers", "pseudo_mri")


@dataclass
class TrainState:
    """Counters of a run: completed epochs and steps, the best mean validation Dice so far."""

    epoch: int = 0
    step: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    best_row: dict[str, Any] | None = None
    seconds: float = 0.0
    stopped: str | None = None


def checkpoint_payload(trainer: Trainer) -> dict[str, Any]:
    """Everything :func:`~autocontour.training.checkpoint.save_checkpoint` stores for a run.

    Gathers every rank's random states, so under DDP every rank must call it.
    """
    state, cfg = trainer.state, trainer.config
    return {
        "network": network_spec(trainer.network),
        "state_dict": trainer.network.state_dict(),
        "extra_modules": {n: e.module.state_dict() for n, e in trainer.extra.items()},
        "optimizers": {n: opt.state_dict() for n, opt in trainer.optimizers.items()},
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "epoch": state.epoch, "step": state.step, "seconds": state.seconds,
        "stopped": state.stopped,
        "rng": ddp.gather(rng_state(), trainer.env),
        "sampler": {"seed": trainer.dataset.seed, "epoch": state.epoch},
        "config": cfg.to_dict(),
        "recipe": trainer.data.recipe.to_dict(),
        "organs": trainer.organs.to_dict(),
        "fold": cfg.fold,
        "best_metric": state.best_metric, "best_epoch": state.best_epoch,
        "best_row": state.best_row,
        **({"generators": payload} if (payload := generators_payload(trainer.data.recipe))
           else {}),
    }


def restore(trainer: Trainer, path: Path) -> TrainState:
    """Load ``path`` into the trainer's network, optimisers, scheduler, scaler and generators.

    Raises:
        InvalidInputError: an unreadable checkpoint, one from another config (other than
            :data:`RESUMABLE_CHANGES`), or weights/optimisers that do not fit.
    """
    data = load_checkpoint(path, map_location=trainer.device)
    saved, current = data["config"], trainer.config.to_dict()
    changed = sorted(k for k in set(saved) | set(current)
                     if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k))
    if changed:
        raise InvalidInputError(f"{path}: cannot resume with a changed config "
                                f"({', '.join(changed)} differ); only "
                                + ", ".join(RESUMABLE_CHANGES) + " may change")
    if data["recipe"] != trainer.data.recipe.to_dict():
        raise InvalidInputError(f"{path}: cannot resume: the checkpoint's preprocessing recipe "
                                f"{data['recipe'].get('name')!r} differs from this run's "
                                f"{trainer.data.recipe.name!r} (another pseudo-MRI generator?)")
    missing = sorted(set(trainer.optimizers) - set(data["optimizers"]))
    if missing:
        raise InvalidInputError(f"{path}: no saved state for the modules {missing}")
    try:
        trainer.network.load_state_dict(data["state_dict"])
        for name, extra in trainer.extra.items():
            extra.module.load_state_dict(data["extra_modules"][name])
        for name, opt in trainer.optimizers.items():
            opt.load_state_dict(data["optimizers"][name])
        trainer.scheduler.load_state_dict(data["scheduler"])
        trainer.scaler.load_state_dict(data["scaler"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise InvalidInputError(f"{path}: the checkpoint does not fit this run ({exc})") from None
    rank = trainer.env.rank
    if len(data["rng"]) == trainer.env.world_size:
        set_rng_state(data["rng"][rank])
    stopped = data.get("stopped")
    if stopped == "epochs" and data["epoch"] < trainer.config.epochs:
        stopped = None  # more epochs asked for
    return TrainState(data["epoch"], data["step"], data["best_metric"], data["best_epoch"],
                      data.get("best_row"), float(data.get("seconds", 0.0)), stopped)
