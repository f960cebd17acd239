"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (Schemathesis + Hypothesis).

Every operation of ``create_app(...).openapi()`` is sent requests generated from the schema, valid
ones and invalid ones (wrong types, missing or extra parameters, odd strings, huge integers),
against the real server (Uvicorn on 127.0.0.1, as ``conftest.start_server``):

* ``test_as_user``: authenticated as alice with a bearer token. No response may be a 5xx; its
  status must be one the operation documents or one the service answers every route with (401,
  403, 404, 413, 422); a documented response must match its schema (body, content type, headers);
  invalid data must be refused with a 4xx.
* ``test_without_login``: no credentials. Nothing but ``/api/login`` and ``/api/health`` may
  answer anything but 401 (422 for a body that is not even JSON or a form: FastAPI parses the
  body before the dependencies run, which leaks nothing).
* ``test_cookie_without_csrf``: alice's session cookie without the ``X-CSRF-Token`` header: every
  POST/PUT/DELETE is refused (403) before it does anything.

The store is seeded before the server starts: a small CT of alice's contoured once (so case, job
and result 1 and their files exist) and a case and token of bob's (another user's: 404 for alice).
Generated path ids are swapped half the time for those ids (:func:`_known_ids`), so the fuzzer
reaches the routes' real work, not only "not found". The server runs no worker thread: jobs the
fuzzer queues stay queued (no contouring during the test), which keeps the run short and lets
``/api/jobs/{id}/events`` of a queued job stream forever: Schemathesis reads one event of an event
stream and closes it (``max-stream-events``), so that operation is fuzzed too, bounded.

Bounded for CI and reproducible: a fixed seed, derandomized generation, no example database
(nothing saved between runs), at most ``MAX_EXAMPLES`` generated requests per operation and test
(plus Schemathesis' deterministic coverage cases), no deadline. ``AUTOCONTOUR_FUZZ_EXAMPLES``
raises the number for a longer local run.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import strategies as st  # noqa: E402  (after the importorskip)
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
)

from autocontour.service import create_app  # noqa: E402
from autocontour.service.routes.results import KINDS  # noqa: E402
from autocontour.store.accounts import add_token, find_user  # noqa: E402
from autocontour.store.cases import add_upload  # noqa: E402
from autocontour.store.database import open_store  # noqa: E402

from conftest import make_settings, start_server, stop_server, with_users  # noqa: E402

SEED = 20261204
MAX_EXAMPLES = int(os.environ.get("AUTOCONTOUR_FUZZ_EXAMPLES", "25"))
PUBLIC = {("POST", "/api/login"), ("GET", "/api/health")}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
ANY_ROUTE = {400, 401, 403, 404, 413, 422}
"""Answers of every route that the schema leaves out: a body that cannot be parsed (not UTF-8 JSON,
a form without its boundary), no login, no CSRF header, not found (or another user's), too large,
refused input."""
BODY_REFUSED = {400, 422}
"""A body that is not JSON or a form is refused before the login is looked at: FastAPI parses the
body before it runs the dependencies (this leaks nothing)."""


def _openapi() -> dict:
    """The app's own OpenAPI document (an app on a throw-away home folder)."""
    with tempfile.TemporaryDirectory() as home:
        app = create_app(make_settings(Path(home), workers=0))
        try:
            return app.openapi()
        finally:
            app.state.autocontour.store.engine.dispose()


CONFIG = schemathesis.Config.from_dict({
    "seed": SEED,
    "max-stream-events": 1,  # the first event of /api/jobs/{id}/events, then close the stream
    "request-timeout": 30,
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    "phases": {"stateful": {"enabled": False}},
})
schema = schemathesis.openapi.from_dict(_openapi(), config=CONFIG)


@dataclass
class Fuzz:
    """The seeded server: its URL, alice's bearer token and the ids that exist."""

    url: str
    home: Path
    token: str = ""
    token_id: int = 0
    ids: dict[str, list[int | str]] = field(default_factory=dict)

    def renew_token(self) -> None:
        """A new bearer token for alice (the fuzzer revoked the one in use)."""
        store = open_store(self.home)
        try:
            with store.session() as session:
                record, self.token = add_token(session, find_user(session, "alice"), "fuzz")
                self.token_id = record.id
        finally:
            store.engine.dispose()


KNOWN: dict[str, list[int | str]] = {}
"""Ids that exist in the seeded store, by path parameter (filled by the ``fuzz`` fixture before
any example is generated)."""


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory, ct_file: Path) -> Iterator[Fuzz]:
    from autocontour.jobs import ContourCaseRequest, contour_case

    home = tmp_path_factory.mktemp("fuzz") / "home"
    settings = make_settings(home, workers=0, max_upload_mb=4)
    with_users(home)
    store = open_store(home)
    try:
        with store.session() as session:
            alice, bob = find_user(session, "alice"), find_user(session, "bob")
            case, _ = add_upload(store, session, alice, ct_file, description="seeded")
            bob_case, _ = add_upload(store, session, bob, ct_file, description="bob's")
            spare, _ = add_token(session, alice, "spare")
            bob_token, _ = add_token(session, bob, "bob's")
            case_id, bob_case_id = case.id, bob_case.id
            spare_id, bob_token_id = spare.id, bob_token.id
    finally:
        store.engine.dispose()
    done = contour_case(ContourCaseRequest("alice", case_id, home=home, device="cpu", threads=1))
    state = Fuzz("", home)
    state.renew_token()
    KNOWN.update({"case_id": [case_id, bob_case_id], "job_id": [1], "result_id": [done.result_id],
                  "token_id": [spare_id, bob_token_id], "kind": list(KINDS),
                  "filename": ["ct.nii.gz", "series.zip", "ct.nrrd", "ct.h5"]})
    server, thread, state.url = start_server(settings)
    try:
        yield state
    finally:
        stop_server(server, thread)
        KNOWN.clear()


