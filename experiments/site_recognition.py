"""Is the right shipped model chosen for a CT? Fresh phantoms of each site, whole and cut.

``autocontour predict`` without ``--model`` sorts the CT's slices into body regions and picks
the shipped model whose training anatomy the CT shows
(:func:`autocontour.inference.catalogue.choose_model`). This scores that choice on ``--cases``
fresh phantoms per site (seeds ``--first-seed`` on; no decision about the choice was made on
them), each in three fields of view:

* ``full``: the phantom as rendered;
* ``shifted``: the field moved: a quarter of the slices cut at one end (which end drawn from the
  seed) and the in-plane field moved by a sixth of its width (columns cut at one side);
* ``partial``: only half the slices (the lower or upper half, drawn from the seed).

Expected: head-and-neck phantoms -> ``head-neck``, pelvis phantoms -> ``pelvis``, thorax
phantoms -> refused (no shipped model is for the chest).

    python experiments/site_recognition.py      # 50 cases x 3 sites x 3 fields, ~10 min

Writes ``experiments/results/site_recognition/{table.md,summary.json,cases.csv}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

EXPECTED = {"head-neck": "head-neck", "pelvis": "pelvis", "thorax": "refused"}
FIELDS = ("full", "shifted", "partial")


def cut(ct: Any, field: str, rng: np.random.Generator) -> Any:
    """The phantom CT in one of :data:`FIELDS`."""
    from autocontour.data.steps import crop

    z, y, x = ct.shape
    if field == "full":
        return ct
    if field == "shifted":
        drop, side = z // 4, x // 6
        zs = (drop, z) if rng.random() < 0.5 else (0, z - drop)
        xs = (side, x) if rng.random() < 0.5 else (0, x - side)
        return crop(ct, (zs[0], 0, xs[0]), (zs[1], y, xs[1]))
    half = z // 2
    zs = (0, half) if rng.random() < 0.5 else (z - half, z)
    return crop(ct, (zs[0], 0, 0), (zs[1], y, x))


def run(cases: int, first_seed: int) -> list[dict[str, Any]]:
    from autocontour.inference.anatomy import AnatomyError
    from autocontour.inference.catalogue import choose_model, shipped_models
    from autocontour.phantoms import make_case

    models = shipped_models()
    rows = []
    for site, expected in EXPECTED.items():
        for seed in range(first_seed, first_seed + cases):
            case = make_case(site, seed)
            rng = np.random.default_rng([seed, 7])
            for field in FIELDS:
                ct = cut(case.ct, field, rng)
                try:
                    chosen = choose_model(ct, case.case_id, models).model.name
                    why = ""
                except AnatomyError as exc:
                    chosen, why = "refused", str(exc)
                rows.append({"site": site, "case": case.case_id, "field": field,
                             "slices": ct.shape[0], "expected": expected, "chosen": chosen,
                             "right": chosen == expected, "refusal": why})
        right = sum(r["right"] for r in rows if r["site"] == site)
        print(f"{site}: {right} of {cases * len(FIELDS)} right", flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=96001)
    parser.add_argument("--out", type=Path, default=Path("experiments/results/site_recognition"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = run(args.cases, args.first_seed)
    seconds = time.perf_counter() - started
    from autocontour.inference.catalogue import shipped_models

    models = [m.name for m in shipped_models()]
    table = {site: {field: sum(r["right"] for r in rows if r["site"] == site
                               and r["field"] == field) for field in FIELDS}
             for site in EXPECTED}
    total = sum(r["right"] for r in rows)
    command = "python experiments/site_recognition.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    summary = {"command": command.strip(), "seconds": round(seconds, 1), "models": models,
               "cases_per_site": args.cases,
               "seeds": f"{args.first_seed}-{args.first_seed + args.cases - 1}",
               "right": total, "total": len(rows), "right_by_site_and_field": table,
               "wrong": [r for r in rows if not r["right"]]}
    lines = [f"# Site recognition: which shipped model a CT gets ({len(rows)} CTs)", "",
             (f"Command: `{command.strip()}` ({seconds / 60:.1f} min). Shipped models: "
             f"{', '.join(models)}. {args.cases} fresh phantoms per site (seeds "
             f"{summary['seeds']}), each whole (full), with a quarter of the slices and a sixth "
             "of the width cut away (shifted), and as half of its slices (partial)."), "",
             "| site | expected | full | shifted | partial |", "|---|---|---:|---:|---:|"]
    for site, expected in EXPECTED.items():
        lines.append(f"| {site} | {expected} | " + " | ".join(
            f"{table[site][f]}/{args.cases}" for f in FIELDS) + " |")
    lines += ["", f"Right: {total} of {len(rows)} ({total / len(rows):.1%})."]
    for r in summary["wrong"]:
        lines.append(f"- wrong: {r['case']} {r['field']}: {r['chosen']} ({r['refusal']})")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    with (args.out / "cases.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
