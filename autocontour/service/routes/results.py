"""A result's files: RTSTRUCT, DICOM-SEG, NIfTI label maps, overview PNG and report JSON, each
streamed with its content type and a file name (HTTP range requests work), and a zip of all."""

from __future__ import annotations

import json
import os
import uuid
import zipfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse
from sqlalchemy import select

from autocontour.jobs.cases import COMPARISON
from autocontour.service.deps import CurrentUser, Db, Id, State
from autocontour.service.schemas import ResultOut
from autocontour.store.schema import Case, Job, Result, User

router = APIRouter(prefix="/api/results", tags=["results"])

MEDIA_TYPES = {".dcm": "application/dicom", ".gz": "application/gzip", ".png": "image/png",
               ".json": "application/json", ".zip": "application/zip"}
KINDS = ("rtstruct", "seg", "labels", "body", "overview", "report", "comparison")


def result_of(session: Db, user: User, result_id: int) -> tuple[Result, Case]:
    """``user``'s result ``result_id`` and its case (404 for anyone else's)."""
    result = session.get(Result, result_id)
    case = session.get(Case, result.case_id) if result is not None else None
    if result is None or case is None or case.owner_id != user.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"result {result_id}: not found")
    return result, case


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def _files(folder: Path) -> dict[str, str]:
    """kind -> file name of what a result folder holds (report.json's list, and the
    comparison when there is one)."""
    files = dict((read_json(folder / "report.json") or {}).get("files", {}))
    if (folder / COMPARISON).is_file():
        files["comparison"] = COMPARISON
    return files


def describe(state: State, session: Db, result: Result) -> ResultOut:
    """A result as the API shows it: its model, its files' URLs, organ volumes, warnings."""
    folder = state.store.home / result.folder
    report = read_json(folder / "report.json") or {}
    files = {kind: f"/api/results/{result.id}/files/{kind}" for kind in KINDS
             if kind in _files(folder)}
    job = session.scalar(select(Job.id).where(Job.result_id == result.id))
    return ResultOut(id=result.id, case_id=result.case_id, job_id=job,
                     model_name=result.model_name, model_version=result.model_version,
                     model_sha256=result.model_sha256, created=result.created, files=files,
                     archive=f"/api/results/{result.id}/archive",
                     organs=report.get("organs", []), warnings=report.get("warnings", []),
                     comparison=read_json(folder / COMPARISON))


@router.get("/{result_id}", response_model=ResultOut)
def get_result(result_id: Id, user: CurrentUser, session: Db, state: State) -> ResultOut:
    """One result: the model that made it and what it holds."""
    result, _ = result_of(session, user, result_id)
    return describe(state, session, result)


@router.get("/{result_id}/files/{kind}", response_class=FileResponse,
            responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}},
                       206: {"description": "the requested byte range"}})
def get_file(result_id: Id, kind: str, user: CurrentUser, session: Db,
             state: State) -> FileResponse:
    """One file of a result (kind: rtstruct, seg, labels, body, overview, report,
    comparison)."""
    result, case = result_of(session, user, result_id)
    folder = state.store.home / result.folder
    name = _files(folder).get(kind) if kind in KINDS else None
    if not name or not (folder / name).is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"result {result_id}: no file {kind!r} (kinds: {', '.join(KINDS)})")
    path = folder / name
    suffix = "".join(Path(name).suffixes[-1:])
    return FileResponse(path, media_type=MEDIA_TYPES.get(suffix, "application/octet-stream"),
                        filename=f"case{case.id}_result{result.id}_{name}")


@router.get("/{result_id}/archive", response_class=FileResponse,
            responses={200: {"content": {"application/zip": {}}}})
def get_archive(result_id: Id, user: CurrentUser, session: Db, state: State) -> FileResponse:
    """All files of a result in one zip, with its latest review as ``review.json`` (made once
    per review version, then kept)."""
    from autocontour.store.reviews import latest_review, review_dict

    result, case = result_of(session, user, result_id)
    folder = state.store.home / result.folder
    review = latest_review(session, result)
    version = review.version if review is not None else 0
    archive = state.store.home / "archives" / f"result{result.id}-review{version}.zip"
    if not archive.is_file():
        archive.parent.mkdir(parents=True, exist_ok=True)
        partial = archive.with_name(f".{uuid.uuid4().hex}.zip")
        try:
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as bundle:
                for path in sorted(folder.rglob("*")):
                    if path.is_file():
                        bundle.write(path, path.relative_to(folder).as_posix())
                if review is not None:
                    bundle.writestr("review.json",
                                    json.dumps(review_dict(session, review), indent=2))
            os.replace(partial, archive)
        finally:
            partial.unlink(missing_ok=True)
    return FileResponse(archive, media_type="application/zip",
                        filename=f"case{case.id}_result{result.id}.zip")
