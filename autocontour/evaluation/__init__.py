"""Metrics that compare contours, paired statistics between models, and report tables/plots.

Arrays and spacing in, numbers, tables and PNGs out: this package reads no image files (the
evaluate job, ``autocontour.jobs.evaluation``, does). Metric definitions and empty-mask rules are in
``surface`` and ``report``. Modules that pull in MONAI/torch or matplotlib are imported on first
use, so ``from autocontour.evaluation import dice`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from autocontour.evaluation.overlap import dice, dice_per_organ, volume_cc

_LAZY = {
    **dict.fromkeys(("SurfaceScores", "surface_distances", "surface_scores"),
                    "autocontour.evaluation.surface"),
    **dict.fromkeys(("ROW_KEYS", "SUMMARY_METRICS", "EmptyRule", "cases_markdown",
                     "evaluate_case", "markdown_table", "summarise", "summary_markdown",
                     "write_csv"), "autocontour.evaluation.report"),
    **dict.fromkeys(("PairedTest", "compare_markdown", "compare_models", "paired_wilcoxon"),
                    "autocontour.evaluation.stats"),
    **dict.fromkeys(("boxplot_per_organ", "plot_loss_curves", "read_metrics_log"),
                    "autocontour.evaluation.plots"),
}

if TYPE_CHECKING:  # _LAZY spelled out for IDEs and type checkers (tests/test_exports.py)
    from autocontour.evaluation.plots import boxplot_per_organ, plot_loss_curves, read_metrics_log
    from autocontour.evaluation.report import (
        ROW_KEYS,
        SUMMARY_METRICS,
        EmptyRule,
        cases_markdown,
        evaluate_case,
        markdown_table,
        summarise,
        summary_markdown,
        write_csv,
    )
    from autocontour.evaluation.stats import (
        PairedTest,
        compare_markdown,
        compare_models,
        paired_wilcoxon,
    )
    from autocontour.evaluation.surface import SurfaceScores, surface_distances, surface_scores

__all__ = [
    "ROW_KEYS", "SUMMARY_METRICS", "EmptyRule", "PairedTest", "SurfaceScores",
    "boxplot_per_organ", "cases_markdown", "compare_markdown", "compare_models", "dice",
    "dice_per_organ", "evaluate_case", "markdown_table", "paired_wilcoxon", "plot_loss_curves",
    "read_metrics_log", "summarise", "summary_markdown", "surface_distances", "surface_scores",
    "volume_cc", "write_csv",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autocontour.evaluation' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
