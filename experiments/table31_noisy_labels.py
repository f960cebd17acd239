"""Seed 002, table 3.1 and figure 3.4: training on noisy labels with the QAM and the OCM.

The source's design (chapter 3.3), on chest radiograph phantoms: noise fraction {0, 25, 50,
75 %} x noise level {"low" 1-8 px, "high" 5-13 px} x method {baseline, QAM, QAM+OCM}; Dice per
structure on clean test labels; and its figure 3.4, the mean weight the QAM gives clean and
noisy training samples over training.

Data. The source used JSRT (247 chest X-rays resized to 256 x 256; lungs, heart and clavicles;
165 training / 82 test images, a random split; its text calls the third structure ribs, its
table clavicles, which is what JSRT's masks hold). JSRT is not available here: we use the project's
2-D chest radiograph phantom (``autocontour.phantoms.chest``, the same five structures Lung_L/R,
Heart, Clavicle_L/R) with the same split sizes, seeds 31000 on (training first, then test). The
phantoms are rendered at the source's 256 x 256 (1.4 mm pixels), written as NIfTI and imported
with ``import_dataset`` into ``<work>/source`` (the clean data set; the test cases are read from
it). One noise setting and seed gives one training data set ``<work>/data/<setting>-s<seed>``
holding only the training cases, a ``--fraction`` of them with noisy labels (test cases never
enter it, so their labels stay clean), written with ``DatasetFolder``; its recipe resamples to
``--size`` (image linear, labels nearest), so the noise is made at 256 x 256 in the source's
pixels whatever size the network trains at, and predictions are mapped back to 256 x 256 and
scored there. Its ``noise.json``, copied into every run folder, records which cases are noisy
and how; the training data set is removed once its runs are scored (``--keep-data`` keeps it;
it is remade identically from the seed when a run needs it again).

Noise (spec C1, ``autocontour.data.label_noise``). The source: "n_i pixels of expansion or
shrinkage, n_i drawn uniformly from the range", i the sample, and its figure 3.1 shows whole label
maps shrunk and expanded. So by default a noisy case draws one operation (dilate or erode, 50/50)
and one n for all its structures (``--draw sample``; ``--draw structure`` gives each structure
its own). The "low" range is 1-8 px (the source's table; its text says 0-8), "high" 5-13 px.
Exactly round(fraction x training cases) cases are noisy, drawn with the run's seed; every
method of one seed trains on the same noisy data set. An erosion is capped so that a structure
keeps at least one pixel (a clavicle is about 10 px thick at 256 x 256).

Training (``Trainer`` with ``TrainConfig`` dicts; the three methods differ only in
``sample_weighting``). A case is one radiograph and one training sample: the patch is the whole
--size x --size image (``foreground_fraction`` 0). A batch is --batch cases [32, the source]
drawn uniformly with replacement from the training cases (a case can appear twice in a batch);
the QAM's softmax runs over that batch. An epoch is --steps steps (default ceil(train / batch):
about one pass over the training cases). The segmenter is ``ResUNet2D``, Adam at --lr with no
plateau reduction and no augmentation (the source names none for this experiment), and no
validation set (the source had none): the last checkpoint is scored. QAM: Φ with Adam at
--qam-lr; QAM+OCM adds λ·tanh with λ = 2. The runs' weights are logged per epoch and case
(``sample_weights.jsonl``); figure 3.4 splits them by whether the case's label was corrupted
(and the noisy ones by dilation or erosion).

Loss. The source's is binary cross entropy (``--loss bce``). The CPU default is Dice + CE
(``dicece``): in 150-step smoke runs at 64 x 64 (40 training cases, one seed) BCE left both
clavicles at Dice 0 (50 % high noise; lungs 0.87, heart 0.67), Dice + CE reached 0.82 on the
left clavicle (0 % noise), so only Dice + CE gives the clavicle column something to compare in
an hour. The same BCE smoke run also showed the QAM + OCM favouring the *eroded* noisy cases
(mean weight at epoch 25: eroded 2.84, dilated 0.09, clean 0.10): with BCE a label with less
foreground gives a lower loss, and Σ Θ_i L_i rewards weighting the lowest losses; the table's
weight column shows which way a run went.

At 0 % the two levels are the same data, so it is run once ("-" as level). ``--seeds`` repeats
every run with another seed (noise draw, initial weights, batches): the table gives the mean ±
sd over seeds of the test-set mean Dice.

Default (CPU, about an hour on this 2-core machine). Timed here (``Trainer``, one torch thread,
with a long training running on the other core): a step of ResUNet2D 8/16/32/64 on batch 32 of
64 x 64 images takes 0.30 s, plain or with the QAM (Φ is strided and small); building a training
data set (about 2 s, shared by the three methods), preprocessing, and scoring the 82 test
images (0.015 s each) add about 3 s per run; the 247 phantoms once about 50 s. The grid is 7
noise settings (0 % once, 3 fractions x 2 levels) x 3 methods = 21 runs per seed; with 3 seeds
63 runs. 180 steps per run (30 epochs of 6 steps): 63 x (180 x 0.30 + 3) s = 63 x 57 s = 60 min,
plus 1 min of phantoms (--threads 2 on an idle machine is faster)::

    python experiments/table31_noisy_labels.py

Full size on a GPU (the source: 256 x 256, batch 32, BCE, QAM lr 1e-4, λ = 2; it gives no epoch
count for this experiment, its chapter-2 runs stopped at 100 000 iterations): a 5-level
ResUNet2D, Adam 1e-4 (seed 002's U-Net), 500 epochs of 6 steps (3 000 steps), 3 seeds; not
timed (no GPU was at hand)::

    python experiments/table31_noisy_labels.py --size 256 --channels 32,64,128,256,512 \\
        --loss bce --epochs 500 --lr 1e-4 --qam-lr 1e-4 --device cuda --threads 4 \\
        --work runs/table31_gpu --out experiments/results/table31_gpu

An interrupted grid continues where it stopped when run again with the same --work: finished
runs (``score.json`` in the run folder) are skipped, a run cut off in training resumes from its
last checkpoint. Settings that change the results (size, split, epochs, steps, batch, learning
rates, channels, noise draw) are kept in ``<work>/grid.json``; a later call with others is
refused. More seeds, fractions, levels or methods may be added later in the same folder.

Writes to --out: ``table.md`` (our mean ± sd over seeds beside the source's table 3.1, per
structure Dice, the weights the QAM gave clean and noisy cases, the command and the time),
``summary.json`` (every run and every aggregate) and ``weights.png`` (figure 3.4: mean ± sd of
the normalised weight of clean and noisy training cases per epoch, one panel per noise setting
and QAM method; 1.0 = an average sample).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

FIRST_SEED = 31000
MAX_CASES = 2000  # phantom seeds 31000-32999 belong to this experiment
SOURCE_SIZE = 256
FRACTIONS = (0.0, 0.25, 0.5, 0.75)
LEVELS = ("low", "high")
METHODS = ("baseline", "qam", "qam+ocm")
METHOD_ALIASES = {"qam_ocm": "qam+ocm", "qam-ocm": "qam+ocm", "qamocm": "qam+ocm",
                  "ocm": "qam+ocm", "base": "baseline", "none": "baseline", "plain": "baseline"}
OCM_LAMBDA = 2.0
GROUPS = {"lungs": ("Lung_L", "Lung_R"), "heart": ("Heart",),
          "clavicles": ("Clavicle_L", "Clavicle_R")}
STRUCTURES = ("Lung_L", "Lung_R", "Heart", "Clavicle_L", "Clavicle_R")
#: Seed 002, table 3.1 (JSRT, 256 x 256, 165 train / 82 test): Dice of lungs, heart, clavicles
#: and their mean, by (noise fraction, level, method); level None at 0 % noise.
SOURCE_TABLE: dict[tuple[float, str | None, str], tuple[float, float, float, float]] = {
    (0.0, None, "baseline"): (0.943, 0.941, 0.862, 0.915),
    (0.0, None, "qam"): (0.939, 0.923, 0.831, 0.898),
    (0.0, None, "qam+ocm"): (0.941, 0.940, 0.852, 0.911),
    (0.25, "low", "baseline"): (0.868, 0.888, 0.538, 0.765),
    (0.25, "low", "qam"): (0.925, 0.926, 0.748, 0.866),
    (0.25, "low", "qam+ocm"): (0.936, 0.925, 0.823, 0.895),
    (0.5, "low", "baseline"): (0.873, 0.884, 0.539, 0.765),
    (0.5, "low", "qam"): (0.922, 0.925, 0.726, 0.857),
    (0.5, "low", "qam+ocm"): (0.936, 0.929, 0.828, 0.895),
    (0.75, "low", "baseline"): (0.820, 0.828, 0.512, 0.720),
    (0.75, "low", "qam"): (0.898, 0.825, 0.536, 0.753),
    (0.75, "low", "qam+ocm"): (0.937, 0.939, 0.809, 0.895),
    (0.25, "high", "baseline"): (0.865, 0.857, 0.422, 0.715),
    (0.25, "high", "qam"): (0.893, 0.835, 0.615, 0.781),
    (0.25, "high", "qam+ocm"): (0.935, 0.935, 0.801, 0.890),
    (0.5, "high", "baseline"): (0.755, 0.807, 0.393, 0.652),
    (0.5, "high", "qam"): (0.828, 0.853, 0.491, 0.714),
    (0.5, "high", "qam+ocm"): (0.942, 0.942, 0.853, 0.912),
    (0.75, "high", "baseline"): (0.745, 0.738, 0.381, 0.621),
    (0.75, "high", "qam"): (0.770, 0.772, 0.366, 0.636),
    (0.75, "high", "qam+ocm"): (0.938, 0.937, 0.801, 0.892),
}
#: The table's first row: InvertedNet [31] (another paper's method) on the clean training set.
SOURCE_INVERTEDNET = (0.972, 0.935, 0.902, 0.936)
#: The settings that change what a run computes; a work folder keeps one set of them.
GRID_KEYS = ("size", "train", "test", "epochs", "steps", "batch", "lr", "qam_lr", "channels",
             "draw", "loss")


class UsageError(Exception):
    """A bad option: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


