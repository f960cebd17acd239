"""`autocontour demo` end to end: wall time of a fresh process and what the demo prints.

Runs ``autocontour demo`` ``--rounds`` times, each in a fresh Python process in an empty
temporary folder (so the output lands in ``autocontour-demo/`` as for a user), and prints the
last run's output, the wall time of every run (Python start and imports included) and their
median. The README's demo transcript and its "takes about N s" come from this output.

    python benchmarks/bench_demo.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    walls: list[float] = []
    output = ""
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            folder = Path(tmp) / f"run{i}"
            folder.mkdir()
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "autocontour.cli", "demo"], cwd=folder,
                                  capture_output=True, text=True, check=True)
            walls.append(time.perf_counter() - started)
            output = done.stdout
    print(f"# {datetime.date.today().isoformat()}, {os.cpu_count()}-core CPU, "
          f"load average {load:.2f} at the start")
    print(f"$ autocontour demo   (the last of {args.rounds} runs)")
    print(output.rstrip())
    print("wall per run (fresh process, imports included): "
          + ", ".join(f"{w:.1f} s" for w in walls) + f"; median {statistics.median(walls):.1f} s")


if __name__ == "__main__":
    main()
