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
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from autocontour.errors import OutputExistsError
from autocontour.evaluation import evaluate_case
from autocontour.inference import Contourer, write_outputs
from autocontour.io import read_volume, write_dicom_series, write_volume
from autocontour.phantoms import head_neck_case


def run_demo(out: Path, seed: int = 90001, shape: tuple[int, int, int] | None = None,
             overwrite: bool = False, model: str | Path | None = None, tta: bool = False,
             device: str = "cpu", quiet: bool = False) -> dict[str, Any]:
    """Run the demo into ``out`` and return its report (also ``out/demo_report.json``).

    Raises:
        OutputExistsError: ``out`` holds files and ``overwrite`` is False.
        InvalidInputError: a model file that cannot be read.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"{out}: already holds files; use --overwrite to replace "
                                    "the earlier demo output")
        shutil.rmtree(out)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    contourer = Contourer.from_checkpoint(model, device) if model else Contourer.default(device)
    case = head_neck_case(seed, shape) if shape else head_neck_case(seed)
    write_dicom_series(case.ct, out / "ct", modality="CT", patient_id=f"DEMO{seed}",
                       patient_name="Demo^Phantom", series_description="demo head-neck CT")
    write_volume(case.labels, out / "truth_labels.nii.gz")
    timings["phantom_and_dicom"] = time.perf_counter() - t

    t = time.perf_counter()
    ct = read_volume(out / "ct")
    timings["read_ct"] = time.perf_counter() - t
    prediction = contourer.run(ct, tta=tta, progress=not quiet, name=str(out / "ct"))
    report = write_outputs(prediction, ct, out / "contours", source=str(out / "ct"))

    pred, truth = prediction.labels.array, case.labels.array
    names = [(o.name, o.label) for o in case.labels.organs if (truth == o.label).any()]
    rows = evaluate_case(pred, truth, ct.spacing, names, case=case.case_id)
    volumes = prediction.labels.volumes_cc()
    organs = [{"organ": r["organ"], "volume_cc": round(volumes.get(r["organ"], 0.0), 3),
               "truth_cc": round(r["volume_truth_cc"], 3), "dice": round(r["dice"], 4),
               "hd95_mm": None if math.isnan(r["hd95_mm"]) else round(r["hd95_mm"], 2)}
              for r in rows]
    dices = [r["dice"] for r in organs]
    hd95s = [r["hd95_mm"] for r in organs if r["hd95_mm"] is not None]
    result = {"case": case.case_id, "seed": seed, "shape_zyx": list(ct.shape),
              "model": prediction.model, "tta": tta, "organs": organs,
              "mean_dice": round(float(np.mean(dices)), 4) if dices else None,
              "median_hd95_mm": round(float(np.median(hd95s)), 2) if hd95s else None,
              "organs_missed": [r["organ"] for r in organs if r["volume_cc"] == 0.0],
              "seconds": {**{k: round(v, 3) for k, v in timings.items()},
                          **{f"contour_{k}": v for k, v in report["seconds"].items()}},
              "warnings": report["warnings"],
              "outputs": {"ct": "ct/", "truth": "truth_labels.nii.gz",
                          **{k: f"contours/{v}" for k, v in report["files"].items()}}}
    (out / "demo_report.json").write_text(json.dumps(result, indent=2))
    _print(result, out, contourer)
    return result


def _print(result: dict[str, Any], out: Path, contourer: Contourer) -> None:
    z, y, x = result["shape_zyx"]
    print(f"demo case {result['case']} (phantom seed {result['seed']}, never trained on): CT "
          f"{x}x{y}x{z} -> {out}/ct; contoured by {contourer.model.name}"
          f"{' with TTA' if result['tta'] else ''}; RTSTRUCT, SEG, NIfTI, overview.png and "
          f"report.json in {out}/contours")
    rule = result["model"]["rule"]
    print(f"{'organ':<18}{'from':<10}{'cm3':>9}{'truth cm3':>11}{'Dice':>8}{'HD95 mm':>9}")
    for r in result["organs"]:
        hd = f"{r['hd95_mm']:>9.1f}" if r["hd95_mm"] is not None else f"{'-':>9}"
        print(f"{r['organ']:<18}{rule.get(r['organ'], ''):<10}{r['volume_cc']:>9.2f}"
              f"{r['truth_cc']:>11.2f}{r['dice']:>8.3f}{hd}")
    print(f"mean Dice {result['mean_dice']:.3f} over {len(result['organs'])} organs, median "
          f"HD95 {result['median_hd95_mm']} mm" + (f"; missed: {', '.join(result['organs_missed'])}"
                                                   if result["organs_missed"] else ""))
    for w in result["warnings"]:
        print(f"warning: {w}")
    secs = result["seconds"]
    print(f"time: {secs['contour_total'] + secs['phantom_and_dicom'] + secs['read_ct']:.1f} s "
          "(" + ", ".join(f"{k.removeprefix('contour_')} {v:.2f}s" for k, v in secs.items()
                          if k != "contour_total") + ")")
