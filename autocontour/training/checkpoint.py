"""Checkpoints of a training run: written and read through the one file format.

The file format (envelope, keys, version, the reader) is :mod:`autocontour.artifacts.files`;
this module adds what only training needs: the payload of a run and every rank's random states.
A checkpoint holds (besides the envelope):

==================== ==========================================================================
key                  value
==================== ==========================================================================
network              {"network_class_name", "arch_kwargs"} (``models.registry.network_spec``)
state_dict           the network's weights
extra_modules        {name: state_dict} of modules trained alongside (e.g. a QAM)
optimizers           {"network" or module name: optimiser state}
scheduler, scaler    ReduceLROnPlateau and GradScaler state
epoch, step          epochs and optimiser steps completed
rng                  one entry per rank: python, numpy, torch (and cuda) generator states
sampler              {"seed", "epoch"} of the patch sampler
config, recipe       ``TrainConfig.to_dict()``, ``Recipe.to_dict()``
organs, fold         ``OrganSet.to_dict()``, the fold trained
best_metric          best mean validation Dice so far (None before the first validation)
best_epoch, best_row the epoch that reached it and its metrics row
seconds, stopped     training time so far; None, or why the run ended ("epochs", "min_lr")
generators           (format 2, only with ``pseudo_mri`` in the config) {SHA-256: the CT -> MR
                     generator the recipe's pseudo_mri step runs}
==================== ==========================================================================
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autocontour.artifacts.files import CHECKPOINT, read_file, write_file


def rng_state() -> dict[str, Any]:
    """This process's python, numpy, torch and CUDA generator states (tensors and plain values)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                       "has_gauss": has_gauss, "gauss": gauss},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write a run's checkpoint atomically (temporary file, then rename).

    Raises:
        ValueError: ``payload`` lacks a key of :data:`~autocontour.artifacts.files.KEYS` or has
            another (a programming error).
    """
    return write_file(path, CHECKPOINT, payload)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint (see :func:`~autocontour.artifacts.files.read_file`).

    Raises:
        InvalidInputError: a missing or unreadable file, not a training checkpoint, a format
            version this version cannot read, or missing or unknown keys (naming the file).
    """
    return read_file(path, (CHECKPOINT,), map_location)
