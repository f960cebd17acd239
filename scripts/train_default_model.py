"""Train the model shipped with autocontour: head & neck OARs from phantoms, on CPU, fixed seed.

    python scripts/train_default_model.py            # ~33 min alone on 2 CPU cores; writes
        autocontour/assets/hn_phantom_default.pt     # the model file (float16 weights)
        autocontour/assets/hn_phantom_default.json   # rule, validation Dice/HD95, times

It generates 40 head & neck phantoms (seeds 1000-1039; the demo uses 90001, never trained on),
imports them, and builds the combined model of seed 004 (spec B4) on fold 0 of a 5-fold split
(32 training, 8 validation cases): a 2-D residual U-Net on axial slices, a 3-D U-Net on the body
crop and a 3-D-small U-Net on a 16x64x64 box around the optic chiasm and pituitary, trained on
those two organs alone (the others are background to it, as in seed 004). The rule
(which member each organ comes from) and the largest-component switches are chosen on the 8
validation cases. Networks are small (about 3.3 M weights in all) so that the file stays a few
MB and CPU inference stays fast. A second run re-uses finished members (``--work``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from autocontour.data.folder import DatasetFolder
from autocontour.data.importer import import_dataset
from autocontour.data.recipes import Recipe
from autocontour.data.steps_body import CropBody
from autocontour.data.steps_grid import Resample
from autocontour.data.steps_intensity import ClipIntensity, ZScore
from autocontour.inference.combined import SMALL_ROI_ORGANS, SMALL_ROI_SIZE, RoiSpec
from autocontour.inference.model_file import load_model
from autocontour.jobs import BuildModelRequest, MemberPlan, Progress, build_model
from autocontour.jobs.model_building import update_training_record
from autocontour.organs import HEAD_NECK
from autocontour.phantoms.export import write_cases

ASSETS = Path(__file__).resolve().parent.parent / "autocontour" / "assets"
SEED, CASES, FIRST_CASE_SEED = 0, 40, 1000

#: The model grid: the phantoms' own spacing (260 mm / 128 px, 3 mm slices), so training data is
#: not interpolated; clinic CTs (0.5-1 mm pixels) are resampled to it.
RECIPE = Recipe("hn-phantom-2mm", (
    Resample(spacing=(2.03125, 2.03125, 3.0)),
    CropBody(),
    ClipIntensity(-1000.0, 1500.0),
    ZScore(mode="foreground", threshold=-500.0),
))

AUGMENT = {"rotation_deg": 10.0, "affine_prob": 0.3, "elastic_prob": 0.0, "gamma_prob": 0.2,
           "noise_prob": 0.2, "flip_axes": [], "lr_mirror": "swap", "lr_mirror_prob": 0.5}
COMMON = {"recipe": "fingerprint",
          "loss": {"name": "dicece", "include_background": False, "batch_dice": True},
          "lr": 2.0e-3, "plateau": {"factor": 0.5, "patience": 2}, "min_lr": 1.0e-5,
          "augmentation": AUGMENT, "amp": False, "seed": SEED, "num_workers": 1}


def plans(scale: float = 1.0) -> list[MemberPlan]:
    """The three members; ``scale`` multiplies the epochs (tests and quick looks use less)."""
    def epochs(n: int) -> int:
        return max(1, round(n * scale))

    small_weights = {o: (1.0 if o in SMALL_ROI_ORGANS else 0.0) for o in HEAD_NECK.names}
    return [
        MemberPlan("2d", {**COMMON, "network": {"name": "ResUNet2D",
                                                "kwargs": {"channels": [16, 32, 64, 128, 192]}},
                          "patch_size": [1, 96, 96], "batch_size": 16, "epochs": epochs(14),
                          "steps_per_epoch": 100, "val_every": 4}),
        MemberPlan("3d", {**COMMON, "network": {"name": "UNet3D",
                                                "kwargs": {"channels": [8, 16, 32, 48, 64]}},
                          "patch_size": [32, 96, 96], "batch_size": 2, "epochs": epochs(4),
                          "steps_per_epoch": 100, "val_every": 2}),
        MemberPlan("3d_small", {**COMMON, "network": {"name": "UNet3D", "kwargs": {
                       "channels": [8, 16, 32, 48], "strides": [[2, 2, 2]] * 3 + [[1, 2, 2]]}},
                       "patch_size": list(SMALL_ROI_SIZE), "batch_size": 4,
                       "epochs": epochs(8), "steps_per_epoch": 100, "val_every": 4,
                       "organs": list(SMALL_ROI_ORGANS),
                       "sampling": {"foreground_fraction": 0.9,
                                    "organ_sampling": small_weights}},
                   roi=RoiSpec(SMALL_ROI_SIZE, SMALL_ROI_ORGANS, "2d")),
    ]


def make_dataset(work: Path, cases: int) -> Path:
    """Phantoms -> data set (with RECIPE as its own recipe); re-used when present."""
    folder = DatasetFolder(work / "dataset")
    if folder.saved_recipe() != RECIPE:  # the import saves the fingerprint's recipe: not done
        if (work / "phantoms").exists():
            shutil.rmtree(work / "phantoms")
        write_cases("head-neck", cases, work / "phantoms", seed=FIRST_CASE_SEED, dicom=False)
        import_dataset(work / "phantoms", folder.path, organs=HEAD_NECK)
        folder.save_recipe(RECIPE)
    return folder.path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/default-model"),
                        help="working folder (phantoms, data set, member runs)")
    parser.add_argument("--out", type=Path, default=ASSETS / "hn_phantom_default.pt")
    parser.add_argument("--cases", type=int, default=CASES)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every member's epochs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--record-only", action="store_true",
                        help="keep the trained model; only (re)compute its training record "
                             "(body regions, field of view, organ volumes and heights of the "
                             "training cases, for the anatomy checks) and save it in --out")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    dataset = make_dataset(args.work, args.cases)
    if args.record_only:
        update_training_record(args.out, dataset)
        record = load_model(args.out).expect.record
        summary = args.out.with_suffix(".json")
        report = json.loads(summary.read_text()) if summary.is_file() else {}
        report["size_bytes"] = args.out.stat().st_size
        report["training_record"] = {"cases": record.cases, "regions": record.regions,
                                     "extent_mm": list(record.extent_mm),
                                     "command": " ".join(["python scripts/train_default_model.py",
                                                          *(argv or sys.argv[1:])])}
        summary.write_text(json.dumps(report, indent=2))
        print(f"training record of {record.cases} cases saved in {args.out} and {summary}")
        return 0
    command = "python scripts/train_default_model.py " + " ".join(argv or sys.argv[1:])
    result = build_model(BuildModelRequest(
        dataset, args.work / "fold_0", tuple(plans(args.scale)), name="hn-phantom-default",
        model_path=args.out, fold=0, folds=5,
        info={"command": command.strip(), "phantom_seeds": [FIRST_CASE_SEED,
                                                            FIRST_CASE_SEED + args.cases - 1],
              "seed": SEED, "torch_threads": args.threads}), progress=_log)
    seconds = round(time.perf_counter() - started, 1)
    report = {"model": str(args.out.name), "size_bytes": args.out.stat().st_size,
              "seconds": seconds, "info": result.model.info, "rule": result.model.rule,
              "largest_component": result.model.largest_component,
              "validation_dice": result.validation["member_dice"]}
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    print(result.model.rule_table())
    print(f"model written to {args.out} ({report['size_bytes'] / 1e6:.1f} MB) in {seconds:.0f} s")
    return 0


def _log(report: Progress) -> None:
    """Stage changes and every 50th training step, one line each (long runs, log files)."""
    if "step" not in report.message or report.message.split()[1].endswith(("00", "50")):
        print(f"{report.fraction:6.1%} {report.stage} {report.message}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
