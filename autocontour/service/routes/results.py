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

from autocontour.service.deps import CurrentUser, Db, Id, State
from autocontour.service.schemas import ResultOut
from autocontour.store.schema import Case, Job, Result, User

router = APIRouter(prefix="/api/results", tags=["results"])

MEDIA_TYPES = {".dcm": "application/dicom", ".gz": "application/gzip", ".png": "image/png",
               ".json": "application/json", ".zip": "application/zip"}
KINDS = ("rtstruct", "seg", "labels", "body", "overview", "report")


def result_of(session: Db, user: User, result_id: int) -> tuple[Result, Case]:
    """``user``'s result ``result_id`` and its case (404 for anyone else's)."""
    result = session.get(Result, result_id)
    case = session.get(Case, result.case_id) if result is not None else None
    if result is None or case is None or case.owner_id != user.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"result {result_id}: not found")
    return result, case


def _report(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "report.json").read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return {}


def describe(state: State, session: Db, result: Result) -> ResultOut:
    """A result as the API shows it: its model, its files' URLs, organ volumes, warnings."""
    folder = state.store.home / result.folder
    report = _report(folder)
    files = {kind: f"/api/results/{result.id}/files/{kind}" for kind in KINDS
             if kind in report.get("files", {})}
    job = session.query(Job.id).filter(Job.result_id == result.id).scalar()
    return ResultOut(id=result.id, case_id=result.case_id, job_id=job,
                     model_name=result.model_name, model_version=result.model_version,
                     model_sha256=result.model_sha256, created=result.created, files=files,
                     archive=f"/api/results/{result.id}/archive",
                     organs=report.get("organs", {}), warnings=report.get("warnings", []))


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
    """One file of a result (kind: rtstruct, seg, labels, body, overview, report)."""
    result, case = result_of(session, user, result_id)
    folder = state.store.home / result.folder
    name = _report(folder).get("files", {}).get(kind) if kind in KINDS else None
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
    """All files of a result in one zip (made once, on the first request, then kept)."""
    result, case = result_of(session, user, result_id)
    folder = state.store.home / result.folder
    archive = state.store.home / "archives" / f"result{result.id}.zip"
    if not archive.is_file():
        archive.parent.mkdir(parents=True, exist_ok=True)
        partial = archive.with_name(f".{uuid.uuid4().hex}.zip")
        try:
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as bundle:
                for path in sorted(folder.rglob("*")):
                    if path.is_file():
                        bundle.write(path, path.relative_to(folder).as_posix())
            os.replace(partial, archive)
        finally:
            partial.unlink(missing_ok=True)
    return FileResponse(archive, media_type="application/zip",
                        filename=f"case{case.id}_result{result.id}.zip")
