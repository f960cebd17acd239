"""The evaluate job behind ``autocontour evaluate``: pair label-map files by case, score, report.

PRED and GT are each one label-map file (NIfTI, NRRD, HDF5) or a folder of them. In a folder a
case is either a file ``<case>.nii.gz`` (any label suffix) or a sub-folder ``<case>/`` holding
``label.nii.gz`` (the phantom and import layouts). Cases are paired by name; a case on one side
only is an error that names it, never silently dropped. Every organ of the set is scored except
those absent from every prediction and every truth (nothing to report); an organ absent from both
in one case scores as rightly absent (see ``autocontour.evaluation.report``).

Without an organ set (``--organs``), the set is the one the files record (an HDF5 label map
written by autocontour stores its organ set) when every file that records one agrees, else the
label values found in the truth and prediction files, each scored as an organ named "label N"
(:func:`organs_of_files`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autocontour.errors import InvalidInputError, OutputExistsError
from autocontour.evaluation.plots import boxplot_per_organ
from autocontour.evaluation.report import (
    EmptyRule,
    cases_markdown,
    evaluate_case,
    summarise,
    summary_markdown,
    write_csv,
)
from autocontour.evaluation.stats import compare_markdown, compare_models
from autocontour.io.formats import read_labels, read_volume
from autocontour.io.volume import LabelMap
from autocontour.jobs.base import CancelCheck, ProgressCallback, Reporter
from autocontour.jobs.label_files import pair_cases
from autocontour.organs import Organ, OrganSet, get_organ_set
from autocontour.paths import first_missing, remove_if_no_files

COMPARED_METRICS = ("dice", "hd95_mm", "surface_dice")
#: Name of the organ set made of the label values found (organs "label 1", "label 2", ...).
FOUND_LABELS = "label values"
_COLOURS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
            (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212))


def label_value_set(values: Iterable[int]) -> OrganSet:
    """An organ set of bare label values: organ "label N" for each value N (1..255).

    Raises:
        InvalidInputError: a value outside 1..255.
    """
    values = sorted({int(v) for v in values} - {0})
    if bad := [v for v in values if not 0 < v < 256]:
        raise InvalidInputError(f"label values {bad[:5]} are not in 1..255; pass --organs")
    return OrganSet(FOUND_LABELS, tuple(
        Organ(f"label {v}", v, _COLOURS[(v - 1) % len(_COLOURS)], key=f"label {v}")
        for v in values))


def organs_of_files(files: Iterable[str | Path]) -> OrganSet:
    """The organ set label-map files agree on, for an evaluation given none.

    Files that record an organ set (autocontour's HDF5 label maps) must all record the same one,
    which is then used (files that record none are read against it). When no file records one,
    the set is :func:`label_value_set` of every value found in any file. Every file is read
    once here, before it is scored.

    Raises:
        InvalidInputError: files record different organ sets (naming one of each), a file holds
            fractional values, or no file holds any label.
    """
    recorded: dict[str, tuple[OrganSet, Path]] = {}
    values: set[int] = set()
    for path in map(Path, files):
        volume = read_volume(path)
        if isinstance(volume, LabelMap):
            key = json.dumps(volume.organs.to_dict(), sort_keys=True)
            recorded.setdefault(key, (volume.organs, path))
        found = np.unique(volume.array)
        if not np.array_equal(found, np.round(found)):
            raise InvalidInputError(f"{path}: a label map must hold whole numbers, got "
                                    f"{volume.array.dtype} with fractional values")
        values.update(int(v) for v in found)
    if len(recorded) > 1:
        (a, file_a), (b, file_b) = list(recorded.values())[:2]
        raise InvalidInputError(f"{file_a} records organ set {a.name!r} and {file_b} another "
                                f"({b.name!r}); pass --organs to choose the label values")
    if recorded:
        return next(iter(recorded.values()))[0]
    if not values - {0}:
        raise InvalidInputError("no label values in any prediction or truth file: nothing to "
                                "score")
    return label_value_set(values)


def evaluate_files(pred: str | Path, truth: str | Path, organs: OrganSet,
                   tolerance_mm: float = 2.0, empty_rule: EmptyRule = EmptyRule.EXCLUDE,
                   on_case: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Score every case of ``pred`` against ``truth`` (see ``evaluation.report.evaluate_case``).

    Args:
        pred: prediction label-map file or folder.
        truth: truth label-map file or folder, with the same case names.
        organs: organ set whose label values both sides use.
        tolerance_mm: surface Dice tolerance in mm.
        empty_rule: HD95/ASSD of an organ missing on one side.
        on_case: called with each case's name once it is scored.

    Returns:
        Rows of every case and organ, organs absent from every file on both sides left out.

    Raises:
        InvalidInputError: unpaired or unreadable files, labels outside the organ set.
        GeometryMismatchError: a prediction's grid differs from its truth's.
    """
    rows: list[dict[str, Any]] = []
    pairs = pair_cases(pred, truth)
    organ_labels = [(o.name, o.label) for o in organs]
    for case, (pred_file, truth_file) in pairs.items():
        truth_map = read_labels(truth_file, organs)
        pred_map = read_labels(pred_file, organs, reference=truth_map)
        rows += evaluate_case(pred_map.array, truth_map.array, truth_map.spacing, organ_labels,
                              tolerance_mm, case=case, empty_rule=empty_rule)
        if on_case is not None:
            on_case(case)
    seen = {r["organ"] for r in rows if not (r["pred_empty"] and r["truth_empty"])}
    return [r for r in rows if r["organ"] in seen]


@dataclass
class EvaluationReport:
    """What :func:`evaluate` computed and wrote, with the inputs and options it used.

    Attributes:
        pred, truth, compare: the input paths (``compare`` None without a second prediction).
        tolerance_mm: surface Dice tolerance.
        empty_rule: HD95/ASSD rule for an organ missing on one side.
        rows, summary: per-case rows and per-organ summary of the prediction (A).
        rows_b, summary_b: the same for the compared prediction (B); empty without ``compare``.
        comparisons: metric -> ``compare_models`` table of A against B.
        written: files written under the output folder.
        organs: the organ set scored (given, recorded in the files, or the label values found).
    """

    pred: Path
    truth: Path
    compare: Path | None
    tolerance_mm: float
    empty_rule: EmptyRule
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    rows_b: list[dict[str, Any]] = field(default_factory=list)
    summary_b: list[dict[str, Any]] = field(default_factory=list)
    comparisons: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)
    organs: OrganSet | None = None


