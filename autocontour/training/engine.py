"""The training loop (spec B5, B8): one explicit loop, optional behaviour as callbacks.

``Trainer(config).fit()`` trains one fold: Adam on random patches (``PatchDataset``, augmented),
the loss of :mod:`~autocontour.training.losses`, validation of whole cases by sliding windows
every ``val_every`` epochs, ReduceLROnPlateau on the mean validation Dice, a stop once the
learning rate falls below ``min_lr``, AMP on CUDA, DDP under ``torchrun``. The run folder gets
``config.yaml``, ``last.pt`` (every epoch), ``best.pt`` (best mean validation Dice),
``metrics.jsonl``/``metrics.csv``, ``loss_curves.png`` and ``result.json``.

Learned per-sample loss weights (spec C2, C3): ``config.sample_weighting`` makes the trainer
build the QAM (with the OCM) of :mod:`~autocontour.training.qam` itself, as the extra module
"qam" with its own learning rate, so ``autocontour train CONFIG.yaml`` uses it with no code.
Whenever samples are weighed, the weights are logged by case
(:mod:`~autocontour.training.sample_weights`): ``sample_weights.jsonl`` per epoch, and the
lowest-weighted cases as ``distrusted_cases`` in ``result.json``.

Jointly trained modules (the hook of spec C2, the QAM): pass ``extra_modules={name:
TrainableModule(module, lr)}``, each with its own Adam, stepped after the same backward pass as
the network and saved in the checkpoints, and a ``sample_weighting`` object with
``weights(batch, per_sample_loss) -> (B,)``; the loss is then ``sum_i w_i L_i`` instead of the
mean, so gradients reach both the network and the module that computed the weights.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from autocontour.artifacts.config import TrainConfig
from autocontour.data.augment import build_augmentation
from autocontour.data.folder import write_json
from autocontour.data.patches import PatchDataset
from autocontour.errors import InvalidInputError, OutputExistsError
from autocontour.models.inferer import spatial_dims
from autocontour.training import distributed as ddp
from autocontour.training.callbacks import Callback, LossCurves, MetricsLog, Row
from autocontour.training.checkpoint import save_checkpoint
from autocontour.training.data import prepare_data
from autocontour.training.losses import SegmentationLoss
from autocontour.training.network import build_training_network, network_kwargs
from autocontour.training.qam import QualityAwareness
from autocontour.training.sample_weights import SampleWeightLog
from autocontour.training.state import TrainState, checkpoint_payload, restore
from autocontour.training.validation import score_cases, summarise


class SampleWeighting(Protocol):
    """Per-sample loss weights, e.g. the QAM's softmax over the batch (spec C2)."""

    def weights(self, batch: dict[str, Any], per_sample_loss: Tensor) -> Tensor:
        """``(B,)`` weights (on the loss's device) of the batch's per-sample losses ``(B,)``."""


@dataclass(frozen=True)
class TrainableModule:
    """A module trained alongside the network, with its own Adam optimiser."""

    module: nn.Module
    lr: float = 1e-4
    weight_decay: float = 0.0


@dataclass(frozen=True)
class FitResult:
    """How a run ended: ``stopped`` is "epochs" or "min_lr"; ``best_row`` its best metrics."""

    out: Path
    epochs: int
    steps: int
    stopped: str
    best_metric: float | None
    best_epoch: int | None
    best_row: Row | None


