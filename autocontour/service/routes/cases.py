"""Cases: upload a CT (streamed to disk, validated by the readers ``predict`` uses), list them,
see one with its jobs and results (every result ever made; none is replaced)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

from fastapi import (
    APIRouter,
    File,
    Form,
    HTTPException,
    Query,
    Request,
    Response,
    UploadFile,
    status,
)
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from autocontour.service.deps import CurrentUser, Db, Id, State
from autocontour.service.routes.jobs import queue_job
from autocontour.service.routes.results import describe
from autocontour.service.schemas import CaseOut, JobOut
from autocontour.store.schema import Case, User

router = APIRouter(prefix="/api/cases", tags=["cases"])
RAW_BODY = {"requestBody": {"required": True, "description": "the file's bytes, as they are",
                            "content": {"application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}}}}}
"""The OpenAPI of a route that streams its raw body itself (FastAPI cannot see it)."""


def case_out(state: State, session: Db, case: Case, new: bool = False) -> CaseOut:
    from autocontour.store.jobs import jobs_of

    owner = session.get(User, case.owner_id)
    assert owner is not None
    return CaseOut(id=case.id, filename=case.filename, format=case.format,
                   size_bytes=case.size_bytes, sha256=case.sha256, description=case.description,
                   created=case.created, new=new, reference=case.reference_filename,
                   jobs=[JobOut.model_validate(j) for j in jobs_of(session, owner, case.id)],
                   results=[describe(state, session, r) for r in case.results])


def _stored(state: State, session: Db, user: User, response: Response, case: Case, new: bool,
            contour: bool, model: str | None) -> CaseOut:
    if contour:
        queue_job(state, session, case, model)
    response.status_code = status.HTTP_201_CREATED if new else status.HTTP_200_OK
    session.refresh(case)
    return case_out(state, session, case, new)


def _storage_failed(exc: OSError) -> HTTPException:
    return HTTPException(status.HTTP_507_INSUFFICIENT_STORAGE,
                         f"the server could not store the upload ({exc.strerror or exc}); "
                         "nothing was kept, try again later")


async def _spool(state: State, request: Request) -> Path:
    """The request's body, streamed into a file of the store's incoming folder."""
    spool = state.store.files / "incoming" / f"raw-{uuid.uuid4().hex}"
    try:
        spool.parent.mkdir(parents=True, exist_ok=True)
        with spool.open("wb") as handle:
            async for chunk in request.stream():
                handle.write(chunk)
    except OSError as exc:
        spool.unlink(missing_ok=True)
        raise _storage_failed(exc) from None
    except BaseException:  # the client went away, or the body was over the limit
        spool.unlink(missing_ok=True)
        raise
    return spool


@router.post("", response_model=CaseOut, status_code=status.HTTP_201_CREATED,
             responses={200: {"model": CaseOut, "description": "the same content was uploaded "
                                                               "before: that case"},
                        413: {"description": "larger than the upload limit"},
                        422: {"description": "not a CT the readers accept (the reason)"}})
def upload(user: CurrentUser, session: Db, state: State, response: Response,
           files: Annotated[list[UploadFile], File(description=(
               "one file (a DICOM series as .zip, NIfTI, NRRD, HDF5) or the DICOM files of "
               "one series"))],
           description: Annotated[str, Form(max_length=255)] = "",
           contour: Annotated[bool, Form(description="queue its contouring now")] = False,
           model: Annotated[str | None, Form(max_length=64)] = None,
           reference: Annotated[UploadFile | None, File(description=(
               "reference contours to score every result against: an RTSTRUCT drawn on this "
               "CT, or a label map on its grid"))] = None) -> CaseOut:
    """Upload a CT as multipart form data (``curl -F files=@ct.zip``): 201 with the new case,
    or 200 with the case the same content made before."""
    from autocontour.store.cases import add_upload, add_upload_files, set_reference

    limit = state.settings.max_upload_bytes
    try:
        if len(files) == 1:
            case, new = add_upload(state.store, session, user, files[0].file,
                                   files[0].filename or "upload", description, limit)
        else:
            case, new = add_upload_files(
                state.store, session, user,
                [(f.filename or f"file{i}", f.file) for i, f in enumerate(files)], description,
                limit)
        if reference is not None:
            set_reference(state.store, session, case, reference.file,
                          reference.filename or "reference.dcm", limit)
    except OSError as exc:
        raise _storage_failed(exc) from None
    return _stored(state, session, user, response, case, new, contour, model)


@router.put("/upload/{filename}", response_model=CaseOut, status_code=status.HTTP_201_CREATED,
            responses={200: {"model": CaseOut}, 413: {}, 422: {}}, openapi_extra=RAW_BODY)
async def upload_raw(filename: str, request: Request, user: CurrentUser, session: Db,
                     state: State, response: Response,
                     description: Annotated[str, Query(max_length=255)] = "",
                     contour: bool = False,
                     model: Annotated[str | None, Query(max_length=64)] = None) -> CaseOut:
    """Upload a CT as the request body (``curl -T ct.zip URL/api/cases/upload/ct.zip``), the
    file's name (its suffix says the format) in the URL: for large files and scripts."""
    from autocontour.store.cases import add_upload

    spool = await _spool(state, request)
    try:
        case, new = await run_in_threadpool(add_upload, state.store, session, user, spool,
                                            Path(filename).name, description,
                                            state.settings.max_upload_bytes)
    except OSError as exc:
        raise _storage_failed(exc) from None
    finally:
        spool.unlink(missing_ok=True)
    return await run_in_threadpool(_stored, state, session, user, response, case, new, contour,
                                   model)


