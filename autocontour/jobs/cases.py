"""Contour a stored case: what the service's workers will run for every job.

The case's upload is contoured by the same :func:`~autocontour.jobs.prediction.predict` job as
``autocontour predict``, into a new folder ``results/<case id>/<n>/`` of the store, and the result
is recorded with the model that made it (name, version, SHA-256 of the model file). An earlier
result is never touched: contouring again, with the same or a newer model, adds one beside it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autocontour import __version__
from autocontour.jobs.base import CancelCheck, ProgressCallback
from autocontour.jobs.prediction import PredictRequest, PredictResult, load_contourer, predict


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


def contour_case(request: ContourCaseRequest, progress: ProgressCallback | None = None,
                 cancel: CancelCheck | None = None) -> ContourCaseResult:
    """Contour the case and record the result (see the module docstring).

    Raises:
        NotFoundError: no such case of this user (another user's case included).
        InvalidInputError, AnatomyError: as :func:`predict` (nothing is recorded).
        JobCancelled: ``cancel`` said stop (nothing is recorded).
    """
    from autocontour.store.accounts import find_user
    from autocontour.store.cases import NotFoundError, add_result, case_file, get_case
    from autocontour.store.database import open_store

    store = open_store(request.home, request.database_url)
    with store.session() as session:
        user = find_user(session, request.user)
        if user is None:
            raise NotFoundError(f"case {request.case_id}: not found")
        case = get_case(session, user, request.case_id)
        results = store.home / "results" / str(case.id)
        folder = results / str(len(case.results) + 1)
        while folder.exists():  # a result folder is never reused, whatever the database says
            folder = results / str(int(folder.name) + 1)
        contourer = None if request.model is None else load_contourer(request.model,
                                                                       request.device)
        done: PredictResult = predict(
            PredictRequest(case_file(store, case), folder, device=request.device,
                           threads=request.threads, name=f"case {case.id} ({case.filename})"),
            progress=progress, cancel=cancel, contourer=contourer)
        assert done.model_file is not None  # predict loaded it from a file here
        result = add_result(session, case, model_name=done.model, model_version=__version__,
                            model_sha256=_sha256(done.model_file),
                            folder=str(folder.relative_to(store.home)))
        return ContourCaseResult(result.id, folder, done.model, done.report)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
