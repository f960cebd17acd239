"""How well a model contours phantoms it has never seen: Dice and HD95 per organ, per site.

The demo scores one unseen case; one case says little (a small organ's Dice moves by 0.1 from
case to case). This contours ``--cases`` fresh phantoms (seeds ``--first-seed`` on; the shipped
model was trained and validated on seeds 1000-1039) with each model given, through the same
``Contourer.run`` as ``autocontour predict`` (the CT handed over in memory, at the phantom's own
128x128x64 grid), and scores every organ against the phantom's truth on the CT's grid.

Seeds 90001-90010 (the default) chose between model versions, so they are a development set;
seeds 95001 on are the test set, scored once with the shipped model and never used for a
decision (``experiments/results/unseen_test/`` for head and neck,
``experiments/results/unseen_test_pelvis/`` for the pelvis). Keep it that way: compare models
on 90001 on.

    python experiments/unseen_phantoms.py                       # the shipped model, 10 cases
    python experiments/unseen_phantoms.py --models a.pt b.pt    # and a paired comparison
    python experiments/unseen_phantoms.py --first-seed 95001 --out experiments/results/unseen_test
    python experiments/unseen_phantoms.py --site pelvis --cases 20 --first-seed 95001 \
        --out experiments/results/unseen_test_pelvis

``--site pelvis`` uses pelvis phantoms of both sexes (drawn from the seed) and the shipped pelvis
model; an organ is scored where the truth or the prediction has it, so a prostate drawn in a
woman counts as a Dice of 0. The summary adds the mean over the four organs-at-risk.

Writes to ``--out`` (default ``experiments/results/unseen``): ``scores.csv`` (model, case,
organ and every metric of ``evaluate_case``), ``table.md`` (per organ mean and sd of Dice and
mean HD95 for each model, the mean over organs, the command and time, and with two models a
paired Wilcoxon test per organ on Dice) and ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autocontour.organs import HEAD_NECK_SMALL

FIRST_SEED = 90001


TITLES = {"head-neck": "head & neck", "pelvis": "pelvis"}
PELVIS_OARS = ("Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R")
#: The head-and-neck organs of 9-60 voxels on the 2 mm grid (clinical-resolution summary).
SMALL_ORGANS = HEAD_NECK_SMALL


def score_models(models: Mapping[str, Any], seeds: Sequence[int],
                 progress: bool = True, site: str = "head-neck",
                 pixels: int | None = None, precision: str = "auto") -> list[dict[str, Any]]:
    """Rows of ``evaluate_case`` (plus ``model`` and ``seconds``) for every model and phantom.

    Args:
        models: label -> a :class:`~autocontour.inference.Contourer`.
        seeds: phantom seeds.
        site: the phantoms' body site ("head-neck" or "pelvis").
        pixels: render each phantom with ``pixels`` x ``pixels`` slices over the same field of
            view and slices (512: 0.51 mm pixels for head and neck, as a clinic CT); None: the
            site's default grid.
        precision: the networks' precision (``Contourer.run``: "auto" or "fp32").
    """
    from autocontour.evaluation import evaluate_case
    from autocontour.phantoms import make_case
    from autocontour.phantoms.head_neck import DEFAULT_SHAPE_HN
    from autocontour.phantoms.pelvis import DEFAULT_SHAPE_PELVIS

    default = {"head-neck": DEFAULT_SHAPE_HN, "pelvis": DEFAULT_SHAPE_PELVIS}[site]
    shape = None if pixels is None else (default[0], pixels, pixels)
    rows = []
    for seed in seeds:
        case = make_case(site, seed, shape)
        truth = case.labels.array
        for label, contourer in models.items():
            started = time.perf_counter()
            prediction = contourer.run(case.ct, precision=precision)
            seconds = time.perf_counter() - started
            found = prediction.labels.array
            organs = [(o.name, o.label) for o in case.labels.organs
                      if (truth == o.label).any() or (found == o.label).any()]
            for row in evaluate_case(found, truth, case.ct.spacing, organs,
                                     case=case.case_id):
                rows.append({"model": label, **row, "seconds": seconds})
        if progress:
            means = {m: np.mean([r["dice"] for r in rows
                                 if r["case"] == case.case_id and r["model"] == m])
                     for m in models}
            print(f"{case.case_id}: mean Dice " + ", ".join(
                f"{m} {v:.3f}" for m, v in means.items()), flush=True)
    return rows


def _fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "n/a"


def tables(rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> tuple[str, dict]:
    """The Markdown report and the summary dict of :func:`score_models`' rows."""
    from autocontour.evaluation import compare_markdown, compare_models, markdown_table, summarise

    models = list(dict.fromkeys(r["model"] for r in rows))
    cases = list(dict.fromkeys(r["case"] for r in rows))
    per_model = {m: {e["organ"]: e for e in summarise([r for r in rows if r["model"] == m])}
                 for m in models}
    organs = list(per_model[models[0]])
    head = ["organ"]
    for m in models:
        head += [f"{m} Dice (sd)", f"{m} HD95 mm"]
    body = []
    for organ in organs:
        line = [organ]
        for m in models:
            e = per_model[m].get(organ)
            line += ([f"{_fmt(e['dice_mean'])} ({_fmt(e['dice_sd'], 2)})",
                      _fmt(e["hd95_mm_mean"], 1) + ("*" if e["n_one_empty"] else "")]
                     if e else ["-", "-"])
        body.append(line)
    summary: dict[str, Any] = {"meta": dict(meta), "cases": cases, "models": {}}
    mean_line = ["**mean over organs**"]
    for m in models:
        case_means = [float(np.mean([r["dice"] for r in rows
                                     if r["model"] == m and r["case"] == c])) for c in cases]
        organ_dice = {o: e["dice_mean"] for o, e in per_model[m].items()}
        hd = [e["hd95_mm_mean"] for e in per_model[m].values() if math.isfinite(e["hd95_mm_mean"])]
        seconds = float(np.mean([r["seconds"] for r in rows if r["model"] == m]))
        summary["models"][m] = {
            "mean_dice": float(np.mean(list(organ_dice.values()))),
            "case_mean_dice": dict(zip(cases, case_means, strict=True)),
            "worst_case_mean_dice": float(min(case_means)), "organ_dice": organ_dice,
            "mean_hd95_mm": float(np.mean(hd)) if hd else math.nan,
            **({"oar_mean_dice": float(np.mean([organ_dice[o] for o in PELVIS_OARS]))}
               if set(PELVIS_OARS) <= set(organ_dice) else {}),
            **({"small_organ_dice": float(np.mean([organ_dice[o] for o in SMALL_ORGANS])),
                "other_organ_dice": float(np.mean([d for o, d in organ_dice.items()
                                                   if o not in SMALL_ORGANS]))}
               if set(SMALL_ORGANS) <= set(organ_dice) else {}),
            "organs_missed": sum(int(e["n_one_empty"]) for e in per_model[m].values()),
            "seconds_per_case": seconds}
        mean_line += [f"**{_fmt(summary['models'][m]['mean_dice'])}**",
                      _fmt(summary["models"][m]["mean_hd95_mm"], 1)]
    body.append(mean_line)
    command = (f"Command: `{meta['command']}` ({meta['seconds'] / 60:.1f} min, torch threads "
               f"{meta['threads']}).")
    legend = ("Mean over cases of each organ's Dice (sample sd) and HD95 on the CT's own grid; "
              "* = the organ was missed (or drawn where the truth has none) in some case, whose "
              "HD95 is left out of that mean.")
    grid = f", {meta['pixels']}x{meta['pixels']} pixels" if meta.get("pixels") else ""
    lines = [(f"# Unseen {TITLES[meta.get('site', 'head-neck')]} phantoms: {len(cases)} cases (seeds "
             f"{meta['seeds']}{grid})"), "",
             command, "", legend, "", markdown_table(head, body), ""]
    for m in models:
        s = summary["models"][m]
        lines.append(f"- {m}: mean Dice {s['mean_dice']:.3f} over {len(organs)} organs; per "
                     f"case {min(s['case_mean_dice'].values()):.3f}-"
                     f"{max(s['case_mean_dice'].values()):.3f}; {s['organs_missed']} organ(s) "
                     f"missed or spurious over all cases; {s['seconds_per_case']:.1f} s per "
                     "case (model grid to labels on the CT grid)."
                     + (f" Mean over the organs-at-risk ({', '.join(PELVIS_OARS)}): "
                        f"{s['oar_mean_dice']:.3f}." if "oar_mean_dice" in s else "")
                     + (f" The {len(SMALL_ORGANS)} small organs ({', '.join(SMALL_ORGANS)}): "
                        f"{s['small_organ_dice']:.3f}; the others {s['other_organ_dice']:.3f}."
                        if "small_organ_dice" in s else ""))
    if len(models) == 2:
        a, b = models
        table = compare_models([r for r in rows if r["model"] == a],
                               [r for r in rows if r["model"] == b], "dice")
        summary["paired_dice"] = table
        better = sum(1 for t in table if t["p"] < 0.05 and t["diff"] > 0)
        worse = sum(1 for t in table if t["p"] < 0.05 and t["diff"] < 0)
        lines += ["", f"## Paired comparison: A = {a}, B = {b} (Dice, Wilcoxon signed-rank)",
                  "", compare_markdown(table), "",
                  f"A better for {better} organ(s), worse for {worse} (p < 0.05, uncorrected)."]
    return "\n".join(lines) + "\n", summary


