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

3. **Segmentation.** Three project models, each a 2-D residual U-Net (``ResUNet2D``, the
   site's whole organ set) trained by the training engine (:class:`~autocontour.training.
   engine.Trainer`, what ``autocontour train`` runs) on every ``--seg-cases`` phantom (one
   fold, no validation; ``last.pt`` is scored), the same seed, config and budget each time:

   * ``ct``: a data set imported from the phantoms (``import_dataset``), recipe
     ``seed004-structseg`` (body crop, HU clip, z-score);
   * ``ct+pseudo_mri``: the same config plus ``pseudo_mri:`` the improved CycleGAN's
     ``model.pt``: the recipe derives the pseudo-MRI from the CT as channel 2 (a 2-channel
     network, the generator embedded in the checkpoint);
   * ``pseudo_mri``: an MR model. The recipe can add a channel but has no step that drops the
     CT, so the pseudo-MRI alone is an ordinary MR data set: each phantom CT converted by
     ``autocontour pseudo-mri convert``'s job (improved CycleGAN) and imported with modality MR
     beside the phantom's labels, recipe ``mr``; the test CTs are converted the same way.

   Each model contours the test phantoms through :meth:`~autocontour.inference.Contourer.run`
   (the code of ``autocontour predict``; ``body=False`` as the body outline is a CT-only step,
   ``force`` past the anatomy check), on each CT's own grid. Its organ checks (side, volume,
   sex) run for the two CT models only; what they removed is counted under each site's table.
   Dice per organ on the test cases (an organ absent from a test case's truth is not scored
   there), with paired Wilcoxon signed-rank p-values between the inputs.

Small enough for a 2-core CPU (``--size small``, the default: 128 x 128 slices, 16-channel
networks, 600 CycleGAN steps, 10 epochs x 25 segmentation steps of 8 slices; about 25 min per
site with one free core); ``--size full`` is the source's scale (256 x 256 slices, 64-channel
CycleGANs, 40000 steps, 40 x 200 segmentation steps of 16 slices with augmentation) for a GPU
(``--device cuda``). ``--size tiny`` is the test's smoke size.

    python experiments/pseudo_mri.py --out experiments/results/pseudo_mri
        [--size small|full|tiny] [--sites head-neck pelvis] [--ablation] [--threads 1]
        [--device cpu|cuda]

Writes ``quality.csv``, ``dice.csv``, ``tables.md``, ``summary.json`` and ``grid_<site>.png`` in
``--out`` (phantoms, pseudo-MRIs, data sets and the trained runs go to ``--work``, default
``runs/pseudo_mri/<size>``; a run again with the same ``--work`` resumes: finished steps are
kept, a training cut off continues from its ``last.pt``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shlex
import shutil
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
    """How big one run is (segmentation budgets in the training engine's terms: epochs x
    steps_per_epoch optimiser steps of seg_batch slices)."""

    shape: dict[str, tuple[int, int, int]]  # site -> (z, y, x)
    gan_cases: int
    seg_cases: int
    test_cases: int
    gan_steps: int
    gan_width: int
    crop: int
    gan_batch: int
    seg_epochs: int
    seg_steps_per_epoch: int
    seg_width: int
    seg_batch: int
    seg_augment: bool = False


SIZES = {
    "small": Size({"head-neck": (48, 128, 128), "pelvis": (32, 128, 128)}, gan_cases=8,
                  seg_cases=8, test_cases=8, gan_steps=600, gan_width=16, crop=96, gan_batch=2,
                  seg_epochs=40, seg_steps_per_epoch=25, seg_width=16, seg_batch=8),
    # the source's size: 256 x 256 slices, 64-channel CycleGANs (for a GPU: --device cuda)
    "full": Size({"head-neck": (96, 256, 256), "pelvis": (64, 256, 256)}, gan_cases=20,
                 seg_cases=20, test_cases=20, gan_steps=40000, gan_width=64, crop=256,
                 gan_batch=1, seg_epochs=40, seg_steps_per_epoch=200, seg_width=32,
                 seg_batch=16, seg_augment=True),
    "tiny": Size({"head-neck": (8, 32, 32), "pelvis": (8, 32, 32)}, gan_cases=2, seg_cases=2,
                 test_cases=2, gan_steps=2, gan_width=4, crop=32, gan_batch=1, seg_epochs=1,
                 seg_steps_per_epoch=2, seg_width=4, seg_batch=2),
}
#: The CycleGAN whose pseudo-MRI the segmentation models see (the improved one, as before).
SEG_GENERATOR = "improved"


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


# --- segmentation: three project models (training engine, Contourer) ----------------------

#: The recipe of each input's model: the CT models crop to the body and normalise HU, the
#: CT + pseudo-MRI one also derives the pseudo-MRI from the CT as channel 2 (``pseudo_mri:`` in
#: the config); the pseudo-MRI-only model is an MR model, its data set holds pseudo-MRIs.
RECIPES = {"ct": "seed004-structseg", "ct+pseudo_mri": "seed004-structseg", "pseudo_mri": "mr"}


def seg_config(which: str, dataset: Path, run: Path, size: Size, shape: tuple[int, int, int],
               seed: int, generator: Path | None, device: str = "cpu") -> Any:
    """The :class:`~autocontour.artifacts.config.TrainConfig` of the ``which`` model (one of
    :data:`INPUTS`): a 2-D ResUNet2D on every seg case (one fold, no validation), the same seed
    and budget for all three; ``generator`` (the pseudo-MRI model file) for "ct+pseudo_mri"."""
    from autocontour.artifacts.config import TrainConfig

    w = size.seg_width
    values: dict[str, Any] = {
        "dataset": str(dataset), "out": str(run), "recipe": RECIPES[which],
        "network": {"name": "ResUNet2D",
                    "kwargs": {"channels": [w, 2 * w, 4 * w, 8 * w], "norm": "instance"}},
        "patch_size": [1, shape[1], shape[2]], "batch_size": size.seg_batch,
        "loss": {"name": "dicece", "include_background": False, "batch_dice": True},
        "lr": 1e-3, "min_lr": 0.0, "epochs": size.seg_epochs,
        "steps_per_epoch": size.seg_steps_per_epoch, "val_every": size.seg_epochs,
        "augmentation": {"lr_mirror": "off"} if size.seg_augment else None,
        "sampling": {"foreground_fraction": 0.5, "organ_sampling": "inverse_sqrt_volume"},
        "folds": 1, "fold": 0, "seed": seed, "device": device, "amp": device == "cuda",
        "num_workers": 0}
    if which == "ct+pseudo_mri":
        values["pseudo_mri"] = str(generator)
    return TrainConfig.from_dict(values)


def train_model(config: Any) -> tuple[Path, float]:
    """Train (or resume, or skip when finished: ``result.json``) one run; its ``last.pt`` and
    the seconds its training took (kept in ``seconds.json``; an attempt that was cut off is not
    counted, the one that resumed it is)."""
    from autocontour.training.engine import Trainer

    run = Path(config.out)
    timing = run / "seconds.json"
    before = json.loads(timing.read_text())["train"] if timing.is_file() else 0.0
    if not (run / "result.json").is_file():
        t = time.perf_counter()
        Trainer(config, progress=False).fit(resume=True)
        before += time.perf_counter() - t
        timing.write_text(json.dumps({"train": before}))
    return run / "last.pt", before


def convert_all(phantoms: Path, out: Path, generator: Path, device: str = "cpu") -> Path:
    """The pseudo-MRI of every phantom CT under ``phantoms`` (``autocontour pseudo-mri
    convert``'s job, one folder per case under ``out``), and beside it a phantom-like folder
    ``out/cases`` (``<case>/image.nii.gz`` = the pseudo-MRI, ``<case>/label.nii.gz`` = the
    phantom's truth) to import as an MR data set; made once, case by case."""
    from autocontour.jobs.pseudo_mri import NIFTI_NAME, PseudoMRIConvertRequest, convert_pseudo_mri

    manifest = json.loads((phantoms / "phantoms.json").read_text())
    cases = out / "cases"
    for entry in manifest["cases"]:
        cid = entry["case_id"]
        converted = out / cid
        if not (converted / NIFTI_NAME).is_file():
            convert_pseudo_mri(PseudoMRIConvertRequest(
                phantoms / cid / "ct.nii.gz", converted, generator, overwrite=True,
                device=device))
        pair = cases / cid
        if not (pair / "label.nii.gz").is_file():
            pair.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(converted / NIFTI_NAME, pair / "image.nii.gz")
            shutil.copyfile(phantoms / cid / "label.nii.gz", pair / "label.nii.gz.partial")
            (pair / "label.nii.gz.partial").rename(pair / "label.nii.gz")
    (cases / "phantoms.json").write_text(json.dumps(manifest, indent=2))
    return cases


def import_once(src: Path, dataset: Path, modality: str) -> Path:
    """``src`` (phantoms, or pseudo-MRI pairs) imported as a data set (skipped when there)."""
    from autocontour.data.importer import import_dataset

    if not (dataset / "manifest.json").is_file():
        import_dataset(src, dataset, layout="nifti", progress=False, modality=modality,
                       fingerprint=False)
    return dataset


# --- one site -----------------------------------------------------------------------------

def run_site(site: str, args: argparse.Namespace, size: Size, work: Path,
             ) -> dict[str, Any]:
    from autocontour.evaluation.overlap import dice_per_organ
    from autocontour.inference import Contourer
    from autocontour.io import read_volume
    from autocontour.phantoms import make_case
    from autocontour.phantoms.export import write_cases
    from autocontour.synthesis.pseudo_mri import translate_slices

    shape = size.shape[site]
    base = args.seed + (0 if site == "head-neck" else 50000)
    folder = work / site
    phantoms = folder / "gan_phantoms"
    if not (phantoms / "phantoms.json").exists():
        write_cases(site, size.gan_cases, phantoms, seed=base, shape=shape, dicom=False,
                    progress=False)
    seg_seeds = [base + 1000 + i for i in range(size.seg_cases)]
    test_seeds = [base + 2000 + i for i in range(size.test_cases)]
    sets = {"seg": (folder / "seg_phantoms", seg_seeds), "test": (folder / "test_phantoms",
                                                                  test_seeds)}
    for where, seeds in sets.values():
        if not (where / "phantoms.json").exists():
            shutil.rmtree(where, ignore_errors=True)  # a set cut off while being written
            write_cases(site, len(seeds), where, seed=seeds[0], shape=shape, dicom=False,
                        progress=False)
    cases = {s: make_case(site, s, shape) for s in test_seeds}

    variants = ["original", "improved"] + (["a_generator", "b_denoise", "c_l1"]
                                           if args.ablation else [])
    seconds: dict[str, float] = {}
    models = {}
    for v in variants:
        models[v], seconds[f"gan_{v}"] = train_gan(site, v, phantoms, work, size, args.seed,
                                                   args.device)
    # pseudo-MRIs (normalised units) of every test case, and the true MR in the same units
    unit: dict[int, dict[str, np.ndarray]] = {}
    for s in test_seeds:
        case = cases[s]
        norm = models["improved"].normalisation
        ct = norm.ct_to_unit(case.ct.array)
        entry = {"ct": ct, "mr": norm.mr_to_unit(case.mr.array)}
        for v in variants:
            entry[f"pseudo_{v}"] = translate_slices(ct, models[v].generator,
                                                    device=args.device)
        unit[s] = entry

    quality = [{"site": site, "variant": v, "case": f"s{s}",
                **image_scores(unit[s][f"pseudo_{v}"], unit[s]["mr"])}
               for v in variants for s in test_seeds]
    # a reference without any network: the normalised CT itself scored as if it were the MR
    quality += [{"site": site, "variant": REFERENCE, "case": f"s{s}",
                 **image_scores(unit[s]["ct"], unit[s]["mr"])} for s in test_seeds]
    _grid(site, [unit[s] for s in test_seeds[:4]], variants, args.out / f"grid_{site}.png")

    # segmentation: three project models, trained by the engine, scored through Contourer.run
    generator = folder / f"gan_{SEG_GENERATOR}" / "model.pt"
    t = time.perf_counter()
    ct_ds = import_once(sets["seg"][0], folder / "ds_ct", "CT")
    pmr_ds = import_once(convert_all(sets["seg"][0], folder / "pmr_seg", generator, args.device),
                         folder / "ds_pseudo_mri", "MR")
    pmr_test = convert_all(sets["test"][0], folder / "pmr_test", generator, args.device)
    seconds["seg_data"] = time.perf_counter() - t
    organ_set = cases[test_seeds[0]].labels.organs
    organs = [o for o in ORGANS[site] if o in organ_set.names]
    labels = {o: organ_set.by_name(o).label for o in organs}
    dice_rows, removed = [], {}
    runs = {}
    for which in INPUTS:
        config = seg_config(which, pmr_ds if which == "pseudo_mri" else ct_ds,
                            folder / "seg" / which.replace("+", "_"), size, shape, args.seed,
                            generator, args.device)
        checkpoint, seconds[f"seg_{which}"] = train_model(config)
        runs[which] = str(checkpoint)
        contourer = Contourer.from_checkpoint(checkpoint, args.device)
        removed[which] = {}
        for s in test_seeds:
            case = cases[s]
            image = (read_volume(pmr_test / case.case_id / "image.nii.gz")
                     if which == "pseudo_mri" else case.ct)
            # body=False: the body outline is a CT-only step, so all three are scored on what
            # their networks found; force: tiny phantoms may fail the anatomy check
            prediction = contourer.run(image, force=True, body=False, precision="fp32")
            removed[which][f"s{s}"] = prediction.safety.removed()
            truth = case.labels.array
            scores = dice_per_organ(prediction.labels.array, truth, labels)
            for o in organs:
                if np.any(truth == labels[o]):  # score an organ only where the truth has it
                    dice_rows.append({"site": site, "input": which, "case": f"s{s}",
                                      "organ": o, "dice": scores[o]})
    return {"quality": quality, "dice": dice_rows, "organs": organs, "variants": variants,
            "seconds": {k: round(v, 1) for k, v in seconds.items()}, "shape_zyx": list(shape),
            "gan_phantom_seeds": [base, base + size.gan_cases - 1],
            "seg_seeds": [seg_seeds[0], seg_seeds[-1]],
            "test_seeds": [test_seeds[0], test_seeds[-1]],
            "seg_generator": SEG_GENERATOR, "seg_models": runs,
            "organ_checks_removed": removed}


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
        removed = r.get("organ_checks_removed")
        if removed:
            counts = [f"{INPUT_NAMES[w]} {sum(len(v) for v in removed.get(w, {}).values())}"
                      for w in INPUTS]
            lines += [("Organs removed by the CT models' organ checks (wrong side, implausible "
                       "volume, other sex; an MR model has none) over the test cases: "
                       + ", ".join(counts)), ""]
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
