"""Phantom generation time and organ volumes: the figures the README quotes for the phantoms.

Generates ``--cases`` head-and-neck and pelvis phantoms (seeds ``--first-seed`` on, default
grids, sex drawn from the seed as ``autocontour phantom`` does) and ``--big-cases`` head-and-neck
phantoms at 512x512x160, timing each (the load average at the start is recorded: the times are
only as good as the machine was idle), and records each organ's volume range in cm³.

    python experiments/phantom_stats.py          # 20 + 20 default cases, 1 big one (about 1 min)

Writes ``summary.json`` (the command, times, and min/max volume per organ and site) and
``table.md`` to ``--out`` (default ``experiments/results/phantoms``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BIG_SHAPE = (160, 512, 512)


def _timed(make: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    case = make()
    return case, time.perf_counter() - started


def site_stats(site: str, seeds: Sequence[int]) -> dict[str, Any]:
    """Seconds per case and each organ's volume range (cm³, cases where it is present)."""
    from autocontour.phantoms import make_case

    seconds: list[float] = []
    volumes: dict[str, list[float]] = {}
    for seed in seeds:
        case, took = _timed(lambda s=seed: make_case(site, s))
        seconds.append(took)
        for organ, cc in case.labels.volumes_cc().items():
            if cc > 0:
                volumes.setdefault(organ, []).append(cc)
    return {"seeds": f"{seeds[0]}-{seeds[-1]}", "cases": len(seeds),
            "seconds_per_case": sum(seconds) / len(seconds),
            "volume_cc": {o: {"min": min(v), "max": max(v), "cases": len(v)}
                          for o, v in volumes.items()}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--big-cases", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("experiments/results/phantoms"))
    args = parser.parse_args(argv)
    from autocontour.phantoms import head_neck_case

    load = os.getloadavg()[0]
    started = time.perf_counter()
    seeds = list(range(args.first_seed, args.first_seed + args.cases))
    sites = {site: site_stats(site, seeds) for site in ("head-neck", "pelvis")}
    big = [_timed(lambda s=seed: head_neck_case(s, BIG_SHAPE))[1]
           for seed in seeds[:args.big_cases]]
    summary = {
        "command": "python experiments/phantom_stats.py " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "seconds": time.perf_counter() - started,
        "load_average_at_start": load,
        "sites": sites,
        "big_head_neck": {"shape_zyx": list(BIG_SHAPE), "seconds": big},
    }
    lines = ["# Phantom generation time and organ volumes", "",
             (f"Command: `{summary['command'].strip()}` ({summary['seconds']:.0f} s, "
              f"load average {load:.2f} at the start on {os.cpu_count()} cores)."), ""]
    for site, s in sites.items():
        lines += [(f"## {site}: {s['cases']} cases (seeds {s['seeds']}), "
                   f"{s['seconds_per_case']:.2f} s per case"), "",
                  "| organ | cases | min cm³ | max cm³ |", "|---|---:|---:|---:|"]
        lines += [f"| {o} | {v['cases']} | {v['min']:.2f} | {v['max']:.2f} |"
                  for o, v in s["volume_cc"].items()]
        lines.append("")
    lines.append("Head and neck at 512x512x160: " + ", ".join(f"{t:.1f} s" for t in big))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
