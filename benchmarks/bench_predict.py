"""End-to-end prediction speed: a DICOM CT folder in, RTSTRUCT (+ SEG, NIfTI, overview, report) out.

Targets (issue 13) for a 512x512x160 head & neck CT and the shipped model on a 2-core CPU: a cold
``autocontour predict`` process (Python start to exit) in <= 12 s, and the in-process predict job
with the model already loaded (what a service or a DICOM node does per CT) in <= 8 s. Also
reported: every stage including the imports, model loading and reading, how the time grows with
the number of slices (160 -> 320) and with test-time augmentation (TTA), and peak memory.

The phantom CTs (``head_neck_case(seed 90002)``, 160 and 320 slices of 512x512; never trained
on) are generated once into ``--cache`` as DICOM series with their true labels; that is not
timed. Each configuration then runs as a fresh Python process that imports the predict job,
loads the model and runs the job (``autocontour.jobs.predict``) twice with the model kept: the
first run's stages (read, every pipeline stage, write) are timed from the job's progress
reports, the second run is the "warm" in-process time. "total" is imports + load + the first
run, "process wall" adds the interpreter start; then ``autocontour predict`` itself runs as a
cold process and its wall time is the "cold" figure. Peak memory is the process's peak resident set size, taken from
``os.wait4`` on that one child (its own ``ru_maxrss``; ``RUSAGE_CHILDREN`` would give the
maximum over all children so far). After the timing, the prediction's Dice against the
phantom's truth (mean over the organs present in the truth) shows that the speed is not bought
with nonsense.

    python benchmarks/bench_predict.py                    # 160, 160 + TTA, 320 slices
    python benchmarks/bench_predict.py --tta-320          # and 320 slices + TTA
    python benchmarks/bench_predict.py --model other.pt --threads 1 --out-txt /tmp/b.txt
    python benchmarks/bench_predict.py --device cuda --slices 160 --out-txt \
        benchmarks/results/bench_predict_gpu.txt         # GPU targets (benchmarks/gpu_predict.sh)

Writes ``benchmarks/results/bench_predict.txt`` (the table) and ``.json`` (everything) unless
``--out-txt`` names another file. ``--size`` (in-plane pixels, default 512) makes small smoke
runs possible: ``--size 64 --slices 48`` (fewer slices are refused by the anatomy check as too
little head and neck, as a clinic's CT would be). ``--device cuda``: the networks run on the GPU
and the targets are issue 13's GPU ones, a cold process <= 10 s and the in-process job <= 3 s.
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
TARGET_COLD_S = 12.0  # issue 13, 2-core CPU: a cold ``autocontour predict`` process
TARGET_WARM_S = 8.0  # the in-process job with the model already loaded (a service, a node)
#: issue 13's targets on a GPU (``--device cuda``): cold process, in-process job
GPU_TARGETS_S = (10.0, 3.0)
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


def worker(ct_dir: Path, model: str | None, tta: bool, threads: int, out: Path,
           device: str = "cpu") -> dict[str, Any]:
    """One configuration through the predict job, as ``autocontour predict`` and a service run it.

    Stages: the imports of the job (PyTorch, MONAI, ...), loading the model, then the job's own
    stages (read, check, ..., write) timed from its progress reports. The job runs twice with
    the model kept loaded: the first run is what a fresh ``autocontour predict`` process does
    after loading; the second ("warm") is what a service that keeps the model does per CT.
    """
    start = time.perf_counter()
    from autocontour.jobs.base import use_threads
    from autocontour.jobs.prediction import PredictRequest, load_contourer, predict

    use_threads(threads)
    seconds: dict[str, float] = {"imports": round(time.perf_counter() - start, 3)}
    start = time.perf_counter()
    contourer = load_contourer(model, device)
    seconds["load model"] = round(time.perf_counter() - start, 3)

    def run() -> tuple[dict[str, float], Any]:
        stages: dict[str, float] = {}
        clock = [time.perf_counter()]

        def tick(report: Any) -> None:
            now = time.perf_counter()
            stages[report.stage] = round(stages.get(report.stage, 0.0) + now - clock[0], 3)
            clock[0] = now

        result = predict(PredictRequest(ct_dir, out, tta=tta, overwrite=True), progress=tick,
                         contourer=contourer)
        stages.pop("load model", None)  # the contourer was given: nothing loaded
        return stages, result

    first, result = run()
    seconds.update(first)
    seconds["total"] = round(sum(seconds.values()), 3)
    warm, result = run()
    peak_mb = _vm_hwm_mb()
    truth = np.load(ct_dir.parent / "truth.npz")
    labels = result.labels
    scores = organ_dice(labels.array, {o.name: o.label for o in labels.organs},
                        truth["labels"], json.loads(str(truth["organs"])))
    import torch

    return {"seconds": seconds, "warm_job_s": round(sum(warm.values()), 3),
            "warm_seconds": warm, "peak_rss_mb_at_write": round(peak_mb, 1),
            "torch_threads": torch.get_num_threads(), "shape_zyx": list(labels.shape),
            "tta": tta, "model_name": result.model, "rule": result.report["model"].get("rule"),
            "warnings": result.warnings,
            "organs_written": [o["name"] for o in result.report["organs"]],
            "dice": scores, "mean_dice": round(float(np.mean(list(scores.values()))), 4)
            if scores else float("nan")}


def cold_cli(ct_dir: Path, model: Path | None, out: Path, threads: int, tta: bool,
             env: dict[str, str], device: str = "cpu") -> float:
    """Wall seconds of a fresh ``autocontour predict`` process (Python start to exit); with
    ``model`` None the process chooses the shipped model from the CT (site recognition)."""
    command = [sys.executable, "-m", "autocontour.cli", "predict", str(ct_dir), "-o", str(out),
               "--overwrite", "--quiet", "--threads", str(threads), "--device", device,
               *([] if model is None else ["--model", str(model)])]
    start = time.perf_counter()
    subprocess.run(command + (["--tta"] if tta else []), check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


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


def machine(threads: int, device: str = "cpu") -> dict[str, Any]:
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
    gpu = torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() \
        else None
    return {"cpu": cpu, "gpu": gpu, "cores": cores(), "torch_threads": threads,
            "ram_gib": round(ram, 1),
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
    lines.append(row("**total** (imports .. write)", lambda r: r["seconds"]["total"]))
    lines.append(row("process wall (+ Python start)", lambda r: r["process_wall_s"]))
    lines.append(row("**cold `autocontour predict` process**", lambda r: r["cold_cli_s"]))
    if any("cold_cli_chosen_s" in r for r in runs):
        lines.append(row("cold process, model chosen from the CT (no `--model`)",
                         lambda r: r.get("cold_cli_chosen_s")))
    lines.append(row("**in-process job, model loaded (warm)**", lambda r: r["warm_job_s"]))
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
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the networks run (cuda: the GPU targets, cold <= 10 s, "
                             "in-process <= 3 s)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-tta", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.worker_tta, args.threads,
                                args.worker_out, args.device)))
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
                       "--threads", str(args.threads), "--model", str(model),
                       "--device", args.device]
        result, peak_mb, wall = run_config(worker_args + (["--worker-tta"] if tta else []), env)
        cold = cold_cli(folders[slices] / "ct", model, cache / "out_cli", args.threads, tta, env,
                        args.device)
        run = {"slices": slices, "tta": tta, **result, "peak_rss_mb": round(peak_mb, 1),
               "process_wall_s": round(wall, 2), "cold_cli_s": round(cold, 2)}
        if args.model is None and (slices, tta) == configs[0]:
            run["cold_cli_chosen_s"] = round(cold_cli(folders[slices] / "ct", None,
                                                      cache / "out_cli", args.threads, tta,
                                                      env, args.device), 2)
        runs.append(run)
        print(f"{label(slices, tta)}: total {run['seconds']['total']:.1f} s, peak RSS "
              f"{peak_mb:.0f} MB, mean Dice {run['mean_dice']:.3f}", flush=True)
    info = machine(args.threads, args.device)
    cold_target, warm_target = GPU_TARGETS_S if args.device == "cuda" else \
        (TARGET_COLD_S, TARGET_WARM_S)
    on = f"GPU {info['gpu']}" if info["gpu"] else f"{cores()} CPU cores"
    size_mb = model.stat().st_size / 1e6
    target = next(r for r in runs if r["slices"] == args.slices[0] and not r["tta"])
    at_target = args.slices[0] == TARGET_SLICES and args.size == 512
    passed = (target["cold_cli_s"] <= cold_target and target["warm_job_s"] <= warm_target)
    verdict = (f"targets ({args.size}x{args.size}x{args.slices[0]} without TTA, DICOM in -> all "
               f"outputs written, {on}): cold `autocontour predict` process "
               f"<= {cold_target:.0f} s: {target['cold_cli_s']:.1f} s "
               f"{'PASS' if target['cold_cli_s'] <= cold_target else 'FAIL'}; in-process job "
               f"with the model loaded <= {warm_target:.0f} s: {target['warm_job_s']:.1f} s "
               f"{'PASS' if target['warm_job_s'] <= warm_target else 'FAIL'}"
               + ("" if at_target else " (not the target's size: smoke run)"))
    where = (f"# {date.today().isoformat()}, {info['cores']}-core CPU ({info['cpu']}), "
             + (f"GPU {info['gpu']}, " if info["gpu"] else "") +
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
         "seed": SEED, "size": args.size,
         "device": args.device,
         "targets_s": {"cold_cli": cold_target, "warm_job": warm_target},
         "target_passed": passed if at_target else None, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
