"""Seed 002, table 2.1: the cumulative ablation of the 3-D U-Net on cervical-cancer CTV.

Rows (each the same ``UNet3D`` class with flags, trained with the same engine, splits and
seeds): baseline (cross-entropy) -> +residual -> +residual+SE -> +residual+SE+cycle (recurrent
refinement, the loss on every pass) -> +residual+SE+cycle+Dice loss (Dice + CE). 3-fold
cross-validation by case on female pelvis phantoms (every case carries a CTV); each fold's best
checkpoint contours its held-out cases, the prediction is mapped back onto the source grid,
and the CTV Dice is computed there. Paired Wilcoxon signed-rank tests compare every row with
the baseline over the held-out cases.

CPU default (about 25 min on 2 cores): the source's architecture at half its channel widths
(8/16/32/48/64), 120 steps per fold, lr 5e-4 (the source ran up to 100 000 iterations at 1e-4;
at 1e-4 a 120-step run barely leaves zero):

    python experiments/table21_ablation.py

Full size on a GPU (the source: 340 cases, 72 x 256 x 256, channels 16/32/64/96/128, lr 1e-4):

    python experiments/table21_ablation.py --cases 60 --shape 256x256x64 --patch 64x128x128 \\
        --width 1 --lr 1e-4 --epochs 200 --steps 250 --device cuda \\
        --out experiments/results/table21_gpu

Writes ``table21.md``, ``table21.csv`` (per-case rows of every model), ``table21.png`` (box
plots of CTV Dice per row) and ``table21_run.json`` (command, settings, run time) to --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from autocontour.artifacts import load_trained_network
from autocontour.data.folder import DatasetFolder
from autocontour.data.importer import import_dataset
from autocontour.evaluation.plots import boxplot_per_organ
from autocontour.evaluation.report import evaluate_case, markdown_table, write_csv
from autocontour.evaluation.stats import paired_wilcoxon
from autocontour.io.volume import LabelMap
from autocontour.models.inferer import SlidingWindowInferer
from autocontour.organs import PELVIS
from autocontour.phantoms.export import write_cases
from autocontour.training import TrainConfig, run_folds

FOLDS = 3
SOURCE_DICE = [0.747, 0.753, 0.755, 0.757, 0.763]  # seed 002, table 2.1 (340 real CTV cases)
ROWS = [
    ("U-Net (baseline, CE)", {}, "ce"),
    ("+residual", {"residual": True}, "ce"),
    ("+residual+SE", {"residual": True, "se": True}, "ce"),
    ("+residual+SE+cycle", {"residual": True, "se": True, "cycle_steps": 1}, "ce"),
    ("+residual+SE+cycle+Dice loss", {"residual": True, "se": True, "cycle_steps": 1}, "dicece"),
]


def _xyz(text: str) -> tuple[int, int, int]:
    """'64x64x32' (X x Y x Z) -> (z, y, x)."""
    x, y, z = (int(v) for v in text.lower().split("x"))
    return z, y, x


def build_dataset(work: Path, cases: int, shape: tuple[int, int, int], seed: int) -> Path:
    """Female pelvis phantoms (CTV in every case) imported into a data set with 3-fold splits."""
    src, ds = work / "phantoms", work / "dataset"
    write_cases("pelvis", cases, src, seed=seed, shape=shape, sex="female", dicom=False,
                progress=False)
    import_dataset(src, ds, organs=PELVIS, layout="nifti", progress=False)  # + fingerprint
    DatasetFolder(ds).make_splits(FOLDS, seed=seed, overwrite=True)
    return ds


def train_row(ds: Path, out: Path, kwargs: dict, loss: str, args: argparse.Namespace) -> None:
    config = TrainConfig.from_dict({
        "dataset": str(ds), "out": str(out),
        "network": {"name": "UNet3D", "kwargs": {
            "channels": [max(1, round(c * args.width)) for c in (16, 32, 64, 96, 128)],
            **kwargs}},
        "recipe": "fingerprint", "patch_size": list(args.patch), "batch_size": 2,
        "loss": loss, "lr": args.lr, "epochs": args.epochs, "steps_per_epoch": args.steps,
        "val_every": 1, "folds": FOLDS, "seed": args.seed, "device": args.device,
        "num_workers": 0, "amp": args.device == "cuda",
        "sampling": {"foreground_fraction": 0.5},
    })
    run_folds(config, "all", progress=False)


@torch.no_grad()
def held_out_rows(ds: Path, run: Path, model: str, device: str) -> list[dict]:
    """CTV rows of every held-out case, predicted by its fold's best checkpoint."""
    folder = DatasetFolder(ds)
    cache = folder.cache()
    splits = folder.splits(FOLDS)
    rows = []
    for fold, split in enumerate(splits):
        trained = load_trained_network(run / f"fold_{fold}" / "best.pt", device)
        net, recipe, organs = trained.net, trained.recipe, trained.organs
        for cid in split["val"]:
            image, truth = cache.load(cid)
            prepared = recipe.apply(image)
            x = torch.from_numpy(np.asarray(prepared.image.array, np.float32))[None, None]
            logits = SlidingWindowInferer(trained.config.patch_size).logits(net, x.to(device))
            on_grid = LabelMap(logits.argmax(0).numpy().astype(np.uint8),
                               prepared.image.geometry, organs=organs)
            pred = recipe.invert_labels(on_grid, prepared.record)
            for row in evaluate_case(pred.array, truth.array, truth.spacing,
                                     [("CTV", PELVIS.by_name("CTV").label)], case=cid):
                rows.append({"model": model, "fold": fold, **row})
    return rows