@schema.hook
def flatmap_path_parameters(context, path_parameters):  # noqa: ANN001, ANN201
    """Half the time, the generated path ids are swapped for ids that exist (deterministically:
    Hypothesis draws the choice)."""
    known = {name: KNOWN[name] for name in path_parameters or {} if KNOWN.get(name)}
    if not known:
        return st.just(path_parameters)
    swapped = st.fixed_dictionaries({name: st.sampled_from(values)
                                     for name, values in known.items()})
    return st.one_of(st.just(path_parameters),
                     swapped.map(lambda chosen: {**path_parameters, **chosen}))


def other_method(case) -> bool:  # noqa: ANN001
    """Schemathesis also sends each path a method the schema does not give it (405 expected)."""
    return case.method.upper() != case.operation.method.upper()


def documented_status(ctx, response, case):  # noqa: ANN001, ANN201
    """The status is one the operation documents, or one every route may answer with."""
    documented = {int(code) for code in case.operation.definition.raw["responses"]
                  if code.isdigit()}
    if other_method(case):
        documented = {405}
    assert response.status_code in documented | ANY_ROUTE, (
        f"{case.method} {case.formatted_path}: status {response.status_code} is neither "
        f"documented ({sorted(documented)}) nor one of {sorted(ANY_ROUTE)}")
    return None


def body_conformance(ctx, response, case):  # noqa: ANN001, ANN201
    """The body matches the schema of its status. Except one gap of the schema, checked here
    instead: a 422 the service itself gives (an upload the readers refuse, an unknown model) says
    why in a string ``detail``, where the schema documents only FastAPI's list of field errors."""
    if response.status_code == 422:
        detail = response.json().get("detail")
        if isinstance(detail, str):
            assert detail, f"{case.method} {case.formatted_path}: 422 without a reason"
            return None
    return response_schema_conformance(ctx, response, case)


USER_CHECKS = [not_a_server_error, documented_status, content_type_conformance, body_conformance,
               response_headers_conformance, negative_data_rejection]


@schema.parametrize()
def test_as_user(case, fuzz: Fuzz) -> None:
    revoking = case.method == "DELETE" and case.path_parameters.get("token_id") == fuzz.token_id
    response = case.call_and_validate(base_url=fuzz.url,
                                      headers={"Authorization": f"Bearer {fuzz.token}"},
                                      checks=USER_CHECKS)
    if revoking and response.status_code == 204:  # the fuzzer revoked the token it uses
        old = fuzz.token
        fuzz.renew_token()
        with httpx.Client(base_url=fuzz.url, timeout=30) as client:
            gone = client.get("/api/me", headers={"Authorization": f"Bearer {old}"})
        assert gone.status_code == 401, gone.text


@schema.parametrize()
def test_without_login(case, fuzz: Fuzz) -> None:
    response = case.call(base_url=fuzz.url)
    case.validate_response(response, checks=[not_a_server_error])
    if (case.method.upper(), case.operation.path) in PUBLIC or (
            other_method(case) and response.status_code == 405):
        return
    allowed = {401} | (BODY_REFUSED if case.method.upper() in UNSAFE else set())
    assert response.status_code in allowed, (
        f"{case.method} {case.formatted_path} without credentials: {response.status_code} "
        f"{response.text[:300]}")
    if response.status_code == 422:
        assert "Authorization" not in response.text


@schema.parametrize()
def test_cookie_without_csrf(case, fuzz: Fuzz, cookie: dict[str, str]) -> None:
    response = case.call(base_url=fuzz.url, cookies=cookie)
    case.validate_response(response, checks=[not_a_server_error])
    method = case.method.upper()
    if other_method(case) and response.status_code == 405:
        return
    if method in UNSAFE and (method, case.operation.path) not in PUBLIC:
        assert response.status_code in {403} | BODY_REFUSED, (
            f"{method} {case.formatted_path} with a cookie and no CSRF header: "
            f"{response.status_code} {response.text[:300]}")


@pytest.fixture(scope="module")
def cookie(fuzz: Fuzz) -> dict[str, str]:
    """alice's session cookie (logged in once for the module)."""
    with httpx.Client(base_url=fuzz.url, timeout=30) as client:
        answer = client.post("/api/login", json={"name": "alice", "password": "alice-password"})
        assert answer.status_code == 200, answer.text
        return {"autocontour_session": answer.cookies["autocontour_session"]}
