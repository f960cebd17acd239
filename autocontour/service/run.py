"""``autocontour serve`` and ``autocontour worker``: start the server (with its embedded worker
threads) or a worker process for a shared queue."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from autocontour.service.settings import Settings


def serve(settings: Settings, announce: Callable[[str], None] | None = None) -> None:
    """Run the service until Ctrl-C or SIGTERM (Uvicorn on ``settings.host``:``settings.port``).

    ``announce`` is handed one line saying where it serves, once the store is open.

    Raises:
        InvalidInputError: the store cannot be opened, a bad queue URL (before listening).
    """
    import uvicorn

    from autocontour import __version__
    from autocontour.service.app import create_app

    app = create_app(settings)
    if announce is not None:
        announce(f"autocontour {__version__}: serving http://{settings.host}:{settings.port}/ "
                 f"(API docs at /docs); store {settings.home}; {settings.workers} worker "
                 "thread(s) in the server")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info",
                timeout_graceful_shutdown=30)


def run_worker(settings: Settings, stop: threading.Event | None = None,
               announce: Callable[[str], None] | None = None) -> None:
    """Run jobs from the queue with ``settings.workers`` threads (at least 1) until Ctrl-C or
    SIGTERM (or ``stop`` is set); the jobs of dead workers are queued again as it starts and
    every minute after.

    Raises:
        InvalidInputError: the store cannot be opened, a bad queue URL.
    """
    from autocontour import __version__
    from autocontour.service.queue import make_queue
    from autocontour.store.database import open_store

    store = open_store(settings.home, settings.database_url)
    queue = make_queue(settings, store)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if announce is not None:
        announce(f"autocontour {__version__}: worker of the store {settings.home} "
                 f"({max(settings.workers, 1)} thread(s), queue "
                 f"{settings.queue_url or settings.home / 'queue.db'})")
    queue.recover()
    if stop is None:  # Huey's own loop and signal handling (SIGINT, SIGTERM, SIGHUP)
        queue.consumer(settings.workers, embedded=False).run()
        return
    consumer = queue.consumer(settings.workers, embedded=True)
    consumer.start()
    stop.wait()
    consumer.stop(graceful=True)