@dataclass(frozen=True)
class Setting:
    """One noise setting: a fraction of the training cases and a level (None at 0 %)."""

    fraction: float
    level: str | None

    @property
    def name(self) -> str:
        pct = f"f{round(self.fraction * 100):02d}"
        return pct if self.level is None else f"{pct}-{self.level}"

    @property
    def label(self) -> str:
        return (f"{self.fraction * 100:g} %", "-" if self.level is None else
                {"low": "1-8 px", "high": "5-13 px"}[self.level])


def settings(fractions: Sequence[float], levels: Sequence[str]) -> list[Setting]:
    """The grid's noise settings: 0 % once, then every fraction > 0 at every level."""
    out = [Setting(0.0, None)] if 0.0 in fractions else []
    out += [Setting(f, lv) for lv in levels for f in sorted(fractions) if f > 0.0]
    return out


# --- options ---------------------------------------------------------------------------------

def build_parser() -> _Parser:
    p = _Parser(prog="table31_noisy_labels", description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=64,
                   help="training image size (the phantoms and the scoring are 256 x 256)")
    p.add_argument("--train", type=int, default=165, help="training cases [165, JSRT split]")
    p.add_argument("--test", type=int, default=82, help="test cases [82]")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--steps", type=int, default=None,
                   help="steps per epoch (default ceil(train / batch))")
    p.add_argument("--batch", type=int, default=32, help="cases per batch [32, the source]")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--fractions", nargs="+", default=[str(f) for f in FRACTIONS],
                   help="noise fractions in 0..1 [0 0.25 0.5 0.75]")
    p.add_argument("--levels", nargs="+", default=list(LEVELS), help="low (1-8 px), high (5-13 px)")
    p.add_argument("--methods", nargs="+", default=list(METHODS),
                   help="baseline, qam, qam+ocm")
    p.add_argument("--lr", type=float, default=1e-3, help="the segmenter's Adam learning rate")
    p.add_argument("--qam-lr", type=float, default=3e-4,
                   help="Φ's Adam learning rate (the source's 1e-4 moves little in short runs)")
    p.add_argument("--channels", default="8,16,32,64", help="ResUNet2D channels per level")
    p.add_argument("--loss", default="dicece",
                   help="segmentation loss: dicece (CPU default) or bce (the source's)")
    p.add_argument("--draw", default="sample",
                   help="noise draw: 'sample' (one op and n per case) or 'structure'")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--work", type=Path, default=Path("runs/table31"),
                   help="data sets and run folders (kept, so a grid can continue)")
    p.add_argument("--out", type=Path, default=Path("experiments/results/table31"))
    p.add_argument("--keep-data", action="store_true",
                   help="keep each noise setting's training data set (about 70 MB at 165 "
                        "cases; by default removed once its runs are scored, and remade the "
                        "same from the seed when needed)")
    return p


