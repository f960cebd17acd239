"""k-fold cross-validation (spec B6): one run per fold, then per-fold and mean ± sd Dice.

Fold k trains into ``out/fold_<k>/`` on the k-th split of ``DS/splits_<folds>fold.json`` (the
same file for every model). After each fold, ``out/cv_summary.json`` and ``out/cv_summary.md``
are rewritten from every ``fold_<k>/result.json`` present, so folds run one at a time (or on
different machines into the same folder) still add up to one summary. The summary holds the
best validation Dice per organ of every fold and, per organ, the mean and sample sd over folds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from autocontour.artifacts.config import TrainConfig
from autocontour.data.folder import write_json
from autocontour.errors import InvalidInputError
from autocontour.training.distributed import env_from_environment
from autocontour.training.engine import FitResult, Trainer


def fold_config(config: TrainConfig, fold: int) -> TrainConfig:
    """The config of one fold: ``fold`` set, ``out`` = ``config.out/fold_<fold>``."""
    return replace(config, fold=fold, out=str(Path(config.out) / f"fold_{fold}"))


def run_folds(config: TrainConfig, folds: str | int | Sequence[int] = "all",
              resume: bool = False, progress: bool = True, **trainer_kwargs: Any
              ) -> dict[int, FitResult]:
    """Train the folds asked for, each into ``out/fold_<k>/``, and write the summary.

    Args:
        config: the run; ``config.folds`` is k, ``config.fold`` is ignored.
        folds: "all" (0 .. k-1), one fold, or a list of folds.
        resume: continue each fold from its last checkpoint (a finished fold is not retrained;
            a fold without a checkpoint starts afresh).
        progress: progress bars.
        **trainer_kwargs: passed to every :class:`Trainer` (callbacks, extra modules, ...).

    Returns:
        fold -> its result.

    Raises:
        InvalidInputError: a fold outside 0 .. k-1, or "all" misspelt.
    """
    if isinstance(folds, str):
        if folds.strip().lower() != "all":
            raise InvalidInputError(f"folds must be 'all', a fold number or a list, got {folds!r}")
        chosen = list(range(config.folds))
    else:
        chosen = [folds] if isinstance(folds, int) else [int(f) for f in folds]
    bad = [f for f in chosen if not 0 <= f < config.folds]
    if bad:
        raise InvalidInputError(f"fold {bad[0]} does not exist: the split has {config.folds} "
                                f"folds (0..{config.folds - 1})")
    results = {}
    for fold in chosen:
        results[fold] = Trainer(fold_config(config, fold), progress=progress,
                                **trainer_kwargs).fit(resume=resume)
        if env_from_environment().is_main:
            write_summary(Path(config.out), config.folds)
    return results


def write_summary(out: Path, folds: int) -> dict[str, Any]:
    """``cv_summary.json`` and ``cv_summary.md`` from the folds' ``result.json`` under ``out``."""
    per_fold: dict[int, dict[str, float | None]] = {}
    for fold in range(folds):
        path = out / f"fold_{fold}" / "result.json"
        if path.is_file():
            row = json.loads(path.read_text()).get("best_row") or {}
            per_fold[fold] = {k.removeprefix("dice_"): v for k, v in row.items()
                              if k.startswith("dice_") or k == "val_dice_mean"}
    keys = [k for k in dict.fromkeys(k for s in per_fold.values() for k in s)  # organ-set order
            if k != "val_dice_mean"] + ["val_dice_mean"]
    stats = {}
    for key in keys:
        values = [s[key] for s in per_fold.values() if s.get(key) is not None]
        stats[key] = {"mean": float(np.mean(values)) if values else None,
                      "sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                      "n_folds": len(values)}
    summary = {"folds": folds, "completed": sorted(per_fold),
               "per_fold": {str(k): v for k, v in per_fold.items()}, "summary": stats}
    write_json(out / "cv_summary.json", summary)
    (out / "cv_summary.md").write_text(_markdown(per_fold, stats, keys))
    return summary


def _markdown(per_fold: dict[int, dict], stats: dict[str, dict], keys: list[str]) -> str:
    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    folds = sorted(per_fold)
    lines = ["| organ | " + " | ".join(f"fold {k}" for k in folds) + " | mean ± sd |",
             "|---|" + "---|" * len(folds) + "---|"]
    for key in keys:
        s = stats[key]
        total = "–" if s["mean"] is None else (
            f"{s['mean']:.3f}" + ("" if s["sd"] is None else f" ± {s['sd']:.3f}"))
        name = "**mean Dice**" if key == "val_dice_mean" else key
        lines.append(f"| {name} | " + " | ".join(cell(per_fold[k].get(key)) for k in folds)
                     + f" | {total} |")
    return "Best validation Dice per fold (k-fold cross-validation)\n\n" + "\n".join(lines) + "\n"