@router.put("/{case_id}/reference/{filename}", response_model=CaseOut,
            responses={409: {"description": "the case has its reference already"}, 413: {},
                       422: {}}, openapi_extra=RAW_BODY)
async def put_reference(case_id: Id, filename: str, request: Request, user: CurrentUser,
                        session: Db, state: State) -> CaseOut:
    """Give a case its reference contours as the request body (an RTSTRUCT drawn on its CT, or
    a label map on its grid; the suffix of the name says which): every result made after it
    is scored against it (``comparison`` of the result). Set once."""
    from autocontour.store.cases import get_case as find
    from autocontour.store.cases import set_reference

    case = await run_in_threadpool(find, session, user, case_id)  # 404 before the body is read
    spool = await _spool(state, request)
    try:
        await run_in_threadpool(set_reference, state.store, session, case, spool,
                                Path(filename).name, state.settings.max_upload_bytes)
    except OSError as exc:
        raise _storage_failed(exc) from None
    finally:
        spool.unlink(missing_ok=True)
    return await run_in_threadpool(case_out, state, session, case)


@router.get("", response_model=list[CaseOut])
def list_cases(user: CurrentUser, session: Db, state: State) -> list[CaseOut]:
    """Your cases, newest first, each with its jobs and results."""
    from autocontour.store.cases import cases_of

    return [case_out(state, session, c) for c in cases_of(session, user)]


@router.get("/{case_id}", response_model=CaseOut)
def get_case(case_id: Id, user: CurrentUser, session: Db, state: State) -> CaseOut:
    """One case: the upload, its jobs and every result made from it."""
    from autocontour.store.cases import get_case as find

    return case_out(state, session, find(session, user, case_id))


@router.get("/{case_id}/file", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}}}})
def get_upload(case_id: Id, user: CurrentUser, session: Db, state: State) -> FileResponse:
    """The uploaded file itself, as it was received."""
    from autocontour.store.cases import case_file
    from autocontour.store.cases import get_case as find

    case = find(session, user, case_id)
    return FileResponse(case_file(state.store, case), media_type="application/octet-stream",
                        filename=case.filename)

