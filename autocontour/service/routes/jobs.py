"""Jobs: queue the contouring of a case, follow its progress (polling or server-sent events),
cancel it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from autocontour.service.deps import CurrentUser, Db, Id, IdQuery, State
from autocontour.service.schemas import JobOut, NewJob
from autocontour.store.schema import Case

router = APIRouter(prefix="/api", tags=["jobs"])


def queue_job(state: State, session: Db, case: Case, model: str | None) -> JobOut:
    """Record a queued job for ``case`` and hand it to the queue."""
    from autocontour.jobs import list_models
    from autocontour.store.jobs import add_job

    if model is not None:
        names = [m["name"] for m in list_models()]
        if model not in names:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                f"unknown model {model!r} (models: {', '.join(names)})")
    job = add_job(session, case, model)
    state.queue.enqueue(job.id)
    return JobOut.model_validate(job)


@router.post("/cases/{case_id}/jobs", response_model=JobOut,
             status_code=status.HTTP_202_ACCEPTED)
def new_job(case_id: Id, body: NewJob, user: CurrentUser, session: Db, state: State) -> JobOut:
    """Contour the case (again): a new job, whose result is added beside earlier ones."""
    from autocontour.store.cases import get_case

    return queue_job(state, session, get_case(session, user, case_id), body.model)


@router.get("/jobs", response_model=list[JobOut])
def list_jobs(user: CurrentUser, session: Db, case_id: IdQuery = None) -> list[JobOut]:
    """Your jobs (of one case), newest first."""
    from autocontour.store.jobs import jobs_of

    return [JobOut.model_validate(j) for j in jobs_of(session, user, case_id)]


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: Id, user: CurrentUser, session: Db) -> JobOut:
    """A job's state, stage, fraction done and message (a failure's reason)."""
    from autocontour.store.jobs import get_job as find

    return JobOut.model_validate(find(session, user, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: Id, user: CurrentUser, session: Db) -> JobOut:
    """Stop a job: a queued one at once, a running one at its next stage (nothing of it is
    kept); a finished job is left as it is."""
    from autocontour.store.jobs import request_cancel

    return JobOut.model_validate(request_cancel(session, user, job_id))


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def job_events(job_id: Id, request: Request, user: CurrentUser, state: State
                     ) -> StreamingResponse:
    """The job's progress as server-sent events: a ``progress`` event whenever its state,
    stage or fraction changes, and a last ``end`` event when it is done, failed or cancelled."""
    from autocontour.store.jobs import FINAL
    from autocontour.store.jobs import get_job as find

    def read() -> JobOut:
        with state.store.session() as session:
            return JobOut.model_validate(find(session, user, job_id))

    first = await run_in_threadpool(read)  # 404 now, before the stream starts

    async def events() -> AsyncIterator[str]:
        job, last = first, None
        while True:
            seen = (job.state, job.stage, round(job.fraction, 3), job.message)
            if seen != last:
                last = seen
                kind = "end" if job.state in FINAL else "progress"
                yield f"event: {kind}\ndata: {json.dumps(job.model_dump(mode='json'))}\n\n"
            if job.state in FINAL or await request.is_disconnected():
                return
            await asyncio.sleep(state.settings.poll_s)
            job = await run_in_threadpool(read)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
