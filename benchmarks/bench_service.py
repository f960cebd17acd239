"""The service end to end: a 512x512x160 DICOM series zip uploaded -> RTSTRUCT downloaded, with a
warm worker, against the in-process predict job with a warm model on the same input.

Target: the service within 2 s of the in-process job (upload start -> RTSTRUCT in the client's
hands, against ``autocontour.jobs.predict`` called with the model kept loaded).

The CT is the phantom of ``bench_predict.py`` (``head_neck_case(seed 90002)``, 160 slices of
512x512, written once as a DICOM series into ``--cache``), packed as an uncompressed zip, as a
user would upload a series. Every run uploads a zip of its own (the same slices, the members
dated differently), so the store has not seen its content: the upload is validated, not found
by its hash.

Service: ``autocontour serve`` as a separate process on 127.0.0.1 (embedded SQLite database and
queue, one worker thread, ``--device cpu --threads <cores>``), a user with a bearer token. The
worker is warmed first: one upload is contoured before anything is timed, so the model is
loaded and kept. Then, ``--repeats`` times: ``PUT /api/cases/upload/<name>.zip?contour=true``
(the body streamed from the file), the job's progress followed by server-sent events
(``GET /api/jobs/{id}/events``) until its ``end`` event, then ``GET /api/results/{id}`` and the
RTSTRUCT downloaded. Where the time goes comes from the job's own record (created, started,
finished: the queue wait and the worker's run), the result's ``report.json`` (seconds of every
pipeline stage and of writing the outputs) and the client's clock (the upload request, the end
event's arrival, the downloads). ``--poll-s`` sets the server's ``AUTOCONTOUR_POLL_S`` (how
often an idle queue is looked at and progress events are sent; default 0.5): several values run
the service once each.

In-process: in the benchmark's own process, ``predict(PredictRequest(zip, ...),
models=WarmModels())`` with the model warmed by one run first (on the warm-up zip, as the worker);
its stages from the job's progress reports. Each service run is followed at once by the
in-process run on the same zip (pairs), each started once the machine is quiet (other processes
under ``--quiet`` of the CPU for 3 s, waiting at most ``--quiet-wait-s``); a pair during which
other processes took more than ``--max-others`` of the CPU anyway is run again on a new zip (at
most ``--retries`` times); the share is printed with each pair kept.

Two verdicts. Raw: upload start -> RTSTRUCT downloaded against the predict call, the median of
the paired differences; on a machine shared with other work, the network's seconds swing by more
than the target. Overhead: what each side spends outside the pipeline (the seconds of the
pipeline's stages and of writing, from each run's own report.json, taken off its total): the
upload, the queue, reading, choosing and loading, recording, notifying, downloading; the
difference of the medians is the service's cost, whatever the network took that minute.

    python benchmarks/bench_service.py                       # poll 0.5 s (the default), 3 pairs
    python benchmarks/bench_service.py --poll-s 0.5 0.1 --repeats 5

Writes ``benchmarks/results/bench_service.txt`` (``--out-txt``), the command at the top. The
zips (84 MB each) are kept beside the series in ``--cache`` for the next run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predict import SEED, cores, prepare_case

RESULTS = Path(__file__).resolve().parent / "results" / "bench_service.txt"
TARGET_S = 2.0
DEFAULT_POLL_S = 0.5  # Settings.poll_s
SLICES, SIZE = 160, 512


def series_zip(series: Path, target: Path, day: int) -> Path:
    """The DICOM series as an uncompressed zip whose members are dated ``day`` of January 2000:
    the same slices, different bytes for every ``day``."""
    if target.is_file():
        return target
    partial = target.with_suffix(".part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(series.iterdir()):
            info = zipfile.ZipInfo(path.name, date_time=(2000, 1, day, 0, 0, 0))
            archive.writestr(info, path.read_bytes())
    partial.rename(target)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stamp(text: str | None) -> float | None:
    """A time of the API (RFC 3339; a time without a zone is UTC) as seconds since the epoch."""
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def events(client: httpx.Client, job_id: int) -> list[tuple[float, str, dict[str, Any]]]:
    """The job's server-sent events until its end event: (arrival time, kind, job)."""
    seen: list[tuple[float, str, dict[str, Any]]] = []
    kind, data = "", ""
    with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = line.split(":", 1)[1].strip()
            elif not line and data:
                seen.append((time.time(), kind, json.loads(data)))
                if kind == "end":
                    break
                kind, data = "", ""
    return seen


