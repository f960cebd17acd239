"""How much the shipped head-and-neck model loses on a CT at clinical resolution, organ by organ.

The shipped model works on a 2.03 mm grid. Clinic CTs have 0.5-1 mm pixels: ``predict``
resamples them to the model grid, contours there, and interpolates the probabilities back. The
predict benchmark scored one 512x512 phantom lower (0.795) than the same seed at 128x128
(0.887), but it also changed the slice count. This renders each phantom twice with the same
slices (3 mm, the phantom's default count) and field of view, at 128x128 (2.03 mm pixels, the training
resolution) and at 512x512 (0.51 mm), contours both with the shipped model through
``Contourer.run`` and scores every organ against the phantom's own truth at that resolution. It is
the baseline for the "small organs at clinical resolution" work (a finer-grid small-organ
member); seeds 90001 on are the development set, so nothing here is a final figure.

    python experiments/clinical_resolution.py [--cases 5] [--model FILE]

Writes ``experiments/results/clinical_resolution/{table.md,summary.json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autocontour.organs import HEAD_NECK_SMALL

PIXELS = {"128": 128, "512": 512}
SMALL = HEAD_NECK_SMALL


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=90001)
    parser.add_argument("--out", type=Path,
                        default=Path("experiments/results/clinical_resolution"))
    parser.add_argument("--model", type=Path, default=None,
                        help="a model file (default: the shipped head-and-neck model)")
    args = parser.parse_args(argv)
    import torch

    from autocontour.evaluation import evaluate_case
    from autocontour.inference import Contourer
    from autocontour.jobs import load_contourer
    from autocontour.phantoms import DEFAULT_SHAPE_HN, head_neck_case

    torch.set_num_threads(2)
    contourer = (Contourer.from_checkpoint(args.model) if args.model is not None
                 else load_contourer("head-neck", "cpu"))
    slices = DEFAULT_SHAPE_HN[0]
    sizes = {size: (slices, n, n) for size, n in PIXELS.items()}
    started = time.perf_counter()
    dice: dict[str, dict[str, list[float]]] = {size: {} for size in sizes}
    for seed in range(args.first_seed, args.first_seed + args.cases):
        for size, shape in sizes.items():
            case = head_neck_case(seed, shape=shape)
            found = contourer.run(case.ct).labels.array
            organs = [(o.name, o.label) for o in case.labels.organs
                      if (case.labels.array == o.label).any()]
            for row in evaluate_case(found, case.labels.array, case.ct.spacing, organs,
                                     case=case.case_id):
                dice[size].setdefault(row["organ"], []).append(row["dice"])
        print(f"seed {seed}: " + ", ".join(
            f"{s} {np.mean([v[-1] for v in dice[s].values()]):.3f}" for s in sizes), flush=True)
    seconds = time.perf_counter() - started
    organs = list(dice["128"])
    mean = {s: {o: float(np.mean(dice[s][o])) for o in organs} for s in sizes}
    groups = {"all organs": organs, "10 small organs": [o for o in organs if o in SMALL],
              "other organs": [o for o in organs if o not in SMALL]}
    summary = {"command": "python experiments/clinical_resolution.py " + " ".join(
                   sys.argv[1:] if argv is None else argv),
               "seconds": round(seconds, 1),
               "seeds": f"{args.first_seed}-{args.first_seed + args.cases - 1}",
               "organ_dice": mean,
               "groups": {g: {s: float(np.mean([mean[s][o] for o in names])) for s in sizes}
                          for g, names in groups.items()}}
    which = "The shipped head-and-neck model" if args.model is None else f"`{args.model}`"
    lines = [f"# {which} at 128x128 and 512x512 ({args.cases} phantoms)",
             "", (f"Command: `{summary['command'].strip()}` ({seconds / 60:.1f} min). Seeds "
             f"{summary['seeds']} (development set), {slices} slices of 3 mm, the same field "
             "of view; mean Dice over the cases."), "",
             "| organ | 128x128 (2.03 mm) | 512x512 (0.51 mm) | difference |",
             "|:---|---:|---:|---:|"]
    for o in organs:
        lines.append(f"| {o} | {mean['128'][o]:.3f} | {mean['512'][o]:.3f} | "
                     f"{mean['512'][o] - mean['128'][o]:+.3f} |")
    for g, values in summary["groups"].items():
        lines.append(f"| **{g}** | **{values['128']:.3f}** | **{values['512']:.3f}** | "
                     f"{values['512'] - values['128']:+.3f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