def check_args(args: argparse.Namespace) -> argparse.Namespace:
    """Validate and normalise the options in place.

    Raises:
        UsageError: the first bad option, named, on one line.
    """
    from autocontour.artifacts.config import LOSSES
    from autocontour.errors import UnknownOptionError, look_up_option

    def choose(what: str, value: str, choices: Sequence[str],
               aliases: dict[str, str] | None = None) -> str:
        try:
            return look_up_option(what, value, choices, normalise=lambda s: s.strip().lower(),
                                  aliases=aliases)
        except UnknownOptionError as exc:
            raise UsageError(str(exc)) from None

    fractions = []
    for text in args.fractions:
        try:
            value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
        except ValueError:
            raise UsageError(f"--fractions: {text!r} is not a number") from None
        if not 0.0 <= value <= 1.0:
            raise UsageError(f"--fractions: a noise fraction must lie in 0..1 (25 % is 0.25), "
                             f"got {text}")
        fractions.append(value)
    args.fractions = sorted(set(fractions))
    args.levels = list(dict.fromkeys(choose("noise level", v, LEVELS) for v in args.levels))
    args.methods = list(dict.fromkeys(choose("method", v, METHODS, METHOD_ALIASES)
                                      for v in args.methods))
    args.draw = choose("noise draw", args.draw, ("sample", "structure"))
    args.loss = choose("loss", args.loss, LOSSES)
    args.device = choose("device", args.device, ("cpu", "cuda"))
    try:
        args.channels = [int(c) for c in str(args.channels).split(",")]
    except ValueError:
        raise UsageError(f"--channels: give channel counts like 8,16,32,64, got "
                         f"{args.channels!r}") from None
    if len(args.channels) < 2 or min(args.channels) < 1:
        raise UsageError(f"--channels: at least two positive counts, got {args.channels}")
    multiple = 2 ** (len(args.channels) - 1)
    if not 32 <= args.size <= SOURCE_SIZE or args.size % multiple:
        raise UsageError(f"--size must lie in 32..{SOURCE_SIZE} (the phantoms are made at "
                         f"{SOURCE_SIZE} x {SOURCE_SIZE} and scaled down) and be a multiple of "
                         f"{multiple} ({len(args.channels) - 1} down-samplings), got {args.size}")
    if args.train < 2:
        raise UsageError(f"--train must be at least 2, got {args.train}")
    if args.test < 1:
        raise UsageError(f"--test must be at least 1, got {args.test}")
    if args.train + args.test > MAX_CASES:
        raise UsageError(f"--train + --test = {args.train + args.test} exceeds the {MAX_CASES} "
                         f"phantoms this experiment can make (seeds {FIRST_SEED}-"
                         f"{FIRST_SEED + MAX_CASES - 1})")
    needs_two = any(m != "baseline" for m in args.methods)
    if args.batch < (2 if needs_two else 1):
        raise UsageError(f"--batch must be at least 2 (the QAM's softmax runs over a batch), got "
                         f"{args.batch}")
    for name in ("epochs", "threads"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.steps is None:
        args.steps = math.ceil(args.train / args.batch)
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    for name in ("lr", "qam_lr"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
    if any(s < 0 for s in args.seeds):
        raise UsageError(f"--seeds must be non-negative, got {args.seeds}")
    args.seeds = list(dict.fromkeys(args.seeds))
    if not settings(args.fractions, args.levels):
        raise UsageError("--fractions/--levels give no noise setting")
    if args.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device here")
    return args


# --- data ------------------------------------------------------------------------------------

def case_ids(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(training, test) case IDs: seeds FIRST_SEED.. for training, then the test cases."""
    ids = [f"cx_s{FIRST_SEED + i:04d}" for i in range(args.train + args.test)]
    return ids[:args.train], ids[args.train:]


def build_source(work: Path, args: argparse.Namespace) -> Path:
    """The clean 256 x 256 phantoms as NIfTI, imported into ``<work>/source`` (once)."""
    from autocontour.data.importer import import_dataset
    from autocontour.organs import CHEST
    from autocontour.phantoms.export import write_cases

    phantoms, ds = work / "phantoms", work / "source"
    if not (phantoms / "phantoms.json").is_file():
        shutil.rmtree(phantoms, ignore_errors=True)
        write_cases("chest", args.train + args.test, phantoms, seed=FIRST_SEED,
                    shape=(1, SOURCE_SIZE, SOURCE_SIZE), dicom=False, progress=False)
    if not (ds / "manifest.json").is_file():
        import_dataset(phantoms, ds, organs=CHEST, layout="nifti", progress=False,
                       modality="DX", fingerprint=False)
    return ds


def data_folder(work: Path, setting: Setting, seed: int) -> Path:
    return work / "data" / f"{setting.name}-s{seed}"


def training_set(work: Path, source: Path, setting: Setting, seed: int,
                 args: argparse.Namespace) -> Path:
    """The training cases of ``setting`` and ``seed``: a data set with noisy labels (made once).

    Only the training cases are in it; ``noise.json`` (written last, so its presence means the
    data set is whole) records which are noisy. Its recipe resamples to ``--size``.
    """
    from autocontour.data.folder import DatasetFolder, write_json
    from autocontour.data.label_noise import LabelNoiseConfig, apply_label_noise
    from autocontour.data.recipes import Recipe
    from autocontour.data.steps_grid import Resample
    from autocontour.io.volume import LabelMap
    from autocontour.organs import CHEST

    ds = data_folder(work, setting, seed)
    if (ds / "noise.json").is_file():
        return ds
    shutil.rmtree(ds, ignore_errors=True)
    train, _ = case_ids(args)
    clean = DatasetFolder(source).cache()
    cases = {cid: clean.load(cid) for cid in train}
    config = LabelNoiseConfig(setting.fraction, setting.level or "low", unit="case", seed=seed,
                              draw=args.draw)
    noisy, record = apply_label_noise({c: labels.array for c, (_, labels) in cases.items()},
                                      CHEST, config)
    folder = DatasetFolder(ds)
    with folder.cache_writer(CHEST) as writer:
        for cid, (image, labels) in cases.items():
            writer.add(cid, [image], LabelMap(noisy[cid], labels.geometry, organs=CHEST),
                       source=f"{source}:{cid} ({'noisy' if record.is_noisy(cid) else 'clean'})")
    folder.write_manifest()
    folder.save_recipe(Recipe(f"table31-{args.size}", (Resample(shape=(1, args.size, args.size)),)))
    # No validation set (the source had none): fold 0 trains on every case; fold 1 is unused.
    folder.save_splits([{"train": train, "val": []}, {"train": train, "val": []}])
    write_json(ds / "noise.json", record.to_dict())
    return ds


# --- runs ------------------------------------------------------------------------------------

def train_config(ds: Path, run: Path, method: str, seed: int, args: argparse.Namespace):
    from autocontour.training import TrainConfig

    values: dict[str, Any] = {
        "dataset": str(ds), "out": str(run),
        "network": {"name": "ResUNet2D", "kwargs": {"channels": list(args.channels)}},
        "recipe": "fingerprint", "patch_size": [1, args.size, args.size],
        "batch_size": args.batch, "loss": args.loss, "lr": args.lr, "min_lr": 0.0,
        "epochs": args.epochs, "steps_per_epoch": args.steps, "val_every": args.epochs,
        "plateau": {"patience": args.epochs + 1}, "augmentation": None,
        "sampling": {"foreground_fraction": 0.0}, "folds": 2, "fold": 0, "seed": seed,
        "device": args.device, "amp": args.device == "cuda",
        "num_workers": 2 if args.device == "cuda" else 0}
    if method != "baseline":
        values["sample_weighting"] = {"name": "qam", "lr": args.qam_lr,
                                      "ocm": method == "qam+ocm", "ocm_lambda": OCM_LAMBDA}
    return TrainConfig.from_dict(values)


def train(config) -> None:
    """Train one run, resuming from its last checkpoint when it has one."""
    from autocontour.training import Trainer

    Trainer(config, progress=False).fit(resume=True)


def score(run: Path, source: Path, test_ids: Sequence[str], device: str) -> dict[str, Any]:
    """Dice of every structure and group on each clean test case, on the 256 x 256 grid."""
    import torch

    from autocontour.artifacts import load_trained_network
    from autocontour.data.folder import DatasetFolder
    from autocontour.evaluation import dice, dice_per_organ
    from autocontour.io.volume import LabelMap
    from autocontour.models.inferer import SlidingWindowInferer
    from autocontour.organs import CHEST

    trained = load_trained_network(run / "last.pt", device)
    inferer = SlidingWindowInferer(trained.config.patch_size, out_device="cpu")
    cache = DatasetFolder(source).cache()
    organs = {o.name: o.label for o in CHEST}
    per_case: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for cid in test_ids:
            image, truth = cache.load(cid)
            prepared = trained.recipe.apply(image)
            x = torch.from_numpy(np.asarray(prepared.image.array, np.float32))[None, None]
            logits = inferer.logits(trained.net, x.to(device))
            grid = LabelMap(logits.argmax(0).numpy().astype(np.uint8), prepared.image.geometry,
                            organs=trained.organs)
            pred = trained.recipe.invert_labels(grid, prepared.record).array
            scores = dice_per_organ(pred, truth.array, organs)
            for group, names in GROUPS.items():
                values = [CHEST.by_name(n).label for n in names]
                scores[group] = dice(np.isin(pred, values), np.isin(truth.array, values))
            scores["mean"] = float(np.mean([scores[g] for g in GROUPS]))
            per_case[cid] = scores
    keys = [*STRUCTURES, *GROUPS, "mean"]
    return {"dice": {k: float(np.mean([c[k] for c in per_case.values()])) for k in keys},
            "per_case": per_case}


WEIGHT_GROUPS = ("clean", "noisy", "dilated", "eroded")


def noise_groups(record: dict[str, Any]) -> dict[str, set[str]]:
    """Training cases by label quality from a ``noise.json``: clean, noisy, and the noisy ones
    whose every structure was dilated or every one eroded (all of them with ``--draw sample``)."""
    groups: dict[str, set[str]] = {g: set() for g in WEIGHT_GROUPS}
    for sample in record["samples"]:
        if not sample["noisy"]:
            groups["clean"].add(sample["id"])
            continue
        groups["noisy"].add(sample["id"])
        ops = {s["op"] for s in sample["structures"].values()}
        if ops == {"dilate"}:
            groups["dilated"].add(sample["id"])
        elif ops == {"erode"}:
            groups["eroded"].add(sample["id"])
    return groups


def weight_curves(run: Path, groups: dict[str, set[str]]) -> dict[str, list[float]] | None:
    """Per epoch and group, the mean and sd (over the cases drawn, weighted by their draws) of
    the normalised weights of ``sample_weights.jsonl``; None for a run without weights."""
    from autocontour.training.sample_weights import read_weight_rows

    rows = read_weight_rows(run / "sample_weights.jsonl")
    if not rows:
        return None
    out: dict[str, list[float]] = {"epoch": sorted({r["epoch"] for r in rows})}
    for group in WEIGHT_GROUPS:
        out[f"{group}_mean"], out[f"{group}_sd"] = [], []
        for epoch in out["epoch"]:
            mine = [r for r in rows if r["epoch"] == epoch and r["case"] in groups[group]]
            mean = sd = math.nan
            if mine:
                w = np.array([r["mean_weight"] for r in mine])
                n = np.array([r["count"] for r in mine], float)
                mean = float(np.average(w, weights=n))
                sd = float(np.sqrt(np.average((w - mean) ** 2, weights=n)))
            out[f"{group}_mean"].append(mean)
            out[f"{group}_sd"].append(sd)
    return out


def late_weights(curves: dict[str, list[float]] | None) -> dict[str, float | None] | None:
    """Each group's mean weight over the last quarter of the epochs (None: no such case)."""
    if not curves:
        return None
    k = max(1, len(curves["epoch"]) // 4)
    out: dict[str, float | None] = {}
    for group in WEIGHT_GROUPS:
        values = [v for v in curves[f"{group}_mean"][-k:] if not math.isnan(v)]
        out[group] = float(np.mean(values)) if values else None
    return out


def run_folder(work: Path, setting: Setting, method: str, seed: int) -> Path:
    return work / "runs" / setting.name / f"{method}-s{seed}"


def run_one(work: Path, source: Path, setting: Setting, method: str, seed: int,
            args: argparse.Namespace) -> dict[str, Any]:
    """Train and score one run, or read its result when it is finished already.

    A run is finished once its ``score.json`` is written; one with a checkpoint but no
    ``result.json`` was cut off in training and resumes from its last epoch.
    """
    run = run_folder(work, setting, method, seed)
    done = run / "score.json"
    if done.is_file():
        return json.loads(done.read_text())
    started = time.perf_counter()
    ds = training_set(work, source, setting, seed, args)
    if not (run / "result.json").is_file():
        train(train_config(ds, run, method, seed, args))
    shutil.copyfile(ds / "noise.json", run / "noise.json")
    record = json.loads((run / "noise.json").read_text())
    groups = noise_groups(record)
    _, test_ids = case_ids(args)
    result = {"setting": setting.name, "fraction": setting.fraction, "level": setting.level,
              "method": method, "seed": seed, "noisy_cases": len(groups["noisy"]),
              "dilated_cases": len(groups["dilated"]), "eroded_cases": len(groups["eroded"]),
              **score(run, source, test_ids, args.device)}
    result["weights"] = weight_curves(run, groups)
    result["late_weights"] = late_weights(result["weights"])
    result["seconds"] = time.perf_counter() - started
    done.write_text(json.dumps(result, indent=1))
    return result


def check_work(work: Path, args: argparse.Namespace) -> None:
    """Refuse a work folder made with other result-changing settings (``grid.json``)."""
    mine = {k: getattr(args, k) for k in GRID_KEYS}
    path = work / "grid.json"
    if path.is_file():
        theirs = json.loads(path.read_text())
        differ = [k for k in GRID_KEYS if theirs.get(k) != mine[k]]
        if differ:
            raise UsageError(f"--work {work} holds runs made with other settings ("
                             + ", ".join(f"{k} {theirs.get(k)} there, {mine[k]} now"
                                         for k in differ)
                             + "); use another --work or delete that folder")
    else:
        work.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(mine, indent=1))


# --- report ----------------------------------------------------------------------------------

def _mean_sd(values: Sequence[float], digits: int = 3, signed: bool = False) -> str:
    """'mean ± sd' (sample sd) of the finite values; one value alone; '-' for none."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    sign = "+" if signed else ""
    mean = float(np.mean(values)) + 0.0
    mean = 0.0 if round(mean, digits) == 0 else mean  # no "-0.000"
    if len(values) == 1:
        return f"{mean:{sign}.{digits}f}"
    return f"{mean:{sign}.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def aggregate(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sd over seeds of every (setting, method), with the source's numbers."""
    out = []
    keys = list(dict.fromkeys((r["setting"], r["method"]) for r in results))
    for setting, method in keys:
        mine = [r for r in results if (r["setting"], r["method"]) == (setting, method)]
        base = {r["seed"]: r["dice"]["mean"] for r in results
                if r["setting"] == setting and r["method"] == "baseline"}
        first = mine[0]
        entry: dict[str, Any] = {
            "setting": setting, "fraction": first["fraction"], "level": first["level"],
            "method": method, "seeds": [r["seed"] for r in mine],
            "noisy_cases": first["noisy_cases"]}
        for key in (*STRUCTURES, *GROUPS, "mean"):
            values = [r["dice"][key] for r in mine]
            entry[key] = {"mean": float(np.mean(values)),
                          "sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                          "values": values}
        diffs = [r["dice"]["mean"] - base[r["seed"]] for r in mine if r["seed"] in base]
        entry["mean_minus_baseline"] = diffs if method != "baseline" else None
        late = [r["late_weights"] for r in mine if r.get("late_weights")]
        entry["late_weights"] = None
        if late:
            entry["late_weights"] = {}
            for g in WEIGHT_GROUPS:
                values = [w[g] for w in late if w.get(g) is not None]
                entry["late_weights"][g] = float(np.mean(values)) if values else None
        entry["source"] = SOURCE_TABLE.get((first["fraction"], first["level"], method))
        out.append(entry)
    return out


def report(results: Sequence[dict[str, Any]], args: argparse.Namespace, command: str,
           seconds: float) -> tuple[str, dict[str, Any]]:
    """The Markdown table and the summary of the grid's runs."""
    from autocontour.evaluation import markdown_table

    rows = aggregate(results)
    body, detail = [], []
    for e in rows:
        label = Setting(e["fraction"], e["level"]).label
        src = e["source"]
        diff = e["mean_minus_baseline"]
        late = e["late_weights"]
        weights = "-" if not late else " / ".join(
            "-" if late[g] is None else f"{late[g]:.2f}" for g in WEIGHT_GROUPS)
        body.append([*label, e["method"],
                     *(_mean_sd(e[k]["values"]) for k in (*GROUPS, "mean")),
                     "-" if not diff else _mean_sd(diff, 3, signed=True),
                     weights,
                     *(f"{v:.3f}" for v in (src or ())), *(["-"] * (4 - len(src or ())))])
        detail.append([*label, e["method"], *(_mean_sd(e[k]["values"]) for k in STRUCTURES)])
    head = ["noise", "level", "method", "lungs", "heart", "clavicles", "mean",
            "mean − baseline", "weight clean / noisy (dilated / eroded)", "source lungs", "source heart",
            "source clavicles", "source mean"]
    n_seeds = len(args.seeds)
    settings_text = (
        f"{args.train} training / {args.test} test chest phantoms (seeds {FIRST_SEED}-"
        f"{FIRST_SEED + args.train + args.test - 1}), made at {SOURCE_SIZE} x {SOURCE_SIZE}, "
        f"trained at {args.size} x {args.size}, scored at {SOURCE_SIZE} x {SOURCE_SIZE}; "
        f"ResUNet2D {'/'.join(map(str, args.channels))}, loss {args.loss}, Adam {args.lr:g}; "
        f"{args.epochs} epochs x {args.steps} steps of batch {args.batch} "
        f"({args.epochs * args.steps} steps); QAM: Φ Adam {args.qam_lr:g}, OCM λ {OCM_LAMBDA:g}; "
        f"noise drawn per {'case' if args.draw == 'sample' else 'structure'}; "
        f"seeds {', '.join(map(str, args.seeds))}; device {args.device}, "
        f"{args.threads} thread(s)")
    run_minutes = sum(r["seconds"] for r in results) / 60
    data = ("JSRT (the source's 247 chest radiographs) is not available here: these are the "
            "project's 2-D chest radiograph phantoms with the same structures and split sizes. "
            "The source's numbers are JSRT's and are given for reference, not as a target the "
            "phantoms should meet.")
    timing = (f"Command: `{command}`; this call {seconds / 60:.1f} min, the runs it reports "
              f"{run_minutes:.1f} min of training and scoring in all.")
    legend = (
        f"Dice on the clean test cases (mean over cases; then mean ± sd over {n_seeds} "
        "seed(s)). Lungs and clavicles are each scored as one structure (left and right "
        "together, as the source's columns); mean = mean of lungs, heart and clavicles (as the "
        "source's). mean − baseline: the run's mean Dice minus the baseline's of the same seed "
        "and noise (mean ± sd over seeds). weight: the mean normalised QAM weight (1.0 = an "
        "average sample of a batch) of the clean and of the noisy training cases, and of the "
        "noisy ones that were dilated and that were eroded, over the last quarter of the epochs "
        "(mean over seeds). source: seed 002 table 3.1 (JSRT, 256 x 256, batch 32, QAM "
        "lr 1e-4, λ 2); its first row, InvertedNet (another paper's method) on clean data: "
        f"lungs {SOURCE_INVERTEDNET[0]}, heart {SOURCE_INVERTEDNET[1]}, clavicles "
        f"{SOURCE_INVERTEDNET[2]}, mean {SOURCE_INVERTEDNET[3]}.")
    figure = ("Figure 3.4: `weights.png`, the mean ± sd (over the cases drawn in each epoch) of "
              "the normalised weight of clean and noisy training cases per epoch (dashed: the "
              "noisy cases that were dilated, dotted: eroded).")
    lines = ["# Seed 002 table 3.1 on chest phantoms: training on noisy labels", "", data, "",
             f"Settings: {settings_text}.", "", timing, "", legend, "",
             markdown_table(head, body), "", "## Dice per structure", "",
             markdown_table(["noise", "level", "method", *STRUCTURES], detail), "", figure, ""]
    summary = {
        "command": command, "seconds": seconds, "run_seconds": run_minutes * 60,
        "settings": {**{k: getattr(args, k) for k in GRID_KEYS}, "seeds": args.seeds,
                     "fractions": args.fractions, "levels": args.levels,
                     "methods": args.methods, "device": args.device, "threads": args.threads,
                     "first_phantom_seed": FIRST_SEED, "ocm_lambda": OCM_LAMBDA},
        "data": "2-D chest radiograph phantoms (JSRT is not available)",
        "source_table_3_1": {
            "columns": ["lungs", "heart", "clavicles", "mean"],
            "invertednet_clean": list(SOURCE_INVERTEDNET),
            "rows": [{"fraction": f, "level": lv, "method": m, "dice": list(v)}
                     for (f, lv, m), v in SOURCE_TABLE.items()]},
        "aggregates": rows,
        "runs": [{k: v for k, v in r.items() if k != "per_case"} for r in results]}
    return "\n".join(lines), summary


def plot_weights(results: Sequence[dict[str, Any]], path: Path) -> bool:
    """Figure 3.4: one panel per noisy setting (columns) and QAM method (rows); False if none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    runs = [r for r in results if r.get("weights") and r["noisy_cases"]]
    if not runs:
        return False
    names = list(dict.fromkeys(r["setting"] for r in runs))
    methods = [m for m in METHODS if any(r["method"] == m for r in runs)]
    fig, axes = plt.subplots(len(methods), len(names), squeeze=False, sharex=True,
                             figsize=(max(6.4, 3.2 * len(names)), 2.8 * len(methods) + 0.4))
    for i, method in enumerate(methods):
        for j, name in enumerate(names):
            ax = axes[i][j]
            mine = [r["weights"] for r in runs if r["method"] == method and r["setting"] == name]
            if not mine:
                ax.set_axis_off()
                continue
            epochs = min(len(w["epoch"]) for w in mine)
            x = mine[0]["epoch"][:epochs]
            with warnings.catch_warnings():  # a group without cases in an epoch is NaN there
                warnings.simplefilter("ignore", RuntimeWarning)
                for group, colour in (("clean", "tab:blue"), ("noisy", "tab:red")):
                    mean = np.nanmean([w[f"{group}_mean"][:epochs] for w in mine], axis=0)
                    sd = np.nanmean([w[f"{group}_sd"][:epochs] for w in mine], axis=0)
                    ax.plot(x, mean, color=colour, label=group)
                    ax.fill_between(x, np.maximum(mean - sd, 0), mean + sd, color=colour,
                                    alpha=0.2)
                for group, style in (("dilated", "--"), ("eroded", ":")):
                    mean = np.nanmean([w.get(f"{group}_mean", [math.nan] * epochs)[:epochs]
                                       for w in mine], axis=0)
                    if not np.all(np.isnan(mean)):
                        ax.plot(x, mean, color="tab:red", ls=style, lw=0.9,
                                label=f"noisy, {group}")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.ticklabel_format(axis="y", useOffset=False)
            ax.axhline(1.0, color="grey", lw=0.6, ls=":")
            setting = next(r for r in runs if r["setting"] == name)
            title = Setting(setting["fraction"], setting["level"]).label
            ax.set_title(f"{method}: {title[0]} noisy, {title[1]} ({len(mine)} seed(s))",
                         fontsize=8)
            if j == 0:
                ax.set_ylabel("normalised weight")
            if i == len(methods) - 1:
                ax.set_xlabel("epoch")
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.suptitle("QAM weights of clean and noisy training cases (seed 002 fig. 3.4)\n"
                 "mean ± sd over the cases of an epoch, mean over seeds; 1.0 = an average sample",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --- main ------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_args(args)
        check_work(args.work, args)
    except UsageError as exc:
        parser.error(str(exc))
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    command = "python experiments/table31_noisy_labels.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    try:
        source = build_source(args.work, args)
        results = []
        grid = [(s, m, seed) for seed in args.seeds for s in settings(args.fractions, args.levels)
                for m in args.methods]
        for k, (setting, method, seed) in enumerate(grid, 1):
            result = run_one(args.work, source, setting, method, seed, args)
            results.append(result)
            print(f"[{k}/{len(grid)}] {setting.name} {method} seed {seed}: mean Dice "
                  f"{result['dice']['mean']:.3f} ({result['seconds']:.0f} s)", flush=True)
            group_done = k == len(grid) or (grid[k][0], grid[k][2]) != (setting, seed)
            if group_done and not args.keep_data:  # remade identically when needed again
                shutil.rmtree(data_folder(args.work, setting, seed), ignore_errors=True)
    finally:
        torch.set_num_threads(threads)
    markdown, summary = report(results, args, command, time.perf_counter() - started)
    args.out.mkdir(parents=True, exist_ok=True)
    if plot_weights(results, args.out / "weights.png"):
        summary["figure"] = "weights.png"
    else:
        markdown += "\n(No QAM run with noisy cases in this grid: no weights to plot.)\n"
    (args.out / "table.md").write_text(markdown)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
