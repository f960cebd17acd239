"""Pseudo-MRI from CT (issue 18, spec D): image quality of the original vs the improved CycleGAN,
and segmentation from CT, from pseudo-MRI and from both (the shape of seed 000's tables 3.1/3.2).

Per site (head-and-neck, pelvis), on fresh phantoms, whose MR-like twin gives soft tissue more
contrast than the CT:

1. **CycleGANs.** ``--gan-cases`` phantoms are split as :func:`autocontour.synthesis.phantom_split`
   does: CTs from cases 0, 2, 4, ..., MRs from cases 1, 3, 5, ..., so no pair is ever seen. Two
   CycleGANs are trained on them with the same seed, steps and widths:

   * ``original``: ResNet generator (9 blocks, transposed convolutions), no denoising
     discriminator, least-squares (MSE) adversarial loss;
   * ``improved``: the source's generator (resize-convolution, one transposed convolution,
     2 blocks) + the denoising discriminator + the MAE (L1) adversarial loss;
   * with ``--ablation`` also each improvement alone (``a_generator``, ``b_denoise``, ``c_l1``).

2. **Image quality.** On ``--test-cases`` other phantoms, the pseudo-MRI of each CT is compared
   with the phantom's own MR of the same anatomy, both in the normalised units the networks see
   (the true MR scaled by its 0.5/99.5 percentiles to [-1, 1]; the pseudo-MR is the generator's
   output in [-1, 1]): MAE, PSNR (peak-to-peak 2) and SSIM (3-D, scikit-image, data range 2) over
   the whole volume; a paired Wilcoxon signed-rank test of original vs improved per metric.
   For scale, a reference row scores the normalised CT itself against the MR (no network).
   ``grid_<site>.png``: a middle slice of the test cases, columns CT | true MR | pseudo-MR of each
   variant.

3. **Segmentation.** A 2-D residual U-Net (:class:`autocontour.models.ResUNet2D`) is trained on
   the axial slices of ``--seg-cases`` phantoms three times, the same seed and steps each time:
   on the CT, on the improved CycleGAN's pseudo-MRI, and on both as two channels; it is scored
   with Dice per organ on the test cases (an organ absent from a test case's truth is not scored
   there), with paired Wilcoxon signed-rank p-values between the inputs. The training engine
   (``autocontour train``) takes one image channel so far, so this uses a short loop of its own
   (Dice + cross-entropy, MONAI's ``DiceCELoss``, Adam), the same for all three inputs.

Small enough for a 2-core CPU (``--size small``, the default: 128 x 128 slices, 16-channel
networks, 600 CycleGAN steps, about 15 min per site with one free core); ``--size full`` is the
source's scale (256 x 256 slices, 64-channel CycleGANs, 40000 steps) for a GPU
(``--device cuda``). ``--size tiny`` is the test's smoke size.

    python experiments/pseudo_mri.py --out experiments/results/pseudo_mri
        [--size small|full|tiny] [--sites head-neck pelvis] [--ablation] [--threads 1]
        [--device cpu|cuda]

Writes ``quality.csv``, ``dice.csv``, ``tables.md``, ``summary.json`` and ``grid_<site>.png`` in
``--out`` (the trained networks and phantoms go to ``--work``, default ``runs/pseudo_mri``).
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

#: name -> (improved_generator, denoising_discriminator, adversarial_loss)
VARIANTS: dict[str, tuple[bool, bool, str]] = {
    "original": (False, False, "mse"),
    "improved": (True, True, "l1"),
    "a_generator": (True, False, "mse"),
    "b_denoise": (False, True, "mse"),
    "c_l1": (False, False, "l1"),
}
INPUTS = ("ct", "pseudo_mri", "ct+pseudo_mri")
#: The quality row of no network at all: the normalised CT scored against the true MR.
REFERENCE = "reference: CT as MR"
INPUT_NAMES = {"ct": "CT", "pseudo_mri": "pseudo-MRI", "ct+pseudo_mri": "CT + pseudo-MRI"}
#: The organs scored per site: the soft-tissue ones the issue names and some neighbours.
ORGANS = {
    "head-neck": ("Brainstem", "Eye_L", "Eye_R", "Lens_L", "Lens_R", "OpticNrv_L", "OpticNrv_R",
                  "OpticChiasm", "Parotid_L", "Parotid_R", "SpinalCord"),
    "pelvis": ("Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R", "Prostate", "CTV"),
}


@dataclass(frozen=True)
class Size:
    """How big one run is."""

    shape: dict[str, tuple[int, int, int]]  # site -> (z, y, x)
    gan_cases: int
    seg_cases: int
    test_cases: int
    gan_steps: int
    gan_width: int
    crop: int
    gan_batch: int
    seg_steps: int
    seg_width: int
    seg_batch: int


SIZES = {
    "small": Size({"head-neck": (48, 128, 128), "pelvis": (32, 128, 128)}, gan_cases=8,
                  seg_cases=8, test_cases=8, gan_steps=600, gan_width=16, crop=96, gan_batch=2,
                  seg_steps=250, seg_width=16, seg_batch=8),
    # the source's size: 256 x 256 slices, 64-channel CycleGANs (for a GPU: --device cuda)
    "full": Size({"head-neck": (96, 256, 256), "pelvis": (64, 256, 256)}, gan_cases=20,
                 seg_cases=20, test_cases=20, gan_steps=40000, gan_width=64, crop=256,
                 gan_batch=1, seg_steps=8000, seg_width=32, seg_batch=16),
    "tiny": Size({"head-neck": (8, 32, 32), "pelvis": (8, 32, 32)}, gan_cases=2, seg_cases=2,
                 test_cases=2, gan_steps=2, gan_width=4, crop=32, gan_batch=1, seg_steps=2,
                 seg_width=4, seg_batch=2),
}


# --- image quality ------------------------------------------------------------------------

def image_scores(pseudo: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """MAE, PSNR (dB, peak-to-peak 2) and 3-D SSIM of two volumes in [-1, 1]."""
    from skimage.metrics import structural_similarity

    diff = pseudo.astype(np.float64) - truth.astype(np.float64)
    mse = float(np.mean(diff ** 2))
    win = min(7, *(s if s % 2 else s - 1 for s in truth.shape))
    ssim = structural_similarity(truth, pseudo, data_range=2.0, win_size=win)
    return {"mae": float(np.mean(np.abs(diff))),
            "psnr": 10 * math.log10(4.0 / mse) if mse > 0 else math.inf,
            "ssim": float(ssim)}


def train_gan(site: str, variant: str, phantoms: Path, work: Path, size: Size, seed: int,
              device: str = "cpu") -> tuple[Any, float]:
    """Train one CycleGAN variant on the unpaired split of ``phantoms``; its model, seconds."""
    from autocontour.synthesis.pseudo_mri import (
        PseudoMRIConfig,
        load_pseudo_mri_model,
        train_cyclegan,
    )

    improved, denoise, loss = VARIANTS[variant]
    out = work / site / f"gan_{variant}"
    config = PseudoMRIConfig(
        out=str(out), phantoms=str(phantoms), improved_generator=improved,
        denoising_discriminator=denoise, adversarial_loss=loss, gen_channels=size.gan_width,
        disc_channels=size.gan_width, crop_size=size.crop, batch_size=size.gan_batch,
        steps=size.gan_steps, lr=2e-4 if size.gan_steps > 100 else 1e-3, seed=seed,
        sample_every=max(1, size.gan_steps // 4), checkpoint_every=max(1, size.gan_steps // 4),
        device=device)
    resume = (out / "checkpoint.pt").exists()
    outcome = train_cyclegan(config, resume=resume)
    return load_pseudo_mri_model(outcome.model, device), outcome.seconds


# --- segmentation -------------------------------------------------------------------------

def _stack(channels: dict[str, np.ndarray], which: str) -> np.ndarray:
    """(z, C, y, x) input of ``which`` (one of :data:`INPUTS`) from a case's unit volumes."""
    names = which.split("+")
    return np.stack([channels[n] for n in names], axis=1).astype(np.float32)


