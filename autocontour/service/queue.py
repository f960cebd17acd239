"""The job queue (Huey): a SQLite file in the home folder by default, Redis for workers on other
machines; the same code for both.

A queue message says only "run job N": the job itself, its state and its progress live in the
database (:mod:`autocontour.store.jobs`). Each worker process keeps the models it has loaded
(:class:`~autocontour.jobs.WarmModels`), on the GPU when there is one. A periodic task, and every
worker as it starts, give the jobs of dead workers to live ones (:func:`recover`).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer

from autocontour.errors import InvalidInputError
from autocontour.jobs import RunJobRequest, WarmModels, run_contour_job
from autocontour.service.settings import Settings
from autocontour.store.database import Store

LOG = logging.getLogger(__name__)
RUN_JOB = "autocontour.run_job"
RECOVER = "autocontour.recover"


@dataclass
class Queue:
    """The queue of one process: Huey, the store it runs jobs against, the warm models."""

    settings: Settings
    store: Store
    huey: Huey
    models: WarmModels = field(default_factory=WarmModels)

    def __post_init__(self) -> None:
        self._task = self.huey.task(name=RUN_JOB, retries=0)(self.run)
        self.huey.periodic_task(crontab(minute="*"), name=RECOVER)(self.recover)

    def enqueue(self, job_id: int) -> None:
        """Ask a worker to run job ``job_id``."""
        self._task(job_id)

    def recover(self) -> list[int]:
        """Queue again the jobs of dead workers and every job still queued (see
        :func:`autocontour.store.jobs.recover`); the ids enqueued."""
        from autocontour.store.jobs import recover

        with self.store.session() as session:
            ids = recover(session, self.settings.job_lease_s)
        for job_id in ids:
            self.enqueue(job_id)
        if ids:
            LOG.info("queued (again): jobs %s", ", ".join(map(str, ids)))
        return ids

    def run(self, job_id: int) -> str:
        """Run job ``job_id`` here (what a worker does with a message); its final state."""
        worker = f"{socket.gethostname()}:{os.getpid()}"
        done = run_contour_job(self.store, RunJobRequest(
            job_id, worker, self.settings.device, self.settings.threads,
            self.settings.job_lease_s), models=self.models)
        LOG.info("job %s: %s %s", job_id, done.state, done.message)
        return done.state

    def consumer(self, workers: int, embedded: bool) -> Consumer:
        """Huey's consumer with ``workers`` threads: ``run()`` it in a worker process, or
        ``start()``/``stop()`` an ``embedded`` one inside the server (it leaves the server's
        signal handlers alone)."""
        kind = _Embedded if embedded else Consumer
        return kind(self.huey, workers=max(workers, 1), worker_type="thread",
                    initial_delay=0.05, backoff=1.5, max_delay=self.settings.poll_s,
                    check_worker_health=False, shutdown_timeout=10)


class _Embedded(Consumer):
    """A consumer started inside the server: Ctrl-C and SIGTERM stay the server's."""

    def _set_signal_handlers(self) -> None:
        pass


def make_queue(settings: Settings, store: Store) -> Queue:
    """The queue the settings name (``queue_url``: None for a SQLite file in the home folder,
    ``redis://…`` for Redis).

    Raises:
        InvalidInputError: a queue URL that is neither.
    """
    url = settings.queue_url
    if url is None or url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:///") if url else str(settings.home / "queue.db")
        huey: Huey = SqliteHuey("autocontour", filename=path, timeout=30, results=False)
    elif url.startswith(("redis://", "rediss://", "unix://")):
        huey = RedisHuey("autocontour", url=url, blocking=True, read_timeout=1, results=False)
    else:
        raise InvalidInputError(f"queue URL {url!r}: use redis://host:port/db or leave it unset "
                                "(a SQLite queue in the home folder)")
    return Queue(settings, store, huey)
