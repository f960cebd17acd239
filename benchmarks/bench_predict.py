"""End-to-end prediction speed (issue 6): a DICOM CT folder in, RTSTRUCT (+ SEG, NIfTI, report) out.

Target: a 512x512x160 head & neck CT contoured with the shipped model in under 60 s on this
2-core CPU without test-time augmentation (TTA). Also reported: how the time grows with the
number of slices (160 -> 320) and with TTA, and the peak memory of each configuration.

The phantom CTs (``head_neck_case(seed 90002)``, 160 and 320 slices of 512x512; never trained
on) are generated once into ``--cache`` as DICOM series with their true labels; that is not
timed. Each configuration then runs as a fresh Python process doing what ``autocontour predict``
does: load the model, read the DICOM folder, contour (``Contourer.run``), write the outputs
(``write_outputs``: RTSTRUCT, DICOM-SEG, NIfTI labels, overview PNG, report). Timed stages:
load model, read, every pipeline stage, write; "total" is their sum, "process wall" adds the
interpreter start and imports. Peak memory is the process's peak resident set size, taken from
``os.wait4`` on that one child (its own ``ru_maxrss``; ``RUSAGE_CHILDREN`` would give the
maximum over all children so far). After the timing, the prediction's Dice against the
phantom's truth (mean over the organs present in the truth) shows that the speed is not bought
with nonsense.

    python benchmarks/bench_predict.py                    # 160, 160 + TTA, 320 slices
    python benchmarks/bench_predict.py --tta-320          # and 320 slices + TTA
    python benchmarks/bench_predict.py --model other.pt --threads 1 --out-txt /tmp/b.txt

Writes ``benchmarks/results/bench_predict.txt`` (the table) and ``.json`` (everything) unless
``--out-txt`` names another file. ``--size`` (in-plane pixels, default 512) makes small smoke
runs possible: ``--size 64 --slices 16 32``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

SEED = 90002
TARGET_SECONDS = 60.0
TARGET_SLICES = 160
RESULTS = Path(__file__).resolve().parent / "results" / "bench_predict.txt"


def cores() -> int:
    """CPU cores this process may run on (the default thread count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def case_folder(cache: Path, slices: int, size: int) -> Path:
    return cache / f"hn{SEED}_{size}x{size}x{slices}"


def prepare_case(cache: Path, slices: int, size: int) -> Path:
    """The phantom as a DICOM series (``ct/``) and its truth (``truth.npz``); re-used when there.

    The series is read back once and compared with the phantom, so the truth is known to lie on
    the grid the benchmark reads.
    """
    from autocontour.io import read_volume, write_dicom_series
    from autocontour.phantoms import head_neck_case

    folder = case_folder(cache, slices, size)
    if (folder / "done.json").is_file():
        return folder
    start = time.perf_counter()
    case = head_neck_case(SEED, shape=(slices, size, size))
    folder.mkdir(parents=True, exist_ok=True)
    write_dicom_series(case.ct, folder / "ct", modality="CT", overwrite=True)
    back = read_volume(folder / "ct")
    if back.shape != case.ct.shape or not np.array_equal(back.array, case.ct.array):
        raise RuntimeError(f"{folder / 'ct'}: the series read back differs from the phantom")
    organs = {o.name: o.label for o in case.labels.organs}
    np.savez_compressed(folder / "truth.npz", labels=case.labels.array,
                        organs=json.dumps(organs))
    (folder / "done.json").write_text(json.dumps(
        {"seed": SEED, "shape_zyx": [slices, size, size],
         "spacing_xyz_mm": list(case.ct.spacing),
         "seconds": round(time.perf_counter() - start, 1)}))
    print(f"made {size}x{size}x{slices} phantom CT series in {time.perf_counter() - start:.1f} s",
          flush=True)
    return folder


def organ_dice(pred: np.ndarray, pred_organs: dict[str, int], truth: np.ndarray,
               truth_organs: dict[str, int]) -> dict[str, float]:
    """Dice of every organ present in the truth and known to the model, inside bounding boxes
    (two whole-array comparisons per organ would cost seconds at 512x512x320)."""
    from scipy import ndimage

    from autocontour.evaluation import dice

    size = max([*pred_organs.values(), *truth_organs.values(), 1]) + 1
    pred_boxes = ndimage.find_objects(pred, max_label=size)
    truth_boxes = ndimage.find_objects(truth, max_label=size)
    scores = {}
    for name, t_label in truth_organs.items():
        t_box = truth_boxes[t_label - 1] if t_label <= len(truth_boxes) else None
        if t_box is None or name not in pred_organs:
            continue
        p_label = pred_organs[name]
        p_box = pred_boxes[p_label - 1] if p_label <= len(pred_boxes) else None
        box = t_box if p_box is None else tuple(
            slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(t_box, p_box,
                                                                               strict=True))
        scores[name] = round(dice(pred[box] == p_label, truth[box] == t_label), 4)
    return scores


def worker(ct_dir: Path, model: str | None, tta: bool, threads: int, out: Path) -> dict[str, Any]:
    """One configuration, as ``autocontour predict`` runs it; stage seconds, peak RSS, Dice."""
    import torch

    torch.set_num_threads(threads)
    from autocontour.inference import Contourer, write_outputs
    from autocontour.io import read_volume

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    contourer = Contourer.from_checkpoint(model) if model else Contourer.default()
    seconds["load model"] = round(time.perf_counter() - start, 3)
    start = time.perf_counter()
    ct = read_volume(ct_dir)
    seconds["read"] = round(time.perf_counter() - start, 3)
    prediction = contourer.run(ct, tta=tta, name=str(ct_dir))
    report = write_outputs(prediction, ct, out, source=str(ct_dir), overwrite=True)
    seconds.update({k: v for k, v in report["seconds"].items() if k != "total"})
    seconds["total"] = round(sum(seconds.values()), 3)
    peak_mb = _vm_hwm_mb()
    truth = np.load(ct_dir.parent / "truth.npz")
    scores = organ_dice(prediction.labels.array,
                        {o.name: o.label for o in prediction.labels.organs},
                        truth["labels"], json.loads(str(truth["organs"])))
    return {"seconds": seconds, "peak_rss_mb_at_write": round(peak_mb, 1),
            "torch_threads": torch.get_num_threads(), "shape_zyx": list(ct.shape),
            "tta": tta, "model_name": prediction.model.get("name"),
            "rule": prediction.model.get("rule"), "warnings": prediction.warnings,
            "organs_written": [o["name"] for o in report["organs"]],
            "dice": scores, "mean_dice": round(float(np.mean(list(scores.values()))), 4)
            if scores else float("nan")}


def _vm_hwm_mb() -> float:
    """This process's peak resident memory (VmHWM) in MB; ru_maxrss where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_config(script_args: list[str], env: dict[str, str]) -> tuple[dict[str, Any], float, float]:
    """Run one worker process; its JSON, its own peak RSS (MB, from wait4) and its wall time."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, *script_args], stdout=subprocess.PIPE,
                            text=True, env=env)
    stdout = proc.stdout.read() if proc.stdout else ""
    _, status, _usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"worker {' '.join(script_args)} failed (exit {proc.returncode})")
    result = json.loads(stdout.strip().splitlines()[-1])
    # ru_maxrss survives fork + exec (Linux keeps the parent's high-water mark, here the phantom
    # generation's), so the worker's own VmHWM (reset at exec) is the peak of the job itself.
    return result, result["peak_rss_mb_at_write"], wall