def service_run(client: httpx.Client, upload: Path) -> dict[str, Any]:
    """One upload -> RTSTRUCT, timed; where the time went."""
    start_wall, start = time.time(), time.perf_counter()
    with upload.open("rb") as body:
        answer = client.put(f"/api/cases/upload/{upload.name}", params={"contour": "true"},
                            content=body)
    upload_s = time.perf_counter() - start
    if answer.status_code != 201:
        raise RuntimeError(f"upload: {answer.status_code} {answer.text[:300]}")
    job_id = answer.json()["jobs"][0]["id"]
    timeline = events(client, job_id)
    end_wall, end = time.time(), time.perf_counter()
    job = timeline[-1][2]
    if job["state"] != "done":
        raise RuntimeError(f"job {job_id}: {job['state']} {job['message']}")
    result_id = job["result_id"]
    result = client.get(f"/api/results/{result_id}")
    rtstruct = client.get(f"/api/results/{result_id}/files/rtstruct")
    fetch_s = time.perf_counter() - end
    if result.status_code != 200 or rtstruct.status_code != 200 or not rtstruct.content:
        raise RuntimeError(f"result {result_id}: {result.status_code} {rtstruct.status_code}")
    total_s = time.perf_counter() - start
    report = client.get(f"/api/results/{result_id}/files/report").json()
    record = client.get(f"/api/jobs/{job_id}").json()
    created, started, finished = (stamp(record[k]) for k in ("created", "started", "finished"))
    seconds = {k: v for k, v in report["seconds"].items() if k != "total"}
    run_s = finished - started
    stages: dict[str, float] = {
        "upload request (PUT zip, contour=true)": upload_s,
        "queue wait (job created -> a worker took it)": started - created,
        "job outside the pipeline (read, choose + load model, records)":
            run_s - report["seconds"]["total"],
        **seconds,
        "job run (worker: took it -> done)": run_s,
        "finished -> `end` event at the client": end_wall - finished,
        "GET result + download rtstruct.dcm": fetch_s,
    }
    first = {}
    for arrived, _kind, data in timeline:
        first.setdefault(data["stage"], arrived - start_wall)
    pipeline = report["seconds"]["total"]
    return {"stages": stages, "total_s": total_s, "timeline": first, "pipeline_s": pipeline,
            "outside_s": total_s - pipeline,
            "created_after_upload_start_s": created - start_wall,
            "upload_mb": upload.stat().st_size / 1e6, "events": len(timeline),
            "rtstruct_bytes": len(rtstruct.content), "model": report["model"].get("name")}


