"""The service when things break: a worker killed mid-job, a worker frozen long enough to be given
up for dead that then wakes up, the server restarted with jobs queued (its queue file kept or
lost), storage that is full or read-only. The embedded defaults (SQLite database and queue), so
these run everywhere (the storage faults need a mount: root)."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Service, make_settings, start_server, stop_server, with_users
from worker_processes import database_rows, start_worker

LEASE_S = 4.0
"""The job lease of the tests that freeze or kill a worker: short, so its job runs again soon; not
so short that a busy worker's heartbeat (every quarter of it) comes late."""


def _token_client(service: Service) -> httpx.Client:
    return service.client(service.token("alice", "alice-password"))


def _upload(client: httpx.Client, ct_file: Path, contour: bool = False) -> httpx.Response:
    with ct_file.open("rb") as handle:
        return client.post("/api/cases", files={"files": (ct_file.name, handle)},
                           data={"contour": str(contour).lower()})


def _results_in_database(service: Service, case_id: int) -> list[tuple]:
    return database_rows(service.settings, "SELECT id FROM results WHERE case_id = :case",
                         case=case_id)


def test_a_job_whose_worker_is_killed_runs_again_and_keeps_one_result(
        tmp_path: Path, ct_file: Path) -> None:
    """``kill -9`` of the worker process mid-job: once its lease runs out, the next worker to
    start runs the job again (attempt 2); it ends with one result, on record and listed."""
    settings = make_settings(tmp_path / "home", workers=0, job_lease_s=LEASE_S)
    with_users(settings.home)
    server, thread, url = start_server(settings)
    service = Service(url, settings)
    first = start_worker(settings, tmp_path / "worker1.log")
    second = None
    try:
        with _token_client(service) as client:
            case = _upload(client, ct_file, contour=True).json()
            job_id = case["jobs"][0]["id"]
            end = time.monotonic() + 180
            while True:  # well into the contouring: past loading the model and preprocessing
                job = client.get(f"/api/jobs/{job_id}").json()
                if job["state"] == "running" and job["fraction"] >= 0.3:
                    break
                assert job["state"] in ("queued", "running"), job
                assert time.monotonic() < end, f"job never ran:\n{first.output()}"
                time.sleep(0.02)
            first.kill()
            killed = client.get(f"/api/jobs/{job_id}").json()
            assert (killed["state"], killed["attempt"]) == ("running", 1), killed
            assert killed["result_id"] is None and _results_in_database(service, case["id"]) == []
            time.sleep(LEASE_S + 0.5)  # the dead worker's lease runs out

            second = start_worker(settings, tmp_path / "worker2.log")
            job = service.wait(client, job_id, timeout=180)
            assert job["state"] == "done", (job, second.output())
            assert job["attempt"] == 2, job
            [(worker,)] = database_rows(settings, "SELECT worker FROM jobs WHERE id = :job",
                                        job=job_id)
            assert worker.rsplit(":", 1)[1] == str(second.pid), worker

            rows = _results_in_database(service, case["id"])
            assert rows == [(job["result_id"],)], rows
            listed = client.get(f"/api/cases/{case['id']}").json()["results"]
            assert [(r["id"], r["job_id"]) for r in listed] == [(job["result_id"], job_id)]
            report = client.get(f"/api/results/{job['result_id']}/files/report")
            assert report.status_code == 200 and report.json()["organs"], report.text
    finally:
        first.stop()
        if second is not None:
            second.stop()
        stop_server(server, thread)


def _file_digests(client: httpx.Client, result: dict) -> dict[str, str]:
    return {kind: hashlib.sha256(client.get(url).content).hexdigest()
            for kind, url in result["files"].items()}


def test_a_worker_given_up_for_dead_that_comes_back_leaves_the_result_alone(
        tmp_path: Path, ct_file: Path) -> None:
    """A worker frozen (a suspended machine, a stalled disk) in the middle of its job, long
    enough for the job to run again elsewhere: when it wakes up it records nothing and does not
    touch the result the other worker recorded (a planning system may have imported it).
    (Frozen once its pipeline runs, not at the very end: on a loaded machine the last stages
    can pass between two polls. The attempt that finishes its outputs after losing the job is
    tested in tests/jobs/test_contour_case.py.)"""
    settings = make_settings(tmp_path / "home", workers=0, job_lease_s=LEASE_S)
    with_users(settings.home)
    server, thread, url = start_server(settings)
    service = Service(url, settings)
    first = start_worker(settings, tmp_path / "worker1.log")
    second = None
    try:
        with _token_client(service) as client:
            case = _upload(client, ct_file, contour=True).json()
            job_id = case["jobs"][0]["id"]
            end = time.monotonic() + 180
            while True:  # its pipeline runs
                job = client.get(f"/api/jobs/{job_id}").json()
                if job["state"] == "running" and job["fraction"] >= 0.3:
                    break
                assert job["state"] in ("queued", "running"), job
                assert time.monotonic() < end, f"job never ran:\n{first.output()}"
                time.sleep(0.01)
            os.kill(first.pid, signal.SIGSTOP)
            frozen = client.get(f"/api/jobs/{job_id}").json()
            assert (frozen["state"], frozen["attempt"]) == ("running", 1), frozen
            time.sleep(LEASE_S + 0.5)

            second = start_worker(settings, tmp_path / "worker2.log")
            job = service.wait(client, job_id, timeout=180)
            assert (job["state"], job["attempt"]) == ("done", 2), (job, second.output())
            result = client.get(f"/api/results/{job['result_id']}").json()
            recorded = _file_digests(client, result)
            assert {"rtstruct", "seg", "report"} <= recorded.keys(), result

            os.kill(first.pid, signal.SIGCONT)  # it wakes up and goes on where it was
            end = time.monotonic() + 60
            while f"job {job_id}: " not in first.output():  # its word on how the run ended
                assert time.monotonic() < end and first.process.poll() is None, first.output()
                time.sleep(0.1)
            time.sleep(0.5)

            assert client.get(f"/api/jobs/{job_id}").json() == job
            assert _file_digests(client, result) == recorded
            rows = database_rows(settings, "SELECT id, folder FROM results")
            assert [row[0] for row in rows] == [job["result_id"]], rows
            folders = sorted(p.relative_to(settings.home).as_posix()
                             for p in (settings.home / "results").glob("*/*"))
            assert folders == [rows[0][1]], folders  # nothing of the other attempt is left
    finally:
        for worker in (first, second):
            if worker is not None and worker.process.poll() is None:
                os.kill(worker.pid, signal.SIGCONT)
                worker.stop()
        stop_server(server, thread)