def _output_names(compare: bool) -> list[str]:
    names = ["cases.csv", "summary.csv", "report.md", "boxplots.png"]
    return names + (["cases_b.csv", "summary_b.csv", "wilcoxon.csv"] if compare else [])


@dataclass(frozen=True)
class EvaluateRequest:
    """What to score against what, and where the report goes.

    Attributes:
        pred: predicted label-map file or folder of cases.
        truth: truth label-map file or folder with the same case names.
        organs: organ set name (head-neck, pelvis, chest) both sides use; None: the set the
            files record, else the label values found, named "label N" (``organs_of_files``).
        out: folder for the CSV/Markdown tables and box plots; None: nothing written.
        tolerance_mm: surface Dice tolerance in mm.
        compare: a second prediction, tested against ``pred`` per organ (paired Wilcoxon).
        empty_rule: HD95/ASSD of an organ empty on one side ("exclude" or "diagonal").
        overwrite: replace an earlier report in ``out``.
    """

    pred: str | Path
    truth: str | Path
    organs: str | None = None
    out: str | Path | None = None
    tolerance_mm: float = 2.0
    compare: str | Path | None = None
    empty_rule: str = EmptyRule.EXCLUDE.value
    overwrite: bool = False


def evaluate(request: EvaluateRequest, progress: ProgressCallback | None = None,
             cancel: CancelCheck | None = None) -> EvaluationReport:
    """Evaluate a prediction (and optionally a second one) against the truth; write the report.

    Files written to ``out`` (when given): ``cases.csv``, ``summary.csv``, ``report.md``,
    ``boxplots.png`` (Dice and HD95 per organ); with ``compare`` also ``cases_b.csv``,
    ``summary_b.csv`` and ``wilcoxon.csv`` (paired tests of Dice, HD95 and surface Dice). They are
    written beside the folder first and moved in when all are complete.

    Raises:
        OutputExistsError: an output file exists and ``overwrite`` is False (checked first;
            nothing is written).
        InvalidInputError: a negative tolerance, an unknown organ set; see also
            ``evaluate_files``.
        GeometryMismatchError: see ``evaluate_files``.
        JobCancelled: ``cancel`` said stop (nothing written).
    """
    tolerance_mm, compare = request.tolerance_mm, request.compare
    if not tolerance_mm >= 0:
        raise InvalidInputError(f"surface Dice tolerance must be >= 0 mm, got {tolerance_mm}")
    organs = get_organ_set(request.organs) if request.organs is not None else None
    empty_rule = EmptyRule(request.empty_rule)
    out = Path(request.out) if request.out is not None else None
    if out is not None and not request.overwrite:
        existing = [out / n for n in _output_names(compare is not None) if (out / n).exists()]
        if existing:
            raise OutputExistsError(f"{existing[0]}: already exists; pass --overwrite to replace "
                                    "the report")
    paired = pair_cases(request.pred, request.truth)
    pairs = len(paired)
    if compare is not None:
        paired_b = pair_cases(compare, request.truth)
        pairs += len(paired_b)
    if organs is None:
        files = {f for pair in paired.values() for f in pair}
        if compare is not None:
            files |= {pred_file for pred_file, _ in paired_b.values()}
        organs = organs_of_files(sorted(files))
    reporter = Reporter([f"case {i}" for i in range(pairs)] + (["write"] if out else []),
                        progress, cancel, job="the evaluation")

    def on_case(case: str) -> None:
        reporter.finished(f"case {case}")

    rows = evaluate_files(request.pred, request.truth, organs, tolerance_mm, empty_rule, on_case)
    report = EvaluationReport(Path(request.pred), Path(request.truth),
                              Path(compare) if compare else None, tolerance_mm, empty_rule, rows,
                              summarise(rows), organs=organs)
    if compare is not None:
        report.rows_b = evaluate_files(compare, request.truth, organs, tolerance_mm, empty_rule,
                                       on_case)
        report.summary_b = summarise(report.rows_b)
        report.comparisons = {m: compare_models(rows, report.rows_b, metric=m)
                              for m in COMPARED_METRICS}
    if out is not None:
        report.written = _write_atomically(report, out)
        reporter.finished("write", str(out), last=True)
    return report


