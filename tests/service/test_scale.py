"""The service as it scales: a PostgreSQL database, a Redis queue, a server that runs no jobs
itself (``workers=0``) and two ``autocontour worker`` processes sharing its home folder.

Needs ``AUTOCONTOUR_TEST_POSTGRES_URL`` (a ``postgresql+psycopg://`` URL of a role that may
create databases) and ``AUTOCONTOUR_TEST_REDIS_URL`` (``redis://host:port/db``); ``.ci/run``
starts both. Without them, or when they do not answer, the tests skip and say why. Each test
module makes its own database (dropped afterwards) and takes a Redis database number of its own
(a lock key in the URL's database), so parallel runs (``pytest -n 2``) never share a queue.
"""

from __future__ import annotations

import io
import os
import time
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from conftest import Service, make_settings, start_server, stop_server, with_users
from worker_processes import database_rows, start_worker

from autocontour.io import write_volume
from autocontour.phantoms import head_neck_case

POSTGRES_VARIABLE = "AUTOCONTOUR_TEST_POSTGRES_URL"
REDIS_VARIABLE = "AUTOCONTOUR_TEST_REDIS_URL"
LOCK = "autocontour-tests:redis-db:{}"


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database of this module, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    given = os.environ.get(POSTGRES_VARIABLE)
    if not given:
        pytest.skip(f"{POSTGRES_VARIABLE} is not set: no PostgreSQL to test against "
                    "(.ci/run installs and starts one)")
    url = make_url(given)
    shown = url.render_as_string(hide_password=True)
    admin = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                          connect_args={"connect_timeout": 10})
    name = f"autocontour_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except SQLAlchemyError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL at {shown} ({POSTGRES_VARIABLE}) cannot be reached or cannot "
                    f"create a database: {str(exc.orig or exc).strip().splitlines()[0]}")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A Redis database number of this module's own (emptied before and after)."""
    import redis

    given = os.environ.get(REDIS_VARIABLE)
    if not given:
        pytest.skip(f"{REDIS_VARIABLE} is not set: no Redis to test against "
                    "(.ci/run installs and starts one)")
    parts = urlsplit(given)
    shown = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])) if parts.password \
        else given
    client = redis.Redis.from_url(given, socket_timeout=10, socket_connect_timeout=10)
    try:
        client.ping()
        try:
            count = int(client.config_get("databases").get("databases", 16))
        except redis.RedisError:  # CONFIG may be disabled: Redis's default
            count = 16
    except redis.RedisError as exc:
        client.close()
        pytest.skip(f"Redis at {shown} ({REDIS_VARIABLE}) cannot be reached: {exc}")
    own = int(client.connection_pool.connection_kwargs.get("db", 0))
    mine = uuid.uuid4().hex
    db = next((n for n in range(count)
               if n != own and client.set(LOCK.format(n), mine, nx=True, ex=3600)), None)
    if db is None:
        client.close()
        pytest.skip(f"Redis at {shown}: every database number is taken by other test runs")
    url = urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))
    queue = redis.Redis.from_url(url)
    queue.flushdb()
    try:
        yield url
    finally:
        queue.flushdb()
        queue.close()
        if client.get(LOCK.format(db)) == mine.encode():
            client.delete(LOCK.format(db))
        client.close()


@pytest.fixture(scope="module")
def scaled(tmp_path_factory, postgres_url: str, redis_url: str) -> Iterator[Service]:
    """The server on PostgreSQL and Redis, running no jobs itself (workers=0)."""
    settings = make_settings(tmp_path_factory.mktemp("scale") / "home", workers=0,
                             database_url=postgres_url, queue_url=redis_url, job_lease_s=60)
    with_users(settings.home, postgres_url)
    server, thread, url = start_server(settings)
    try:
        yield Service(url, settings)
    finally:
        stop_server(server, thread)


