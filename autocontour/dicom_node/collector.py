"""From received instances to a case and a job: what happens when a series is complete.

A reception (:class:`~autocontour.dicom_node.receiver.Reception`) is recorded in ``dicom_series``
as soon as its first instance is on disk (state ``receiving``, the instance count kept up to
date). When no instance of it arrived for the quiet time it is closed (state ``complete``) and:

1. its headers are read with the readers of ``autocontour predict`` (no pixels): a series with a
   missing slice (``MissingSliceError``), duplicate positions or mixed orientations is recorded
   as ``failed`` with the reader's message naming the file and the gap, and is not contoured (its
   files stay in ``dicom/series/<id>/`` to be looked at);
2. the rules (:meth:`~autocontour.dicom_node.config.NodeConfig.route`) choose the model and the
   destinations from BodyPartExamined and SeriesDescription;
3. the files become a case of the owner (:func:`~autocontour.store.cases.add_upload_files`: the
   same series sent again is the same case) and a job is queued on the service's queue, so the
   web page shows it like any other case. When the case was made before and has a job of the same
   model that did not fail, that job is reused (nothing is contoured twice) and its result is
   sent again;
4. one ``dicom_sends`` row per destination waits for the job (state ``waiting``); the series is
   ``queued``, and the sender (:mod:`autocontour.dicom_node.sender`) takes it from there.
"""

from __future__ import annotations

import logging
import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from autocontour.errors import AutocontourError, MissingSliceError
from autocontour.store.schema import DicomSend, DicomSeries, Job, now

if TYPE_CHECKING:
    from autocontour.dicom_node.config import NodeConfig
    from autocontour.dicom_node.receiver import Incoming
    from autocontour.service.queue import Queue
    from autocontour.store.database import Store

LOG = logging.getLogger(__name__)

RECEIVING, COMPLETE, QUEUED, DONE, FAILED = "receiving", "complete", "queued", "done", "failed"


