"""Jobs in the store: one claim wins, progress and cancellation, recovery of a dead worker's job,
exactly one result per job; and logins and tokens kept only as hashes."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from autocontour.io import write_volume
from autocontour.phantoms import head_neck_case
from autocontour.store.accounts import (
    add_token,
    add_user,
    end_login,
    login_of,
    revoke_token,
    start_login,
    token_user,
    tokens_of,
)
from autocontour.store.cases import NotFoundError, add_upload
from autocontour.store.database import open_store
from autocontour.store.jobs import (
    MAX_ATTEMPTS,
    add_job,
    beat,
    claim,
    end,
    finish,
    get_job,
    jobs_of,
    recover,
    request_cancel,
)
from autocontour.store.schema import ApiToken, Job, LoginSession, Result, now


@pytest.fixture
def world(tmp_path: Path):
    store = open_store(tmp_path / "home")
    ct = write_volume(head_neck_case(90061, shape=(8, 24, 24)).ct, tmp_path / "ct.nii.gz")
    with store.session() as session:
        alice = add_user(session, "alice", "password1")
        bob = add_user(session, "bob", "password2")
        case, _ = add_upload(store, session, alice, ct)
    return store, alice, bob, case


def _result(session, job_id: int, attempt: int):
    return finish(session, job_id, attempt, model_name="m", model_version="1",
                  model_sha256="0" * 64, folder=f"results/x/{job_id}")


def test_of_two_workers_handed_one_job_only_one_takes_it(world) -> None:
    store, alice, _, case = world
    with store.session() as session:
        job = add_job(session, case)
        assert claim(session, job.id, "w1") == 1
        assert claim(session, job.id, "w2") is None
        assert get_job(session, alice, job.id).worker == "w1"
        assert get_job(session, alice, job.id).state == "running"


def test_progress_is_recorded_and_a_cancellation_reaches_the_worker(world) -> None:
    store, alice, _, case = world
    with store.session() as session:
        job = add_job(session, case)
        attempt = claim(session, job.id, "w1")
        assert beat(session, job.id, attempt, "network 2d", 0.5, "half way") is True
        seen = get_job(session, alice, job.id)
        assert (seen.stage, seen.fraction, seen.message) == ("network 2d", 0.5, "half way")
        assert request_cancel(session, alice, job.id).cancel_requested is True
        assert beat(session, job.id, attempt) is False  # the worker is told to stop
        end(session, job.id, attempt, "cancelled", "contouring cancelled; nothing was written")
        assert get_job(session, alice, job.id).state == "cancelled"


def test_a_queued_job_cancelled_never_runs(world) -> None:
    store, alice, _, case = world
    with store.session() as session:
        job = add_job(session, case)
        assert request_cancel(session, alice, job.id).state == "cancelled"
        assert claim(session, job.id, "w1") is None
        assert recover(session, lease_s=1) == []


def test_a_dead_workers_job_runs_again_and_keeps_exactly_one_result(world) -> None:
    store, alice, _, case = world
    with store.session() as session:
        job = add_job(session, case)
        first = claim(session, job.id, "w1")
        assert recover(session, lease_s=60) == []  # beating recently: left alone
        session.execute(update(Job).values(heartbeat=now() - timedelta(seconds=61)))
        session.commit()
        assert recover(session, lease_s=60) == [job.id]
        requeued = get_job(session, alice, job.id)
        assert requeued.state == "queued" and "worker stopped" in requeued.message
        second = claim(session, job.id, "w2")
        assert second == 2
        assert beat(session, job.id, first) is False  # the old worker, back: not its job now
        assert _result(session, job.id, first) is None  # and it records nothing
        assert _result(session, job.id, second) is not None
        assert _result(session, job.id, second) is None  # finished once
        assert session.scalar(select(func.count()).select_from(Result)) == 1
        done = get_job(session, alice, job.id)
        assert done.state == "done" and done.result_id is not None and done.fraction == 1.0


def test_a_job_that_kills_its_worker_every_time_fails(world) -> None:
    store, alice, _, case = world
    with store.session() as session:
        job = add_job(session, case)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            assert claim(session, job.id, f"w{attempt}") == attempt
            session.execute(update(Job).values(heartbeat=now() - timedelta(seconds=10)))
            session.commit()
            recover(session, lease_s=5)
        failed = get_job(session, alice, job.id)
        assert failed.state == "failed" and f"stopped {MAX_ATTEMPTS} times" in failed.message


def test_another_users_job_is_not_found(world) -> None:
    store, alice, bob, case = world
    with store.session() as session:
        job = add_job(session, case)
        for call in (lambda: get_job(session, bob, job.id),
                     lambda: request_cancel(session, bob, job.id)):
            with pytest.raises(NotFoundError, match=f"job {job.id}: not found"):
                call()
        assert jobs_of(session, bob) == [] and len(jobs_of(session, alice, case.id)) == 1
        assert get_job(session, alice, job.id).state == "queued"  # bob's cancel did nothing


def test_logins_and_tokens_are_kept_only_as_hashes(world) -> None:
    store, alice, bob, _ = world
    with store.session() as session:
        cookie, csrf = start_login(session, alice, hours=1)
        token_record, token = add_token(session, alice, "planning system")
        kept = [r.token_sha256 for r in session.scalars(select(LoginSession))] + \
            [r.token_sha256 for r in session.scalars(select(ApiToken))]
        assert hashlib.sha256(cookie.encode()).hexdigest() in kept
        assert cookie not in kept and token not in kept
        assert login_of(session, cookie).csrf == csrf
        assert token_user(session, token).id == alice.id
        assert tokens_of(session, alice)[0].last_used is not None
        assert revoke_token(session, bob, token_record.id) is False  # not bob's to revoke
        assert revoke_token(session, alice, token_record.id) is True
        assert token_user(session, token) is None
        end_login(session, cookie)
        assert login_of(session, cookie) is None


def test_an_expired_login_logs_nobody_in(world) -> None:
    store, alice, _, _ = world
    with store.session() as session:
        cookie, _ = start_login(session, alice, hours=1)
        assert login_of(session, cookie) is not None
        session.execute(update(LoginSession).values(expires=now() - timedelta(seconds=1)))
        session.commit()
        assert login_of(session, cookie) is None


def test_a_tokens_last_use_is_written_at_most_once_a_minute(world) -> None:
    """A read request seldom writes (a worker frozen holding SQLite's lock must not turn every
    authenticated GET into a wait; tests/service/test_faults.py freezes one)."""
    store, alice, _, _ = world
    with store.session() as session:
        record, token = add_token(session, alice, "script")
        assert token_user(session, token).id == alice.id
        first = session.get(ApiToken, record.id).last_used
        assert first is not None
        assert token_user(session, token).id == alice.id
        assert session.get(ApiToken, record.id).last_used == first  # a second later: not again
        session.execute(update(ApiToken).where(ApiToken.id == record.id)
                        .values(last_used=first - timedelta(minutes=2)))
        session.commit()
        token_user(session, token)
        assert session.get(ApiToken, record.id).last_used > first - timedelta(minutes=2)
