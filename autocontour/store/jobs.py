"""Contouring jobs: their states, claims by workers, progress, cancellation, recovery.

The database is the truth about a job; the queue (Huey) only carries "look at job N". So a job
is never lost with a queue message and never runs twice at once:

* ``queued`` -> ``running``: :func:`claim` is one conditional UPDATE; of two workers handed the
  same job only one gets it, and its ``attempt`` number.
* ``running``: the worker's :func:`beat` records progress and a heartbeat, and learns whether
  the job was cancelled or taken from it.
* ``running`` -> ``done``: :func:`finish` records the result and marks the job done in one
  transaction, only while the job is still the worker's attempt. A worker that was given up for
  dead and comes back records nothing; the job keeps exactly one result.
* :func:`recover` puts running jobs whose heartbeat is older than the lease back to ``queued``
  (their worker was killed) and lists every queued job, to be enqueued again (a duplicate
  message is harmless: only one claim succeeds).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from autocontour.store.cases import NotFoundError
from autocontour.store.schema import Case, Job, Result, User, now

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINAL = (DONE, FAILED, CANCELLED)
MAX_ATTEMPTS = 3
"""A job whose worker died this many times fails (it is likely what kills the worker)."""


def add_job(session: Session, case: Case, model: str | None = None) -> Job:
    """Queue the contouring of ``case`` (by ``model``; None: the shipped model that fits)."""
    job = Job(owner_id=case.owner_id, case_id=case.id, model=model, state=QUEUED,
              stage=QUEUED, fraction=0.0, message="", attempt=0, worker="",
              cancel_requested=False)
    session.add(job)
    session.commit()
    return job


def get_job(session: Session, owner: User, job_id: int) -> Job:
    """``owner``'s job ``job_id``.

    Raises:
        NotFoundError: no such job of this user (another user's job included).
    """
    job = session.get(Job, job_id)
    if job is None or job.owner_id != owner.id:
        raise NotFoundError(f"job {job_id}: not found")
    session.refresh(job)
    return job


def jobs_of(session: Session, owner: User, case_id: int | None = None) -> list[Job]:
    """``owner``'s jobs (of one case), newest first."""
    query = select(Job).where(Job.owner_id == owner.id)
    if case_id is not None:
        query = query.where(Job.case_id == case_id)
    return list(session.scalars(query.order_by(Job.id.desc())))


def claim(session: Session, job_id: int, worker: str) -> int | None:
    """Take a queued job: its attempt number, or None when it is not queued (taken, finished,
    cancelled); a queued job whose cancellation was asked is marked cancelled here."""
    stamp = now()
    taken = session.execute(
        update(Job).where(Job.id == job_id, Job.state == QUEUED, Job.cancel_requested.is_(False))
        .values(state=RUNNING, attempt=Job.attempt + 1, worker=worker[:128], heartbeat=stamp,
                started=stamp, stage="starting", message=""))
    session.commit()
    if taken.rowcount != 1:
        session.execute(update(Job).where(Job.id == job_id, Job.state == QUEUED,
                                          Job.cancel_requested.is_(True))
                        .values(state=CANCELLED, stage=CANCELLED, finished=stamp,
                                message="cancelled before it started"))
        session.commit()
        return None
    return session.scalar(select(Job.attempt).where(Job.id == job_id))


def beat(session: Session, job_id: int, attempt: int, stage: str | None = None,
         fraction: float | None = None, message: str | None = None) -> bool:
    """Record a running job's progress and heartbeat.

    Returns:
        True when the job should go on; False when its cancellation was asked, or it is no longer
        this attempt's (given up for dead and queued again).
    """
    values: dict[str, object] = {"heartbeat": now()}
    if stage is not None:
        values["stage"] = stage[:64]
    if fraction is not None:
        values["fraction"] = float(fraction)
    if message is not None:
        values["message"] = message
    done = session.execute(update(Job).where(Job.id == job_id, Job.attempt == attempt,
                                             Job.state == RUNNING).values(**values))
    session.commit()
    if done.rowcount != 1:
        return False
    return not session.scalar(select(Job.cancel_requested).where(Job.id == job_id))


def finish(session: Session, job_id: int, attempt: int, *, model_name: str, model_version: str,
           model_sha256: str, folder: str) -> Result | None:
    """Record the job's result and mark it done, in one transaction.

    Returns:
        The result; None when the job is no longer this attempt's (nothing was recorded).
    """
    job = session.get(Job, job_id)
    if job is None:
        return None
    marked = session.execute(
        update(Job).where(Job.id == job_id, Job.attempt == attempt, Job.state == RUNNING)
        .values(state=DONE, stage=DONE, fraction=1.0, finished=now(), message=""))
    if marked.rowcount != 1:
        session.rollback()
        return None
    result = Result(case_id=job.case_id, model_name=model_name, model_version=model_version,
                    model_sha256=model_sha256, folder=folder)
    session.add(result)
    session.flush()
    session.execute(update(Job).where(Job.id == job_id).values(result_id=result.id))
    session.commit()
    return result


def end(session: Session, job_id: int, attempt: int, state: str, message: str) -> None:
    """Mark this attempt of a running job ``failed`` or ``cancelled`` with a message."""
    session.execute(update(Job).where(Job.id == job_id, Job.attempt == attempt,
                                      Job.state == RUNNING)
                    .values(state=state, stage=state, finished=now(), message=message))
    session.commit()


def request_cancel(session: Session, owner: User, job_id: int) -> Job:
    """Ask ``owner``'s job to stop: a queued job is cancelled now, a running one at its next
    stage; a finished job is left as it is.

    Raises:
        NotFoundError: no such job of this user.
    """
    job = get_job(session, owner, job_id)
    if job.state == QUEUED:
        session.execute(update(Job).where(Job.id == job_id, Job.state == QUEUED)
                        .values(state=CANCELLED, stage=CANCELLED, cancel_requested=True,
                                finished=now(), message="cancelled before it started"))
    elif job.state == RUNNING:
        session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
    session.commit()
    session.refresh(job)
    return job


def recover(session: Session, lease_s: float) -> list[int]:
    """Queue again the running jobs whose worker stopped beating ``lease_s`` ago (a job whose
    worker died :data:`MAX_ATTEMPTS` times fails instead).

    Returns:
        The ids of every queued job, oldest first: enqueue them (again).
    """
    stale = now() - timedelta(seconds=lease_s)
    dead = (Job.state == RUNNING) & (Job.heartbeat < stale)
    session.execute(update(Job).where(dead, Job.attempt >= MAX_ATTEMPTS)
                    .values(state=FAILED, stage=FAILED, finished=now(),
                            message=f"its worker stopped {MAX_ATTEMPTS} times while running it"))
    session.execute(update(Job).where(dead, Job.cancel_requested.is_(True))
                    .values(state=CANCELLED, stage=CANCELLED, finished=now(),
                            message="cancelled (its worker had stopped)"))
    session.execute(update(Job).where(dead).values(
        state=QUEUED, stage=QUEUED, fraction=0.0,
        message="queued again: its worker stopped while running it"))
    session.commit()
    return list(session.scalars(select(Job.id).where(Job.state == QUEUED).order_by(Job.id)))