def test_jobs_run_on_two_worker_processes_each_once_with_one_result(
        scaled: Service, ct_file: Path, tmp_path: Path) -> None:
    """A job queued before the workers start is handed to both (the queue message, and again by
    each worker's recovery as it starts): one runs it, the other leaves it. Jobs queued once both
    listen go to both. Every job runs once and makes one result, downloadable."""
    settings = scaled.settings
    workers: list = []
    try:
        with scaled.client(scaled.token("alice", "alice-password")) as client:
            health = client.get("/api/health").json()
            assert (health["status"], health["database"], health["queue"], health["workers"]) \
                == ("ok", "ok", "redis", 0), health
            with ct_file.open("rb") as handle:
                case = client.put(f"/api/cases/upload/{ct_file.name}",
                                  params={"contour": "true"}, content=handle).json()
            ids = [case["jobs"][0]["id"]]
            time.sleep(1)
            assert client.get(f"/api/jobs/{ids[0]}").json()["state"] == "queued"  # no worker

            workers = [start_worker(settings, tmp_path / f"worker{i}.log") for i in (1, 2)]
            for worker in workers:
                worker.wait_ready()
            ids += [client.post(f"/api/cases/{case['id']}/jobs", json={}).json()["id"]
                    for _ in range(3)]
            jobs = [scaled.wait(client, i, timeout=300) for i in ids]
            logs = "\n".join(w.output() for w in workers)
            assert [(j["state"], j["attempt"]) for j in jobs] == [("done", 1)] * 4, (jobs, logs)

            results = {j["result_id"]: j["id"] for j in jobs}
            assert len(results) == 4, jobs
            listed = client.get(f"/api/cases/{case['id']}").json()["results"]
            assert {r["id"]: r["job_id"] for r in listed} == results
            recorded = database_rows(settings, "SELECT id FROM results WHERE case_id = :case",
                                     case=case["id"])
            assert sorted(r for (r,) in recorded) == sorted(results)

            for result in listed:
                rtstruct = client.get(result["files"]["rtstruct"])
                assert rtstruct.status_code == 200 and rtstruct.content[128:132] == b"DICM"
                report = client.get(result["files"]["report"]).json()
                assert report["organs"], report
            archive = client.get(listed[0]["archive"])
            assert archive.status_code == 200, archive.text
            with zipfile.ZipFile(io.BytesIO(archive.content)) as bundle:
                assert bundle.testzip() is None and "report.json" in bundle.namelist()

            # every job ran on one of the two worker processes, and both took part
            ran_on = database_rows(settings, "SELECT worker FROM jobs WHERE case_id = :case",
                                   case=case["id"])
            pids = {worker.rsplit(":", 1)[1] for (worker,) in ran_on}
            assert pids == {str(w.pid) for w in workers}, (ran_on, logs)
    finally:
        for worker in workers:
            worker.stop()


def test_the_same_upload_sent_at_once_is_one_case(scaled: Service, tmp_path: Path) -> None:
    """Concurrent uploads of one content by one user race for one row: one is new (201), the
    others get that case (200), none fails."""
    ct = write_volume(head_neck_case(90053, shape=(20, 48, 48)).ct, tmp_path / "ct.nii.gz")
    token = scaled.token("bob", "bob-password")

    def upload(_: int) -> tuple[int, int]:
        with scaled.client(token) as client, ct.open("rb") as handle:
            answer = client.put("/api/cases/upload/ct.nii.gz", content=handle)
            assert answer.status_code in (200, 201), answer.text
            return answer.status_code, answer.json()["id"]

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(upload, range(6)))
    assert sorted(code for code, _ in answers) == [200] * 5 + [201], answers
    assert len({case for _, case in answers}) == 1, answers
    bob = database_rows(scaled.settings, "SELECT id FROM users WHERE name = 'bob'")[0][0]
    assert database_rows(scaled.settings, "SELECT id FROM cases WHERE owner_id = :bob",
                         bob=bob) == [(answers[0][1],)]