def _shown(path: str | Path) -> str:
    """``path`` relative to the working folder when it lies inside it (a repository path)."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(Path.cwd()) if resolved.is_relative_to(Path.cwd()) else path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None,
                        help="model files (default: the shipped model); LABEL=PATH names one")
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=FIRST_SEED,
                        help="first phantom seed (90001: development set; 95001: the test set)")
    parser.add_argument("--out", type=Path, default=Path("experiments/results/unseen"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--site", choices=("head-neck", "pelvis"), default="head-neck")
    parser.add_argument("--pixels", type=int, default=None, metavar="N",
                        help="render N x N slices over the same field of view (512: 0.51 mm "
                             "pixels for head and neck, as a clinic's CT); default the "
                             "site's own grid (128)")
    parser.add_argument("--precision", choices=("auto", "fp32"), default="auto",
                        help="the networks' precision, as predict --precision (default auto)")
    args = parser.parse_args(argv)
    if args.pixels is not None and not 32 <= args.pixels <= 1024:
        parser.error("--pixels must lie in 32..1024")
    if args.cases < 1:
        parser.error("--cases must be at least 1")
    import torch

    from autocontour.inference import Contourer
    from autocontour.inference.catalogue import shipped_model

    torch.set_num_threads(args.threads)
    specs = args.models or [f"shipped={shipped_model(args.site).path}"]
    models = {}
    for spec in specs:
        label, _, path = spec.rpartition("=")
        models[label or Path(path).stem] = Contourer.from_checkpoint(path)
    if len(models) != len(specs):
        parser.error("two models share a label; name them LABEL=PATH")
    seeds = list(range(args.first_seed, args.first_seed + args.cases))
    started = time.perf_counter()
    rows = score_models(models, seeds, site=args.site, pixels=args.pixels,
                        precision=args.precision)
    meta = {"site": args.site, "pixels": args.pixels, "command": "python experiments/unseen_phantoms.py " + " ".join(
                sys.argv[1:] if argv is None else argv),
            "seconds": time.perf_counter() - started, "threads": args.threads,
            "precision": {m: c.precision_of(args.precision) for m, c in models.items()},
            "seeds": f"{seeds[0]}-{seeds[-1]}",
            "model_files": {m: _shown(p.rpartition("=")[2]) for m, p in zip(models, specs)}}
    markdown, summary = tables(rows, meta)
    args.out.mkdir(parents=True, exist_ok=True)
    from autocontour.evaluation import write_csv

    write_csv(rows, args.out / "scores.csv")
    (args.out / "table.md").write_text(markdown)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
