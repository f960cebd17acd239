"""The main job on embedded data: a fresh head-and-neck phantom CT contoured by the shipped model.

The phantom (seed 90001 by default; the shipped model was trained on seeds 1000-1039) is written
as a DICOM CT series, read back as a clinic's CT would be, contoured by the shipped combined
model through the same code path as ``autocontour predict``, and the outputs (RTSTRUCT, SEG,
NIfTI, overview PNG, report) are written. Because a phantom's truth is known, the demo then
prints each organ's Dice and HD95 against it: the honest score of the shipped model on a case it
has never seen.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autocontour.evaluation.report import evaluate_case
from autocontour.inference.overview import write_overview
from autocontour.io.dicom_write import write_dicom_series
from autocontour.io.formats import read_volume, write_volume
from autocontour.jobs.base import (
    CancelCheck,
    ProgressCallback,
    Reporter,
    use_threads,
)
from autocontour.jobs.checks import check_output_folder
from autocontour.jobs.prediction import PredictRequest, load_contourer, predict
from autocontour.paths import atomic_folder
from autocontour.phantoms import head_neck_case


@dataclass(frozen=True)
class DemoRequest:
    """The demo's settings.

    Attributes:
        out: the output folder (``ct/``, ``truth_labels.nii.gz``, ``contours/``,
            ``demo_report.json``).
        seed: the phantom's seed (the shipped model was trained on seeds 1000-1039).
        shape: the phantom grid (z, y, x); None: the default 64 x 128 x 128.
        model: a model file; None: the shipped model.
        tta: test-time augmentation (mirrored CT).
        device: where the networks run.
        overwrite: replace an earlier demo output (only once the new one is complete).
        threads: PyTorch CPU threads; None leaves the process's setting alone.
    """

    out: str | Path = "autocontour-demo"
    seed: int = 90001
    shape: tuple[int, int, int] | None = None
    model: str | Path | None = None
    tta: bool = False
    device: str = "cpu"
    overwrite: bool = False
    threads: int | None = None


@dataclass
class DemoResult:
    """The demo's report (also ``out/demo_report.json``) and the model's rule for the table."""

    out: Path
    report: dict[str, Any]
    model: str


def run_demo(request: DemoRequest, progress: ProgressCallback | None = None,
             cancel: CancelCheck | None = None) -> DemoResult:
    """Write a phantom CT as DICOM, contour it with the predict job, score it against its truth.

    Raises:
        OutputExistsError: ``out`` holds files and ``overwrite`` is False (nothing written).
        InvalidInputError: a model file that cannot be read.
        JobCancelled: ``cancel`` said stop (the earlier output, if any, is untouched).
    """
    out = Path(request.out)
    check_output_folder(out, request.overwrite, "--out")
    reporter = Reporter(["load model", "phantom", "contour", "score"], progress, cancel,
                        job="the demo")
    timings: dict[str, float] = {}
    t = time.perf_counter()
    use_threads(request.threads)
    contourer = load_contourer(request.model, request.device)
    reporter.finished("load model", contourer.model.name)
    with atomic_folder(out, request.overwrite) as tmp:
        seed = request.seed
        case = head_neck_case(seed, request.shape) if request.shape else head_neck_case(seed)
        write_dicom_series(case.ct, tmp / "ct", modality="CT", patient_id=f"DEMO{seed}",
                           patient_name="Demo^Phantom", series_description="demo head-neck CT")
        write_volume(case.labels, tmp / "truth_labels.nii.gz")
        timings["phantom_and_dicom"] = time.perf_counter() - t
        reporter.finished("phantom", f"{case.case_id} written as a DICOM series")

        t = time.perf_counter()
        ct = read_volume(tmp / "ct")
        timings["read_ct"] = time.perf_counter() - t
        result = predict(PredictRequest(tmp / "ct", tmp / "contours", tta=request.tta,
                                        name=str(out / "ct")),
                         contourer=contourer, cancel=cancel)
        report = result.report
        # The overview again, with the phantom's truth drawn dashed under the contours.
        write_overview(ct, result.labels, tmp / "contours" / report["files"]["overview"],
                       title=f"demo {case.case_id}", model=result.model,
                       reference=case.labels, overwrite=True, body=result.body)
        reporter.finished("contour", f"{len(report['organs'])} organs")

        pred, truth = result.labels.array, case.labels.array
        names = [(o.name, o.label) for o in case.labels.organs if (truth == o.label).any()]
        rows = evaluate_case(pred, truth, ct.spacing, names, case=case.case_id)
        volumes = {o["name"]: o["volume_cc"] for o in report["organs"]}
        organs = [{"organ": r["organ"], "volume_cc": round(volumes.get(r["organ"], 0.0), 3),
                   "truth_cc": round(r["volume_truth_cc"], 3), "dice": r["dice"],
                   "hd95_mm": None if math.isnan(r["hd95_mm"]) else round(r["hd95_mm"], 2)}
                  for r in rows]
        dices = [r["dice"] for r in organs]  # unrounded: printing rounds once
        hd95s = [r["hd95_mm"] for r in organs if r["hd95_mm"] is not None]
        demo = {"case": case.case_id, "seed": seed, "shape_zyx": list(ct.shape),
                "model": report["model"], "tta": request.tta, "organs": organs,
                "mean_dice": float(np.mean(dices)) if dices else None,
                "median_hd95_mm": round(float(np.median(hd95s)), 2) if hd95s else None,
                "organs_missed": [r["organ"] for r in organs if r["volume_cc"] == 0.0],
                "seconds": {**{k: round(v, 3) for k, v in timings.items()},
                            **{f"contour_{k}": v for k, v in report["seconds"].items()}},
                "warnings": report["warnings"],
                "outputs": {"ct": "ct/", "truth": "truth_labels.nii.gz",
                            **{k: f"contours/{v}" for k, v in report["files"].items()}}}
        (tmp / "demo_report.json").write_text(json.dumps(demo, indent=2))
        reporter.finished("score", f"mean Dice {demo['mean_dice']}", last=True)
    return DemoResult(out, demo, contourer.model.name)