@pytest.mark.parametrize("queue_file", ["kept", "lost"])
def test_jobs_queued_when_the_server_stops_all_run_after_it_restarts(
        tmp_path: Path, ct_file: Path, queue_file: str) -> None:
    """The database is the truth about jobs: even with the queue's file gone (a Redis flushed,
    a disk replaced), the server queues its queued jobs again as it starts."""
    settings = make_settings(tmp_path / "home", workers=0)
    with_users(settings.home)
    server, thread, url = start_server(settings)
    try:
        with _token_client(Service(url, settings)) as client:
            case = _upload(client, ct_file, contour=True).json()
            ids = [case["jobs"][0]["id"]] + [
                client.post(f"/api/cases/{case['id']}/jobs", json={}).json()["id"]
                for _ in range(2)]
            time.sleep(1)  # no worker: nothing runs
            assert [client.get(f"/api/jobs/{i}").json()["state"] for i in ids] == ["queued"] * 3
    finally:
        stop_server(server, thread)
    if queue_file == "lost":
        for path in settings.home.glob("queue.db*"):
            path.unlink()

    settings = make_settings(settings.home, workers=1)
    server, thread, url = start_server(settings)
    service = Service(url, settings)
    try:
        with _token_client(service) as client:
            jobs = [service.wait(client, i, timeout=180) for i in ids]
            assert [(j["state"], j["attempt"]) for j in jobs] == [("done", 1)] * 3, jobs
            results = sorted(j["result_id"] for j in jobs)
            assert len(set(results)) == 3, jobs
            assert sorted(r for (r,) in _results_in_database(service, case["id"])) == results
            listed = client.get(f"/api/cases/{case['id']}").json()["results"]
            assert sorted((r["id"], r["job_id"]) for r in listed) == \
                sorted((j["result_id"], j["id"]) for j in jobs)
    finally:
        stop_server(server, thread)


# --- storage that cannot be written ------------------------------------------------------------


def _mount_tmpfs(folder: Path) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)],
                          check=False, capture_output=True, text=True)
    return done.returncode == 0


@pytest.fixture
def files_folder(tmp_path: Path) -> Iterator[Path]:
    """The store's ``files`` folder, on a 4 MiB tmpfs of its own (so it can be filled or made
    read-only, which permission bits cannot do for root); skipped, saying why, where nothing
    may be mounted."""
    folder = tmp_path / "home" / "files"
    if not _mount_tmpfs(folder):
        pytest.skip("storage faults need a tmpfs of their own: run as root where mount is "
                    "allowed (CAP_SYS_ADMIN)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * (1 << 16))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def _break(folder: Path, fault: str) -> tuple[str, object]:
    if fault == "full":
        return "No space left on device", _fill(folder)
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    return "Read-only file system", None


def _mend(folder: Path, fault: str, filler: object) -> None:
    if fault == "full":
        assert isinstance(filler, Path)
        filler.unlink()
    else:
        subprocess.run(["mount", "-o", "remount,rw", str(folder)], check=True)


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_an_upload_to_storage_that_cannot_be_written_is_507_and_keeps_nothing(
        tmp_path: Path, ct_file: Path, files_folder: Path, fault: str) -> None:
    """Both upload routes answer 507 with the reason, record no case or job and leave no file;
    once the storage is mended, the same upload is stored whole."""
    settings = make_settings(tmp_path / "home", workers=0)
    with_users(settings.home)
    server, thread, url = start_server(settings)
    try:
        with _token_client(Service(url, settings)) as client:
            reason, filler = _break(files_folder, fault)
            refused = [_upload(client, ct_file, contour=True)]
            with ct_file.open("rb") as handle:  # the raw upload spools into the store itself
                refused.append(client.put(f"/api/cases/upload/{ct_file.name}",
                                          params={"contour": "true"}, content=handle))
            for answer in refused:
                assert answer.status_code == 507, answer.text
                detail = answer.json()["detail"]
                assert "could not store the upload" in detail and reason in detail, detail
                assert "nothing was kept" in detail, detail
            assert client.get("/api/cases").json() == []
            assert client.get("/api/jobs").json() == []
            assert database_rows(settings, "SELECT id FROM cases") == []
            assert database_rows(settings, "SELECT id FROM jobs") == []
            left = [p for p in files_folder.rglob("*") if p.is_file() and p != filler]
            assert left == [], left

            _mend(files_folder, fault, filler)
            stored = _upload(client, ct_file)
            assert stored.status_code == 201, stored.text
            case = stored.json()
            assert case["new"] and case["size_bytes"] == ct_file.stat().st_size, case
            assert client.get(f"/api/cases/{case['id']}/file").content == ct_file.read_bytes()
            assert [c["id"] for c in client.get("/api/cases").json()] == [case["id"]]
            assert database_rows(settings, "SELECT id FROM cases") == [(case["id"],)]
    finally:
        stop_server(server, thread)
