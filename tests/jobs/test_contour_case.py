"""Contouring a stored case: a new result beside the earlier ones, tied to its model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import select

from autocontour.io import write_volume
from autocontour.jobs import ContourCaseRequest, contour_case
from autocontour.phantoms import head_neck_case
from autocontour.store.accounts import add_user
from autocontour.store.cases import NotFoundError, add_upload, get_case
from autocontour.store.database import open_store
from autocontour.store.schema import User


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


def test_a_worker_keeps_its_models_warm_and_reports_progress_to_the_job(stored_case) -> None:
    from autocontour.jobs import RunJobRequest, WarmModels, run_contour_job
    from autocontour.store.jobs import add_job

    home, case_id = stored_case
    store = open_store(home)
    models = WarmModels()
    seen: dict[int, list[float]] = {}
    with store.session() as session:
        alice = session.scalar(select(User).where(User.name == "alice"))
        case = get_case(session, alice, case_id)
        jobs = [add_job(session, case), add_job(session, case, "head-neck")]
    for job in jobs:
        done = run_contour_job(store, RunJobRequest(job.id, "test", "cpu", lease_s=4),
                               models=models,
                               progress=lambda p, j=job.id: seen.setdefault(j, []).append(
                                   p.fraction))
        assert done.state == "done" and done.folder == home / "results" / str(case_id) / \
            str(job.id)
    assert len(models) == 1  # chosen and named: the same model file, loaded once
    for fractions in seen.values():  # each job's fractions never go back
        assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) > 5
    again = run_contour_job(store, RunJobRequest(jobs[0].id, "test", "cpu"), models=models)
    assert again.state == "skipped"  # a finished job does not run twice


def test_a_worker_given_up_for_dead_records_nothing(stored_case, monkeypatch) -> None:
    """The job is queued again while its first worker still runs (its heartbeat was late): the
    first worker notices at its next stage and stops; the job keeps the second one's result."""
    from sqlalchemy import func

    from autocontour.jobs import RunJobRequest, run_contour_job
    from autocontour.store import jobs as states
    from autocontour.store.jobs import add_job
    from autocontour.store.schema import Result

    home, case_id = stored_case
    store = open_store(home)
    with store.session() as session:
        alice = session.scalar(select(User).where(User.name == "alice"))
        job = add_job(session, get_case(session, alice, case_id))
    taken = []

    def meanwhile(p) -> None:  # during the first run, another worker takes the job over
        if p.stage == "preprocess" and not taken:
            with store.session() as session:
                session.execute(states.update(states.Job).values(state="queued"))
                session.commit()
                taken.append(states.claim(session, job.id, "second"))

    first = run_contour_job(store, RunJobRequest(job.id, "first", "cpu"), progress=meanwhile)
    assert taken == [2] and first.state == "skipped"  # stopped at the next stage
    assert "taken by another worker" in first.message
    with store.session() as session:
        assert session.get(states.Job, job.id).state == "running"  # still the second's
        assert session.scalar(select(func.count()).select_from(Result)) == 0


def test_an_attempt_that_finishes_after_losing_its_job_removes_its_own_outputs(stored_case
                                                                               ) -> None:
    """The job is taken over after the first worker wrote its outputs (its last stage): it
    records nothing and removes its own folder; the job is the second attempt's."""
    from autocontour.jobs import RunJobRequest, run_contour_job
    from autocontour.store import jobs as states
    from autocontour.store.jobs import add_job

    home, case_id = stored_case
    store = open_store(home)
    with store.session() as session:
        alice = session.scalar(select(User).where(User.name == "alice"))
        job = add_job(session, get_case(session, alice, case_id))

    def meanwhile(p) -> None:
        if p.stage == "write":  # outputs written: another worker takes the job over now
            with store.session() as session:
                session.execute(states.update(states.Job).values(state="queued"))
                session.commit()
                assert states.claim(session, job.id, "second") == 2

    first = run_contour_job(store, RunJobRequest(job.id, "first", "cpu"), progress=meanwhile)
    assert first.state == "skipped" and "taken by another worker" in first.message
    assert not (home / "results" / str(case_id) / str(job.id)).exists()
    with store.session() as session:
        assert session.get(states.Job, job.id).attempt == 2
        assert session.get(states.Job, job.id).result_id is None
