"""The body outline (External) and the label-map counts on a clinic-sized CT: seconds per call.

Times :func:`autocontour.inference.body.body_outline` and :meth:`LabelMap.counts` (what
``present()``, organ volumes and label-map validation use) on the 512x512x160 head-and-neck phantom
of ``benchmarks/bench_predict.py`` (seed 90002, 0.51 mm pixels, 3 mm slices), one warm-up and
``--rounds`` timed calls in this process, and prints every time and the median. The README's
"about N s" for the body outline comes from this output.

    python benchmarks/bench_body.py [--rounds 5] > benchmarks/results/bench_body.txt
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time

import numpy as np


def _time(call, rounds: int) -> list[float]:
    call()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from autocontour.inference.body import body_outline
    from autocontour.phantoms import head_neck_case

    case = head_neck_case(90002, shape=(160, 512, 512))
    load = os.getloadavg()[0]
    body = _time(lambda: body_outline(case.ct), args.rounds)
    labels = case.labels.with_array(np.ascontiguousarray(case.labels.array, np.uint8))
    counts = _time(labels.counts, args.rounds)
    whole = _time(lambda: np.bincount(labels.array.ravel().astype(np.int64), minlength=256),
                  args.rounds)
    mask = body_outline(case.ct)
    inside = float(mask[case.labels.array > 0].mean())
    print(f"# {datetime.date.today().isoformat()}, {os.cpu_count()}-core CPU, load average "
          f"before {load:.2f}; head_neck_case(90002) 512x512x160")
    print("$ python benchmarks/bench_body.py " + f"--rounds {args.rounds}")
    for name, times in (("body_outline", body), ("LabelMap.counts", counts),
                        ("whole-map bincount (before)", whole)):
        print(f"{name}: median {statistics.median(times):.3f} s ("
              + ", ".join(f"{t:.3f}" for t in times) + ")")
    print(f"body: {mask.mean():.1%} of the grid; organ voxels inside it: {inside:.2%}")


if __name__ == "__main__":
    main()
