"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (Schemathesis + Hypothesis).

Every operation of ``create_app(...).openapi()`` is sent requests generated from the schema,
valid and invalid ones (wrong types, missing or extra parameters, odd strings, huge integers,
other HTTP methods), against the real server (Uvicorn on 127.0.0.1, ``conftest.start_server``):

* ``test_as_user``: alice with a bearer token. No 5xx; the status is one the operation documents,
  or one the schema leaves out but every route may give (:data:`ANY_ROUTE`), or 405 for a method
  the path does not have; a documented answer matches its schema (body, content type, headers);
  invalid data is refused with a 4xx.
* ``test_without_login``: no credentials. Only ``/api/login`` and ``/api/health`` answer
  anything but 401 (or the router's own 404/405, or 400/422 for a body that cannot be parsed:
  FastAPI parses the body before the dependencies run; nothing leaks).
* ``test_cookie_without_csrf``: alice's session cookie without the ``X-CSRF-Token`` header: every
  POST/PUT/DELETE is refused (403) before it does anything; every GET is alice's.

The store is seeded before the server starts: a small CT of alice's contoured once (a case, a
job and a result with its files) and a case and a token of bob's (another user's: 404 for
alice). Half the time a generated path parameter is swapped for one of those ids, a file kind or
a file name (:func:`flatmap_path_parameters`; also an id past every database's integers), and
the body of a raw upload for a real file (:func:`flatmap_body`), so that the fuzzer reaches the
routes' real work, not only "not found". The server runs no worker thread: the jobs the fuzzer
queues stay queued (no contouring during the test), so ``/api/jobs/{id}/events`` of a queued job
would stream forever: Schemathesis reads the first event of an event stream and closes it
(``max-stream-events``), so that operation is fuzzed too, bounded; nothing is excluded.

Bounded for CI and reproducible: a fixed seed, derandomized generation, no example database
(nothing kept between runs), at most ``MAX_EXAMPLES`` generated requests per operation and test
beside Schemathesis' deterministic coverage cases (29 operations: about 3,800 requests in all,
45 s on 2 cores), no deadline. ``AUTOCONTOUR_FUZZ_EXAMPLES=200`` for a longer local run;
``AUTOCONTOUR_FUZZ_STATS=1 pytest -s`` prints which statuses each operation got.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")

from conftest import make_settings, start_server, stop_server, with_users
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
)

from autocontour.service import create_app
from autocontour.service.routes.results import KINDS
from autocontour.store.accounts import add_token, find_user
from autocontour.store.cases import add_upload
from autocontour.store.database import open_store

SEED = 20261204
MAX_EXAMPLES = int(os.environ.get("AUTOCONTOUR_FUZZ_EXAMPLES", "25"))
PUBLIC = {("POST", "/api/login"), ("GET", "/api/health")}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
ANY_ROUTE = {400, 401, 403, 404, 413, 422}
"""Answers of every route that the schema leaves out: a body that cannot be parsed (not UTF-8 JSON,
a form without its boundary), no login, no CSRF header, not found (or another user's), too large,
refused input."""
NO_ROUTE = {"detail": "Not Found"}
"""The router's own 404: no route has that path (e.g. a file name with a "/"): before any login."""
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
    """The seeded server: its URL, its home folder, alice's bearer token (and its id)."""

    url: str
    home: Path
    token: str = ""
    token_id: int = 0

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
"""Ids that exist in the seeded store (and one too large for any database), file names and kinds,
by path parameter (filled by the ``fuzz`` fixture before any example is generated)."""
BODIES: dict[str, list[bytes]] = {}
"""Real files by the path of the route that takes a raw body: the seeded CT (an upload the readers
accept) and its result's label map (a reference on the CT's grid)."""
SEEN: Counter[tuple[str, str, int]] = Counter()
"""(test, operation, status) -> requests: what the fuzzing reached. ``AUTOCONTOUR_FUZZ_STATS=1``
prints it after the module (with ``pytest -s``)."""


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory, ct_file: Path) -> Iterator[Fuzz]:
    from autocontour.jobs import ContourCaseRequest, contour_case
    from autocontour.store.schema import Job

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
    store = open_store(home)
    with store.session() as session:
        job_id = session.query(Job.id).filter(Job.result_id == done.result_id).scalar()
    store.engine.dispose()
    state = Fuzz("", home)
    state.renew_token()
    beyond = 2**63  # past SQLite's integers (and PostgreSQL's): must be a 4xx, not a 500
    KNOWN.update({"case_id": [case_id, bob_case_id, beyond], "job_id": [job_id, beyond],
                  "result_id": [done.result_id, beyond],
                  "token_id": [spare_id, bob_token_id, beyond], "kind": list(KINDS),
                  "index": [0, 1, 39, 40, 63, 64],  # the CT is 64x64x40: edges of each view
                  "filename": ["ct.nii.gz", "labels.nii.gz", "series.zip", "ct.nrrd", "ct.h5",
                               "rtstruct.dcm", "..", "a/b.zip"]})
    BODIES.update({"/api/cases/upload/{filename}": [ct_file.read_bytes()],
                   "/api/cases/{case_id}/reference/{filename}": [
                       (done.folder / "labels.nii.gz").read_bytes()]})
    server, thread, state.url = start_server(settings)
    try:
        yield state
    finally:
        stop_server(server, thread)
        KNOWN.clear()
        BODIES.clear()
        if os.environ.get("AUTOCONTOUR_FUZZ_STATS"):
            for (test, operation, status), count in sorted(SEEN.items()):
                print(f"{test:26} {operation:45} {status} x{count}")
        SEEN.clear()


