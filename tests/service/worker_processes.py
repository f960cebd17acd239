"""``autocontour worker`` processes for the service's tests (test_faults.py, test_scale.py): started
as a user would (``python -m autocontour.cli worker``), each with its own log file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from autocontour.service import Settings

READY = "Huey consumer started"
"""What a worker logs once it has recovered the jobs of dead workers and listens to the queue."""


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, timeout: float = 120) -> None:
        """Wait until the worker listens to the queue (fail, with its log, when it dies)."""
        end = time.monotonic() + timeout
        while READY not in self.output():
            code = self.process.poll()
            assert code is None, f"worker {self.pid} exited ({code}):\n{self.output()}"
            assert time.monotonic() < end, \
                f"worker {self.pid} not ready after {timeout} s:\n{self.output()}"
            time.sleep(0.05)

    def kill(self) -> None:
        """``kill -9``: no clean-up, no last heartbeat, no word to the database."""
        os.kill(self.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)


def start_worker(settings: Settings, log: Path) -> Worker:
    """An ``autocontour worker`` process (one thread) for the store and queue of ``settings``,
    with its job lease and queue poll interval."""
    command = [sys.executable, "-m", "autocontour.cli", "worker", "--home", str(settings.home),
               "--workers", "1", "--device", settings.device,
               "--threads", str(settings.threads or 1)]
    if settings.database_url:
        command += ["--database-url", settings.database_url]
    if settings.queue_url:
        command += ["--queue-url", settings.queue_url]
    environment = {**os.environ, "AUTOCONTOUR_JOB_LEASE_S": str(settings.job_lease_s),
                   "AUTOCONTOUR_POLL_S": str(settings.poll_s), "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as handle:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=handle,
                                   stderr=subprocess.STDOUT, env=environment)
    return Worker(process, log)


def database_rows(settings: Settings, query: str, **values: object) -> list[tuple]:
    """Rows of a query straight from the service's database (SQLite in the home folder, or
    ``settings.database_url``): what is recorded, not what the API chooses to show."""
    url = settings.database_url or f"sqlite:///{settings.home / 'autocontour.db'}"
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query), values)]
    finally:
        engine.dispose()
