"""The DICOM node end to end: a 512x512x160 CT over loopback from dcmtk's storescu, contoured by
the node's warm worker, the RTSTRUCT C-STOREd to dcmtk's storescp.

Reports (issue 20):

* **latency**: from the last slice received (the node's C-STORE handler had it on disk) to the
  RTSTRUCT stored at the destination (storescp's success answer, ``dicom_sends.sent``), against
  the in-process predict job on the same CT with the model loaded (target: within 3 s of it);
  with its parts from the node's records: the quiet time, making the case (pack, check, store),
  waiting in the queue, the job, the send;
* **receive rate** in slices/s: dcmtk storescu -> the node (pynetdicom, each instance fsync'd
  before it is acknowledged) against storescu -> dcmtk storescp, the same series.

dcmtk runs with ``TCP_NODELAY=1`` (dcmtk's own switch): without it its small writes wait for
delayed ACKs and storescp takes several seconds for what it otherwise does in a fraction (one
run of each without it is reported too). The node runs in this process (as ``autocontour
dicom-node --workers 1`` would) with a quiet time of ``--quiet`` s; a small series is sent first
so the model is loaded. Each round sends a series of its own (the same CT under other UIDs), so
each is contoured.

    python benchmarks/bench_dicom_node.py [--rounds 2] [--quiet 1] [--cache /tmp/bench-node]

Writes ``benchmarks/results/bench_dicom_node.txt`` unless ``--out-txt`` names another file.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

RESULTS = Path(__file__).resolve().parent / "results" / "bench_dicom_node.txt"
SEED = 90002
SHAPE = (160, 512, 512)
TARGET_S = 3.0
STORESCU, STORESCP = "/usr/bin/storescu", "/usr/bin/storescp"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(nodelay: bool) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if k != "TCP_NODELAY"}
    return {**values, "TCP_NODELAY": "1"} if nodelay else values


def storescu(port: int, ae_title: str, folder: Path, nodelay: bool = True) -> float:
    """Send ``folder`` with dcmtk's storescu; its wall time."""
    started = time.perf_counter()
    subprocess.run([STORESCU, "-aet", "SCANNER", "-aec", ae_title, "127.0.0.1", str(port),
                    "+sd", str(folder)], check=True, capture_output=True, env=env(nodelay),
                   timeout=600)
    return time.perf_counter() - started