def seen(test: str, case, response) -> None:
    SEEN[test, f"{case.method.upper()} {case.operation.path}", response.status_code] += 1


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Half the time, the generated path ids are swapped for ids that exist (deterministically:
    Hypothesis draws the choice)."""
    known = {name: KNOWN[name] for name in path_parameters or {} if KNOWN.get(name)}
    if not known:
        return st.just(path_parameters)
    swapped = st.fixed_dictionaries({name: st.sampled_from(values)
                                     for name, values in known.items()})
    return st.one_of(st.just(path_parameters),
                     swapped.map(lambda chosen: {**path_parameters, **chosen}))


@schema.hook
def flatmap_body(context, body):
    """Half the time, the body of a raw upload is a real file instead of random bytes."""
    files = BODIES.get(context.operation.path) if context.operation is not None else None
    if not files or context.operation.method.upper() != "PUT":
        return st.just(body)
    return st.one_of(st.just(body), st.sampled_from(files))


def other_method(case) -> bool:
    """Schemathesis also sends each path a method the schema does not give it (405 expected)."""
    return case.method.upper() != case.operation.method.upper()


def no_route(case, response) -> bool:
    """The router answered (no such path, or not that method), before any login is asked."""
    if other_method(case) and response.status_code == 405:
        return True
    return response.status_code == 404 and response.json() == NO_ROUTE


def documented_status(ctx, response, case):
    """The status is one the operation documents, or one every route may answer with."""
    documented = {int(code) for code in case.operation.definition.raw["responses"]
                  if code.isdigit()}
    if other_method(case):
        documented = {405}
    assert response.status_code in documented | ANY_ROUTE, (
        f"{case.method} {case.formatted_path}: status {response.status_code} is neither "
        f"documented ({sorted(documented)}) nor one of {sorted(ANY_ROUTE)}")


def body_conformance(ctx, response, case):
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
    revoking = case.method == "DELETE" and (case.path_parameters or {}).get("token_id") == \
        fuzz.token_id
    response = case.call_and_validate(base_url=fuzz.url,
                                      headers={"Authorization": f"Bearer {fuzz.token}"},
                                      checks=USER_CHECKS)
    seen("as_user", case, response)
    if revoking and response.status_code == 204:  # the fuzzer revoked the token it uses
        old = fuzz.token
        fuzz.renew_token()
        with httpx.Client(base_url=fuzz.url, timeout=30) as client:
            gone = client.get("/api/me", headers={"Authorization": f"Bearer {old}"})
        assert gone.status_code == 401, gone.text


@schema.parametrize()
def test_without_login(case, fuzz: Fuzz) -> None:
    response = case.call(base_url=fuzz.url)
    seen("without_login", case, response)
    case.validate_response(response, checks=[not_a_server_error])
    if (case.method.upper(), case.operation.path) in PUBLIC or no_route(case, response):
        return
    allowed = {401} | (BODY_REFUSED if case.method.upper() in UNSAFE else set())
    assert response.status_code in allowed, (
        f"{case.method} {case.formatted_path} without credentials: {response.status_code} "
        f"{response.text[:300]}")


@pytest.fixture(scope="module")
def cookie(fuzz: Fuzz) -> dict[str, str]:
    """alice's session cookie (logged in once for the module)."""
    with httpx.Client(base_url=fuzz.url, timeout=30) as client:
        answer = client.post("/api/login", json={"name": "alice", "password": "alice-password"})
        assert answer.status_code == 200, answer.text
        return {"autocontour_session": answer.cookies["autocontour_session"]}


@schema.parametrize()
def test_cookie_without_csrf(case, fuzz: Fuzz, cookie: dict[str, str]) -> None:
    response = case.call(base_url=fuzz.url, cookies=cookie)
    seen("cookie_without_csrf", case, response)
    case.validate_response(response, checks=[not_a_server_error])
    method = case.method.upper()
    if no_route(case, response) or (method, case.operation.path) in PUBLIC:
        return
    if method in UNSAFE:
        assert response.status_code in {403} | BODY_REFUSED, (
            f"{method} {case.formatted_path} with a cookie and no CSRF header: "
            f"{response.status_code} {response.text[:300]}")
    else:  # the cookie alone is a login for reading
        assert response.status_code != 401, f"{method} {case.formatted_path}: {response.text}"
