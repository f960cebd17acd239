"""The viewer's data: CT slices (windowed PNGs), structures and their contours per slice (the
result's and the case's reference), and the clinician's review of a result."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from autocontour.service.deps import CurrentUser, Db, Id, State
from autocontour.service.display import (
    CaseImage,
    Structures,
    count,
    labelmap_structures,
    rtstruct_structures,
)
from autocontour.service.routes.results import read_json, result_of
from autocontour.store.schema import Case, Result

router = APIRouter(prefix="/api", tags=["viewer"])

View = Literal["axial", "coronal", "sagittal"]
Index = Annotated[int, PathParam(ge=0, le=100_000)]
CACHE = {"Cache-Control": "private, max-age=86400"}  # a case's content never changes


def _image(state: State, case: Case) -> CaseImage:
    from autocontour.store.cases import case_file

    return state.views.images.get(case.sha256, lambda: CaseImage.read(case_file(state.store,
                                                                                 case)))


def _check_index(image: CaseImage, view: str, index: int) -> None:
    slices = count(image.array.shape, view)
    if not 0 <= index < slices:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"{view} slice {index}: the CT has {slices} (0-{slices - 1})")


@router.get("/cases/{case_id}/image")
def image_info(case_id: Id, user: CurrentUser, session: Db, state: State) -> dict[str, Any]:
    """The CT's shape, spacing, slice positions, the three views and the window presets."""
    from autocontour.store.cases import get_case

    return _image(state, get_case(session, user, case_id)).info()


@router.get("/cases/{case_id}/slices/{view}/{index}.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def slice_png(case_id: Id, view: View, index: Index, user: CurrentUser, session: Db,
              state: State,
              window: Annotated[float, Query(ge=1, le=10_000)] = 400,
              level: Annotated[float, Query(ge=-5_000, le=10_000)] = 40) -> Response:
    """One slice windowed (``window``, ``level`` in HU) as a grayscale PNG."""
    from autocontour.store.cases import get_case

    case = get_case(session, user, case_id)
    image = _image(state, case)
    _check_index(image, view, index)
    key = (case.sha256, view, index, window, level)
    png = state.views.pngs.get(key, lambda: image.png(view, index, window, level))
    return Response(png, media_type="image/png", headers=CACHE)


def _report(state: State, result: Result) -> dict[str, Any]:
    return read_json(state.store.home / result.folder / "report.json") or {}


def _result_structures(state: State, result: Result, case: Case) -> Structures:
    from autocontour.store.cases import case_file

    def build() -> Structures:
        folder = state.store.home / result.folder
        report = _report(state, result)
        rtstruct = folder / report.get("files", {}).get("rtstruct", "rtstruct.dcm")
        if not rtstruct.is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND,
                                f"result {result.id}: no RTSTRUCT to show")
        reference = folder / "ct" if (folder / "ct").is_dir() else case_file(state.store, case)
        body = folder / report.get("files", {}).get("body", "body.nii.gz")
        return rtstruct_structures(rtstruct, reference, _image(state, case), report, body)

    return state.views.structures.get(("result", result.id), build)


@router.get("/results/{result_id}/structures")
def structures(result_id: Id, user: CurrentUser, session: Db, state: State
               ) -> list[dict[str, Any]]:
    """The result's structures (the RTSTRUCT's ROIs): name, colour, type, volume, flag."""
    result, case = result_of(session, user, result_id)
    return _result_structures(state, result, case).structures


@router.get("/results/{result_id}/contours/{view}/{index}")
def result_contours(result_id: Id, view: View, index: Index, user: CurrentUser, session: Db,
                    state: State, response: Response) -> dict[str, Any]:
    """The result's contours on one slice, in the slice PNG's pixels: [col, row] polygons."""
    result, case = result_of(session, user, result_id)
    _check_index(_image(state, case), view, index)
    drawn = _result_structures(state, result, case)
    response.headers.update(CACHE)
    return {"structures": state.views.contours.get(("result", result.id, view, index),
                                                   lambda: drawn.contours(view, index))}


def _reference_structures(state: State, session: Db, case: Case) -> Structures:
    from autocontour.io.rtstruct import guess_organ_set
    from autocontour.store.cases import case_file, is_label_map, reference_file

    reference = reference_file(state.store, case)
    if reference is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"case {case.id} has no reference")

    def build() -> Structures:
        image = _image(state, case)
        if not is_label_map(reference):
            return rtstruct_structures(reference, case_file(state.store, case), image)
        names: dict[int, str] = {}
        if case.results:  # the label values are the model's: name them as its organs
            made = _result_structures(state, case.results[-1], case)
            organs = guess_organ_set([s["name"] for s in made.structures])
            names = {o.label: o.name for o in organs}
        return labelmap_structures(reference, names, image)

    return state.views.structures.get(("reference", case.id), build)


@router.get("/cases/{case_id}/reference/structures")
def reference_structures(case_id: Id, user: CurrentUser, session: Db, state: State
                         ) -> list[dict[str, Any]]:
    """The structures of the case's reference contours: name, colour, type (404 when it has
    none)."""
    from autocontour.store.cases import get_case

    return _reference_structures(state, session, get_case(session, user, case_id)).structures


@router.get("/cases/{case_id}/reference/contours/{view}/{index}")
def reference_contours(case_id: Id, view: View, index: Index, user: CurrentUser, session: Db,
                       state: State, response: Response) -> dict[str, Any]:
    """The case's reference contours on one slice (404 when it has none)."""
    from autocontour.store.cases import get_case

    case = get_case(session, user, case_id)
    _check_index(_image(state, case), view, index)
    drawn = _reference_structures(state, session, case)
    response.headers.update(CACHE)
    return {"structures": state.views.contours.get(("reference", case.id, view, index),
                                                   lambda: drawn.contours(view, index))}


# --- reviews ---------------------------------------------------------------------------------


class OrganReview(BaseModel):
    status: Literal["accepted", "needs edit"] | None = None
    comment: str = Field("", max_length=4000)


class ReviewIn(BaseModel):
    organs: dict[str, OrganReview] = Field(default_factory=dict)
    comment: str = Field("", max_length=4000)


class ReviewOut(BaseModel):
    version: int = Field(description="0: not reviewed yet; each save adds one")
    organs: dict[str, OrganReview]
    comment: str
    reviewer: str | None
    saved: str | None


@router.get("/results/{result_id}/review", response_model=ReviewOut)
def get_review(result_id: Id, user: CurrentUser, session: Db) -> ReviewOut:
    """The latest review of the result (version 0 when nobody has reviewed it)."""
    from autocontour.store.reviews import latest_review, review_dict

    result, _ = result_of(session, user, result_id)
    return ReviewOut(**review_dict(session, latest_review(session, result)))


@router.put("/results/{result_id}/review", response_model=ReviewOut)
def put_review(result_id: Id, body: ReviewIn, user: CurrentUser, session: Db,
               state: State) -> ReviewOut:
    """Save the review as a new version (earlier versions are kept; the result is untouched).
    It goes into the result's zip as ``review.json``."""
    from autocontour.store.reviews import review_dict, save_review

    result, case = result_of(session, user, result_id)
    names = [s["name"] for s in _result_structures(state, result, case).structures]
    review = save_review(session, result, user,
                         {k: v.model_dump() for k, v in body.organs.items()}, body.comment,
                         names)
    return ReviewOut(**review_dict(session, review))

