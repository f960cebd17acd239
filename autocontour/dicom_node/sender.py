"""Sending the contours back: a loop thread of the node that polls the store.

Each ``dicom_sends`` row is one destination of one received series, and shows where it stands:

=========== ==================================================================================
state       meaning
=========== ==================================================================================
waiting     the series' job is not done yet
pending     the contours are ready; the first attempt is due
retrying    an attempt failed (``message``: why, and when the next one is); ``attempts`` so far
sent        the destination answered success to every C-STORE (the RTSTRUCT, and the SEG when
            configured)
failed      every attempt failed (``message``: the last reason); nothing more is tried
skipped     nothing to send: the job failed or was cancelled
=========== ==================================================================================

An attempt opens one association to the destination (TLS when the destination says so) and
C-STOREs ``rtstruct.dcm`` (and ``seg.dcm``) of the job's result folder. The series record goes
from ``queued`` to ``done`` when its job is done (or ``failed``, with the job's message).
"""

from __future__ import annotations

import logging
import socket
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from autocontour.store.schema import DicomSend, DicomSeries, Job, Result, now

if TYPE_CHECKING:
    from autocontour.dicom_node.config import NodeConfig
    from autocontour.store.database import Store

LOG = logging.getLogger(__name__)

WAITING, PENDING, RETRYING, SENT, FAILED, SKIPPED = (
    "waiting", "pending", "retrying", "sent", "failed", "skipped")
GOOD_STATUSES = (0x0000, 0xB000, 0xB006, 0xB007)  # success, and the warnings "stored anyway"
FILES = (("rtstruct.dcm", "RTSTRUCT"), ("seg.dcm", "SEG"))


class SendError(Exception):
    """An attempt failed: the reason, in words."""


