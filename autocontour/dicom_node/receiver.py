"""The node's Storage SCP: CT instances in, each on disk (fsync'd) before it is acknowledged.

Every instance received is written to ``<home>/dicom/incoming/<SeriesInstanceUID>/
<SOPInstanceUID>.dcm`` as sent (the encoded data set, with file meta information; never decoded
and written again), flushed to the disk with ``fsync`` (the file, then its folder) and only then
answered with the C-STORE success status. A sender that got "success" can forget the instance:
a power cut after that loses nothing. Instances are grouped into *receptions* of a series
(:class:`Reception`); the collector (:mod:`autocontour.dicom_node.collector`) closes a reception
when no instance of it arrived for the quiet time, moving its folder to ``dicom/series/<id>/``
in the same step, so an instance arriving later starts a new reception.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)

UID = re.compile(r"[0-9]+(\.[0-9]+)*")
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
NOT_MATCHING_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000


def is_uid(text: object) -> bool:
    """A DICOM UID (digits and dots, at most 64 characters): what may name a file or folder."""
    return isinstance(text, str) and len(text) <= 64 and UID.fullmatch(text) is not None


def fsync_folder(folder: Path) -> None:
    """Make a folder's entries (a new or renamed file) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(folder: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``folder/name`` under a temporary name, fsync it, rename it into place
    and fsync the folder (and the folder's parent when the folder is new)."""
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        fsync_folder(folder.parent)
    target = folder / name
    partial = folder / f".{name}.{threading.get_ident()}.part"
    try:
        with partial.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    fsync_folder(folder)
    return target


@dataclass
class Reception:
    """One series as it arrives: from its first instance until the quiet time passes."""

    series_uid: str
    calling_ae: str
    peer: str
    folder: Path
    started: float = field(default_factory=time.time)
    last: float = field(default_factory=time.monotonic)
    instances: set[str] = field(default_factory=set)
    writing: int = 0
    row_id: int | None = None
    recorded: int = 0


class Incoming:
    """The receptions under way, shared by the SCP's association threads and the collector."""

    def __init__(self, root: Path) -> None:
        self.incoming = root / "incoming"
        self.series = root / "series"
        self._lock = threading.Lock()
        self._open: dict[str, Reception] = {}

    def begin(self, series_uid: str, calling_ae: str, peer: str) -> Reception:
        """The reception an instance of ``series_uid`` belongs to (a new one when none is
        open), marked as being written to."""
        with self._lock:
            reception = self._open.get(series_uid)
            if reception is None:
                reception = Reception(series_uid, calling_ae, peer,
                                      self.incoming / series_uid)
                self._open[series_uid] = reception
            reception.writing += 1
            reception.last = time.monotonic()
            return reception

    def end(self, reception: Reception, sop_uid: str, stored: bool) -> None:
        with self._lock:
            reception.writing -= 1
            reception.last = time.monotonic()
            if stored:
                reception.instances.add(sop_uid)

    def resume(self, reception: Reception) -> None:
        """Take back a reception found on disk when the node starts (its quiet time starts
        now)."""
        with self._lock:
            self._open.setdefault(reception.series_uid, reception)

    def receptions(self) -> list[Reception]:
        with self._lock:
            return list(self._open.values())

    def set_row(self, reception: Reception, row_id: int) -> None:
        with self._lock:
            reception.row_id = row_id

    def counts(self) -> list[tuple[Reception, int]]:
        """(reception, instances now) of those whose count the database does not have yet."""
        with self._lock:
            return [(r, len(r.instances)) for r in self._open.values()
                    if r.row_id is not None and len(r.instances) != r.recorded]

    def close_quiet(self, quiet_s: float) -> list[tuple[Reception, Path | None]]:
        """Close the receptions that received nothing for ``quiet_s`` (and are recorded): each
        folder is moved to ``series/<row id>`` while no instance can be added to it.

        Returns:
            (reception, its folder now; None when nothing of it was stored).
        """
        closed = []
        with self._lock:
            now = time.monotonic()
            for uid, reception in list(self._open.items()):
                if reception.writing or reception.row_id is None or \
                        now - reception.last < quiet_s:
                    continue
                del self._open[uid]
                target: Path | None = None
                if reception.folder.is_dir():
                    target = self.series / str(reception.row_id)
                    self.series.mkdir(parents=True, exist_ok=True)
                    os.replace(reception.folder, target)
                    fsync_folder(self.series)
                closed.append((reception, target))
        return closed


def store_handler(incoming: Incoming) -> Any:
    """The EVT_C_STORE handler: write the instance durably, then answer."""

    def handle(event: Any) -> Any:
        request = event.request
        try:
            dataset = event.dataset
            series_uid = dataset.get("SeriesInstanceUID")
            sop_uid = str(dataset.get("SOPInstanceUID") or request.AffectedSOPInstanceUID)
        except Exception as exc:  # noqa: BLE001 - the data set cannot be decoded: refused
            LOG.warning("C-STORE from %s refused: cannot decode the data set (%s)",
                        event.assoc.requestor.ae_title, exc)
            return _status(CANNOT_UNDERSTAND, "the data set cannot be decoded")
        series_uid = str(series_uid) if series_uid is not None else None
        if not is_uid(series_uid) or not is_uid(sop_uid):
            LOG.warning("C-STORE from %s refused: SeriesInstanceUID %r / SOPInstanceUID %r is "
                        "not a UID", event.assoc.requestor.ae_title, series_uid, sop_uid)
            return _status(NOT_MATCHING_SOP_CLASS, "SeriesInstanceUID and SOPInstanceUID must "
                                                   "be UIDs")
        assert series_uid is not None
        requestor = event.assoc.requestor
        reception = incoming.begin(series_uid, requestor.ae_title.strip(),
                                   f"{requestor.address}:{requestor.port}")
        stored = False
        try:
            write_durably(reception.folder, f"{sop_uid}.dcm", event.encoded_dataset())
            stored = True
        except OSError as exc:
            LOG.error("C-STORE of %s (series %s) failed: %s: %s", sop_uid, series_uid,
                      exc.filename or reception.folder, exc.strerror or exc)
            return _status(OUT_OF_RESOURCES, f"cannot store the instance ({exc.strerror})")
        finally:
            incoming.end(reception, sop_uid, stored)
        return SUCCESS

    return handle


def _status(code: int, comment: str) -> Any:
    from pydicom.dataset import Dataset

    status = Dataset()
    status.Status = code
    status.ErrorComment = comment[:64]
    return status
