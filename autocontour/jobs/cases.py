"""Contour a stored case: what the service's workers run for every job, and what
:func:`contour_case` runs in the caller's process.

Every contouring of a case is a job of the store (:mod:`autocontour.store.jobs`): the case's upload
is contoured by the same :func:`~autocontour.jobs.prediction.predict` job as ``autocontour
predict``, into the folder ``results/<case id>/<job id>/`` of the store, and the result is
recorded with the model that made it (name, version, SHA-256 of the model file) in the same
transaction that marks the job done. An earlier result is never touched: contouring again, with
the same or a newer model, is a new job and adds a result beside the old ones.

A job whose worker died is run again by another worker (:func:`~autocontour.store.jobs.recover`);
each attempt writes a folder of its own (``<job id>``, then ``<job id>.2``, ...), so a worker given
up for dead that comes back cannot touch what the new attempt recorded; only the attempt that
still owns the job records its result (so a job keeps exactly one), and the other removes its
folder.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autocontour import __version__
from autocontour.errors import AutocontourError, JobCancelled
from autocontour.io.formats import read_volume
from autocontour.io.volume import LabelMap
from autocontour.jobs.base import CancelCheck, Progress, ProgressCallback
from autocontour.jobs.prediction import PredictRequest, WarmModels, predict

if TYPE_CHECKING:
    from autocontour.store.database import Store

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContourCaseRequest:
    """Contour case ``case_id`` of user ``user`` in the store at ``home`` / ``database_url``.

    ``model``: a shipped model's name or a model file; None: the shipped model that fits the CT.
    """

    user: str
    case_id: int
    model: str | Path | None = None
    home: str | Path | None = None
    database_url: str | None = None
    device: str = "auto"
    threads: int | None = None


@dataclass(frozen=True)
class ContourCaseResult:
    result_id: int
    folder: Path
    model: str
    report: dict[str, Any]


@dataclass(frozen=True)
class RunJobRequest:
    """Run job ``job_id`` of the store as worker ``worker``.

    Attributes:
        device: "cpu", "cuda", "cuda:N" or "auto".
        threads: PyTorch CPU threads (None: leave the process's setting).
        lease_s: the heartbeat is renewed every quarter of it; a job whose heartbeat is older
            is given up for dead by :func:`~autocontour.store.jobs.recover`.
    """

    job_id: int
    worker: str
    device: str = "auto"
    threads: int | None = None
    lease_s: float = 120.0


@dataclass(frozen=True)
class RunJobResult:
    """How the run ended: ``state`` done, failed, cancelled, or "skipped" (the job was not
    queued: another worker has it, or it had finished or been cancelled)."""

    job_id: int
    state: str
    message: str = ""
    result_id: int | None = None
    folder: Path | None = None
    model: str = ""
    report: dict[str, Any] | None = None


def contour_case(request: ContourCaseRequest, progress: ProgressCallback | None = None,
                 cancel: CancelCheck | None = None) -> ContourCaseResult:
    """Contour the case now, in this process, as a job of the store, and record the result.

    Raises:
        NotFoundError: no such case of this user (another user's case included).
        InvalidInputError, AnatomyError: as :func:`predict` (nothing is recorded; the job is
            marked failed with the message).
        JobCancelled: ``cancel`` said stop (nothing is recorded).
    """
    from autocontour.store.accounts import find_user
    from autocontour.store.cases import NotFoundError, get_case
    from autocontour.store.database import open_store
    from autocontour.store.jobs import add_job

    store = open_store(request.home, request.database_url)
    with store.session() as session:
        user = find_user(session, request.user)
        if user is None:
            raise NotFoundError(f"case {request.case_id}: not found")
        case = get_case(session, user, request.case_id)
        job = add_job(session, case, None if request.model is None else str(request.model))
    done = run_contour_job(store, RunJobRequest(job.id, "in-process", request.device,
                                                request.threads),
                           progress=progress, cancel=cancel, reraise=True)
    assert done.result_id is not None and done.folder is not None and done.report is not None
    return ContourCaseResult(done.result_id, done.folder, done.model, done.report)


def run_contour_job(store: Store, request: RunJobRequest, models: WarmModels | None = None,
                    progress: ProgressCallback | None = None, cancel: CancelCheck | None = None,
                    reraise: bool = False) -> RunJobResult:
    """Claim a queued job, contour its case and record the result (module docstring).

    Progress goes to the job's record (stage, fraction, message) and to ``progress``; a
    cancellation asked through the store (or by ``cancel``) stops the job between stages. A
    failure is recorded as the job's message.

    Args:
        models: the worker's warm models (None: load the model for this job only).
        reraise: raise the failure (after recording it) instead of returning it.
    """
    from autocontour.store import jobs as states
    from autocontour.store.schema import Case, Job

    with store.session() as session:
        attempt = states.claim(session, request.job_id, request.worker)
        if attempt is None:
            return RunJobResult(request.job_id, "skipped", "the job was not queued")
        job = session.get(Job, request.job_id)
        case = session.get(Case, job.case_id) if job is not None else None
        assert job is not None and case is not None
        from autocontour.store.cases import case_file, reference_file

        upload = case_file(store, case)
        reference = reference_file(store, case)
        name = f"case {case.id} ({case.filename})"
        model = job.model
        relative = Path("results") / str(case.id) / \
            (str(job.id) if attempt == 1 else f"{job.id}.{attempt}")
    folder = store.home / relative
    pulse = _Heartbeat(store, request.job_id, attempt, request.lease_s / 4)

    def report(p: Progress) -> None:
        pulse.progress(p)
        if progress is not None:
            progress(p)

    def stop() -> bool:
        return pulse.stopped or (cancel is not None and cancel())

    pulse.start()
    try:
        done = predict(PredictRequest(upload, folder, model=model, device=request.device,
                                      overwrite=True, name=name, threads=request.threads),
                       progress=report, cancel=stop, models=models)
        assert done.model_file is not None  # predict loaded it from a file here
        if reference is not None:
            report(Progress("compare", 1.0, f"scoring against {reference.name}"))
            done.report["comparison"] = compare_with_reference(upload, reference, done.labels,
                                                               folder)
        with store.session() as session:
            result = states.finish(session, request.job_id, attempt, model_name=done.model,
                                   model_version=__version__,
                                   model_sha256=_sha256(done.model_file),
                                   folder=relative.as_posix())
        if result is None:  # given up for dead meanwhile: the attempt that owns it records
            shutil.rmtree(folder, ignore_errors=True)
            return RunJobResult(request.job_id, "skipped", "the job was taken by another worker")
        return RunJobResult(request.job_id, states.DONE, "", result.id, folder, done.model,
                            done.report)
    except BaseException as exc:
        state = states.CANCELLED if isinstance(exc, JobCancelled) else states.FAILED
        message = str(exc) if isinstance(exc, AutocontourError) else \
            f"internal error ({type(exc).__name__}: {exc}); the worker's log has the details"
        if state == states.FAILED and not isinstance(exc, AutocontourError):
            LOG.exception("job %s failed", request.job_id)
        with store.session() as session:
            states.end(session, request.job_id, attempt, state, message)
        shutil.rmtree(folder, ignore_errors=True)  # this attempt's own folder
        if pulse.lost:  # the job is another worker's now
            if not isinstance(exc, Exception):
                raise
            return RunJobResult(request.job_id, "skipped", "the job was taken by another worker")
        if reraise or not isinstance(exc, Exception):
            raise
        return RunJobResult(request.job_id, state, message)
    finally:
        pulse.stop()


COMPARISON = "comparison.json"


def compare_with_reference(ct: Path, reference: Path, labels: LabelMap, folder: Path
                           ) -> dict[str, Any]:
    """Score the contours ``labels`` (on the CT's grid) against a case's reference contours (an
    RTSTRUCT, its ROI names matched to the model's organs, or a label map in the model's label
    values), and write the scores to ``folder/comparison.json``.

    Only organs the reference holds are scored (Dice, HD95, surface Dice at 2 mm, volumes); a
    reference that cannot be read against this result is written as the reason, not raised: the
    contours themselves are fine.
    """
    import json

    import numpy as np

    from autocontour.evaluation.report import evaluate_case
    from autocontour.io.formats import read_labels
    from autocontour.io.rtstruct import read_rtstruct
    from autocontour.store.cases import is_label_map

    summary: dict[str, Any] = {"reference": reference.name}
    try:
        if is_label_map(reference):
            truth = read_labels(reference, labels.organs, reference=labels.geometry)
        else:
            truth, read = read_rtstruct(reference, read_volume(ct), labels.organs)
            summary["unmapped"] = read.unmapped
        drawn = truth.present()
        rows = evaluate_case(labels.array, truth.array, labels.spacing,
                             [(o.name, o.label) for o in drawn])
        clean = [{k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                  for k, v in row.items() if k != "case"} for row in rows]
        summary["organs"] = clean
        summary["mean_dice"] = round(float(np.mean([r["dice"] for r in rows])), 4) \
            if rows else None
    except AutocontourError as exc:
        summary["error"] = str(exc)
    (folder / COMPARISON).write_text(json.dumps(summary, indent=2))
    return summary


class _Heartbeat:
    """Renews a running job's heartbeat in a thread and records its progress; notices when the
    job was cancelled or given to another worker."""

    def __init__(self, store: Store, job_id: int, attempt: int, every_s: float) -> None:
        self._store, self._job, self._attempt = store, job_id, attempt
        self._every = max(every_s, 0.05)
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"heartbeat of job {job_id}")
        self.stopped = False
        self.lost = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._quit.set()
        self._thread.join()

    def progress(self, p: Progress) -> None:
        self._beat(p.stage, p.fraction, p.message)

    def _beat(self, stage: str | None = None, fraction: float | None = None,
              message: str | None = None) -> None:
        from autocontour.store.jobs import beat
        from autocontour.store.schema import Job

        with self._store.session() as session:
            if not beat(session, self._job, self._attempt, stage, fraction, message):
                self.stopped = True
                job = session.get(Job, self._job)
                self.lost = job is None or job.attempt != self._attempt

    def _run(self) -> None:
        while not self._quit.wait(self._every):
            try:
                self._beat()
            except Exception:  # a database hiccup: the next beat tries again
                LOG.warning("job %s: heartbeat failed", self._job, exc_info=True)
                time.sleep(self._every)


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
