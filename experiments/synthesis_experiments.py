"""The multi-modal synthesis experiments of issue 19 (seed 003 §5.3-5.6, spec E9), on phantoms.

Data: brain-lesion phantoms (:mod:`autocontour.phantoms.brain_lesion`: the same anatomy as T1-,
T2- and FLAIR-like MR with tumour labels), **not BRATS**: every number here is measured on
synthetic phantoms and is not comparable to the source's BRATS numbers, which the tables show
beside ours only for orientation. Training phantoms (seeds 0..) and test phantoms (seeds
10000..) never overlap.

Three parts (``--parts``):

1. ``ablation`` (the source's table 1 and figure 12-13; table 3's "+" column): models A-F
   (:data:`autocontour.synthesis.multimodal.config.ABLATION_MODELS`) are trained with the same
   seed and schedule, ``--count`` tuples are written by the ``synthesize`` job of each and read
   back with :func:`load_multimodal_folder` (the path a user takes), and scored against the
   real test images, per modality, then averaged over modalities:

   * MS-SSIM: for every synthetic image the mean MS-SSIM against every real test image of the
     same modality (:func:`autocontour.evaluation.image_quality.ms_ssim`; the number of scales
     that fit the image size is stated in the table);
   * FD: the Fréchet distance between features of the synthetic and of the real test images,
     the features being the global average of the bottleneck of a lesion segmenter we train on
     the real training phantoms, each standardised by its mean and spread over the real
     training images of the modality (no Inception network can be downloaded here: this is **not
     FID** and not comparable to published FID values);
   * the same two in the lesion region ("+"): a square of half the image side centred on the
     lesion's centroid, for the images that hold a lesion;
   * lesion pixels outside the organ mask (what mask filtering prevents, model B);
   * a reference row: the real *training* images scored the same way against the real test
     images (what a perfect generator would reach).

   ``samples.png``: the first tuples of each model (structure map, lesion, each modality).
2. ``validity`` (table 4): the segmenter trained on real images segments the real test images
   and the synthetic images of model F (or of each model): MSE of its probability map against
   the (input) lesion label, and Dice of the map thresholded at 0.5, over images that hold a
   lesion.
3. ``usefulness`` (a subset of table 5's rows): the same segmenter trained, with the same
   number of steps, on real (100 %, 50 %, 10 %), synthetic (x1, x2), real + synthetic (random
   mixing), synthetic first then real (10 % real: steps in proportion to the counts), and real +
   classically augmented real images (flips, 90° rotations, intensity scaling), each scored by
   Dice on the real test images.

The lesion segmenter (also the feature network) is :class:`UNetGenerator2D` with one image
channel and the modality as its one-hot condition (one network for every modality; the source
used one per modality), trained with binary cross-entropy + soft Dice, Adam 1e-3.

Sizes: ``--size tiny`` is the tests' smoke size (32 px, a few steps: the numbers mean nothing);
``--size small`` is sized for a 2-core CPU (64 px, 40 training phantoms; about an hour per
part with one thread, estimated from step times measured at 64 px — not run here);
``--size full`` is for a GPU (128 px, 200 phantoms, the example config's widths).

    python experiments/synthesis_experiments.py --out experiments/results/synthesis_ablation
        [--size small|full|tiny] [--parts ablation validity usefulness] [--models A B C D E F]
        [--device cpu|cuda] [--threads 1] [--work runs/synthesis_experiments]

Writes ``ablation.csv``, ``validity.csv``, ``usefulness.csv``, ``tables.md``, ``summary.json``
and ``samples.png`` (of the parts run) in ``--out``; phantoms, runs and synthetic sets go to
``--work``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from autocontour.data.multimodal import MultiModalCase, load_multimodal_folder
from autocontour.evaluation.image_quality import frechet_distance, ms_ssim, ms_ssim_scales
from autocontour.jobs.synthesis import SynthesizeRequest, synthesize
from autocontour.models.synthesis import UNetGenerator2D
from autocontour.phantoms.brain_lesion import write_lesion_cases
from autocontour.synthesis.multimodal.config import ABLATION_MODELS, SWITCHES, SynthesisConfig
from autocontour.synthesis.multimodal.train import train_synthesis

MODALITIES = ("T1", "T2", "FLAIR")
PARTS = ("ablation", "validity", "usefulness")
#: The source's BRATS numbers, for orientation only (other data, other networks, real FID).
SOURCE = {
    "table3_brats": {"ours+": {"ms_ssim": 0.738, "fid": 21.15},
                     "ours": {"ms_ssim": 0.727, "fid": 22.27}},
    "table4": {"real": {"mse": 0.026, "dice": 0.915}, "synthetic": {"mse": 0.043, "dice": 0.838}},
    "table5": {"real x1": 0.915, "real x50%": 0.902, "synthetic x1": 0.708,
               "synthetic x2 (random mixing)": 0.736,
               "real x10% + synthetic x1 (synthetic first)": 0.908},
}


@dataclass(frozen=True)
class Size:
    image: int
    train_cases: int
    test_cases: int
    count: int
    steps: dict[str, int]
    width: int
    depth: int
    structure_width: int
    structure_pools: int
    disc_pools: int
    batch: int
    seg_width: int
    seg_steps: int
    seg_batch: int
    lr: float


SIZES = {
    "tiny": Size(32, 4, 3, 8, {"structure_steps": 2, "lesion_steps": 1, "converter_steps": 1,
                               "pretrain_steps": 1, "adversarial_steps": 2},
                 4, 2, 4, 2, 2, 2, 4, 3, 4, 1e-3),
    "small": Size(64, 40, 20, 80, {"structure_steps": 1500, "lesion_steps": 300,
                                   "converter_steps": 300, "pretrain_steps": 300,
                                   "adversarial_steps": 1200},
                  8, 3, 8, 3, 3, 4, 8, 400, 8, 1e-3),
    # a fifth of "small"'s adversarial schedule: the whole experiment in about 1.5 h on one
    # CPU thread (measured numbers, but far from converged: see the results' README)
    "short": Size(64, 40, 20, 80, {"structure_steps": 300, "lesion_steps": 100,
                                   "converter_steps": 100, "pretrain_steps": 100,
                                   "adversarial_steps": 240},
                  8, 3, 8, 3, 3, 4, 8, 300, 8, 1e-3),
    "full": Size(128, 200, 50, 400, {"structure_steps": 20000, "lesion_steps": 5000,
                                     "converter_steps": 20000, "pretrain_steps": 5000,
                                     "adversarial_steps": 40000},
                 32, 4, 16, 3, 4, 4, 16, 5000, 16, 1e-4),
}


# --- data -----------------------------------------------------------------------------------

@dataclass
class Images:
    """2-D images with their modality index and binary lesion label: ``x (N, H, W)`` in 0..1,
    ``modality (N,)``, ``lesion (N, H, W)`` 0/1, ``organ (N, H, W)`` 0/1 or None."""

    x: np.ndarray
    modality: np.ndarray
    lesion: np.ndarray
    organ: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: np.ndarray) -> Images:
        return Images(self.x[index], self.modality[index], self.lesion[index],
                      None if self.organ is None else self.organ[index])

    @staticmethod
    def join(parts: Sequence[Images]) -> Images:
        return Images(np.concatenate([p.x for p in parts]),
                      np.concatenate([p.modality for p in parts]),
                      np.concatenate([p.lesion for p in parts]))


def images_of(cases: Sequence[MultiModalCase], modalities: Sequence[str]) -> Images:
    """Every slice of every case, once per modality (unit-scaled), with its lesion label."""
    xs, mods, lesions, organs = [], [], [], []
    for case in cases:
        for z in range(case.images[modalities[0]].shape[0]):
            lesion = (case.lesion.array[z] > 0) if case.lesion is not None else None
            organ = (case.mask.array[z] > 0) if case.mask is not None else None
            for i, m in enumerate(modalities):
                x = case.unit(m, z)
                xs.append(x)
                mods.append(i)
                lesions.append(np.zeros_like(x) if lesion is None else lesion.astype(np.float32))
                organs.append(np.ones_like(x) if organ is None else organ.astype(np.float32))
    return Images(np.asarray(xs, np.float32), np.asarray(mods), np.asarray(lesions, np.float32),
                  np.asarray(organs, np.float32))


def augment(images: Images, rng: np.random.Generator) -> Images:
    """Classical augmentation: a random flip, a random 90° rotation, intensity x U(0.9, 1.1)."""
    xs, ls = [], []
    for x, lab in zip(images.x, images.lesion, strict=True):
        k, flip, gain = int(rng.integers(4)), bool(rng.integers(2)), float(rng.uniform(0.9, 1.1))
        x, lab = np.rot90(x, k), np.rot90(lab, k)
        if flip:
            x, lab = x[:, ::-1], lab[:, ::-1]
        xs.append(np.clip(x * gain, 0, 1))
        ls.append(lab)
    return Images(np.asarray(xs, np.float32), images.modality.copy(),
                  np.asarray(ls, np.float32))


# --- the segmenter (also the feature network) -----------------------------------------------

def train_segmenter(data: Images, size: Size, seed: int, device: str, steps: int | None = None,
                    net: UNetGenerator2D | None = None, start: int = 0) -> UNetGenerator2D:
    """BCE + soft Dice, Adam 1e-3, ``steps`` batches of ``size.seg_batch`` (half of each batch
    from images holding a lesion when there are any)."""
    n_mod = len(MODALITIES)
    if net is None:
        torch.manual_seed(seed)
        net = UNetGenerator2D(1, 1, size.seg_width, size.depth, n_mod).to(device)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    with_lesion = np.flatnonzero(data.lesion.reshape(len(data), -1).max(1) > 0)
    net.train()
    for step in range(size.seg_steps if steps is None else steps):
        rng = np.random.default_rng([seed, start + step])
        pick = rng.integers(len(data), size=size.seg_batch)
        if len(with_lesion):
            half = size.seg_batch // 2
            pick[:half] = with_lesion[rng.integers(len(with_lesion), size=half)]
        x = torch.from_numpy(data.x[pick][:, None]).to(device)
        y = torch.from_numpy(data.lesion[pick][:, None]).to(device)
        cond = F.one_hot(torch.from_numpy(data.modality[pick]).long(), n_mod).float().to(device)
        p = net(x, cond).clamp(1e-6, 1 - 1e-6)
        dice = 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
        loss = F.binary_cross_entropy(p, y) + dice
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def predict(net: UNetGenerator2D, data: Images, device: str, batch: int = 32
            ) -> tuple[np.ndarray, np.ndarray]:
    """Lesion probabilities ``(N, H, W)`` and bottleneck features ``(N, C)`` (global mean)."""
    features: list[torch.Tensor] = []
    hook = net.join.register_forward_hook(
        lambda _m, _i, out: features.append(out.mean(dim=(2, 3)).cpu()))
    probs = []
    try:
        for k in range(0, len(data), batch):
            x = torch.from_numpy(data.x[k:k + batch][:, None]).to(device)
            cond = F.one_hot(torch.from_numpy(data.modality[k:k + batch]).long(),
                             len(MODALITIES)).float().to(device)
            probs.append(net(x, cond)[:, 0].cpu())
    finally:
        hook.remove()
    return torch.cat(probs).numpy(), torch.cat(features).numpy()


def dice_score(pred: np.ndarray, truth: np.ndarray) -> float:
    a, b = pred > 0.5, truth > 0.5
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def lesion_scores(net: UNetGenerator2D, data: Images, device: str) -> dict[str, float]:
    """MSE of the probability map and Dice, over the images holding a lesion."""
    keep = np.flatnonzero(data.lesion.reshape(len(data), -1).max(1) > 0)
    if not len(keep):
        return {"mse": float("nan"), "dice": float("nan"), "scored": 0}
    sub = data.subset(keep)
    probs, _ = predict(net, sub, device)
    return {"mse": float(np.mean((probs - sub.lesion) ** 2)),
            "dice": float(np.mean([dice_score(p, t) for p, t in zip(probs, sub.lesion,
                                                                      strict=True)])),
            "scored": len(keep)}


# --- image quality --------------------------------------------------------------------------

def lesion_crops(data: Images, side: int) -> Images:
    """A ``side`` square centred on each lesion's centroid (shifted inside the image)."""
    xs, mods, ls = [], [], []
    h, w = data.x.shape[1:]
    for x, m, lab in zip(data.x, data.modality, data.lesion, strict=True):
        rows, cols = np.nonzero(lab > 0)
        if not len(rows):
            continue
        y0 = int(np.clip(round(rows.mean()) - side // 2, 0, h - side))
        x0 = int(np.clip(round(cols.mean()) - side // 2, 0, w - side))
        xs.append(x[y0:y0 + side, x0:x0 + side])
        ls.append(lab[y0:y0 + side, x0:x0 + side])
        mods.append(m)
    return Images(np.asarray(xs, np.float32).reshape(-1, side, side), np.asarray(mods, int),
                  np.asarray(ls, np.float32).reshape(-1, side, side))


def feature_scale(net: UNetGenerator2D, reference: Images, device: str
                  ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per modality, the mean and standard deviation of each feature over the reference (real
    training) images: features are standardised with them, so the distances depend neither on
    the features' raw scale nor on how far apart the modalities lie."""
    _, f = predict(net, reference, device)
    out = {}
    for i in range(len(MODALITIES)):
        rows = f[reference.modality == i]
        if len(rows):
            out[i] = (rows.mean(0), rows.std(0) + 1e-8)
    return out


def quality(synthetic: Images, real: Images, net: UNetGenerator2D, device: str, win: int,
            scale: dict[int, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Mean MS-SSIM of each synthetic image against every real one, and the Fréchet distance of
    their standardised features, per modality, averaged over the modalities present in both."""
    scores, distances = [], []
    f_syn = predict(net, synthetic, device)[1]
    f_real = predict(net, real, device)[1]
    for i in range(len(MODALITIES)):
        a, b = np.flatnonzero(synthetic.modality == i), np.flatnonzero(real.modality == i)
        if not len(a) or not len(b):
            continue
        pairs_x = np.repeat(synthetic.x[a], len(b), axis=0)
        pairs_y = np.tile(real.x[b], (len(a), 1, 1))
        scores.append(float(np.mean(ms_ssim(pairs_x, pairs_y, win=win))))
        if len(a) >= 2 and len(b) >= 2 and i in scale:
            mu, sd = scale[i]
            distances.append(frechet_distance((f_syn[a] - mu) / sd, (f_real[b] - mu) / sd))
    return {"ms_ssim": float(np.mean(scores)) if scores else float("nan"),
            "fd": float(np.mean(distances)) if distances else float("nan")}


# --- the parts ------------------------------------------------------------------------------

def synthesis_config(size: Size, data: Path, out: Path, letter: str, seed: int,
                     device: str) -> SynthesisConfig:
    values: dict[str, Any] = {
        "data": str(data), "out": str(out), "modalities": list(MODALITIES), "ablation": letter,
        **size.steps, "width": size.width, "depth": size.depth,
        "structure_width": size.structure_width, "structure_pools": size.structure_pools,
        "latent_channels": 4 if size.image <= 64 else 8, "disc_width": size.structure_width,
        "disc_pools": size.disc_pools, "batch_size": size.batch, "lr": size.lr,
        "structure": {"enlarge_px": max(1, size.image // 32)},
        "checkpoint_every": 0, "seed": seed, "device": device}
    return SynthesisConfig.from_dict(values)


def train_and_synthesize(letter: str, size: Size, work: Path, seed: int, device: str
                         ) -> tuple[Images, dict[str, Any]]:
    """Model ``letter``'s synthetic tuples (trained and written once; reused when present)."""
    run, synth = work / f"model_{letter}", work / f"synthetic_{letter}"
    started = time.perf_counter()
    config = synthesis_config(size, work / "train", run, letter, seed, device)
    if not (run / "model.pt").is_file():
        if run.exists():
            import shutil
            shutil.rmtree(run)
        train_synthesis(config)
    trained = time.perf_counter() - started
    if not (synth / "dataset.json").is_file():
        synthesize(SynthesizeRequest(run / "model.pt", synth, size.count, seed=seed,
                                     device=device, png=False))
    cases = load_multimodal_folder(synth)
    images = images_of(cases, MODALITIES)
    outside = [float(((c.lesion.array > 0) & (c.mask.array == 0)).sum()
                     / max(1, (c.lesion.array > 0).sum())) for c in cases]
    meta = {"switches": {s: getattr(config, s) for s in SWITCHES},
            "seconds_train": round(trained, 1),
            "with_lesion": sum(int((c.lesion.array > 0).any()) for c in cases),
            "lesion_outside_organ": float(np.mean(outside))}
    return images, meta


def samples_figure(letters: Sequence[str], work: Path, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = ["structure", "lesion", *MODALITIES]
    fig, axes = plt.subplots(len(letters), len(cols), figsize=(1.6 * len(cols),
                                                               1.6 * len(letters)),
                             squeeze=False)
    for r, letter in enumerate(letters):
        case = load_multimodal_folder(work / f"synthetic_{letter}")[0]
        folder = work / f"synthetic_{letter}" / case.case_id
        from autocontour.io import read_volume
        panels = [read_volume(folder / "structure.nii.gz").array[0],
                  (case.lesion.array[0] > 0).astype(float),
                  *[case.images[m].array[0] for m in MODALITIES]]
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(cols[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(f"model {letter}", fontsize=8)
    fig.suptitle("synthetic tuples per ablation model (brain-lesion phantoms)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _f(v: float, digits: int = 3) -> str:
    return "-" if math.isnan(v) else f"{v:.{digits}f}"


def _g(v: float) -> str:
    """A distance: 3 significant digits (the feature scale sets its size)."""
    return "-" if math.isnan(v) else f"{v:.3g}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    size = SIZES[args.size]
    work, out = Path(args.work), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "train" / "dataset.json").is_file():
        write_lesion_cases(work / "train", size.train_cases, seed=0, size=size.image,
                           modalities=MODALITIES)
    if not (work / "test" / "dataset.json").is_file():
        write_lesion_cases(work / "test", size.test_cases, seed=10000, size=size.image,
                           modalities=MODALITIES)
    real_train = images_of(load_multimodal_folder(work / "train"), MODALITIES)
    real_test = images_of(load_multimodal_folder(work / "test"), MODALITIES)
    started = time.perf_counter()
    segmenter = train_segmenter(real_train, size, args.seed, args.device)
    summary: dict[str, Any] = {
        "size": args.size, "data": "brain-lesion phantoms (synthetic), not BRATS",
        "modalities": list(MODALITIES), "train_phantoms": size.train_cases,
        "test_phantoms": size.test_cases, "synthetic_tuples": size.count,
        "segmenter_seconds": round(time.perf_counter() - started, 1),
        "command": "python experiments/synthesis_experiments.py " + " ".join(
            shlex.quote(a) for a in args.argv), "source_brats": SOURCE}
    win = 7 if size.image <= 64 else 11
    crop = size.image // 2
    summary["ms_ssim_scales"] = {"image": ms_ssim_scales(size.image, win),
                                 "lesion_region": ms_ssim_scales(crop, min(win, 7)),
                                 "window": win}
    letters = [m.upper() for m in args.models]
    synthetic: dict[str, Images] = {}
    meta: dict[str, Any] = {}
    todo = letters if ("ablation" in args.parts or "validity" in args.parts) else ["F"]
    for letter in todo:
        synthetic[letter], meta[letter] = train_and_synthesize(letter, size, work, args.seed,
                                                               args.device)
    tables = [(f"# Multi-modal synthesis experiments ({args.size}; brain-lesion phantoms, not "
              "BRATS)"), "", f"Command: `{summary['command']}`", ""]

    if "ablation" in args.parts:
        rows = []
        entries = [("real (train vs test)", real_train, {})] + [
            (f"{k}", synthetic[k], meta[k]) for k in letters]
        crops_real = lesion_crops(real_test, crop)
        scale = feature_scale(segmenter, real_train, args.device)
        scale_crop = feature_scale(segmenter, lesion_crops(real_train, crop), args.device)
        for name, images, m in entries:
            q = quality(images, real_test, segmenter, args.device, win, scale)
            crops = lesion_crops(images, crop)
            q_les = (quality(crops, crops_real, segmenter, args.device, min(win, 7), scale_crop)
                     if len(crops) and len(crops_real) else {"ms_ssim": float("nan"),
                                                              "fd": float("nan")})
            row = {"model": name, **{s: m.get("switches", {}).get(s, "") for s in SWITCHES},
                   "ms_ssim": q["ms_ssim"], "fd": q["fd"], "ms_ssim_lesion": q_les["ms_ssim"],
                   "fd_lesion": q_les["fd"],
                   "with_lesion": m.get("with_lesion", ""),
                   "lesion_outside_organ": m.get("lesion_outside_organ", ""),
                   "seconds_train": m.get("seconds_train", "")}
            rows.append(row)
        write_csv(out / "ablation.csv", rows)
        summary["ablation"] = rows
        sc = summary["ms_ssim_scales"]
        tables += ["## Ablation (source table 1, figure 13; table 3 '+')", "",
                   (f"MS-SSIM: mean over synthetic x real test pairs of a modality, {sc['image']} "
                   f"scale(s) of a {win}-pixel window (lesion region: {sc['lesion_region']}); "
                   "FD: Fréchet distance on the bottleneck features (averaged over the image, "
                   "standardised per modality by the real training images) of our lesion segmenter "
                   "trained on the real phantoms: **not FID**, not comparable to published "
                   "values."), "",
                   ("| model | structure | mask filter | noise fusion | L_reg | L_les | MS-SSIM "
                   "| FD | MS-SSIM+ | FD+ | tuples with lesion | lesion outside organ |"),
                   "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            marks = ["" if r[s] == "" else ("yes" if r[s] else "no") for s in SWITCHES]
            outside = r["lesion_outside_organ"]
            tables.append(
                f"| {r['model']} | {' | '.join(marks)} | {_f(r['ms_ssim'])} | {_g(r['fd'])} "
                f"| {_f(r['ms_ssim_lesion'])} | {_g(r['fd_lesion'])} | {r['with_lesion']} | "
                f"{'' if outside == '' else f'{100 * outside:.1f} %'} |")
        s3 = SOURCE["table3_brats"]
        tables += ["", (f"Source, BRATS (table 3, real FID): full model MS-SSIM "
                   f"{s3['ours']['ms_ssim']}, FID {s3['ours']['fid']}; tumour region MS-SSIM "
                   f"{s3['ours+']['ms_ssim']}, FID {s3['ours+']['fid']}. The source gives "
                   "models A-F only as a bar chart (figure 13)."), ""]
        samples_figure(letters, work, out / "samples.png")

    if "validity" in args.parts:
        rows = [{"test data": "real (test phantoms)", **lesion_scores(segmenter, real_test,
                                                                      args.device)}]
        for letter in letters:
            rows.append({"test data": f"synthetic, model {letter}",
                         **lesion_scores(segmenter, synthetic[letter], args.device)})
        write_csv(out / "validity.csv", rows)
        summary["validity"] = rows
        s4 = SOURCE["table4"]
        tables += ["## Lesion validity (source table 4)", "",
                   ("A segmenter trained on real phantoms segments real test images and "
                   "synthetic images; MSE of its probability map and Dice against the (input) "
                   "lesion label, over the images holding a lesion."), "",
                   "| test data | images scored | MSE | Dice | source (BRATS) MSE / Dice |",
                   "|---|---|---|---|---|"]
        for r in rows:
            ref = s4["real"] if r["test data"].startswith("real") else s4["synthetic"]
            tables.append(f"| {r['test data']} | {r['scored']} | {_f(r['mse'])} | "
                          f"{_f(r['dice'])} | {ref['mse']} / {ref['dice']} |")
        tables.append("")

    if "usefulness" in args.parts:
        rng = np.random.default_rng(args.seed)
        n = len(real_train)
        syn = synthetic["F"]
        syn2 = syn.subset(np.arange(min(len(syn), 2 * n)))
        half = real_train.subset(rng.permutation(n)[: max(1, n // 2)])
        tenth = real_train.subset(rng.permutation(n)[: max(1, n // 10)])
        plans: list[tuple[str, list[Images], str]] = [
            ("real x1", [real_train], "-"),
            ("real x50%", [half], "-"),
            ("synthetic x1", [syn.subset(np.arange(min(n, len(syn))))], "-"),
            ("synthetic x2", [syn2], "random mixing"),
            ("real x1 + synthetic x0.5", [real_train, syn.subset(
                np.arange(min(len(syn), max(1, n // 2))))], "random mixing"),
            ("real x10% + synthetic x1", [syn.subset(np.arange(min(n, len(syn)))), tenth],
             "synthetic first"),
            ("real x1 + augmented x1", [real_train, augment(real_train, rng)], "random mixing"),
        ]
        rows = []
        for name, parts, mode in plans:
            if mode == "synthetic first":
                total = sum(len(p) for p in parts)
                first = round(size.seg_steps * len(parts[0]) / total)
                net = train_segmenter(parts[0], size, args.seed, args.device, steps=first)
                net = train_segmenter(parts[1], size, args.seed, args.device,
                                      steps=size.seg_steps - first, net=net, start=first)
            else:
                net = train_segmenter(Images.join(parts), size, args.seed, args.device)
            scores = lesion_scores(net, real_test, args.device)
            rows.append({"training data": name, "mixing": mode,
                         "images": sum(len(p) for p in parts), **scores})
        write_csv(out / "usefulness.csv", rows)
        summary["usefulness"] = rows
        s5 = SOURCE["table5"]
        tables += ["## Usefulness (a subset of source table 5)", "",
                   (f"The segmenter trained on each set for the same {size.seg_steps} steps, "
                   "scored on the real test phantoms (images holding a lesion); synthetic: "
                   "model F. 'synthetic first': steps in proportion to the counts."), "",
                   "| training data | mixing | training images | MSE | Dice | source Dice (BRATS) |",
                   "|---|---|---|---|---|---|"]
        for r in rows:
            ref = next((v for k, v in s5.items() if k.startswith(r["training data"])), "")
            tables.append(f"| {r['training data']} | {r['mixing']} | {r['images']} | "
                          f"{_f(r['mse'])} | {_f(r['dice'])} | {ref} |")
        tables.append("")
    summary["seconds"] = round(time.perf_counter() - started, 1)
    (out / "tables.md").write_text("\n".join(tables) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="experiments/results/synthesis_experiments")
    parser.add_argument("--work", default="runs/synthesis_experiments")
    parser.add_argument("--size", choices=list(SIZES), default="small")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--models", nargs="+", default=list(ABLATION_MODELS),
                        choices=[*ABLATION_MODELS, *(m.lower() for m in ABLATION_MODELS)])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if "usefulness" in args.parts and "F" not in [m.upper() for m in args.models]:
        args.models = [*args.models, "F"]
    torch.set_num_threads(args.threads)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