def _pad_to(x: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    y, xx = x.shape[-2:]
    py, px = -y % multiple, -xx % multiple
    pad = [(0, 0)] * (x.ndim - 2) + [(0, py), (0, px)]
    return np.pad(x, pad, constant_values=-1.0), (y, xx)


def train_segmenter(images: list[np.ndarray], labels: list[np.ndarray], classes: int,
                    size: Size, seed: int, device: str = "cpu") -> Any:
    """A ResUNet2D trained on the slices of ``images`` ((z, C, y, x) each) and ``labels``."""
    import torch
    from monai.losses import DiceCELoss

    from autocontour.models import ResUNet2D

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    w = size.seg_width
    net = ResUNet2D(images[0].shape[1], classes, channels=(w, 2 * w, 4 * w, 8 * w),
                    norm="instance").to(device)
    multiple = 8
    x = np.concatenate([_pad_to(i, multiple)[0] for i in images])
    y = np.concatenate([_pad_to(lab.astype(np.float32), multiple)[0] for lab in labels])
    y[y < 0] = 0  # padding of labels is background
    # two thirds of each batch from slices showing an organ, as foreground is rare
    organ_slices = np.flatnonzero(y.reshape(len(y), -1).max(axis=1) > 0)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for _ in range(size.seg_steps):
        k = size.seg_batch
        pick = rng.integers(len(x), size=k)
        if len(organ_slices):
            n_fg = (2 * k) // 3
            pick[:n_fg] = organ_slices[rng.integers(len(organ_slices), size=n_fg)]
        xb = torch.from_numpy(x[pick]).to(device)
        yb = torch.from_numpy(y[pick][:, None].astype(np.int64)).to(device)
        loss = loss_fn(net(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


def segment(net: Any, image: np.ndarray, batch: int = 8, device: str = "cpu") -> np.ndarray:
    """Arg-max labels (z, y, x) of a (z, C, y, x) input, slice by slice."""
    import torch

    padded, (ny, nx) = _pad_to(image, 8)
    out = np.empty((len(image), ny, nx), np.uint8)
    with torch.inference_mode():
        for k in range(0, len(image), batch):
            logits = net(torch.from_numpy(np.ascontiguousarray(padded[k:k + batch])).to(device))
            out[k:k + batch] = logits.argmax(1).cpu().numpy()[:, :ny, :nx]
    return out


# --- one site -----------------------------------------------------------------------------

def run_site(site: str, args: argparse.Namespace, size: Size, work: Path,
             ) -> dict[str, Any]:
    from autocontour.evaluation.overlap import dice_per_organ
    from autocontour.phantoms import make_case
    from autocontour.phantoms.export import write_cases
    from autocontour.synthesis.pseudo_mri import translate_slices

    shape = size.shape[site]
    base = args.seed + (0 if site == "head-neck" else 50000)
    phantoms = work / site / "gan_phantoms"
    if not (phantoms / "phantoms.json").exists():
        write_cases(site, size.gan_cases, phantoms, seed=base, shape=shape, dicom=False,
                    progress=False)
    seg_seeds = [base + 1000 + i for i in range(size.seg_cases)]
    test_seeds = [base + 2000 + i for i in range(size.test_cases)]
    cases = {s: make_case(site, s, shape) for s in seg_seeds + test_seeds}

    variants = ["original", "improved"] + (["a_generator", "b_denoise", "c_l1"]
                                           if args.ablation else [])
    seconds: dict[str, float] = {}
    models = {}
    for v in variants:
        models[v], seconds[f"gan_{v}"] = train_gan(site, v, phantoms, work, size, args.seed,
                                                   args.device)
    # pseudo-MRIs (normalised units) of every seg/test case, and the true MR in the same units
    unit: dict[int, dict[str, np.ndarray]] = {}
    for s, case in cases.items():
        norm = models["improved"].normalisation
        ct = norm.ct_to_unit(case.ct.array)
        entry = {"ct": ct, "mr": norm.mr_to_unit(case.mr.array)}
        for v in variants:
            entry[f"pseudo_{v}"] = translate_slices(ct, models[v].generator,
                                                    device=args.device)
        entry["pseudo_mri"] = entry["pseudo_improved"]
        unit[s] = entry

    quality = [{"site": site, "variant": v, "case": f"s{s}",
                **image_scores(unit[s][f"pseudo_{v}"], unit[s]["mr"])}
               for v in variants for s in test_seeds]
    # a reference without any network: the normalised CT itself scored as if it were the MR
    quality += [{"site": site, "variant": REFERENCE, "case": f"s{s}",
                 **image_scores(unit[s]["ct"], unit[s]["mr"])} for s in test_seeds]
    _grid(site, [unit[s] for s in test_seeds[:4]], variants, args.out / f"grid_{site}.png")

    organ_set = cases[seg_seeds[0]].labels.organs
    organs = [o for o in ORGANS[site] if o in organ_set.names]
    values = [organ_set.by_name(o).label for o in organs]
    lut = np.zeros(max(organ_set.labels) + 1, np.uint8)
    for k, v in enumerate(values, start=1):
        lut[v] = k
    dice_rows = []
    for which in INPUTS:
        t = time.perf_counter()
        net = train_segmenter([_stack(unit[s], which) for s in seg_seeds],
                              [lut[cases[s].labels.array] for s in seg_seeds],
                              len(organs) + 1, size, args.seed, args.device)
        seconds[f"seg_{which}"] = time.perf_counter() - t
        for s in test_seeds:
            truth = lut[cases[s].labels.array]
            pred = segment(net, _stack(unit[s], which), device=args.device)
            scores = dice_per_organ(pred, truth, {o: k for k, o in enumerate(organs, start=1)})
            for k, o in enumerate(organs, start=1):
                if np.any(truth == k):  # score an organ only where the truth has it
                    dice_rows.append({"site": site, "input": which, "case": f"s{s}",
                                      "organ": o, "dice": scores[o]})
    return {"quality": quality, "dice": dice_rows, "organs": organs, "variants": variants,
            "seconds": {k: round(v, 1) for k, v in seconds.items()}, "shape_zyx": list(shape),
            "gan_phantom_seeds": [base, base + size.gan_cases - 1],
            "seg_seeds": [seg_seeds[0], seg_seeds[-1]],
            "test_seeds": [test_seeds[0], test_seeds[-1]]}


def _grid(site: str, entries: list[dict[str, np.ndarray]], variants: Sequence[str],
          path: Path) -> None:
    """Middle slices: CT | true MR | pseudo-MR of each variant, one row per test case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = ["ct", "mr", *(f"pseudo_{v}" for v in variants)]
    titles = ["CT", "true MR", *(f"pseudo-MR {v}" for v in variants)]
    fig, axes = plt.subplots(len(entries), len(cols), figsize=(2.2 * len(cols),
                                                               2.2 * len(entries)),
                             squeeze=False)
    for r, e in enumerate(entries):
        k = e["ct"].shape[0] // 2
        for c, key in enumerate(cols):
            ax = axes[r][c]
            ax.imshow(e[key][k], cmap="gray", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=8)
    fig.suptitle(f"{site}: middle slice of the test phantoms", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


# --- tables -------------------------------------------------------------------------------

def _fmt(values: Sequence[float], digits: int = 3) -> str:
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return "-"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def _p(test: Any) -> str:
    return "n/a" if not math.isfinite(test.p) else f"{test.p:.3g}"


def tables(results: dict[str, dict[str, Any]]) -> str:
    from autocontour.evaluation.stats import paired_wilcoxon

    lines = ["## Image quality: pseudo-MR vs the phantom's true MR (normalised units, [-1, 1])",
             "", ("mean ± sd over the test cases; p: paired Wilcoxon signed-rank test, original "
             "vs improved"), "",
             "| site | variant | MAE | PSNR (dB) | SSIM |", "|---|---|---|---|---|"]
    for site, r in results.items():
        for v in [*r["variants"], REFERENCE]:
            rows = [q for q in r["quality"] if q["variant"] == v]
            lines.append(f"| {site} | {v} | {_fmt([q['mae'] for q in rows])} | "
                         f"{_fmt([q['psnr'] for q in rows], 2)} | "
                         f"{_fmt([q['ssim'] for q in rows])} |")
        by = {v: {q["case"]: q for q in r["quality"] if q["variant"] == v}
              for v in ("original", "improved")}
        ps = [_p(paired_wilcoxon({c: q[m] for c, q in by["original"].items()},
                                 {c: q[m] for c, q in by["improved"].items()}))
              for m in ("mae", "psnr", "ssim")]
        lines.append(f"| {site} | p (original vs improved) | {ps[0]} | {ps[1]} | {ps[2]} |")
    lines += ["", "## Segmentation: Dice per organ by input (mean ± sd over the test cases)", "",
              "p: paired Wilcoxon signed-rank test of the per-case Dice", ""]
    pairs = (("ct", "pseudo_mri"), ("ct", "ct+pseudo_mri"), ("pseudo_mri", "ct+pseudo_mri"))
    for site, r in results.items():
        lines += [f"### {site}", "",
                  ("| organ | CT | pseudo-MRI | CT + pseudo-MRI | p CT vs pMR | p CT vs both | "
                  "p pMR vs both |"), "|---|---|---|---|---|---|---|"]
        for organ in r["organs"]:
            d = {w: {x["case"]: x["dice"] for x in r["dice"]
                     if x["organ"] == organ and x["input"] == w} for w in INPUTS}
            if not d["ct"]:
                continue
            cells = [_fmt(list(d[w].values())) for w in INPUTS]
            ps = [_p(paired_wilcoxon(d[a], d[b])) for a, b in pairs]
            lines.append(f"| {organ} | {' | '.join(cells)} | {' | '.join(ps)} |")
        means = [_fmt([x["dice"] for x in r["dice"] if x["input"] == w]) for w in INPUTS]
        lines += [f"| all organs | {' | '.join(means)} | | | |", ""]
    return "\n".join(lines) + "\n"


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    if not rows:
        return
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("experiments/results/pseudo_mri"))
    p.add_argument("--work", type=Path, default=None,
                   help="phantoms and networks (default runs/pseudo_mri; reused to resume)")
    p.add_argument("--size", choices=list(SIZES), default="small")
    p.add_argument("--sites", nargs="+", choices=list(ORGANS), default=list(ORGANS))
    p.add_argument("--ablation", action="store_true",
                   help="also train each improvement alone")
    p.add_argument("--seed", type=int, default=7000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    size = SIZES[args.size]
    work = args.work or Path("runs/pseudo_mri") / args.size
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    command = "python experiments/pseudo_mri.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    for site in args.sites:
        t = time.perf_counter()
        result = run_site(site, args, size, work)
        result.update(command=command, size=args.size, seconds_site=round(
            time.perf_counter() - t, 1), threads=args.threads)
        (args.out / f"results_{site}.json").write_text(json.dumps(result, indent=2))
    # the tables cover every site whose results are in --out (sites may run as separate
    # processes, one per core, into one folder)
    results = {}
    for path in sorted(args.out.glob("results_*.json")):
        data = json.loads(path.read_text())
        if data["size"] == args.size:
            results[path.stem.removeprefix("results_")] = data
    _write_csv([q for r in results.values() for q in r["quality"]], args.out / "quality.csv")
    _write_csv([d for r in results.values() for d in r["dice"]], args.out / "dice.csv")
    text = tables(results)
    commands = sorted({r["command"] for r in results.values()})
    header = (f"# Pseudo-MRI experiment (issue 18), size '{args.size}'\n\n"
              + "".join(f"Command: `{c}`\n\n" for c in commands)
              + f"Settings: {json.dumps(size.__dict__)}\n\n")
    (args.out / "tables.md").write_text(header + text)
    summary = {"commands": commands, "size": args.size, "settings": size.__dict__,
               "seed": args.seed, "seconds_this_process": round(time.perf_counter() - started, 1),
               "sites": {s: {k: v for k, v in r.items() if k not in ("quality", "dice")}
                         for s, r in results.items()}}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=list))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