def machine(threads: int) -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    import autocontour

    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip()
                   for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 \
        if hasattr(os, "sysconf") else float("nan")
    return {"cpu": cpu, "cores": cores(), "torch_threads": threads, "ram_gib": round(ram, 1),
            "python": platform.python_version(), "torch": torch.__version__,
            "autocontour": autocontour.__version__}


def label(slices: int, tta: bool) -> str:
    return f"{slices}{' TTA' if tta else ''}"


def table(runs: list[dict[str, Any]], slices: list[int]) -> str:
    """Stages x configurations, with slice and TTA ratio columns, as Markdown."""
    by = {(r["slices"], r["tta"]): r for r in runs}
    stages = list(dict.fromkeys(k for r in runs for k in r["seconds"] if k != "total"))
    ratios: list[tuple[str, dict, dict]] = []
    base = by.get((slices[0], False))
    for s in slices[1:]:
        if base and (s, False) in by:
            ratios.append((f"{s}/{slices[0]}", by[(s, False)], base))
    for s in slices:
        if (s, True) in by and (s, False) in by:
            ratios.append((f"TTA/no @{s}", by[(s, True)], by[(s, False)]))
    header = ["stage (s)", *(label(r["slices"], r["tta"]) for r in runs),
              *(name for name, _, _ in ratios)]

    def row(name: str, get: Any, digits: int = 2, ratio: bool = True) -> str:
        values = [get(r) for r in runs]
        cells = ["-" if v is None else f"{v:.{digits}f}" for v in values]
        for _, a, b in ratios:
            va, vb = get(a), get(b)
            # a ratio of stages that take milliseconds is noise
            cells.append(f"{va / vb:.2f}x" if ratio and va is not None and vb and vb >= 0.05
                         else "")
        return "| " + " | ".join([name, *cells]) + " |"

    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += [row(s, lambda r, s=s: r["seconds"].get(s)) for s in stages]
    network = [s for s in stages if s.startswith("network")]
    if len(network) > 1:
        lines.append(row("network, all members",
                         lambda r: sum(r["seconds"].get(s, 0.0) for s in network)))
    lines.append(row("**total** (load .. write)", lambda r: r["seconds"]["total"]))
    lines.append(row("process wall (+ Python, imports)", lambda r: r["process_wall_s"]))
    lines.append(row("peak RSS MB", lambda r: r["peak_rss_mb"], 0))
    lines.append(row("mean Dice vs truth", lambda r: r["mean_dice"], 3, ratio=False))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None,
                        help="model file (default: the shipped autocontour/assets model)")
    parser.add_argument("--slices", type=int, nargs="+", default=[160, 320],
                        help="slice counts; the first is the target case and gets a TTA run")
    parser.add_argument("--tta-320", dest="tta_all", action="store_true",
                        help="also run TTA on the other slice counts (320 by default)")
    parser.add_argument("--threads", type=int, default=cores(),
                        help="torch threads per run (default: all cores)")
    parser.add_argument("--size", type=int, default=512, help="in-plane pixels (smoke runs)")
    parser.add_argument("--cache", type=Path, default=Path("runs/bench_predict_cache"),
                        help="where the phantom DICOM series are kept between runs")
    parser.add_argument("--out-txt", type=Path, default=RESULTS,
                        help="the table (a .json with everything goes beside it)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-tta", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.worker_tta, args.threads,
                                args.worker_out)))
        return
    if min(args.slices) < 8 or args.size < 8 or args.threads < 1:
        parser.error("--slices and --size must be >= 8, --threads >= 1")
    from autocontour.inference.pipeline import DEFAULT_MODEL

    model = Path(args.model) if args.model else DEFAULT_MODEL
    if not model.is_file():
        parser.error(f"{model}: no such model file (train it with "
                     "scripts/train_default_model.py or pass --model)")
    model = model.resolve()
    command = "python benchmarks/bench_predict.py " + " ".join(sys.argv[1:])
    cache = args.cache.resolve()
    folders = {s: prepare_case(cache, s, args.size) for s in args.slices}
    configs = [(s, False) for s in args.slices] + [(args.slices[0], True)]
    configs += [(s, True) for s in args.slices[1:] if args.tta_all]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "MKL_NUM_THREADS": str(args.threads)}
    runs = []
    for slices, tta in configs:
        out = cache / f"out_{slices}{'_tta' if tta else ''}"
        worker_args = ["--worker", str(folders[slices] / "ct"), "--worker-out", str(out),
                       "--threads", str(args.threads), "--model", str(model)]
        result, peak_mb, wall = run_config(worker_args + (["--worker-tta"] if tta else []), env)
        run = {"slices": slices, "tta": tta, **result, "peak_rss_mb": round(peak_mb, 1),
               "process_wall_s": round(wall, 2)}
        runs.append(run)
        print(f"{label(slices, tta)}: total {run['seconds']['total']:.1f} s, peak RSS "
              f"{peak_mb:.0f} MB, mean Dice {run['mean_dice']:.3f}", flush=True)
    info = machine(args.threads)
    size_mb = model.stat().st_size / 1e6
    target = next(r for r in runs if r["slices"] == args.slices[0] and not r["tta"])
    at_target = args.slices[0] == TARGET_SLICES and args.size == 512
    passed = target["seconds"]["total"] < TARGET_SECONDS
    verdict = (f"target: {args.size}x{args.size}x{args.slices[0]} without TTA, DICOM in -> "
               f"outputs written, < {TARGET_SECONDS:.0f} s: {target['seconds']['total']:.1f} s "
               f"{'PASS' if passed else 'FAIL'}"
               + ("" if at_target else " (not the target's size: smoke run)"))
    where = (f"# {date.today().isoformat()}, {info['cores']}-core CPU ({info['cpu']}), "
             f"{info['ram_gib']} GiB RAM, torch {info['torch']} with {args.threads} thread(s), "
             f"autocontour {info['autocontour']}")
    what = (f"model: {model.name} ({size_mb:.2f} MB, '{target['model_name']}'); phantom "
            f"head_neck_case(seed {SEED}), {args.size}x{args.size} in-plane, slices "
            f"{', '.join(map(str, args.slices))}; each configuration a fresh process; "
            "peak RSS = the worker's VmHWM from /proc (ru_maxrss would carry the parent's)")
    warnings = []
    for w in dict.fromkeys(w for r in runs for w in r["warnings"]):
        where_seen = ", ".join(label(r["slices"], r["tta"]) for r in runs if w in r["warnings"])
        warnings.append(f"warning ({where_seen}): {w}")
    text = "\n".join([f"$ {command.strip()}", where, what, "", table(runs, args.slices), "",
                      verdict,
                      "Dice: mean over the organs present in the phantom's truth, on the CT grid.",
                      *warnings])
    print("\n" + text)
    args.out_txt.parent.mkdir(parents=True, exist_ok=True)
    args.out_txt.write_text(text + "\n")
    args.out_txt.with_suffix(".json").write_text(json.dumps(
        {"command": command.strip(), "date": date.today().isoformat(), "machine": info,
         "model": {"file": model.name, "size_bytes": model.stat().st_size,
                   "name": target["model_name"]},
         "seed": SEED, "size": args.size, "target_seconds": TARGET_SECONDS,
         "target_passed": passed if at_target else None, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