def report(rows: list[dict], out: Path, seconds: float, args: argparse.Namespace) -> str:
    models = [name for name, _, _ in ROWS]
    by_model = {m: {r["case"]: r["dice"] for r in rows if r["model"] == m} for m in models}
    header = ["model", *[f"fold {k}" for k in range(FOLDS)], "mean ± sd over folds",
              "mean over cases", "Wilcoxon p vs baseline", "source (seed 002)"]
    body = []
    for i, model in enumerate(models):
        per_fold = [np.mean([r["dice"] for r in rows if r["model"] == model and r["fold"] == k])
                    for k in range(FOLDS)]
        test = paired_wilcoxon(by_model[model], by_model[models[0]]) if i else None
        body.append([model, *[f"{d:.3f}" for d in per_fold],
                     f"{np.mean(per_fold):.3f} ± {np.std(per_fold, ddof=1):.3f}",
                     f"{np.mean(list(by_model[model].values())):.3f}",
                     "-" if test is None else (f"{test.p:.3g} (n={test.n})" if test.p == test.p
                                               else test.note),
                     f"{SOURCE_DICE[i]:.3f}"])
    table = markdown_table(header, body)
    settings = (f"{args.cases} female pelvis phantoms ({args.shape_text}, seed {args.seed}), "
                f"{FOLDS}-fold CV by case, patch {'x'.join(map(str, args.patch))} (z,y,x), "
                f"{args.epochs} epochs x {args.steps} steps, batch 2, Adam {args.lr:g}, channels "
                f"x{args.width:g} of 16/32/64/96/128, "
                f"device {args.device}; run time {seconds / 60:.1f} min")
    text = (f"# Seed 002 table 2.1 on phantoms: CTV Dice of the cumulative 3-D U-Net ablation\n\n"
            f"{settings}\n\nCommand: `{' '.join(sys.argv)}`\n\n{table}\n")
    (out / "table21.md").write_text(text)
    write_csv(rows, out / "table21.csv")
    runs = {m: [{**r, "organ": "CTV"} for r in rows if r["model"] == m] for m in models}
    boxplot_per_organ(runs, out / "table21.png", metrics=("dice", "hd95_mm"))
    (out / "table21_run.json").write_text(json.dumps(
        {"command": " ".join(sys.argv), "settings": settings, "seconds": round(seconds, 1)},
        indent=2))
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--shape", default="64x64x32", help="phantom grid X x Y x Z")
    parser.add_argument("--patch", default="32x64x64", help="patch Z x Y x X (multiples of 32)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--width", type=float, default=0.5, help="channel-width multiplier")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=2002)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", default="experiments/results/table21")
    parser.add_argument("--work", default=None, help="scratch folder (default: <out>/work)")
    args = parser.parse_args()
    args.shape_text, args.shape = args.shape, _xyz(args.shape)
    args.patch = tuple(int(v) for v in args.patch.lower().split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else out / "work"
    if work.exists():
        shutil.rmtree(work)
    start = time.perf_counter()
    ds = build_dataset(work, args.cases, args.shape, args.seed)
    rows = []
    for name, kwargs, loss in ROWS:
        run = work / "runs" / name.replace("+", "p").replace(" ", "_").replace("(", "")\
            .replace(")", "").replace(",", "")
        t = time.perf_counter()
        train_row(ds, run, kwargs, loss, args)
        rows += held_out_rows(ds, run, name, args.device)
        print(f"{name}: trained and evaluated in {time.perf_counter() - t:.0f} s", flush=True)
    print(report(rows, out, time.perf_counter() - start, args))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