def _machine_jiffies() -> tuple[int, int]:
    """(busy, all) CPU time of the whole machine so far, in clock ticks (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values) - values[3] - values[4], sum(values)


def _process_jiffies(pid: int) -> int:
    """user + system CPU time of a process (all its threads) so far, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class Others:
    """How much of the machine's CPU other processes (not this one, not the server) took
    while a run went: 0 on a quiet machine, 1 when they kept every core busy."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.start = self._sample()

    def _sample(self) -> tuple[int, int, int]:
        busy, total = _machine_jiffies()
        return busy, total, sum(_process_jiffies(p) for p in self.pids)

    def share(self) -> float:
        busy, total, ours = self._sample()
        others = (busy - self.start[0]) - (ours - self.start[2])
        return max(others, 0) / max(total - self.start[1], 1)


def wait_quiet(pids: list[int], limit: float, max_s: float) -> float:
    """Wait until other processes use under ``limit`` of the machine for 3 s in a row (at most
    ``max_s``); their share over the last second."""
    end, calm, share = time.monotonic() + max_s, 0, 1.0
    while time.monotonic() < end:
        watch = Others(pids)
        time.sleep(1)
        share = watch.share()
        calm = calm + 1 if share < limit else 0
        if calm >= 3:
            break
    return share


class InProcess:
    """The predict job in this process, its model kept loaded (``WarmModels``)."""

    def __init__(self, threads: int, out: Path) -> None:
        from autocontour.jobs.base import use_threads
        from autocontour.jobs.prediction import WarmModels

        use_threads(threads)
        self.threads, self.out, self.models = threads, out, WarmModels()

    def run(self, upload: Path, server: int | None = None) -> dict[str, Any]:
        from autocontour.jobs.prediction import PredictRequest, predict

        stages: dict[str, float] = {}
        clock = [time.perf_counter()]

        def tick(report: Any) -> None:
            now = time.perf_counter()
            stages[report.stage] = stages.get(report.stage, 0.0) + now - clock[0]
            clock[0] = now

        watch = Others([os.getpid()] + ([server] if server else []))
        start = clock[0] = time.perf_counter()
        done = predict(PredictRequest(upload, self.out, device="cpu", threads=self.threads,
                                      overwrite=True), progress=tick, models=self.models)
        total = time.perf_counter() - start
        pipeline = done.report["seconds"]["total"]
        return {"stages": stages, "total_s": total, "model": done.model, "others": watch.share(),
                "pipeline_s": pipeline, "outside_s": total - pipeline}


def run_service(args: argparse.Namespace, poll_s: float, warm: Path,
                uploads: Callable[[int], Path], work: Path, local: InProcess
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Start a server, warm its worker, then ``args.repeats`` pairs: a service run and, right
    after it, the in-process run on the same zip. A pair during which other processes took more
    than ``args.max_others`` of the CPU is run again on a new zip (at most ``args.retries``
    times); the pairs kept and how many were run again."""
    from autocontour.store.accounts import add_token, add_user
    from autocontour.store.database import open_store

    home = work / f"home-poll{poll_s}"
    store = open_store(home)
    with store.session() as session:
        token = add_token(session, add_user(session, "alice", "alice-password"), "bench")[1]
    store.engine.dispose()
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "MKL_NUM_THREADS": str(args.threads), "AUTOCONTOUR_POLL_S": str(poll_s)}
    log = (work / f"server-poll{poll_s}.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "autocontour.cli", "serve", "--home", str(home), "--port",
         str(port), "--device", "cpu", "--threads", str(args.threads), "--workers", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            for _ in range(600):
                try:
                    if client.get("/api/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise RuntimeError(f"the server did not start (see {log.name})")
            t = time.perf_counter()
            first = service_run(client, warm)  # warms the worker: the model loaded and kept
            print(f"poll {poll_s:g} s: warm-up (cold worker) upload -> RTSTRUCT "
                  f"{time.perf_counter() - t:.1f} s", flush=True)
            service, mine, again, count = [], [], 0, 0
            pids = [os.getpid(), server.pid]
            while len(service) < args.repeats:
                count += 1
                upload = uploads(count)
                time.sleep(2)  # the worker idle again, as between real uploads
                wait_quiet(pids, args.quiet, args.quiet_wait_s)
                watch = Others(pids)
                there = {**service_run(client, upload), "others": watch.share(),
                         "cold_first_s": first["total_s"]}
                wait_quiet(pids, args.quiet, args.quiet_wait_s)
                here = local.run(upload, server.pid)
                busy = max(there["others"], here["others"]) > args.max_others
                print(f"  {upload.name}: service {there['total_s']:.2f} s, in-process "
                      f"{here['total_s']:.2f} s (other processes took {there['others']:.0%} / "
                      f"{here['others']:.0%} of the CPU)" + (", again" if busy else ""),
                      flush=True)
                if busy and again < args.retries:
                    again += 1
                    continue
                service.append(there)
                mine.append(here)
            return service, mine, again
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(service: dict[str, list[dict[str, Any]]], local: list[dict[str, Any]]) -> list[str]:
    """Stages (medians over the runs): a column per service configuration, one in-process."""
    names = list(service)
    header = ["stage (s, median)", *[f"service, poll {n}" for n in names], "in-process predict"]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    local_stages = {k: median([r["stages"].get(k, 0.0) for r in local])
                    for k in local[0]["stages"]}
    rows = list(dict.fromkeys(k for runs in service.values() for k in runs[0]["stages"]))
    outside = ("read", "choose model", "load model")
    for row in rows:
        cells = []
        for n in names:
            cells.append(f"{median([r['stages'][row] for r in service[n]]):.2f}")
        if row.startswith("job outside"):
            mine = sum(local_stages.get(k, 0.0) for k in outside)
            cells.append(f"{mine:.2f} ({' + '.join(f'{local_stages.get(k, 0.0):.2f}' for k in outside)})")
        elif row.startswith("job run"):
            cells.append(f"{median([r['total_s'] for r in local]):.2f}")
        else:
            cells.append(f"{local_stages[row]:.2f}" if row in local_stages else "-")
        lines.append("| " + " | ".join([row, *cells]) + " |")
    e2e = [median([r["total_s"] for r in service[n]]) for n in names]
    mine = median([r["total_s"] for r in local])
    lines.append("| " + " | ".join(["**upload start -> RTSTRUCT downloaded** / predict call",
                                    *[f"**{v:.2f}**" for v in e2e], f"**{mine:.2f}**"]) + " |")
    for key, label in (("pipeline_s", "of which the pipeline + write (its report.json)"),
                       ("outside_s", "**of which everything else** (total - pipeline)")):
        values = [median([r[key] for r in service[n]]) for n in names]
        here = median([r[key] for r in local])
        bold = "**" if key == "outside_s" else ""
        lines.append("| " + " | ".join([label, *[f"{bold}{v:.2f}{bold}" for v in values],
                                        f"{bold}{here:.2f}{bold}"]) + " |")
    lines.append("| " + " | ".join(["**median service - median in-process**",
                                    *[f"**{v - mine:+.2f}**" for v in e2e], ""]) + " |")
    lines.append("| " + " | ".join(["cold worker: the warm-up upload -> RTSTRUCT",
                                    *[f"{service[n][0]['cold_first_s']:.2f}" for n in names],
                                    ""]) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed pairs per server configuration (default 3)")
    parser.add_argument("--poll-s", type=float, nargs="+", default=[DEFAULT_POLL_S],
                        help="the server's AUTOCONTOUR_POLL_S, one server per value "
                             f"(default {DEFAULT_POLL_S:g}, the setting's default)")
    parser.add_argument("--threads", type=int, default=cores(),
                        help="PyTorch threads of the worker and of the in-process job "
                             "(default: all cores)")
    parser.add_argument("--cache", type=Path, default=Path("runs/bench_predict_cache"),
                        help="where the phantom DICOM series is kept (shared with "
                             "bench_predict.py)")
    parser.add_argument("--quiet", type=float, default=0.15,
                        help="start a run once other processes use less than this share of the "
                             "CPU (default 0.15)")
    parser.add_argument("--quiet-wait-s", type=float, default=300,
                        help="wait at most this long for quiet before each run (default 300)")
    parser.add_argument("--max-others", type=float, default=0.1,
                        help="run a pair again when other processes took more than this share "
                             "of the CPU during it (default 0.1)")
    parser.add_argument("--retries", type=int, default=6,
                        help="pairs run again at most, per server (default 6)")
    parser.add_argument("--out-txt", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.repeats + args.retries > 27:
        parser.error("--repeats + --retries: at most 27 (one zip per day of January)")
    command = "python benchmarks/bench_service.py " + " ".join(sys.argv[1:])
    folder = prepare_case(args.cache.resolve(), SLICES, SIZE)
    zips = folder / "zips"
    zips.mkdir(exist_ok=True)
    warm = series_zip(folder / "ct", zips / "series_warm.zip", 1)

    def uploads(n: int) -> Path:  # the n-th timed upload of a server: a zip it has not seen
        return series_zip(folder / "ct", zips / f"series_{n + 1}.zip", n + 1)

    work = Path(tempfile.mkdtemp(prefix="bench_service_"))
    try:
        local = InProcess(args.threads, work / "in-process")
        local.run(warm)  # the same warm-up as the worker's: the model loaded and kept
        service: dict[str, list[dict[str, Any]]] = {}
        pairs: dict[str, list[dict[str, Any]]] = {}
        again: dict[str, int] = {}
        for poll in args.poll_s:
            name = f"{poll:g} s" + (" (default)" if poll == DEFAULT_POLL_S else "")
            service[name], pairs[name], again[name] = run_service(args, poll, warm, uploads,
                                                                  work, local)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    local_runs = [r for runs in pairs.values() for r in runs]
    first = min(next(iter(service.values())), key=lambda r: r["others"])
    verdicts = []
    for name, runs in service.items():
        gaps = [a["total_s"] - b["total_s"] for a, b in zip(runs, pairs[name], strict=True)]
        gap = median(gaps)
        best = min(r["total_s"] for r in runs) - min(r["total_s"] for r in pairs[name])
        cost = median([r["outside_s"] for r in runs]) - median(
            [r["outside_s"] for r in pairs[name]])
        verdicts.append(
            f"poll {name}: raw, median of the paired differences {gap:+.2f} s "
            f"({', '.join(f'{g:+.2f}' for g in gaps)}; best against best {best:+.2f} s): "
            f"{'PASS' if gap <= TARGET_S else 'FAIL'}; overhead, service - in-process outside "
            f"the pipeline {cost:+.2f} s: {'PASS' if cost <= TARGET_S else 'FAIL'}")
    lines = [f"$ {command.strip()}",
             (f"# {date.today().isoformat()}, {cores()}-core CPU, torch threads {args.threads}, "
              "device cpu; the server a separate `autocontour serve` process (SQLite database "
              "and queue, 1 worker thread), the client on the same machine"),
             (f"input: head_neck_case(seed {SEED}) {SIZE}x{SIZE}x{SLICES} DICOM series as an "
              f"uncompressed zip of {first['upload_mb']:.1f} MB, uploaded with "
              f"PUT /api/cases/upload/<name>.zip?contour=true; model '{first['model']}' chosen "
              f"by the job; {args.repeats} timed run(s) per column, each a new upload"),
             "",
             *table(service, local_runs),
             "",
             f"target: the service within {TARGET_S:.0f} s of the in-process job:",
             *[f"  {v}" for v in verdicts],
             ("The stages are medians over the runs: they need not add up to the median "
              "total."),
             "",
             "Pairs kept, service / in-process seconds (the share of the CPU other processes "
             f"took during each; pairs run again as others took over {args.max_others:.0%}: "
             + ", ".join(f"{n} {k}" for n, k in again.items()) + "): " + "; ".join(
                 f"poll {n}: " + ", ".join(
                     f"{a['total_s']:.2f} / {b['total_s']:.2f} ({a['others']:.0%}/"
                     f"{b['others']:.0%})" for a, b in zip(runs, pairs[n], strict=True))
                 for n, runs in service.items()),
             "First event of each stage, seconds after the upload started (the quietest run of "
             "the first column): " + ", ".join(f"{k} {v:.2f}" for k, v in first["timeline"].items()),
             (f"(the job was created {first['created_after_upload_start_s']:.2f} s after the "
              f"upload started; {first['events']} events)")]
    text = "\n".join(lines)
    print("\n" + text)
    args.out_txt.parent.mkdir(parents=True, exist_ok=True)
    args.out_txt.write_text(text + "\n")


if __name__ == "__main__":
    main()
