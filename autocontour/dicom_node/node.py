"""The DICOM node as a whole: the Storage SCP, the collector and the sender, each in its own
thread of one process, around the store and the service's queue.

:class:`DicomNode` is what tests and the benchmark start and stop; :func:`run_node` is
``autocontour dicom-node``: it starts one and waits for Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from autocontour.dicom_node.collector import Collector
from autocontour.dicom_node.config import NodeConfig, server_context
from autocontour.dicom_node.receiver import Incoming, store_handler
from autocontour.dicom_node.sender import Sender
from autocontour.errors import InvalidInputError

if TYPE_CHECKING:
    from autocontour.service.settings import Settings

LOG = logging.getLogger(__name__)
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
VERIFICATION = "1.2.840.10008.1.1"


class DicomNode:
    """One node: listens on ``config.host``:``config.port`` (0: a free port, see :attr:`port`)
    as ``config.ae_title``; received series become cases of ``config.owner`` in the store the
    service ``settings`` name, their jobs go to the service's queue (run by
    ``settings.workers`` worker threads here, or by the service's workers), and their contours
    go back to the destinations.

    Raises:
        InvalidInputError: the store cannot be opened, the owner is not a user of it, the queue
            URL is not one we know, or the port cannot be listened on.
    """

    def __init__(self, config: NodeConfig, settings: Settings) -> None:
        from autocontour.service.queue import make_queue
        from autocontour.store.accounts import find_user
        from autocontour.store.database import open_store

        self.config, self.settings = config, settings
        self.store = open_store(settings.home, settings.database_url)
        with self.store.session() as session:
            if find_user(session, config.owner) is None:
                raise InvalidInputError(
                    f"{config.source or 'settings'}: owner {config.owner!r} is not a user of "
                    f"the store at {settings.home} (add one: autocontour user add "
                    f"{config.owner})")
        self.queue = make_queue(settings, self.store)
        self.incoming = Incoming(Path(settings.home) / "dicom")
        self.collector = Collector(config, self.store, self.queue, self.incoming)
        self.sender = Sender(config, self.store, config.ae_title)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: Any = None
        self._consumer: Any = None
        self.port = config.port

    def start(self) -> None:
        """Take back what a stopped node left, then listen, collect and send."""
        from pynetdicom import AE, evt

        self.incoming.incoming.mkdir(parents=True, exist_ok=True)
        self.collector.resume()
        ae = AE(ae_title=self.config.ae_title)
        ae.maximum_pdu_size = 0  # no limit: fewer, larger PDUs (a CT slice in a few)
        ae.require_called_aet = True
        if not self.config.any_caller:
            ae.require_calling_aet = list(self.config.calling_ae_titles)
        ae.add_supported_context(CT_IMAGE_STORAGE)
        ae.add_supported_context(VERIFICATION)
        ae.acse_timeout, ae.dimse_timeout, ae.network_timeout = 30, 60, 120
        context = server_context(self.config.tls, self.config.source or "TLS") \
            if self.config.tls is not None else None
        handlers = [(evt.EVT_C_STORE, store_handler(self.incoming)),
                    (evt.EVT_REJECTED, _log_rejected), (evt.EVT_ACCEPTED, _log_accepted)]
        try:
            self._server = ae.start_server((self.config.host, self.config.port), block=False,
                                           evt_handlers=handlers, ssl_context=context)
        except OSError as exc:
            raise InvalidInputError(f"cannot listen on {self.config.host}:{self.config.port} "
                                    f"({exc.strerror or exc})") from None
        self.port = self._server.server_address[1]
        if self.settings.workers:
            self._consumer = self.queue.consumer(self.settings.workers, embedded=True)
            self.queue.recover()
            self._consumer.start()
        for name, step in (("collector", self.collector.tick), ("sender", self.sender.tick)):
            thread = threading.Thread(target=self._loop, args=(name, step), daemon=True,
                                      name=f"dicom-node {name}")
            thread.start()
            self._threads.append(thread)

    def _loop(self, name: str, step: Callable[[], None]) -> None:
        while not self._stop.is_set():
            try:
                step()
            except Exception:  # the database away for a moment: the next round tries again
                LOG.exception("dicom-node %s: this round failed", name)
            self._stop.wait(self.config.poll_seconds)

    def stop(self) -> None:
        """Stop listening, let the loops finish their round, stop the worker threads."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
        for thread in self._threads:
            thread.join(60)
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
        self.store.engine.dispose()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _log_rejected(event: Any) -> None:
    requestor = event.assoc.requestor
    LOG.warning("association from %r at %s:%s rejected (calling AE title not accepted, or the "
                "called AE title %r is not ours)", requestor.ae_title, requestor.address,
                requestor.port, event.assoc.acceptor.ae_title)


def _log_accepted(event: Any) -> None:
    requestor = event.assoc.requestor
    LOG.info("association from %r at %s:%s accepted", requestor.ae_title, requestor.address,
             requestor.port)


def run_node(config: NodeConfig, settings: Settings,
             announce: Callable[[str], None] | None = None,
             stop: threading.Event | None = None) -> None:
    """Run the node until Ctrl-C or SIGTERM (or ``stop`` is set).

    Raises:
        InvalidInputError: as :class:`DicomNode`.
    """
    from autocontour import __version__

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("pynetdicom", "highdicom"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stop = stop or threading.Event()
    node = DicomNode(config, settings)
    node.start()
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, lambda *_: stop.set())
    if announce is not None:
        workers = (f"{settings.workers} worker thread(s) here" if settings.workers else
                   "jobs run by the service's workers (autocontour serve or autocontour worker "
                   "on this store; --workers N runs N here)")
        callers = "any calling AE title" if config.any_caller else \
            "calling AE titles " + ", ".join(config.calling_ae_titles)
        announce(f"autocontour {__version__}: DICOM node {config.ae_title} listening on "
                 f"{config.host}:{node.port}{' (TLS)' if config.tls else ''}; accepts "
                 f"{callers}; series become cases of {config.owner} in {settings.home}; "
                 f"{workers}")
    try:
        stop.wait()
    finally:
        node.stop()


def serve_with_node(config: NodeConfig, settings: Settings,
                    announce: Callable[[str], None] | None = None) -> None:
    """``autocontour serve --dicom-node``: the service and, beside it in the same process, the
    DICOM node on the same store and queue (the service's worker threads run the node's jobs).
    Ctrl-C or SIGTERM stops both.

    Raises:
        InvalidInputError: as :class:`DicomNode` and :func:`~autocontour.service.run.serve`
            (nothing is left listening).
    """
    from autocontour.service.run import serve

    # no worker threads of the node's own: the server's run its jobs
    node = DicomNode(config, settings.model_copy(update={"workers": 0}))
    node.start()
    try:
        if announce is not None:
            announce(f"DICOM node {config.ae_title} listening on {config.host}:{node.port}"
                     f"{' (TLS)' if config.tls else ''}; series become cases of "
                     f"{config.owner}")
        serve(settings, announce)
    finally:
        node.stop()
