"""``autocontour serve`` and ``autocontour worker``: start the server (with its embedded worker
threads) or a worker process for a shared queue."""

from __future__ import annotations

import logging
import threading

from autocontour.service.settings import Settings


def serve(settings: Settings) -> None:
    """Run the service until Ctrl-C or SIGTERM (Uvicorn on ``settings.host``:``settings.port``)."""
    import uvicorn

    from autocontour.service.app import create_app

    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info",
                timeout_graceful_shutdown=30)


def run_worker(settings: Settings, stop: threading.Event | None = None) -> None:
    """Run jobs from the queue with ``settings.workers`` threads (at least 1) until Ctrl-C or
    SIGTERM (or ``stop`` is set); the jobs of dead workers are queued again as it starts and
    every minute after."""
    from autocontour.service.queue import make_queue
    from autocontour.store.database import open_store

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    store = open_store(settings.home, settings.database_url)
    queue = make_queue(settings, store)
    queue.recover()
    if stop is None:  # Huey's own loop and signal handling (SIGINT, SIGTERM, SIGHUP)
        queue.consumer(settings.workers, embedded=False).run()
        return
    consumer = queue.consumer(settings.workers, embedded=True)
    consumer.start()
    stop.wait()
    consumer.stop(graceful=True)