def report_markdown(report: EvaluationReport) -> str:
    """The whole report as one Markdown document (summaries, tests, per-case tables)."""
    empty = ("an organ empty on one side has no HD95/ASSD: it is counted, not averaged "
             "(n=k shows how many values a mean used)"
             if report.empty_rule is EmptyRule.EXCLUDE else
             "an organ empty on one side scores HD95 = ASSD = the image diagonal")
    parts = ["# Contour evaluation", "",
             f"Prediction (A): `{report.pred}`  ", f"Truth: `{report.truth}`  "]
    if report.compare is not None:
        parts.append(f"Compared prediction (B): `{report.compare}`  ")
    if report.organs is not None:
        parts.append(f"Organ set: {report.organs.name}  ")
    parts += [(f"Surface Dice tolerance {report.tolerance_mm:g} mm. HD95 is the 95th percentile "
              f"of both directed boundary-distance sets pooled; {empty}."),
              "", "## Per-organ summary (A)", "",
              summary_markdown(report.summary, report.tolerance_mm)]
    if report.compare is not None:
        parts += ["", "## Per-organ summary (B)", "",
                  summary_markdown(report.summary_b, report.tolerance_mm),
                  "", "## Paired Wilcoxon signed-rank tests (A vs B)", ""]
        for table in report.comparisons.values():
            parts += [compare_markdown(table), ""]
    parts += ["", "## Per case (A)", "", cases_markdown(report.rows), ""]
    return "\n".join(parts)


def _write_atomically(report: EvaluationReport, out: Path) -> list[Path]:
    """Write the report files beside ``out``, then move them in; returns the paths in ``out``."""
    created = first_missing(out)  # removed again if the report cannot be written whole
    tmp = out / f".evaluate.partial-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    done = False
    try:
        written = [out / path.name for path in _write(report, tmp)]
        for path in written:
            os.replace(tmp / path.name, path)
        done = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            remove_if_no_files(created)
    return written


def _write(report: EvaluationReport, out: Path) -> list[Path]:
    """Write the report files into ``out``; returns the paths written."""
    written = [write_csv(report.rows, out / "cases.csv"),
               write_csv(report.summary, out / "summary.csv")]
    md = out / "report.md"
    md.write_text(report_markdown(report), encoding="utf-8")
    written.append(md)
    runs = {"A": report.rows}
    if report.compare is not None:
        runs["B"] = report.rows_b
        written += [write_csv(report.rows_b, out / "cases_b.csv"),
                    write_csv(report.summary_b, out / "summary_b.csv"),
                    write_csv([r for t in report.comparisons.values() for r in t],
                              out / "wilcoxon.csv")]
    written.append(boxplot_per_organ(runs, out / "boxplots.png"))
    return written