class Sender:
    """Sends the contours of done jobs to their destinations (module docstring)."""

    def __init__(self, config: NodeConfig, store: Store, ae_title: str) -> None:
        self.config, self.store, self.ae_title = config, store, ae_title

    def tick(self) -> None:
        self._follow_jobs()
        with self.store.session() as session:
            due = list(session.scalars(
                select(DicomSend.id).where(DicomSend.state.in_((PENDING, RETRYING)),
                                           DicomSend.next_attempt <= now())
                .order_by(DicomSend.next_attempt, DicomSend.id)))
        for send_id in due:
            self.attempt(send_id)

    def _follow_jobs(self) -> None:
        from autocontour.store.jobs import CANCELLED, DONE
        from autocontour.store.jobs import FAILED as JOB_FAILED

        with self.store.session() as session:
            rows = session.execute(select(DicomSeries, Job).join(Job, DicomSeries.job_id == Job.id)
                                   .where(DicomSeries.state == "queued")).all()
            for series, job in rows:
                sends = list(session.scalars(select(DicomSend).where(
                    DicomSend.series_id == series.id, DicomSend.state == WAITING)))
                if job.state == DONE:
                    series.state = "done"
                    for send in sends:
                        send.state, send.result_id, send.next_attempt = PENDING, job.result_id, \
                            now()
                        send.message = "contours ready; sending"
                elif job.state in (JOB_FAILED, CANCELLED):
                    series.state = "failed"
                    series.message = f"job {job.id} {job.state}: {job.message}"
                    for send in sends:
                        send.state = SKIPPED
                        send.message = f"nothing to send: job {job.id} {job.state}"
            session.commit()

    def attempt(self, send_id: int) -> str:
        """Try one send now; its new state."""
        with self.store.session() as session:
            send = session.get(DicomSend, send_id)
            assert send is not None
            result = session.get(Result, send.result_id) if send.result_id else None
            destination = f"{send.ae_title}@{send.host}:{send.port}"
            try:
                if result is None:
                    raise FileNotFoundError("the job recorded no result")
                files = self._files(self.store.home / result.folder, send.send_seg)
            except FileNotFoundError as exc:
                send.state, send.message = FAILED, f"nothing to send: {exc}"
                session.commit()
                return send.state
            send.attempts += 1
            try:
                stored = self.store_files(files, send.host, send.port, send.ae_title, send.tls)
            except SendError as exc:
                reason = str(exc)
                if send.attempts >= self.config.retry.attempts:
                    send.state = FAILED
                    send.message = f"gave up after {send.attempts} attempt(s): {reason}"
                    send.next_attempt = None
                else:
                    delay = self.config.retry.delay(send.attempts)
                    send.state = RETRYING
                    send.next_attempt = now() + timedelta(seconds=delay)
                    send.message = f"attempt {send.attempts} failed: {reason}; next in " \
                                   f"{delay:g} s"
                LOG.warning("send %s to %s: %s", send.id, destination, send.message)
            else:
                send.state, send.sent, send.next_attempt = SENT, now(), None
                send.message = f"{' and '.join(stored)} stored at {destination}"
                LOG.info("send %s: %s", send.id, send.message)
            session.commit()
            return send.state

    @staticmethod
    def _files(folder: Path, with_seg: bool) -> list[tuple[Path, str]]:
        files = [(folder / name, kind) for name, kind in FILES if kind == "RTSTRUCT" or with_seg]
        for path, kind in files:
            if not path.is_file():
                raise FileNotFoundError(f"the result has no {kind} ({path.name})")
        return files

    def store_files(self, files: list[tuple[Path, str]], host: str, port: int, ae_title: str,
                    tls: bool) -> list[str]:
        """C-STORE ``files`` to ``ae_title``@``host``:``port`` in one association; the kinds
        stored.

        Raises:
            SendError: no association (refused, rejected: the reason), or a C-STORE that did not
                succeed (its status).
        """
        import pydicom
        from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
        from pynetdicom import AE, _config

        from autocontour.dicom_node.config import client_context

        # Send each file's bytes as they are (in its own transfer syntax) instead of decoding
        # and encoding them again: pydicom re-encodes the contour points of a 512x512x160
        # RTSTRUCT in about a second. (pynetdicom's switch is per process: this process only
        # sends files.)
        _config.STORE_SEND_CHUNKED_DATASET = True
        metas = [(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[
            "SOPClassUID"]).file_meta, path, kind) for path, kind in files]
        ae = AE(ae_title=self.ae_title)
        ae.connection_timeout, ae.acse_timeout = 5, 15
        ae.dimse_timeout, ae.network_timeout = 60, 60
        for meta, _, _ in metas:  # its own syntax alone, and what pynetdicom converts to
            ae.add_requested_context(meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID)
            others = [ts for ts in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
                      if ts != meta.TransferSyntaxUID]
            ae.add_requested_context(meta.MediaStorageSOPClassUID, others)
        tls_args = (client_context(self.config.tls), host) if tls else None
        assoc = ae.associate(host, port, ae_title=ae_title, tls_args=tls_args)
        if not assoc.is_established:
            raise SendError(_no_association(assoc, host, port, ae_title, tls))
        stored = []
        try:
            as_is = {(c.abstract_syntax, c.transfer_syntax[0])
                     for c in assoc.accepted_contexts}
            for meta, path, kind in metas:
                same = (meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID) in as_is
                try:  # the file as it is, else decoded (and converted by pynetdicom)
                    status = assoc.send_c_store(path if same else pydicom.dcmread(path))
                except ValueError as exc:  # no accepted context for its class and syntax
                    raise SendError(f"the destination does not accept the {kind} ({exc})") \
                        from None
                if "Status" not in status:
                    raise SendError(f"no answer to the C-STORE of the {kind} (the connection "
                                    "was lost or timed out)")
                if status.Status not in GOOD_STATUSES:
                    comment = status.get("ErrorComment", "")
                    raise SendError(f"the destination refused the {kind}: status "
                                    f"0x{status.Status:04X}" + (f" ({comment})" if comment
                                                                else ""))
                stored.append(kind)
        finally:
            if assoc.is_established:
                assoc.release()
        return stored


def _no_association(assoc: object, host: str, port: int, ae_title: str, tls: bool) -> str:
    """Why no association was made, in words."""
    if getattr(assoc, "is_rejected", False):
        primitive = getattr(getattr(assoc, "acceptor", None), "primitive", None)
        reason = getattr(primitive, "reason_str", "") if primitive is not None else ""
        return f"association rejected by {ae_title}@{host}:{port}" + \
            (f" ({reason})" if reason else "")
    try:  # pynetdicom says "aborted" for a refused connection too: which was it?
        with socket.create_connection((host, port), timeout=5):
            pass
    except OSError as exc:
        return f"cannot connect to {host}:{port} ({exc.strerror or exc})"
    if getattr(assoc, "is_aborted", False):
        return f"association aborted by {ae_title}@{host}:{port}" + \
            (" (a TLS problem?)" if tls else "")
    return f"no association with {ae_title}@{host}:{port} (it accepted the connection but " \
           "did not answer as a DICOM node" + (", or TLS failed)" if tls else ")")
