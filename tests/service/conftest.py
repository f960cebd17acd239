"""The service, started for real: Uvicorn on 127.0.0.1 (a free port) in a thread of the test
process, with its embedded SQLite database and queue and one worker thread; tests talk HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from autocontour.io import write_volume
from autocontour.phantoms import head_neck_case
from autocontour.service import Settings, create_app
from autocontour.store.accounts import add_user
from autocontour.store.database import open_store


@dataclass
class Service:
    url: str
    settings: Settings

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def login(self, name: str, password: str) -> httpx.Client:
        """A client logged in with a session cookie; its CSRF header set."""
        client = self.client()
        answer = client.post("/api/login", json={"name": name, "password": password})
        assert answer.status_code == 200, answer.text
        client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
        return client

    def token(self, name: str, password: str) -> str:
        client = self.login(name, password)
        try:
            return client.post("/api/tokens", json={"name": "tests"}).json()["token"]
        finally:
            client.close()

    def wait(self, client: httpx.Client, job_id: int, timeout: float = 120) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            job = client.get(f"/api/jobs/{job_id}").json()
            if job["state"] in ("done", "failed", "cancelled"):
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


def start_server(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, str]:
    """Uvicorn serving ``create_app(settings)`` on 127.0.0.1 in a thread, and its URL."""
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < end and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


def stop_server(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(60)


def make_settings(home: Path, **overrides) -> Settings:
    values = {"home": home, "workers": 1, "device": "cpu", "threads": 1, "poll_s": 0.1,
              "job_lease_s": 8, **overrides}
    return Settings(**values)


def with_users(home: Path, database_url: str | None = None) -> None:
    store = open_store(home, database_url)
    with store.session() as session:
        add_user(session, "alice", "alice-password")
        add_user(session, "bob", "bob-password")
    store.engine.dispose()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    settings = make_settings(tmp_path / "home")
    with_users(settings.home)
    server, thread, url = start_server(settings)
    try:
        yield Service(url, settings)
    finally:
        stop_server(server, thread)


@pytest.fixture(scope="session")
def ct_file(tmp_path_factory) -> Path:
    """A small head-and-neck phantom CT (NIfTI) the shipped model contours in seconds."""
    folder = tmp_path_factory.mktemp("service-ct")
    return write_volume(head_neck_case(90051, shape=(40, 64, 64)).ct, folder / "ct.nii.gz")