class Trainer:
    """Trains one network on one fold of a data set, as ``config`` says.

    Args:
        config: the run.
        callbacks: extra hooks (:class:`~autocontour.training.callbacks.Callback`), run on every
            rank after the built-in metrics log and loss curves (rank 0 only).
        extra_modules: modules trained jointly with the network (module doc).
        sample_weighting: per-sample loss weights (module doc); None for the plain mean, or
            the QAM ``config.sample_weighting`` asks for (built with the data, as the extra
            module "qam").
        progress: show a progress bar (rank 0).

    Raises:
        InvalidInputError: a weighting object with ``loss.batch_dice``, or one given besides
            ``config.sample_weighting``.
    """

    #: The extra module name of the QAM built from ``config.sample_weighting``.
    QAM = "qam"

    def __init__(self, config: TrainConfig, callbacks: Sequence[Callback] = (),
                 extra_modules: Mapping[str, TrainableModule] | None = None,
                 sample_weighting: SampleWeighting | None = None, progress: bool = True) -> None:
        if sample_weighting is not None and config.loss.batch_dice:
            raise InvalidInputError("loss.batch_dice scores the batch as a whole, so per-sample "
                                    "loss weighting (QAM) has nothing to weigh; turn one off")
        if config.sample_weighting is not None and sample_weighting is not None:
            raise InvalidInputError("the config's sample_weighting and a sample_weighting "
                                    "object were both given; use one")
        if config.sample_weighting is not None and self.QAM in (extra_modules or {}):
            raise InvalidInputError(f"extra module name {self.QAM!r} is taken by the config's "
                                    "sample_weighting; choose another")
        self.config = config
        self.out = Path(config.out)
        self.user_callbacks = list(callbacks)
        self.extra = dict(extra_modules or {})
        self.sample_weighting = sample_weighting
        self.weight_log: SampleWeightLog | None = None
        self.progress = progress
        self.state = TrainState()

    def fit(self, resume: bool = False) -> FitResult:
        """Train until ``epochs`` or until the learning rate falls below ``min_lr``.

        Args:
            resume: continue from ``out/last.pt`` exactly where it stopped (same weights,
                optimiser, scheduler, random states and patches as an uninterrupted run);
                without a checkpoint the run starts afresh.

        Raises:
            OutputExistsError: ``out`` holds a checkpoint and ``resume`` is False.
            InvalidInputError: bad data set, recipe, splits, network or checkpoint (naming it).
        """
        self._setup(resume)
        return self._loop()

    def _setup(self, resume: bool) -> None:
        """Data, network, optimisers, scheduler, scaler; the checkpoint's state on resume."""
        cfg = self.config
        self.state = TrainState()
        self.device = ddp.resolve_device(cfg.device, ddp.env_from_environment())
        self.env = env = ddp.init_distributed(self.device)
        last = self.out / "last.pt"
        if last.exists() and not resume:
            raise OutputExistsError(f"{last}: the run folder holds a checkpoint; resume it "
                                    "(--resume) or choose another 'out'")
        self.data = prepare_data(cfg, env, self.progress, self.device)
        self.organs = self.data.organs
        self.scored, self.keep_labels = self.data.scored, None
        if cfg.organs is not None:
            self.keep_labels = torch.tensor(self.scored.keep_lookup(), dtype=torch.uint8,
                                            device=self.device)
        torch.manual_seed(cfg.seed)
        self.network = build_training_network(cfg, self.data).to(self.device)
        if cfg.sample_weighting is not None:
            kwargs = network_kwargs(cfg, self.data)
            qam = QualityAwareness.from_config(cfg.sample_weighting, spatial_dims(self.network),
                                               kwargs["in_channels"], kwargs["out_channels"])
            self.extra[self.QAM] = TrainableModule(qam, cfg.sample_weighting.lr)
            self.sample_weighting = qam
        self.optimizers = {"network": self._adam(self.network, cfg.lr, cfg.weight_decay)}
        for name, extra in self.extra.items():
            extra.module.to(self.device)
            self.optimizers[name] = self._adam(extra.module, extra.lr, extra.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizers["network"], mode="max", factor=cfg.plateau.factor,
            patience=cfg.plateau.patience, min_lr=0.0)
        self.amp = cfg.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        _seed_all(cfg.seed + env.rank)
        if resume and last.exists():
            self.state = restore(self, last)
        if env.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            cfg.to_yaml(self.out / "config.yaml")
        if self.sample_weighting is not None:
            self.weight_log = SampleWeightLog(self.out)
            self.weight_log.start(self.state.epoch, env.is_main)
        self.callbacks = ([MetricsLog(self.out), LossCurves(self.out)] if env.is_main
                          else []) + self.user_callbacks

    def _loop(self) -> FitResult:
        cfg, env, state, data = self.config, self.env, self.state, self.data
        self.train_net = ddp.wrap(self.network, env, self.device)
        self.loss_fn = SegmentationLoss.from_config(
            cfg.loss, reduction="none",
            classes=None if cfg.organs is None else self.scored.labels)
        self._return_all = "return_all" in inspect.signature(self.network.forward).parameters
        transform = None if cfg.augmentation is None else build_augmentation(
            cfg.augmentation, self.organs, spatial_dims(self.network),
            seed=cfg.seed + env.rank)
        self.dataset = PatchDataset(
            data.cache, data.train_ids, cfg.patch_size, cfg.steps_per_epoch * cfg.batch_size,
            cfg.sampling.foreground_fraction, cfg.sampling.organ_sampling, transform,
            seed=cfg.seed + env.rank)
        for cb in self.callbacks:
            cb.on_fit_start(self)
        while state.stopped is None and state.epoch < cfg.epochs:
            row = self._epoch(state.epoch)
            state.epoch += 1
            if self.optimizers["network"].param_groups[0]["lr"] < cfg.min_lr:
                state.stopped = "min_lr"
            elif state.epoch >= cfg.epochs:
                state.stopped = "epochs"
            self._save(row)
            for cb in self.callbacks:
                cb.on_epoch_end(self, row)
        result = FitResult(self.out, state.epoch, state.step, state.stopped or "epochs",
                           state.best_metric, state.best_epoch, state.best_row)
        if env.is_main:
            summary = {
                "epochs": result.epochs, "steps": result.steps, "stopped": result.stopped,
                "best_metric": result.best_metric, "best_epoch": result.best_epoch,
                "best_row": result.best_row, "fold": cfg.fold}
            if self.weight_log is not None:
                summary["distrusted_cases"] = self.weight_log.distrusted()
            write_json(self.out / "result.json", summary)
        for cb in self.callbacks:
            cb.on_fit_end(self)
        return result

    def _epoch(self, epoch: int) -> Row:
        """Train one epoch, validate when due; returns the metrics row."""
        cfg, env, state = self.config, self.env, self.state
        for cb in self.callbacks:
            cb.on_epoch_start(self, epoch)
        self.dataset.set_epoch(epoch)
        loader = DataLoader(self.dataset, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                            pin_memory=self.device.type == "cuda",
                            generator=torch.Generator().manual_seed(cfg.seed + epoch))
        self.train_net.train()
        for extra in self.extra.values():
            extra.module.train()
        started, losses = time.perf_counter(), []
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", leave=False,
                   disable=not (self.progress and env.is_main))
        for i, batch in enumerate(bar):
            losses.append(self._step(batch))
            state.step += 1
            rate = (i + 1) * cfg.batch_size * env.world_size / (time.perf_counter() - started)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", samples_s=f"{rate:.1f}")
            for cb in self.callbacks:
                cb.on_step_end(self, state.step, losses[-1])
        row: Row = {"epoch": epoch + 1, "step": state.step,
                    "train_loss": ddp.mean_over_ranks(float(np.mean(losses)), env, self.device)}
        if self.weight_log is not None:
            self.weight_log.end_epoch(epoch + 1, env)
        if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
            ddp.broadcast_buffers(self.network, env)
            mine = score_cases(self.network, self.data.cache,
                               self.data.val_ids[env.rank::env.world_size], cfg.patch_size,
                               self.scored, self.loss_fn, self.device, self.amp)
            metrics = summarise([s for part in ddp.gather(mine, env) for s in part], self.scored)
            dice = metrics["val_dice_mean"]
            self.scheduler.step(0.0 if dice is None else dice)
            if dice is not None and (state.best_metric is None or dice > state.best_metric):
                state.best_metric, state.best_epoch = dice, epoch + 1
                state.best_row = {**row, **metrics}
            row.update(metrics)
        else:
            row.update({"val_loss": None, "val_dice_mean": None,
                        **{f"dice_{n}": None for n in self.scored.names}})
        state.seconds += time.perf_counter() - started
        row.update(lr=self.optimizers["network"].param_groups[0]["lr"], seconds=state.seconds)
        return row

    def _step(self, batch: dict[str, Any]) -> float:
        """One optimiser step of the network (and the extra modules); returns the batch loss."""
        batch = {k: v.to(self.device, non_blocking=True) if isinstance(v, Tensor) else v
                 for k, v in batch.items()}
        if self.keep_labels is not None:  # organs not trained on become background
            batch["label"] = self.keep_labels[batch["label"].long()]
        weights: Tensor | None = None
        with torch.autocast("cuda") if self.amp else nullcontext():
            output = (self.train_net(batch["image"], return_all=True) if self._return_all
                      else self.train_net(batch["image"]))
            per_sample = self.loss_fn.per_sample(output, batch["label"])
            if self.sample_weighting is None:
                loss = per_sample.mean()
            else:
                weights = self.sample_weighting.weights(batch, per_sample)
                loss = (weights * per_sample).sum()
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        for extra in self.extra.values():
            ddp.average_gradients(extra.module, self.env)
        for opt in self.optimizers.values():
            self.scaler.step(opt)
        self.scaler.update()
        if self.weight_log is not None and weights is not None:
            self.weight_log.add(batch["case_id"], weights)
        return float(loss.detach())

    def _save(self, row: Row) -> None:
        """last.pt every epoch, best.pt when this epoch set the best Dice (rank 0 writes)."""
        payload = checkpoint_payload(self)  # collective under DDP: every rank takes part
        if not self.env.is_main:
            return
        save_checkpoint(self.out / "last.pt", payload)
        if self.state.best_epoch == row["epoch"]:
            save_checkpoint(self.out / "best.pt", payload)

    @staticmethod
    def _adam(module: nn.Module, lr: float, weight_decay: float) -> torch.optim.Adam:
        return torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)


def _seed_all(seed: int) -> None:
    import random
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
