"""Contouring a stored case: a new result beside the earlier ones, tied to its model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from autocontour.io import write_volume
from autocontour.jobs import ContourCaseRequest, contour_case
from autocontour.phantoms import head_neck_case
from autocontour.store.accounts import add_user
from autocontour.store.cases import NotFoundError, add_upload, get_case
from autocontour.store.database import open_store


@pytest.fixture
def stored_case(tmp_path: Path) -> tuple[Path, int]:
    home = tmp_path / "home"
    store = open_store(home)
    ct = write_volume(head_neck_case(90043, shape=(40, 64, 64)).ct, tmp_path / "ct.nii.gz")
    with store.session() as session:
        alice = add_user(session, "alice", "password1")
        add_user(session, "bob", "password2")
        case, _ = add_upload(store, session, alice, ct)
    return home, case.id


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_contouring_again_adds_a_result_and_keeps_the_first(stored_case) -> None:
    home, case_id = stored_case
    first = contour_case(ContourCaseRequest("alice", case_id, home=home, device="cpu"))
    assert first.folder == home / "results" / str(case_id) / "1"
    assert first.report["model_choice"]["model"] == "head-neck"  # chosen from the CT
    assert (first.folder / "rtstruct.dcm").is_file()
    before = _tree(first.folder)
    second = contour_case(ContourCaseRequest("alice", case_id, model="head-neck", home=home,
                                             device="cpu"))
    assert second.folder.name == "2" and _tree(first.folder) == before
    shipped = Path(__file__).resolve().parents[2] / "autocontour/assets/hn_phantom_default.pt"
    digest = hashlib.sha256(shipped.read_bytes()).hexdigest()
    store = open_store(home)
    with store.session() as session:
        from sqlalchemy import select

        from autocontour.store.schema import User

        alice = session.scalar(select(User).where(User.name == "alice"))
        results = get_case(session, alice, case_id).results
        assert [r.folder for r in results] == [f"results/{case_id}/1", f"results/{case_id}/2"]
        assert {r.model_sha256 for r in results} == {digest}
        assert {r.model_name for r in results} == {"hn-phantom-default"}


def test_another_users_case_cannot_be_contoured(stored_case) -> None:
    home, case_id = stored_case
    for user in ("bob", "nobody"):
        with pytest.raises(NotFoundError, match=f"case {case_id}: not found"):
            contour_case(ContourCaseRequest(user, case_id, home=home, device="cpu"))
    assert not (home / "results").exists()
