"""Stress test of the service: N users at once, each logging in, uploading a phantom CT, waiting
for its contours and paging through every slice, on loopback.

Every simulated user is a thread with its own HTTP client: it logs in (cookie + CSRF token),
uploads its own phantom (a different seed each, so a different case), queues the contouring,
follows the job's progress by polling, then reads the result and pages through all its axial
slices (slice PNG + contours), as the page does. Afterwards it checks that it sees exactly its
own case and result and that another user's case is 404 to it.

Reported: requests per second, p50/p95/p99 latency per endpoint, job throughput, errors (must
be 0), and whether every user got exactly their own results with nothing lost (every job done,
one result each). Bounded: N users (default 20), a phantom of 40x64x64, a deadline (default
600 s); loopback only.

    python benchmarks/stress_service.py                       # embedded: SQLite + 1 worker thread
    python benchmarks/stress_service.py --workers 2           # 2 worker threads in the server
    python benchmarks/stress_service.py --database-url postgresql://u:p@127.0.0.1/db \\
        --queue-url redis://127.0.0.1:6379/14 --worker-processes 2   # PostgreSQL + Redis

Appends its table to ``benchmarks/results/stress_service.txt`` (``--out``).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "service"))


def route(path: str) -> str:
    """The endpoint a request went to (ids replaced by their names)."""
    path = re.sub(r"/\d+\.png$", "/{index}.png", path)
    path = re.sub(r"/(axial|coronal|sagittal)/\d+$", "/{view}/{index}", path)
    return re.sub(r"/\d+(?=/|$)", "/{id}", path)


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []

    def request(self, client: httpx.Client, method: str, path: str, expect: tuple[int, ...] = (
            200,), **kwargs: object) -> httpx.Response:
        start = time.perf_counter()
        try:
            answer = client.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            with self.lock:
                self.errors.append(f"{method} {path}: {type(exc).__name__}: {exc}")
            raise
        elapsed = (time.perf_counter() - start) * 1000
        with self.lock:
            self.times[f"{method} {route(path)}"].append(elapsed)
            if answer.status_code not in expect:
                self.errors.append(f"{method} {path}: {answer.status_code} {answer.text[:120]}")
        return answer


def user_run(url: str, number: int, ct: Path, record: Recorder, deadline: float,
             outcome: dict[int, dict]) -> None:
    name = f"user{number:02d}"
    with httpx.Client(base_url=url, timeout=120) as client:
        login = record.request(client, "POST", "/api/login",
                               json={"name": name, "password": f"{name}-password"})
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        case = record.request(client, "POST", "/api/cases", expect=(201,),
                              files={"files": (ct.name, ct.read_bytes())},
                              data={"contour": "true"}).json()
        job_id = case["jobs"][0]["id"]
        while time.monotonic() < deadline:
            job = record.request(client, "GET", f"/api/jobs/{job_id}").json()
            if job["state"] in ("done", "failed", "cancelled"):
                break
            time.sleep(0.5)
        else:
            record.errors.append(f"{name}: job {job_id} not finished by the deadline")
            return
        if job["state"] != "done":
            record.errors.append(f"{name}: job {job_id} {job['state']}: {job['message']}")
            return
        result = job["result_id"]
        record.request(client, "GET", f"/api/results/{result}")
        info = record.request(client, "GET", f"/api/cases/{case['id']}/image").json()
        record.request(client, "GET", f"/api/results/{result}/structures")
        for k in range(info["views"]["axial"]["count"]):
            record.request(client, "GET", f"/api/cases/{case['id']}/slices/axial/{k}.png")
            record.request(client, "GET", f"/api/results/{result}/contours/axial/{k}")
        mine = record.request(client, "GET", "/api/cases").json()
        outcome[number] = {"case": case["id"], "result": result,
                           "listed": [(c["id"], [r["id"] for r in c["results"]]) for c in mine]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1, help="worker threads in the server")
    parser.add_argument("--worker-processes", type=int, default=0,
                        help="separate `autocontour worker` processes (then --workers 0)")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--queue-url", default=None)
    parser.add_argument("--deadline", type=float, default=600)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/stress_service.txt")
    args = parser.parse_args()

    from conftest import make_settings, start_server, stop_server

    from autocontour.io import write_volume
    from autocontour.phantoms import head_neck_case
    from autocontour.store.accounts import add_user
    from autocontour.store.database import open_store

    folder = Path(tempfile.mkdtemp(prefix="stress-"))
    settings = make_settings(folder / "home", workers=0 if args.worker_processes else args.workers,
                             database_url=args.database_url, queue_url=args.queue_url,
                             threads=1, job_lease_s=120, poll_s=0.5)
    store = open_store(settings.home, settings.database_url)
    with store.session() as session:
        for n in range(args.users):
            add_user(session, f"user{n:02d}", f"user{n:02d}-password")
    store.engine.dispose()
    cts = [write_volume(head_neck_case(97000 + n, shape=(40, 64, 64)).ct,
                        folder / f"ct{n:02d}.nii.gz") for n in range(args.users)]
    workers: list[subprocess.Popen] = []
    env = {**os.environ, "AUTOCONTOUR_HOME": str(settings.home), "AUTOCONTOUR_THREADS": "1",
           "AUTOCONTOUR_DEVICE": "cpu"}
    if args.database_url:
        env["AUTOCONTOUR_DATABASE_URL"] = args.database_url
    if args.queue_url:
        env["AUTOCONTOUR_QUEUE_URL"] = args.queue_url
    for _ in range(args.worker_processes):
        workers.append(subprocess.Popen([sys.executable, "-m", "autocontour.cli", "worker"],
                                        env=env, stderr=subprocess.DEVNULL))
    server, thread, url = start_server(settings)
    record, outcome = Recorder(), {}
    crossed = 0
    started = time.perf_counter()
    deadline = time.monotonic() + args.deadline
    try:
        users = [threading.Thread(target=user_run, args=(url, n, cts[n], record, deadline,
                                                         outcome)) for n in range(args.users)]
        for user in users:
            user.start()
        for user in users:
            user.join()
        crossed = 0  # each user asks for the next user's case and result: 404, nothing else
        for n, mine in sorted(outcome.items()):
            other = outcome.get((n + 1) % args.users)
            if other is None or other is mine:
                continue
            with httpx.Client(base_url=url, timeout=60) as client:
                token = record.request(client, "POST", "/api/login", json={
                    "name": f"user{n:02d}", "password": f"user{n:02d}-password"})
                client.headers["X-CSRF-Token"] = token.json()["csrf_token"]
                record.request(client, "GET", f"/api/cases/{other['case']}", expect=(404,))
                record.request(client, "GET", f"/api/results/{other['result']}/files/rtstruct",
                               expect=(404,))
                crossed += 1
    finally:
        stop_server(server, thread)
        for worker in workers:
            worker.terminate()
            worker.wait(30)
    wall = time.perf_counter() - started

    own = sum(1 for n, o in outcome.items()
              if o["listed"] == [(o["case"], [o["result"]])])
    results = {o["result"] for o in outcome.values()}
    store = open_store(settings.home, settings.database_url)
    with store.session() as session:
        from sqlalchemy import func, select

        from autocontour.store.schema import Job, Result
        jobs_done = session.scalar(select(func.count()).select_from(Job)
                                   .where(Job.state == "done"))
        result_rows = session.scalar(select(func.count()).select_from(Result))
    store.engine.dispose()
    requests = sum(len(v) for v in record.times.values())
    setup = ("PostgreSQL + Redis" if args.database_url else "embedded SQLite") + \
        (f", {args.worker_processes} worker processes" if args.worker_processes
         else f", {args.workers} worker thread(s) in the server")
    lines = [f"# python benchmarks/stress_service.py {' '.join(sys.argv[1:])}".rstrip(),
             (f"# {date.today()} {platform.node()}, {os.cpu_count()} cores; {setup}; "
             f"{args.users} users, phantom 40x64x64 each; {crossed} users asked for another's "
             "case and result and got 404"),
             (f"wall {wall:.1f} s, {requests} requests, {requests / wall:.1f} requests/s, "
             f"{jobs_done} jobs done ({jobs_done / wall * 60:.1f} per minute), "
             f"{len(record.errors)} errors"),
             f"isolation: {own}/{args.users} users saw exactly their own case and result; "
             f"{len(results)} distinct results; {result_rows} result rows for {jobs_done} done "
             "jobs (nothing lost, nothing twice)" if result_rows == jobs_done == args.users
             else f"isolation/loss: {own}/{args.users} own, {result_rows} result rows, "
                  f"{jobs_done} jobs done: CHECK",
             f"{'endpoint':<48s} {'n':>5s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s}"]
    for name in sorted(record.times):
        v = np.asarray(record.times[name])
        lines.append(f"{name:<48s} {len(v):5d} {np.percentile(v, 50):8.1f} "
                     f"{np.percentile(v, 95):8.1f} {np.percentile(v, 99):8.1f}")
    lines += [f"error: {e}" for e in record.errors[:20]]
    text = "\n".join(lines) + "\n\n"
    print(text)
    with args.out.open("a") as handle:
        handle.write(text)
    return 0 if not record.errors and own == args.users else 1


if __name__ == "__main__":
    raise SystemExit(main())
