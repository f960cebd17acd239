"""Train the models shipped with autocontour from phantoms, on CPU, from a fixed seed.

    python scripts/train_default_model.py                 # head & neck, ~71 min on 2 CPU cores
    python scripts/train_default_model.py --site pelvis   # pelvis

Each writes ``autocontour/assets/<name>.pt`` (float16 weights, the rule, the training record)
and ``<name>.json`` (rule, validation Dice/HD95, times, the command).

**Head and neck** (``hn_phantom_default``): 40 head & neck phantoms (seeds 1000-1039; the demo
uses 90001, never trained on), the combined model of seed 004 (spec B4) on fold 0 of a 5-fold
split (32 training, 8 validation cases): a 2-D residual U-Net on axial slices, a 3-D U-Net on the
body crop and a 3-D-small U-Net on a 16x64x64 box around the optic chiasm and pituitary, trained
on those two organs alone (the others are background to it, as in seed 004).

**Pelvis** (``pelvis_phantom_default``): 40 pelvis phantoms of both sexes (seeds 2000-2039),
the bladder, rectum, femoral heads, prostate (men) and cervical-cancer CTV (women). Members: seed
000's 2-D residual U-Net on axial slices (spec B1) and seed 002's CTV network (spec B2/B3), a
3-D U-Net with the ablation's best switches (residual blocks, SE, one recurrent refinement pass,
Dice + cross-entropy). Recipe: seed 002's window (stored values 0..1600, i.e. -1024..576 HU at
the usual intercept) scaled to 0..1, but applied in HU, so a scanner's intercept does not move it,
and resampling to a fixed spacing (the phantoms' own) instead of seed 002's fixed shape, so a
CT's field of view does not change the voxel size the network sees.

For both, the rule (which member each organ comes from) and the largest-component switches are
chosen on the validation cases. Networks are small so that the files stay a few MB and CPU
inference stays fast. A second run re-uses finished members (``--work``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from autocontour.data.folder import DatasetFolder
from autocontour.data.importer import import_dataset
from autocontour.data.recipes import Recipe
from autocontour.data.steps_body import CropBody
from autocontour.data.steps_grid import Resample
from autocontour.data.steps_intensity import ClipIntensity, ScaleToUnit, ZScore
from autocontour.inference.combined import SMALL_ROI_ORGANS, SMALL_ROI_SIZE, RoiSpec
from autocontour.inference.model_file import load_model
from autocontour.jobs import BuildModelRequest, MemberPlan, Progress, build_model
from autocontour.jobs.model_building import update_training_record
from autocontour.organs import HEAD_NECK, HEAD_NECK_SMALL, PELVIS, OrganSet
from autocontour.phantoms import make_case
from autocontour.phantoms.export import write_cases

ASSETS = Path(__file__).resolve().parent.parent / "autocontour" / "assets"
SEED, CASES = 0, 40

AUGMENT = {"rotation_deg": 10.0, "affine_prob": 0.3, "elastic_prob": 0.0, "gamma_prob": 0.2,
           "noise_prob": 0.2, "flip_axes": [], "lr_mirror": "swap", "lr_mirror_prob": 0.5}
COMMON = {"recipe": "fingerprint",
          "loss": {"name": "dicece", "include_background": False, "batch_dice": True},
          "lr": 2.0e-3, "plateau": {"factor": 0.5, "patience": 2}, "min_lr": 1.0e-5,
          "augmentation": AUGMENT, "amp": False, "seed": SEED, "num_workers": 1}


def _epochs(n: int, scale: float) -> int:
    return max(1, round(n * scale))


#: The organs the head-and-neck model's member on the 1 mm grid contours (9-60 voxels each on
#: the 2 mm grid: the small organs that lose most when a 0.5 mm CT is resampled to 2 mm).
FINE_ORGANS = HEAD_NECK_SMALL
FINE_MARGIN_MM = 10.0


def hn_plans(scale: float = 1.0, work: Path | None = None) -> list[MemberPlan]:
    """Head and neck: 2-D, 3-D and 3-D-small members and, given the build folder ``work``
    (whose ``dataset_fine`` holds the same phantoms rendered at 1 mm), the 1 mm member;
    ``scale`` multiplies the epochs."""
    small_weights = {o: (1.0 if o in SMALL_ROI_ORGANS else 0.0) for o in HEAD_NECK.names}
    fine_weights = {o: (1.0 if o in FINE_ORGANS else 0.0) for o in HEAD_NECK.names}
    fine = [] if work is None else [
        MemberPlan("3d_fine", {**COMMON, "network": {"name": "UNet3D", "kwargs": {
                       "channels": [8, 16, 32, 48],
                       "strides": [[1, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]]}},
                   "patch_size": [16, 96, 96], "batch_size": 2,
                   # 1000 steps learnt only the optic nerves, chiasm and pituitary (Dice 0 for
                   # the lenses, inner ears and cochleae on validation); 2000 steps added the
                   # inner ears and cochleae: the small lateral organs learn late
                   "epochs": _epochs(30, scale), "steps_per_epoch": 100,
                   "val_every": _epochs(10, scale), "organs": list(FINE_ORGANS),
                   "sampling": {"foreground_fraction": 0.9, "organ_sampling": fine_weights}},
                   roi=RoiSpec((16, 96, 96), FINE_ORGANS, "2d", FINE_MARGIN_MM),
                   dataset=work / "dataset_fine")]
    return [
        MemberPlan("2d", {**COMMON, "network": {"name": "ResUNet2D",
                                                "kwargs": {"channels": [16, 32, 64, 128, 192]}},
                          "patch_size": [1, 96, 96], "batch_size": 16,
                          "epochs": _epochs(14, scale), "steps_per_epoch": 100, "val_every": 4}),
        MemberPlan("3d", {**COMMON, "network": {"name": "UNet3D",
                                                "kwargs": {"channels": [8, 16, 32, 48, 64]}},
                          "patch_size": [32, 96, 96], "batch_size": 2,
                          "epochs": _epochs(4, scale), "steps_per_epoch": 100, "val_every": 2}),
        MemberPlan("3d_small", {**COMMON, "network": {"name": "UNet3D", "kwargs": {
                       "channels": [8, 16, 32, 48], "strides": [[2, 2, 2]] * 3 + [[1, 2, 2]]}},
                       "patch_size": list(SMALL_ROI_SIZE), "batch_size": 4,
                       "epochs": _epochs(8, scale), "steps_per_epoch": 100, "val_every": 4,
                       "organs": list(SMALL_ROI_ORGANS),
                       "sampling": {"foreground_fraction": 0.9,
                                    "organ_sampling": small_weights}},
                   roi=RoiSpec(SMALL_ROI_SIZE, SMALL_ROI_ORGANS, "2d")),
        *fine,
    ]


def pelvis_plans(scale: float = 1.0, work: Path | None = None) -> list[MemberPlan]:
    """Pelvis: seed 000's 2-D residual U-Net and seed 002's 3-D CTV U-Net (best switches)."""
    return [
        MemberPlan("2d", {**COMMON, "network": {"name": "ResUNet2D",
                                                "kwargs": {"channels": [16, 32, 64, 96, 128]}},
                          "patch_size": [1, 96, 96], "batch_size": 16,
                          "epochs": _epochs(16, scale), "steps_per_epoch": 100, "val_every": 4}),
        MemberPlan("3d", {**COMMON, "network": {"name": "UNet3D", "kwargs": {
                              "channels": [8, 16, 32, 48, 64], "residual": True, "se": True,
                              "cycle_steps": 1}},
                          "patch_size": [32, 96, 96], "batch_size": 2,
                          "epochs": _epochs(6, scale), "steps_per_epoch": 100, "val_every": 3}),
    ]


@dataclass(frozen=True)
class Site:
    """What one shipped model is trained on and how."""

    model: str            # file stem in autocontour/assets and the model's name
    phantom: str          # phantom site for write_cases
    organs: OrganSet
    first_seed: int       # phantom seeds first_seed .. first_seed + cases - 1
    recipe: Recipe
    plans: Callable[[float, Path | None], list[MemberPlan]]
    fine_pixels: int | None = None  # the same phantoms rendered with N x N slices ...
    fine_recipe: Recipe | None = None  # ... for a member on a finer grid, with its recipe


SITES = {
    "head-neck": Site("hn_phantom_default", "head-neck", HEAD_NECK, 1000, Recipe(
        # the phantoms' own spacing (260 mm / 128 px, 3 mm slices): training data is not
        # interpolated; clinic CTs (0.5-1 mm pixels) are resampled to it
        "hn-phantom-2mm", (Resample(spacing=(2.03125, 2.03125, 3.0)), CropBody(),
                           ClipIntensity(-1000.0, 1500.0),
                           ZScore(mode="foreground", threshold=-500.0))), hn_plans,
        # the same phantoms at 256 x 256 (1.016 mm): the small organs' member
        256, Recipe("hn-phantom-1mm", (Resample(spacing=(1.015625, 1.015625, 3.0)), CropBody(),
                                       ClipIntensity(-1000.0, 1500.0),
                                       ZScore(mode="foreground", threshold=-500.0)))),
    "pelvis": Site("pelvis_phantom_default", "pelvis", PELVIS, 2000, Recipe(
        # the phantoms' own spacing (420 mm / 128 px, 3 mm slices); seed 002's window in HU
        "pelvis-phantom-3mm", (Resample(spacing=(3.28125, 3.28125, 3.0)),
                               CropBody(remove_arms=False),
                               ClipIntensity(-1024.0, 576.0), ScaleToUnit(-1024.0, 576.0))),
        pelvis_plans),
}
#: Kept for callers of the head-and-neck script's names (tests, experiments).
RECIPE = SITES["head-neck"].recipe
FIRST_CASE_SEED = SITES["head-neck"].first_seed
plans = hn_plans


def make_dataset(work: Path, cases: int, site: Site = SITES["head-neck"], *,
                 fine: bool = False) -> Path:
    """Phantoms -> data set (with the site's recipe as its own recipe); re-used when present.

    For a site with a finer grid (``site.fine_pixels``): ``fine`` makes ``dataset_fine``, the
    same seeds rendered with ``fine_pixels`` pixels a side (same field of view and slices),
    with ``site.fine_recipe``; the main data set then mixes the two renderings, every other
    case rendered finer (to be resampled to the model grid by the recipe, as a clinic's CT
    is), so that the model-grid members learn both what a phantom rendered on their grid and
    what a finer CT resampled to it looks like.
    """
    suffix = "_fine" if fine else ""
    recipe = site.fine_recipe if fine else site.recipe
    assert recipe is not None
    folder = DatasetFolder(work / f"dataset{suffix}")
    if folder.saved_recipe() == recipe:  # the import saves the fingerprint's recipe
        return folder.path
    if folder.path.exists():
        shutil.rmtree(folder.path)
    default = make_case(site.phantom, site.first_seed).ct.shape
    fine_shape = None if site.fine_pixels is None else \
        (default[0], site.fine_pixels, site.fine_pixels)
    source = _render(work / f"phantoms{suffix}", site, cases, fine_shape if fine else None)
    if not fine and fine_shape is not None:
        rendered_fine = _render(work / "phantoms_fine", site, cases, fine_shape)
        source = _mix(work / "phantoms_mixed", source, rendered_fine)
    import_dataset(source, folder.path, organs=site.organs)
    folder.save_recipe(recipe)
    return folder.path


def _render(out: Path, site: Site, cases: int, shape: tuple[int, int, int] | None) -> Path:
    """The site's phantoms (seeds from ``site.first_seed``) in ``out``; kept when complete."""
    manifest = out / "phantoms.json"
    if manifest.is_file() and len(json.loads(manifest.read_text())["cases"]) == cases and (
            shape is None or json.loads(manifest.read_text())["shape_zyx"] == list(shape)):
        return out
    if out.exists():
        shutil.rmtree(out)
    write_cases(site.phantom, cases, out, seed=site.first_seed, shape=shape, dicom=False)
    return out


def _mix(out: Path, coarse: Path, fine: Path) -> Path:
    """A phantom folder whose every other case (the 2nd, 4th, ...) is the finer rendering."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    manifest = json.loads((coarse / "phantoms.json").read_text())
    ids = sorted(p.name for p in coarse.iterdir() if p.is_dir())
    for i, case in enumerate(ids):
        (out / case).symlink_to((fine if i % 2 else coarse).resolve() / case,
                                target_is_directory=True)
    manifest["mixed"] = {"fine": ids[1::2], "fine_from": str(fine)}
    (out / "phantoms.json").write_text(json.dumps(manifest, indent=2))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", choices=sorted(SITES), default="head-neck")
    parser.add_argument("--work", type=Path, default=None,
                        help="working folder (phantoms, data set, member runs); "
                             "default runs/<model name>")
    parser.add_argument("--out", type=Path, default=None,
                        help="model file (default autocontour/assets/<model name>.pt)")
    parser.add_argument("--cases", type=int, default=CASES)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every member's epochs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--record-only", action="store_true",
                        help="keep the trained model; only (re)compute its training record "
                             "(body regions, field of view, organ volumes and heights of the "
                             "training cases, for the anatomy checks) and save it in --out")
    parser.add_argument("--describe-only", action="store_true",
                        help="touch no model: only rewrite its JSON description from the model "
                             "file (organs, training record)")
    parser.add_argument("--fresh-test", type=Path, default=None, metavar="SUMMARY",
                        help="with --describe-only: record the fresh-test Dice of this "
                             "summary.json of experiments/unseen_phantoms.py (its 'shipped' "
                             "model) in the description, for `autocontour model list`")
    args = parser.parse_args(argv)
    site = SITES[args.site]
    work = args.work or Path("runs") / site.model
    out = args.out or ASSETS / f"{site.model}.pt"
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    command = " ".join(["python scripts/train_default_model.py", *(argv or sys.argv[1:])])
    summary = out.with_suffix(".json")
    if args.describe_only:
        report = json.loads(summary.read_text()) if summary.is_file() else {}
        if args.fresh_test is not None:
            report["fresh_test"] = fresh_test(args.fresh_test)
    elif args.record_only:
        update_training_record(out, make_dataset(work, args.cases, site))
        report = json.loads(summary.read_text()) if summary.is_file() else {}
    else:
        dataset = make_dataset(work, args.cases, site)
        if site.fine_recipe is not None:
            make_dataset(work, args.cases, site, fine=True)
        plans = site.plans(args.scale, work if site.fine_recipe is not None else None)
        result = build_model(BuildModelRequest(
            dataset, work / "fold_0", tuple(plans), name=site.model.replace("_", "-"),
            model_path=out, fold=0, folds=5,
            info={"command": command, "site": site.phantom,
                  "phantom_seeds": [site.first_seed, site.first_seed + args.cases - 1],
                  "seed": SEED, "torch_threads": args.threads}), progress=_log)
        report = {"model": out.name, "seconds": round(time.perf_counter() - started, 1),
                  "info": result.model.info, "rule": result.model.rule,
                  "largest_component": result.model.largest_component,
                  "validation_dice": result.validation["member_dice"]}
        print(result.model.rule_table())
    model = load_model(out)
    record = model.expect.record
    report["site"] = site.phantom
    report["organs"] = model.organs.names
    report["size_bytes"] = out.stat().st_size
    if not args.describe_only:
        report["training_record"] = {"cases": record.cases, "regions": record.regions,
                                     "extent_mm": list(record.extent_mm), "command": command}
    report["training_record"]["record"] = record.to_dict()
    summary.write_text(json.dumps(report, indent=2))
    if args.describe_only:
        print(f"description of {out} ({record.cases} training cases) written to {summary}")
    else:
        print(f"model and training record of {record.cases} cases written to {out} "
              f"({report['size_bytes'] / 1e6:.1f} MB) and {summary}")
    return 0


def fresh_test(path: Path) -> dict[str, object]:
    """The shipped model's mean Dice from a summary.json of experiments/unseen_phantoms.py."""
    summary = json.loads(path.read_text())
    scored = summary["models"]["shipped"]
    return {"mean_dice": round(scored["mean_dice"], 4), "cases": len(summary["cases"]),
            "seeds": summary["meta"]["seeds"], "source": path.as_posix(),
            "command": summary["meta"]["command"]}


def _log(report: Progress) -> None:
    """Stage changes and every 50th training step, one line each (long runs, log files)."""
    if "step" not in report.message or report.message.split()[1].endswith(("00", "50")):
        print(f"{report.fraction:6.1%} {report.stage} {report.message}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
