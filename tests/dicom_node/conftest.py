"""The DICOM node, started for real in the test process (127.0.0.1, free ports), with real
peers: dcmtk's echoscu and storescu send, dcmtk's storescp receives the contours.

dcmtk is Debian's (``apt-get install dcmtk``), called by full path: pynetdicom installs its own
``storescu``/``echoscu``/``storescp`` into the virtual environment, which would shadow them.
Without dcmtk the tests that need it skip, saying so.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from autocontour.dicom_node import DicomNode, load_node_config
from autocontour.io import write_dicom_series
from autocontour.phantoms import head_neck_case
from autocontour.service import Settings
from autocontour.store.accounts import add_user
from autocontour.store.database import open_store
from autocontour.store.schema import DicomSend, DicomSeries

DCMTK = {name: Path("/usr/bin") / name for name in ("echoscu", "storescu", "storescp")}
NODE_AE, SCANNER_AE, DEST_AE = "AUTOCONTOUR", "SCANNER", "DEST"


def dcmtk_missing() -> str | None:
    missing = [str(p) for p in DCMTK.values() if not os.access(p, os.X_OK)]
    return f"dcmtk is not installed ({', '.join(missing)} missing: apt-get install dcmtk)" \
        if missing else None


needs_dcmtk = pytest.mark.skipif(dcmtk_missing() is not None, reason=dcmtk_missing() or "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def dcmtk_env() -> dict[str, str]:
    # without TCP_NODELAY, dcmtk's small writes wait on delayed ACKs (7 s for 160 slices)
    return {**os.environ, "TCP_NODELAY": "1"}


def echo(port: int, calling: str = SCANNER_AE, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(DCMTK["echoscu"]), "-aet", calling, "-aec", NODE_AE, *extra,
                           "127.0.0.1", str(port)], capture_output=True, text=True, timeout=60,
                          env=dcmtk_env(), check=False)


def store_series(port: int, folder: Path, calling: str = SCANNER_AE
                 ) -> subprocess.CompletedProcess:
    return subprocess.run([str(DCMTK["storescu"]), "-aet", calling, "-aec", NODE_AE,
                           "127.0.0.1", str(port), "+sd", str(folder)], capture_output=True,
                          text=True, timeout=120, env=dcmtk_env(), check=False)


@dataclass
class Destination:
    """dcmtk's storescp, receiving into ``folder`` (started and stopped at will)."""

    port: int
    folder: Path
    process: subprocess.Popen | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [str(DCMTK["storescp"]), "-dhl", "+uf", "-aet", DEST_AE, "-od", str(self.folder),
             str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=dcmtk_env())
        end = time.monotonic() + 10
        while not listening(self.port):
            assert time.monotonic() < end and self.process.poll() is None, "storescp did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def received(self, prefix: str = "") -> list[Path]:
        return sorted(p for p in self.folder.glob(f"{prefix}*") if p.is_file())


@dataclass
class Node:
    """A running node and what it works with."""

    node: DicomNode
    home: Path
    config_file: Path
    destinations: dict[str, Destination] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return self.node.port

    def series(self) -> list[DicomSeries]:
        with self.node.store.session() as session:
            return list(session.query(DicomSeries).order_by(DicomSeries.id))

    def sends(self, series_id: int) -> list[DicomSend]:
        with self.node.store.session() as session:
            return list(session.query(DicomSend).filter(DicomSend.series_id == series_id)
                        .order_by(DicomSend.id))

    def wait_for(self, what: Callable[[], object], timeout: float = 90, every: float = 0.1,
                 why: str = "") -> object:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = what()
            if value:
                return value
            time.sleep(every)
        raise AssertionError(f"still not true after {timeout} s: {why}; series "
                             f"{[(s.id, s.state, s.message) for s in self.series()]}")

    def wait_series(self, count: int, states: tuple[str, ...] = ("done", "failed"),
                    timeout: float = 90) -> DicomSeries:
        """The ``count``-th reception once it reached one of ``states``."""
        def reached() -> DicomSeries | None:
            rows = self.series()
            return rows[count - 1] if len(rows) >= count and rows[count - 1].state in states \
                else None
        return self.wait_for(reached, timeout, why=f"series {count} in {states}")  # type: ignore


def make_settings(home: Path, **overrides: object) -> Settings:
    values = {"home": home, "workers": 1, "device": "cpu", "threads": 2, "poll_s": 0.1,
              "job_lease_s": 30, **overrides}
    return Settings(**values)


def with_users(home: Path) -> None:
    store = open_store(home)
    with store.session() as session:
        add_user(session, "alice", "alice-password")
    store.engine.dispose()


def node_config(folder: Path, **settings: object) -> Path:
    """A settings file: owner alice, SCANNER may call, quiet time 1 s, quick retries."""
    values = {"owner": "alice", "ae_title": NODE_AE, "host": "127.0.0.1", "port": 0,
              "calling_ae_titles": [SCANNER_AE], "quiet_seconds": 1.0, "poll_seconds": 0.1,
              "retry": {"attempts": 4, "first_delay_seconds": 0.5, "factor": 2}, **settings}
    path = folder / "node.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    """Start a node with a settings file (:func:`node_config` keys as keyword arguments);
    ``workers=0`` leaves its jobs queued. Everything is stopped at the end."""
    started: list[Node] = []

    def start(workers: int = 0, home: Path | None = None, **settings: object) -> Node:
        home = home or tmp_path / "home"
        if not (home / "autocontour.db").exists():
            with_users(home)
        path = node_config(tmp_path, **settings)
        node = DicomNode(load_node_config(path), make_settings(home, workers=workers))
        node.start()
        started.append(Node(node, home, path))
        return started[-1]

    yield start
    for running in started:
        running.node.stop()


def phantom_series(folder: Path, seed: int, description: str = "autocontour") -> Path:
    """A 40x64x64 head-and-neck phantom CT series (UIDs from ``seed``: the same seed, the same
    series)."""
    write_dicom_series(head_neck_case(seed, shape=(40, 64, 64)).ct, folder, uid_seed=f"dn{seed}",
                       series_description=description)
    return folder