class Collector:
    """Records receptions and turns the complete ones into cases and jobs (module docstring)."""

    def __init__(self, config: NodeConfig, store: Store, queue: Queue, incoming: Incoming
                 ) -> None:
        self.config, self.store, self.queue, self.incoming = config, store, queue, incoming

    # --- the loop's step ----------------------------------------------------------------------

    def tick(self) -> None:
        self._record_new()
        self._record_counts()
        for reception, folder in self.incoming.close_quiet(self.config.quiet_seconds):
            assert reception.row_id is not None
            try:
                self.complete(reception.row_id, folder, reception.calling_ae)
            except Exception as exc:  # a bug or the database: say so on the series
                LOG.exception("series %s: not processed", reception.series_uid)
                self._fail(reception.row_id, f"internal error ({type(exc).__name__}: {exc}); "
                                             "the node's log has the details")

    def _record_new(self) -> None:
        for reception in self.incoming.receptions():
            if reception.row_id is not None:
                continue
            with self.store.session() as session:
                row = DicomSeries(series_uid=reception.series_uid,
                                  calling_ae=reception.calling_ae[:16], peer=reception.peer[:128],
                                  instances=len(reception.instances), state=RECEIVING)
                session.add(row)
                session.commit()
                self.incoming.set_row(reception, row.id)
            LOG.info("series %s: receiving from %s (%s), record %s", reception.series_uid,
                     reception.calling_ae, reception.peer, row.id)

    def _record_counts(self) -> None:
        for reception, count in self.incoming.counts():
            with self.store.session() as session:
                row = session.get(DicomSeries, reception.row_id)
                if row is not None and row.state == RECEIVING:
                    row.instances = count
                    row.last_received = now()
                    session.commit()
            reception.recorded = count

    # --- a complete series --------------------------------------------------------------------

    def complete(self, row_id: int, folder: Path | None, calling_ae: str) -> None:
        """Check the series in ``folder``, make its case, queue its job (module docstring)."""
        files = sorted(folder.glob("*.dcm")) if folder is not None else []
        with self.store.session() as session:
            row = session.get(DicomSeries, row_id)
            assert row is not None
            row.state, row.instances, row.completed = COMPLETE, len(files), now()
            session.commit()
        if not files:
            self._fail(row_id, "no instance of the series could be stored")
            return
        assert folder is not None
        try:
            body_part, description = self._describe(row_id, files[0])
            self._check(folder)
        except AutocontourError as exc:
            self._fail(row_id, _relative(str(exc), folder), keep=folder)
            return
        model, destinations, send_seg, why = self.config.route(body_part, description)
        try:
            case_id, job_id, reused = self._case_and_job(files, model, calling_ae, description)
        except AutocontourError as exc:
            self._fail(row_id, _relative(str(exc), folder), keep=folder)
            return
        with self.store.session() as session:
            row = session.get(DicomSeries, row_id)
            assert row is not None
            row.state, row.case_id, row.job_id = QUEUED, case_id, job_id
            row.model, row.rule = model, why[:255]
            row.message = (f"the same series as case {case_id}: its job {job_id} is reused"
                           if reused else "")
            for destination in destinations:
                session.add(DicomSend(series_id=row_id, ae_title=destination.ae_title,
                                      host=destination.host, port=destination.port,
                                      tls=destination.tls, send_seg=send_seg, state="waiting",
                                      attempts=0, message="waiting for the contours"))
            session.commit()
        shutil.rmtree(folder, ignore_errors=True)  # the store keeps the series (the case)
        LOG.info("series record %s: case %s, job %s%s, model %s (%s), %d destination(s)",
                 row_id, case_id, job_id, " (reused)" if reused else "",
                 model or "chosen by the CT", why, len(destinations))

    def _describe(self, row_id: int, first: Path) -> tuple[str, str]:
        import pydicom

        try:
            header = pydicom.dcmread(first, stop_before_pixels=True)
        except Exception as exc:  # noqa: BLE001 - any reading problem is the file's
            raise AutocontourError(f"{first.name}: not readable ({exc})") from None
        body_part = str(header.get("BodyPartExamined", "") or "")
        description = str(header.get("SeriesDescription", "") or "")
        with self.store.session() as session:
            row = session.get(DicomSeries, row_id)
            assert row is not None
            row.body_part, row.description = body_part[:64], description[:255]
            row.study_uid = str(header.get("StudyInstanceUID", "") or "")[:64]
            session.commit()
        return body_part, description

    @staticmethod
    def _check(folder: Path) -> None:
        from autocontour.io.dicom_series import read_series_grid

        try:
            read_series_grid(folder)
        except MissingSliceError as exc:
            raise AutocontourError(f"partial series, not contoured: {exc}") from None
        except AutocontourError as exc:
            raise AutocontourError(f"not contoured: {exc}") from None

    def _case_and_job(self, files: list[Path], model: str | None, calling_ae: str,
                      description: str) -> tuple[int, int, bool]:
        from autocontour.store.accounts import find_user
        from autocontour.store.cases import add_upload_files
        from autocontour.store.jobs import CANCELLED, add_job
        from autocontour.store.jobs import FAILED as JOB_FAILED

        with self.store.session() as session, ExitStack() as stack:
            owner = find_user(session, self.config.owner)
            if owner is None:
                raise AutocontourError(f"the owner {self.config.owner!r} is no longer a user "
                                       "of the store")
            parts = [(f.name, stack.enter_context(f.open("rb"))) for f in files]
            label = f"DICOM from {calling_ae or 'unknown AE'}"
            case, new = add_upload_files(self.store, session, owner, parts,
                                         f"{label}: {description}" if description else label)
            if not new:
                earlier = session.scalar(
                    select(Job).where(Job.case_id == case.id, Job.state.not_in(
                        (JOB_FAILED, CANCELLED)), Job.model.is_(None) if model is None
                        else Job.model == model).order_by(Job.id.desc()))
                if earlier is not None:
                    return case.id, earlier.id, True
            job = add_job(session, case, model)
            case_id, job_id = case.id, job.id
        self.queue.enqueue(job_id)
        return case_id, job_id, False

    def _fail(self, row_id: int, message: str, keep: Path | None = None) -> None:
        where = f" (its files: dicom/series/{row_id}/)" if keep is not None else ""
        with self.store.session() as session:
            row = session.get(DicomSeries, row_id)
            if row is not None:
                row.state, row.message = FAILED, message + where
                session.commit()
        LOG.warning("series record %s failed: %s%s", row_id, message, where)

    # --- after a restart ----------------------------------------------------------------------

    def resume(self) -> None:
        """Take back what a stopped node left: receptions in ``dicom/incoming/`` (their quiet
        time starts now) and series closed but not yet made into a case."""
        from autocontour.dicom_node.receiver import Reception, is_uid

        incoming = self.incoming
        with self.store.session() as session:
            open_rows = {r.series_uid: r for r in session.scalars(
                select(DicomSeries).where(DicomSeries.state == RECEIVING)
                .order_by(DicomSeries.id))}
            for folder in sorted(incoming.incoming.glob("*")) if incoming.incoming.is_dir() \
                    else []:
                if not folder.is_dir() or not is_uid(folder.name):
                    continue
                for partial in folder.glob(".*.part"):
                    partial.unlink(missing_ok=True)
                files = {f.stem for f in folder.glob("*.dcm")}
                row = open_rows.pop(folder.name, None)
                reception = Reception(folder.name, row.calling_ae if row else "",
                                      row.peer if row else "", folder, instances=files)
                if row is not None:
                    reception.row_id, reception.recorded = row.id, row.instances
                incoming.resume(reception)
                LOG.info("series %s: %d instance(s) found from before a restart", folder.name,
                         len(files))
            for row in open_rows.values():
                row.state = FAILED
                row.message = "the node stopped while receiving it and nothing of it was kept"
            session.commit()
            stranded = list(session.scalars(select(DicomSeries.id)
                                            .where(DicomSeries.state == COMPLETE)))
        for row_id in stranded:
            folder = incoming.series / str(row_id)
            with self.store.session() as session:
                row = session.get(DicomSeries, row_id)
                calling_ae = row.calling_ae if row is not None else ""
            self.complete(row_id, folder if folder.is_dir() else None, calling_ae)


def _relative(message: str, folder: Path) -> str:
    """A reader's message with the node's folder left out (files by their own names)."""
    for form in (str(folder.resolve()), str(folder)):
        message = message.replace(form + "/", "").replace(form, "the series")
    return message
