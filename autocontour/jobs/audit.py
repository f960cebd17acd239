"""The audit job behind ``autocontour dataset audit``: which contours of a data set to check first.

A clinic's contours come from several people and years; some are wrong (drawn on the wrong side,
a slice range forgotten, grown by a margin). The audit trains a segmenter on every case of the
data set (``folds: 1``, no validation; with ``qam`` the QAM + OCM trains beside it), or reuses
a run (``run``), then ranks the cases, and the organs within them, by distrust
(:mod:`autocontour.training.audit`: the segmenter's disagreement by default, or Φ's
counterfactual judgement, or volume outliers),
and draws an overview of each of the most distrusted cases: the stored contours solid, the
segmenter's prediction dashed, the distrusted organs marked.

Written to ``out`` (all at once: a failure or a cancellation leaves nothing):

* ``audit.json``: the request, the run, every case ranked (with its organs ranked), and the
  order of the cases by every ranking (``rankings``);
* ``cases.csv``: rank, case, distrust, its three most distrusted organs;
* ``organs.csv``: every (case, organ) with Φ's score and gain, volume, model Dice and the three
  distrusts;
* ``overview/<rank>_<case>.png`` for the ``flag`` most distrusted cases;
* ``run/`` the training run (checkpoints, ``sample_weights.jsonl``), unless ``run`` was given.

A case is marked an **outlier** when its distrust is at least :data:`OUTLIER_Z` (a robust
z-score; 3.5 is Iglewicz and Hoaglin's cut-off for modified z-scores).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autocontour.errors import InvalidInputError
from autocontour.jobs.base import CancelCheck, ProgressCallback, Reporter
from autocontour.jobs.checks import check_output_folder
from autocontour.paths import atomic_folder

#: Distrust (robust z) from which a case is called an outlier.
OUTLIER_Z = 3.5
#: Organs with at least this distrust are marked in a case's overview (its top organ always is).
MARK_Z = 2.0


@dataclass(frozen=True)
class AuditRequest:
    """An audit of a data set's contours.

    Attributes:
        dataset: the data set folder (``autocontour dataset import``).
        out: the folder to write (must not exist unless ``overwrite``).
        run: a checkpoint (or run folder holding ``last.pt``) trained with the QAM on this data
            set's organs, to reuse instead of training; None trains one.
        epochs, steps_per_epoch, batch_size: the training's length [20 x 25 steps of 16].
        patch_size: (z, y, x) training patch; z = 1 trains the 2-D ResUNet on axial slices
            [(1, 96, 96)], z > 1 a 3-D UNet.
        channels: the segmenter's channels per level [16, 32, 64, 128].
        lr, qam_lr: Adam learning rates of the segmenter and of Φ [1e-3, 1e-4].
        seed: seed of training and of the scored patches.
        device: "cpu", "cuda" or "auto".
        flag: cases given an overview image [10].
        patches: patches Φ scores per organ and case [8].
        ranking: "model" (default), "qam" or "volume" (see :mod:`autocontour.training.audit`).
        qam: train the QAM + OCM beside the segmenter [False], which adds the ``qam`` ranking.
            Off by default: on phantoms with known errors the plain segmenter's disagreement
            found them better than the QAM-trained one's (README, "Auditing a data set's
            contours"). A reused ``run`` decides by itself.
        overwrite: replace an existing ``out``.
    """

    dataset: str | Path
    out: str | Path
    run: str | Path | None = None
    epochs: int = 20
    steps_per_epoch: int = 25
    batch_size: int = 16
    patch_size: tuple[int, int, int] = (1, 96, 96)
    channels: tuple[int, ...] = (16, 32, 64, 128)
    lr: float = 1e-3
    qam_lr: float = 1e-4
    seed: int = 0
    device: str = "cpu"
    flag: int = 10
    patches: int = 8
    ranking: str = "model"
    qam: bool = False
    overwrite: bool = False


@dataclass
class AuditResult:
    """The ranked cases and organs, and where they were written."""

    out: Path
    run: Path
    cases: list[dict[str, Any]]
    organs: list[Any]
    overviews: list[Path] = field(default_factory=list)


def audit_config(request: AuditRequest, run_out: Path) -> Any:
    """The training config of an audit run: every case trains (``folds: 1``), with the QAM + OCM
    when ``qam``."""
    from autocontour.artifacts.config import TrainConfig

    three_d = request.patch_size[0] > 1
    values: dict[str, Any] = {
        "dataset": str(request.dataset), "out": str(run_out),
        "network": {"name": "UNet3D" if three_d else "ResUNet2D",
                    "kwargs": {"channels": list(request.channels)}},
        "recipe": "fingerprint", "patch_size": list(request.patch_size),
        "batch_size": request.batch_size, "loss": "dicece", "lr": request.lr,
        "epochs": request.epochs, "steps_per_epoch": request.steps_per_epoch,
        "val_every": request.epochs, "plateau": {"patience": request.epochs + 1},
        "augmentation": None, "sampling": {"foreground_fraction": 1.0},
        "folds": 1, "fold": 0, "seed": request.seed, "device": request.device,
        "amp": request.device == "cuda", "num_workers": 0}
    if request.qam:
        values["sample_weighting"] = {"name": "qam", "lr": request.qam_lr, "ocm": True,
                                      "ocm_lambda": 2.0}
    return TrainConfig.from_dict(values)


def audit_dataset(request: AuditRequest, progress: ProgressCallback | None = None,
                  cancel: CancelCheck | None = None) -> AuditResult:
    """Train (or reuse) a QAM run on the data set, rank its cases and organs, write the audit.

    Raises:
        InvalidInputError: not a data set folder; a run for other organs; the ``qam`` ranking
            of a run without the QAM; a bad option (patch, batch below 2, flag or patches
            below 1).
        OutputExistsError: ``out`` exists and ``overwrite`` is False (nothing written).
        JobCancelled: ``cancel`` said stop (nothing written).
    """
    from autocontour.data.folder import DatasetFolder

    folder = DatasetFolder(request.dataset)
    folder.require()
    out = check_output_folder(request.out, request.overwrite, what="--out")
    if request.ranking == "qam" and not request.qam and request.run is None:
        raise InvalidInputError("--rank qam needs the QAM: add --qam")
    if request.batch_size < 2 and request.qam:
        raise InvalidInputError(f"--batch must be at least 2 (the QAM weighs the samples of a "
                                f"batch against each other), got {request.batch_size}")
    from autocontour.training.audit import RANKINGS
    if request.ranking not in RANKINGS:
        raise InvalidInputError(f"unknown ranking {request.ranking!r}; choose from "
                                f"{', '.join(RANKINGS)}")
    if request.flag < 0 or request.patches < 1:
        raise InvalidInputError(f"--flag must be 0 or more and --patches 1 or more, got "
                                f"{request.flag} and {request.patches}")
    reused = None
    if request.run is not None:
        reused = Path(request.run)
        reused = reused / "last.pt" if reused.is_dir() else reused
        if not reused.is_file():
            raise InvalidInputError(f"{reused}: no checkpoint there (--run takes a run folder "
                                    "holding last.pt, or the checkpoint)")
    stages = ([] if reused else ["train"]) + ["score", "write"]
    reporter = Reporter(stages, progress, cancel, job=f"auditing {request.dataset}")
    reporter.check()
    with atomic_folder(out, request.overwrite) as tmp:
        checkpoint = reused if reused is not None else _train(request, tmp / "run", reporter)
        result = _score_and_write(request, folder, checkpoint, tmp, reporter)
    result.out = out
    result.run = reused if reused is not None else out / "run" / "last.pt"
    result.overviews = [out / p.relative_to(tmp) for p in result.overviews]
    reporter.finished("write", f"{len(result.cases)} cases ranked", last=True)
    return result


def _train(request: AuditRequest, run_out: Path, reporter: Reporter) -> Path:
    from autocontour.training.callbacks import Callback
    from autocontour.training.engine import Trainer

    config = audit_config(request, run_out)
    total = config.epochs * config.steps_per_epoch

    class _Steps(Callback):
        def on_step_end(self, trainer: Any, step: int, loss: float) -> None:
            reporter.note("train", f"step {step} of {total}, loss {loss:.4f}",
                          reporter.fraction(1) * step / total)
            reporter.check()

    Trainer(config, callbacks=[_Steps()], progress=False).fit()
    reporter.finished("train", f"{total} steps")
    return run_out / "last.pt"


def _score_and_write(request: AuditRequest, folder: Any, checkpoint: Path, tmp: Path,
                     reporter: Reporter) -> AuditResult:
    from autocontour.inference.pipeline import resolve_device
    from autocontour.training import audit
    from autocontour.training.data import preprocess

    run = audit.load_audited_run(checkpoint, resolve_device(request.device))
    if request.ranking not in run.rankings:
        raise InvalidInputError(f"{checkpoint}: trained without the QAM, so it cannot rank by "
                                f"{request.ranking!r}; choose --rank model or volume")
    source = folder.cache()
    if sorted(run.trained.organs.names) != sorted(source.organs.names):
        raise InvalidInputError(f"{checkpoint}: trained on organs {run.trained.organs.names}, "
                                f"the data set has {source.organs.names}")
    cache = preprocess(folder.path, run.trained.recipe, progress=False)
    ids = list(source.case_ids)

    def on_case(case: str, done: int, total: int) -> None:
        reporter.note("score", f"{case} ({done} of {total})",
                      reporter.fraction() + (reporter.fraction(reporter.done + 1)
                                             - reporter.fraction()) * done / total)
        reporter.check()

    measured = audit.measure_cases(run, cache, ids, request.patches, request.seed, on_case)
    rows = audit.audit_rows(measured, audit.organ_volumes(source, ids))
    cases = audit.rank_cases(rows, request.ranking)
    for rank, case in enumerate(cases, 1):
        case["rank"] = rank
        case["outlier"] = case["distrust"] >= OUTLIER_Z
    reporter.finished("score", f"{len(ids)} cases, {len(rows)} contours")
    overviews = [_overview(run, folder, cache, case, tmp / "overview", request.ranking)
                 for case in cases[:request.flag]]
    summary = {
        "dataset": str(folder.path), "run": str(checkpoint if request.run else "run/last.pt"),
        "request": {k: (str(v) if isinstance(v, Path) else v)
                    for k, v in asdict(request).items()},
        "outlier_z": OUTLIER_Z, "ranking": request.ranking, "cases": cases,
        "qam": run.qam is not None,
        "rankings": {name: [c["case"] for c in audit.rank_cases(rows, name)]
                     for name in run.rankings}}
    (tmp / "audit.json").write_text(json.dumps(summary, indent=2))
    with (tmp / "cases.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["rank", "case", "distrust", "outlier", "organs"])
        for c in cases:
            w.writerow([c["rank"], c["case"], f"{c['distrust']:.3f}", c["outlier"],
                        "; ".join(f"{o['organ']} {o['distrust']:.2f}" for o in c["organs"][:3])])
    with (tmp / "organs.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case", "organ", "qam_score", "qam_gain", "volume_ml", "model_dice",
                    *(f"distrust_{k}" for k in run.rankings)])
        for r in audit.rank_organs(rows, request.ranking):
            w.writerow([r.case, r.organ, f"{r.qam_score:.4f}", f"{r.qam_gain:.4f}",
                        f"{r.volume_ml:.2f}", f"{r.model_dice:.4f}",
                        *(f"{r.distrust[k]:.3f}" for k in run.rankings)])
    return AuditResult(tmp, checkpoint, cases, audit.rank_organs(rows, request.ranking),
                       overviews)


def _overview(run: Any, folder: Any, cache: Any, case: dict[str, Any], where: Path,
              ranking: str) -> Path:
    """The case's stored contours (solid) and the segmenter's prediction (dashed)."""
    import numpy as np

    from autocontour.inference.overview import write_overview
    from autocontour.io.volume import LabelMap
    from autocontour.training.audit import predict_case
    from autocontour.training.data import load_records

    cid = case["case"]
    image, labels = folder.cache().load(cid)
    prepared, _ = cache.load_channels(cid)
    grid = LabelMap(predict_case(run, prepared), prepared[0].geometry, organs=run.trained.organs)
    record = load_records(cache.path)[cid]
    predicted = run.trained.recipe.invert_labels(grid, record)
    marked = [o["organ"] for o in case["organs"] if o["distrust"] >= MARK_Z] or \
        [case["organs"][0]["organ"]]
    window = (40.0, 400.0) if (image.modality or "CT") == "CT" else \
        _window(np.asarray(image.array))
    return write_overview(
        image, labels, where / f"{case['rank']:03d}_{cid}.png", slices=4, window=window,
        title=f"{cid}: rank {case['rank']}, distrust ({ranking}) {case['distrust']:.1f}",
        reference=predicted, flags=dict.fromkeys(marked, "flagged"),
        flag_source="the dataset audit", flag_note="see audit.json",
        legend=("stored contours", "model's prediction"))


def _window(array: Any) -> tuple[float, float]:
    import numpy as np

    lo, hi = (float(v) for v in np.percentile(array, (1, 99)))
    return ((lo + hi) / 2, max(hi - lo, 1e-6))