def start_storescp(port: int, folder: Path, nodelay: bool = True) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([STORESCP, "-dhl", "+uf", "-aet", "DEST", "-od", str(folder),
                                str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env(nodelay))
    end = time.monotonic() + 10
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return process
        if time.monotonic() > end or process.poll() is not None:
            raise RuntimeError("storescp did not start")
        time.sleep(0.05)


def make_series(cache: Path, rounds: int) -> list[Path]:
    """The CT (phantom seed SEED, 512x512x160) as DICOM series, one per round (other UIDs)."""
    from autocontour.io import write_dicom_series
    from autocontour.phantoms import head_neck_case

    folders = [cache / f"ct{r}" for r in range(rounds)]
    missing = [f for f in folders if not f.is_dir()]
    if missing:
        ct = head_neck_case(SEED, shape=SHAPE).ct
        for folder in missing:
            write_dicom_series(ct, folder, uid_seed=f"bench-node-{folder.name}")
    return folders


def predict_warm(ct: Path, work: Path) -> float:
    """The in-process predict job with the model loaded: the second of two runs."""
    from autocontour.jobs import PredictRequest, WarmModels, predict

    models = WarmModels()
    seconds = []
    for k in range(2):
        started = time.perf_counter()
        predict(PredictRequest(ct, work / f"predict{k}", overwrite=True, device="cpu"),
                models=models)
        seconds.append(time.perf_counter() - started)
    return seconds[-1]


def utc(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, UTC).replace(tzinfo=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quiet", type=float, default=1.0, help="the node's quiet time (s)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) /
                        "autocontour-bench-dicom-node")
    parser.add_argument("--out-txt", type=Path, default=RESULTS)
    args = parser.parse_args()
    for tool in (STORESCU, STORESCP):
        if not os.access(tool, os.X_OK):
            sys.exit(f"{tool} is missing: apt-get install dcmtk")
    load = os.getloadavg()[0]
    series = make_series(args.cache, args.rounds)
    slices = len(list(series[0].glob("*.dcm")))
    work = Path(tempfile.mkdtemp(prefix="bench-node-"))
    lines: list[str] = []
    try:
        lines += run(args, series, slices, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    import torch

    cpu = platform.processor() or platform.machine()
    header = [
        f"$ python benchmarks/bench_dicom_node.py --rounds {args.rounds} --quiet {args.quiet:g}",
        (f"# {date.today().isoformat()}, {os.cpu_count()}-core CPU ({cpu}), torch "
         f"{torch.__version__} with {torch.get_num_threads()} thread(s), load average "
         f"{load:.2f} at the start"),
        (f"# CT: head_neck_case(seed {SEED}) {SHAPE[2]}x{SHAPE[1]}x{SHAPE[0]} ({slices} "
         f"slices), over 127.0.0.1; dcmtk {dcmtk_version()}")]
    text = "\n".join(header + lines) + "\n"
    print(text)
    args.out_txt.parent.mkdir(parents=True, exist_ok=True)
    args.out_txt.write_text(text)


def dcmtk_version() -> str:
    done = subprocess.run([STORESCU, "--version"], capture_output=True, text=True, check=False)
    first = done.stdout.splitlines()[0] if done.stdout else ""
    return first.split("v", 1)[-1].split(" ")[0] if "v" in first else "?"


def run(args: argparse.Namespace, series: list[Path], slices: int, work: Path) -> list[str]:
    import logging

    from autocontour.dicom_node import DicomNode, load_node_config, receiver
    from autocontour.io import write_dicom_series
    from autocontour.phantoms import head_neck_case
    from autocontour.service import Settings
    from autocontour.store.accounts import add_user
    from autocontour.store.database import open_store
    from autocontour.store.schema import DicomSend, DicomSeries, Job

    logging.basicConfig(level=logging.WARNING)
    out: list[str] = []

    # 1. the in-process predict job (model loaded) on the same CT, before anything else runs
    warm = predict_warm(series[0], work)

    # 2. dcmtk storescp receiving the series
    dest_port = free_port()
    scp_walls = []
    for nodelay in (True, True, False):
        folder = work / f"storescp-{len(scp_walls)}"
        process = start_storescp(dest_port, folder, nodelay)
        try:
            scp_walls.append((storescu(dest_port, "DEST", series[0], nodelay), nodelay))
        finally:
            process.terminate()
            process.wait(10)
        assert len(list(folder.iterdir())) == slices

    # 3. the node, with a warm worker; storescp as its destination
    home = work / "home"
    store = open_store(home)
    with store.session() as session:
        add_user(session, "alice", "alice-password")
    store.engine.dispose()
    config_file = work / "node.yaml"
    config_file.write_text(yaml.safe_dump({
        "owner": "alice", "port": 0, "calling_ae_titles": ["SCANNER"],
        "quiet_seconds": args.quiet, "poll_seconds": 0.1,
        "destinations": [{"ae_title": "DEST", "host": "127.0.0.1", "port": dest_port}]}))
    last: dict[str, float] = {}
    first: dict[str, float] = {}
    real_end = receiver.Incoming.end

    def end(self: Any, reception: Any, sop_uid: str, stored: bool) -> None:
        real_end(self, reception, sop_uid, stored)
        first.setdefault(reception.series_uid, time.time())
        last[reception.series_uid] = time.time()

    receiver.Incoming.end = end  # type: ignore[method-assign]
    destination = start_storescp(dest_port, work / "destination")
    node = DicomNode(load_node_config(config_file),
                     Settings(home=home, workers=1, device="cpu", poll_s=0.1))
    node.start()

    def wait_sent(count: int, timeout: float = 300) -> tuple[Any, Any, Any]:
        end_at = time.monotonic() + timeout
        while time.monotonic() < end_at:
            with node.store.session() as session:
                rows = session.query(DicomSeries).order_by(DicomSeries.id).all()
                if len(rows) >= count:
                    row = rows[count - 1]
                    if row.state == "failed":
                        raise RuntimeError(f"series failed: {row.message}")
                    sends = session.query(DicomSend).filter(DicomSend.series_id == row.id).all()
                    if sends and all(s.state in ("sent", "failed") for s in sends):
                        return row, session.get(Job, row.job_id), sends[0]
            time.sleep(0.05)
        raise RuntimeError("no send in time")

    try:
        small = work / "warm-up"
        write_dicom_series(head_neck_case(90051, shape=(40, 64, 64)).ct, small,
                           uid_seed="bench-node-warm-up")
        storescu(node.port, "AUTOCONTOUR", small)
        wait_sent(1)
        rounds = []
        for r, folder in enumerate(series):
            wall = storescu(node.port, "AUTOCONTOUR", folder)
            row, job, send = wait_sent(r + 2)
            assert send.state == "sent", send.message
            uid = row.series_uid
            stamps = {"last": utc(last[uid]), "first": utc(first[uid])}

            def secs(a: datetime, b: datetime) -> float:
                return (b - a).total_seconds()
            rounds.append({
                "storescu": wall, "receive": last[uid] - first[uid],
                "latency": secs(stamps["last"], send.sent),
                "quiet": secs(stamps["last"], row.completed),
                "case": secs(row.completed, job.created),
                "queue": secs(job.created, job.started),
                "job": secs(job.started, job.finished),
                "send": secs(job.finished, send.sent)})
        nagle_wall = storescu(node.port, "AUTOCONTOUR", series[0], nodelay=False)
        wait_sent(len(series) + 2)
    finally:
        node.stop()
        destination.terminate()
        destination.wait(10)
        receiver.Incoming.end = real_end  # type: ignore[method-assign]

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    out.append("")
    out.append("latency: last slice received -> RTSTRUCT stored at the destination "
               f"(node: quiet time {args.quiet:g} s, 1 warm worker thread)")
    out.append("| round | latency s | quiet | case made | queue wait | job | send |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|")
    for k, r in enumerate(rounds, 1):
        out.append(f"| {k} | {r['latency']:.2f} | {r['quiet']:.2f} | {r['case']:.2f} | "
                   f"{r['queue']:.2f} | {r['job']:.2f} | {r['send']:.2f} |")
    overhead = med("latency") - warm
    out.append(f"in-process predict job on the same CT, model loaded (second of two runs): "
               f"{warm:.2f} s")
    out.append(f"median latency {med('latency'):.2f} s = predict + {overhead:.2f} s "
               f"(of which the quiet time {med('quiet'):.2f} s); target: within {TARGET_S:g} s "
               f"of predict: {'PASS' if overhead <= TARGET_S else 'FAIL'}")
    out.append(f"  without the quiet time: predict + {overhead - med('quiet'):.2f} s; with the "
               f"default quiet time of 10 s the latency would be about "
               f"{med('latency') - med('quiet') + 10:.1f} s")
    out.append("")
    out.append(f"receive rate, {slices} slices of 512x512 (0.5 MB each), storescu wall time "
               "(association to release)")
    scp_fast = [w for w, nodelay in scp_walls if nodelay]
    scp_nagle = next(w for w, nodelay in scp_walls if not nodelay)
    node_fast = [r["storescu"] for r in rounds]
    out.append("| receiver | TCP_NODELAY | wall s | slices/s |")
    out.append("|:---|:---|---:|---:|")
    out.append(f"| dcmtk storescp | yes | {min(scp_fast):.2f} | {slices / min(scp_fast):.0f} |")
    out.append(f"| autocontour dicom-node (fsync each) | yes | {min(node_fast):.2f} | "
               f"{slices / min(node_fast):.0f} |")
    out.append(f"| dcmtk storescp | no (dcmtk default) | {scp_nagle:.2f} | "
               f"{slices / scp_nagle:.0f} |")
    out.append(f"| autocontour dicom-node (fsync each) | no (dcmtk default) | {nagle_wall:.2f} | "
               f"{slices / nagle_wall:.0f} |")
    out.append(f"node: first to last instance on disk {med('receive'):.2f} s "
               f"({slices / med('receive'):.0f} slices/s); the node receives at "
               f"{min(scp_fast) / min(node_fast):.2f}x dcmtk storescp's rate")
    return out


if __name__ == "__main__":
    main()
