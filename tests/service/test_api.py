"""The HTTP API, over HTTP to a running server: logins and tokens, uploads, jobs with progress,
results and their downloads, and one user never seeing another's anything."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import Service, make_settings, start_server, stop_server, with_users

from autocontour.io import read_volume, write_dicom_series, write_rtstruct, write_volume
from autocontour.phantoms import head_neck_case, thorax_case

# --- a shared server with one contoured case of alice's -------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory, ct_file: Path) -> Iterator[tuple[Service, dict]]:
    """A server, alice's token, her contoured case with its job and result, bob's token."""
    settings = make_settings(tmp_path_factory.mktemp("shared") / "home")
    with_users(settings.home)
    server, thread, url = start_server(settings)
    service = Service(url, settings)
    try:
        alice = service.token("alice", "alice-password")
        with service.client(alice) as client, ct_file.open("rb") as handle:
            case = client.post("/api/cases", files={"files": ("ct.nii.gz", handle)},
                               data={"contour": "true", "description": "first"}).json()
            job = service.wait(client, case["jobs"][0]["id"])
            assert job["state"] == "done", job
            result = client.get(f"/api/results/{job['result_id']}").json()
            token_id = client.get("/api/tokens").json()[0]["id"]
        ids = {"alice": alice, "bob": service.token("bob", "bob-password"), "case": case,
               "job": job, "result": result, "token_id": token_id}
        yield service, ids
    finally:
        stop_server(server, thread)


# --- accounts --------------------------------------------------------------------------------


def test_login_gives_a_cookie_that_needs_the_csrf_token_to_change_anything(
        service: Service) -> None:
    with service.client() as client:
        wrong = client.post("/api/login", json={"name": "alice", "password": "not it at all"})
        assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
        assert client.get("/api/me").status_code == 401
        answer = client.post("/api/login", json={"name": "alice", "password": "alice-password"})
        assert answer.status_code == 200
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert client.get("/api/me").json()["name"] == "alice"  # reading needs no CSRF token
        refused = client.post("/api/tokens", json={"name": "x"})  # changing something does
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.text
        forged = client.post("/api/tokens", json={"name": "x"},
                             headers={"X-CSRF-Token": "guessed"})
        assert forged.status_code == 403
        csrf = {"X-CSRF-Token": answer.json()["csrf_token"]}
        assert client.post("/api/tokens", json={"name": "x"}, headers=csrf).status_code == 201
        assert client.post("/api/logout", headers=csrf).status_code == 204
        client.cookies.set("autocontour_session", cookie.split(";")[0].split("=", 1)[1])
        assert client.get("/api/me").status_code == 401  # the old cookie is dead everywhere


def test_a_bearer_token_works_until_revoked_and_is_never_shown_again(service: Service) -> None:
    token = service.token("alice", "alice-password")
    with service.client(token) as client:
        assert client.get("/api/me").json()["name"] == "alice"
        listed = client.get("/api/tokens").json()
        assert listed and all("token" not in t for t in listed)
        assert token not in client.get("/api/tokens").text
        assert client.delete(f"/api/tokens/{listed[0]['id']}").status_code == 204  # no CSRF
        assert client.get("/api/me").status_code == 401
    with service.client("made-up-token") as client:
        assert client.get("/api/cases").status_code == 401


# --- uploads ---------------------------------------------------------------------------------


def test_the_same_content_uploaded_again_is_the_same_case(service: Service, ct_file: Path
                                                          ) -> None:
    token = service.token("alice", "alice-password")
    with service.client(token) as client:
        with ct_file.open("rb") as handle:
            first = client.post("/api/cases", files={"files": ("ct.nii.gz", handle)})
        assert first.status_code == 201 and first.json()["new"] is True
        assert first.json()["sha256"] == hashlib.sha256(ct_file.read_bytes()).hexdigest()
        raw = client.put("/api/cases/upload/ct.nii.gz", content=ct_file.read_bytes())
        assert raw.status_code == 200 and raw.json()["id"] == first.json()["id"]
        assert raw.json()["new"] is False
        assert [c["id"] for c in client.get("/api/cases").json()] == [first.json()["id"]]
        stored = client.get(f"/api/cases/{first.json()['id']}/file")
        assert stored.content == ct_file.read_bytes()


def test_a_dicom_series_uploaded_file_by_file_is_one_case(service: Service, tmp_path: Path
                                                         ) -> None:
    write_dicom_series(head_neck_case(90052, shape=(8, 32, 32)).ct, tmp_path / "s")
    files = sorted((tmp_path / "s").iterdir())
    assert len(files) == 8
    token = service.token("alice", "alice-password")
    with service.client(token) as client:
        def send(order: list[Path]) -> httpx.Response:
            return client.post("/api/cases", files=[("files", (p.name, p.read_bytes()))
                                                    for p in order])
        first = send(files)
        assert first.status_code == 201, first.text
        assert (first.json()["format"], first.json()["filename"]) == ("dicom", "series.zip")
        again = send(files[::-1])  # another order: the same series, the same case
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


@pytest.mark.parametrize("content, name, reason", [
    (b"this is not an image", "ct.nii.gz", "ct.nii.gz: not accepted"),
    (b"PK\x03\x04 broken zip", "series.zip", "series.zip: not accepted"),
    (b"hello", "notes.txt", "notes.txt"),
])
def test_a_bad_upload_is_refused_with_its_reason_and_nothing_is_kept(
        service: Service, content: bytes, name: str, reason: str) -> None:
    token = service.token("alice", "alice-password")
    with service.client(token) as client:
        answer = client.post("/api/cases", files={"files": (name, content)})
        assert answer.status_code == 422 and reason in answer.json()["detail"], answer.text
        assert client.get("/api/cases").json() == []
    leftovers = [p for p in (service.settings.home / "files").rglob("*") if p.is_file()]
    assert leftovers == []


def test_an_upload_over_the_limit_is_refused_while_it_arrives(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", max_upload_mb=0.25, workers=0)
    with_users(settings.home)
    server, thread, url = start_server(settings)
    try:
        service = Service(url, settings)
        token = service.token("alice", "alice-password")
        big = b"\0" * (3 << 20)  # over the limit and its 1 MiB allowance for form fields
        with service.client(token) as client:
            declared = client.put("/api/cases/upload/ct.nii.gz", content=big)
            assert declared.status_code == 413 and "limit of 0.25 MiB" in declared.text
            assert "nothing was kept" in declared.json()["detail"]

            def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
                for _ in range(48):
                    yield b"\0" * (1 << 16)
            streamed = client.put("/api/cases/upload/ct.nii.gz", content=chunks())
            assert streamed.status_code == 413
            form = client.post("/api/cases", files={"files": ("ct.nii.gz", big)})
            assert form.status_code == 413
            assert client.get("/api/cases").json() == []
        assert not [p for p in (settings.home / "files").rglob("*") if p.is_file()]
    finally:
        stop_server(server, thread)


# --- jobs ------------------------------------------------------------------------------------


def _events(client: httpx.Client, job_id: int) -> list[tuple[str, dict]]:
    events, kind = [], ""
    with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
    return events


def test_progress_streams_until_the_job_is_done_and_contouring_again_adds_a_result(
        service: Service, ct_file: Path) -> None:
    token = service.token("alice", "alice-password")
    with service.client(token) as client:
        with ct_file.open("rb") as handle:
            case = client.post("/api/cases", files={"files": ("ct.nii.gz", handle)},
                               data={"contour": "true"}).json()
        events = _events(client, case["jobs"][0]["id"])
        kinds = [k for k, _ in events]
        assert kinds[-1] == "end" and set(kinds[:-1]) <= {"progress"}
        fractions = [e["fraction"] for _, e in events]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0  # never goes back
        stages = {e["stage"] for _, e in events}
        assert "done" in stages and len(stages) >= 3
        first = events[-1][1]
        assert first["state"] == "done" and first["attempt"] == 1
        before = client.get(f"/api/results/{first['result_id']}/files/rtstruct").content
        again = client.post(f"/api/cases/{case['id']}/jobs", json={"model": "head-neck"})
        assert again.status_code == 202 and again.json()["state"] == "queued"
        second = service.wait(client, again.json()["id"])
        assert second["state"] == "done" and second["result_id"] != first["result_id"]
        listed = client.get(f"/api/cases/{case['id']}").json()["results"]
        assert [r["id"] for r in listed] == [first["result_id"], second["result_id"]]
        assert client.get(f"/api/results/{first['result_id']}/files/rtstruct").content == before


def test_a_ct_no_model_fits_fails_with_the_reason(service: Service, tmp_path: Path) -> None:
    chest = write_volume(thorax_case(90053, shape=(40, 64, 64)).ct, tmp_path / "chest.nii.gz")
    token = service.token("alice", "alice-password")
    with service.client(token) as client:
        case = client.post("/api/cases", files={"files": ("chest.nii.gz", chest.read_bytes())},
                           data={"contour": "true"}).json()
        job = service.wait(client, case["jobs"][0]["id"])
        assert job["state"] == "failed" and job["result_id"] is None
        assert "chest.nii.gz" in job["message"] and "no shipped model" in job["message"]
        assert client.get(f"/api/cases/{case['id']}").json()["results"] == []


def test_an_unknown_model_is_refused_before_anything_is_queued(shared) -> None:
    service, ids = shared
    with service.client(ids["alice"]) as client:
        answer = client.post(f"/api/cases/{ids['case']['id']}/jobs", json={"model": "liver"})
        assert answer.status_code == 422 and "head-neck" in answer.json()["detail"]
        path = client.post(f"/api/cases/{ids['case']['id']}/jobs",
                           json={"model": "/etc/passwd"})
        assert path.status_code == 422  # only shipped models: no files of the server


def test_a_queued_job_is_cancelled_at_once(tmp_path: Path, ct_file: Path) -> None:
    settings = make_settings(tmp_path / "home", workers=0)  # nobody runs the queue
    with_users(settings.home)
    server, thread, url = start_server(settings)
    try:
        service = Service(url, settings)
        with service.client(service.token("alice", "alice-password")) as client:
            case = client.post("/api/cases", files={"files": ("ct.nii.gz", ct_file.read_bytes())},
                               data={"contour": "true"}).json()
            job_id = case["jobs"][0]["id"]
            assert client.get(f"/api/jobs/{job_id}").json()["state"] == "queued"
            cancelled = client.post(f"/api/jobs/{job_id}/cancel").json()
            assert cancelled["state"] == "cancelled" and cancelled["result_id"] is None
            assert _events(client, job_id)[-1][1]["state"] == "cancelled"
    finally:
        stop_server(server, thread)


def test_a_running_job_is_cancelled_at_its_next_stage_and_leaves_nothing(
        service: Service, tmp_path: Path) -> None:
    ct = write_volume(head_neck_case(90054, shape=(60, 96, 96)).ct, tmp_path / "ct.nii.gz")
    with service.client(service.token("alice", "alice-password")) as client:
        case = client.post("/api/cases", files={"files": ("ct.nii.gz", ct.read_bytes())},
                           data={"contour": "true"}).json()
        job_id = case["jobs"][0]["id"]
        with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
            for line in stream.iter_lines():
                if line.startswith("data: ") and json.loads(line[6:])["state"] == "running":
                    break
        asked = client.post(f"/api/jobs/{job_id}/cancel").json()
        assert asked["cancel_requested"] is True
        job = service.wait(client, job_id)
        assert job["state"] == "cancelled" and "cancelled" in job["message"], job
        assert job["result_id"] is None
    results = service.settings.home / "results" / str(case["id"])
    assert not results.exists() or not any(results.iterdir())


# --- reference contours: every result scored against them -----------------------------------


def test_a_result_is_scored_against_the_cases_reference_label_map(service: Service,
                                                                 tmp_path: Path) -> None:
    phantom = head_neck_case(90055, shape=(40, 64, 64))
    ct = write_volume(phantom.ct, tmp_path / "ct.nii.gz")
    truth = write_volume(phantom.labels, tmp_path / "truth.nii.gz")
    other = write_volume(head_neck_case(90056, shape=(40, 48, 48)).labels,
                         tmp_path / "other.nii.gz")
    with service.client(service.token("alice", "alice-password")) as client:
        refused = client.post("/api/cases", files=[("files", ("ct.nii.gz", ct.read_bytes())),
                                                   ("reference", ("other.nii.gz",
                                                                  other.read_bytes()))])
        assert refused.status_code == 422 and "not the CT's" in refused.json()["detail"]
        case = client.get("/api/cases").json()[0]  # the CT itself was fine: kept, no reference
        assert case["reference"] is None
        given = client.put(f"/api/cases/{case['id']}/reference/truth.nii.gz",
                           content=truth.read_bytes())
        assert given.status_code == 200 and given.json()["reference"] == "truth.nii.gz"
        again = client.put(f"/api/cases/{case['id']}/reference/truth.nii.gz",
                           content=other.read_bytes())
        assert again.status_code == 409 and "has its reference already" in again.text
        job = client.post(f"/api/cases/{case['id']}/jobs", json={}).json()
        done = service.wait(client, job["id"])
        result = client.get(f"/api/results/{done['result_id']}").json()
        comparison = result["comparison"]
        assert comparison["reference"] == "truth.nii.gz" and "error" not in comparison
        scored = {row["organ"]: row["dice"] for row in comparison["organs"]}
        assert set(scored) == {o.name for o in phantom.labels.present()}
        labels = tmp_path / "labels.nii.gz"
        labels.write_bytes(client.get(result["files"]["labels"]).content)
        predicted = read_volume(labels).array
        for organ in phantom.labels.present():  # the scores are those of the files served
            a, b = predicted == organ.label, phantom.labels.array == organ.label
            dice = 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))
            assert scored[organ.name] == pytest.approx(dice, abs=1e-6), organ.name
        assert comparison["mean_dice"] == pytest.approx(np.mean(list(scored.values())), abs=1e-4)
        assert client.get(result["files"]["comparison"]).json() == comparison


def test_an_rtstruct_reference_is_matched_by_roi_name(service: Service, tmp_path: Path) -> None:
    phantom = head_neck_case(90057, shape=(40, 64, 64))
    series = tmp_path / "series"
    write_dicom_series(phantom.ct, series)
    write_rtstruct(phantom.labels, series, tmp_path / "clinic.dcm")
    with zipfile.ZipFile(tmp_path / "ct.zip", "w") as archive:
        for path in sorted(series.iterdir()):
            archive.write(path, f"CT/{path.name}")
    with service.client(service.token("alice", "alice-password")) as client:
        case = client.post("/api/cases", files=[
            ("files", ("ct.zip", (tmp_path / "ct.zip").read_bytes())),
            ("reference", ("clinic.dcm", (tmp_path / "clinic.dcm").read_bytes()))],
            data={"contour": "true"}).json()
        assert case["reference"] == "clinic.dcm"
        done = service.wait(client, case["jobs"][0]["id"])
        comparison = client.get(f"/api/results/{done['result_id']}").json()["comparison"]
        assert len(comparison["organs"]) == len(phantom.labels.present())
        assert 0.3 < comparison["mean_dice"] <= 1  # the model on a tiny phantom: roughly right
        other = head_neck_case(90058, shape=(40, 64, 64))  # another scan, another frame
        write_dicom_series(other.ct, tmp_path / "other")
        with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
            for path in sorted((tmp_path / "other").iterdir()):
                archive.write(path, f"CT/{path.name}")
        second = client.post("/api/cases", files={"files": (
            "other.zip", (tmp_path / "other.zip").read_bytes())}).json()
        refused = client.put(f"/api/cases/{second['id']}/reference/clinic.dcm",
                             content=(tmp_path / "clinic.dcm").read_bytes())
        assert refused.status_code == 422, refused.text
        assert "drawn on another scan" in refused.json()["detail"]
        assert client.get(f"/api/cases/{second['id']}").json()["reference"] is None
        assert "clinic.dcm: not a reference of case" in refused.json()["detail"]


# --- results ---------------------------------------------------------------------------------


def test_every_file_downloads_with_its_type_and_name_and_ranges_work(shared) -> None:
    service, ids = shared
    result = ids["result"]
    assert result["model_name"] == "hn-phantom-default" and len(result["model_sha256"]) == 64
    assert {"rtstruct", "seg", "labels", "overview", "report"} <= set(result["files"])
    types = {"rtstruct": "application/dicom", "seg": "application/dicom",
             "labels": "application/gzip", "overview": "image/png",
             "report": "application/json"}
    with service.client(ids["alice"]) as client:
        for kind, media in types.items():
            answer = client.get(result["files"][kind])
            assert answer.status_code == 200 and answer.headers["content-type"] == media
            assert f'filename="case{ids["case"]["id"]}_result{result["id"]}_' in \
                answer.headers["content-disposition"]
        whole = client.get(result["files"]["rtstruct"]).content
        assert whole[128:132] == b"DICM"
        part = client.get(result["files"]["rtstruct"], headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == whole[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(whole)}"
        report = client.get(result["files"]["report"]).json()
        assert [o["name"] for o in report["organs"]] == [o["name"] for o in result["organs"]]
        archive = client.get(result["archive"])
        assert archive.headers["content-type"] == "application/zip"
        names = zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
        assert {"rtstruct.dcm", "seg.dcm", "labels.nii.gz", "report.json"} <= set(names)
        assert client.get(result["archive"]).content == archive.content  # made once, kept
        missing = client.get(f"/api/results/{result['id']}/files/secrets")
        assert missing.status_code == 404


# --- nobody sees anybody else's anything -----------------------------------------------------


def _routes(service: Service) -> list[tuple[str, str]]:
    spec = httpx.get(f"{service.url}/openapi.json").json()
    return [(method.upper(), path) for path, ops in spec["paths"].items() for method in ops]


def test_every_route_with_an_id_gives_another_user_404_and_nothing_of_the_content(shared
                                                                                  ) -> None:
    """Walks the OpenAPI route list, so a new endpoint cannot be left out: each path parameter
    must be known here, and each route gets alice's ids from bob."""
    service, ids = shared
    values = {"case_id": ids["case"]["id"], "job_id": ids["job"]["id"],
              "result_id": ids["result"]["id"], "token_id": ids["token_id"], "kind": "rtstruct",
              "filename": "ref.nii.gz", "view": "axial", "index": 0}
    not_owned = {"filename"}  # PUT /api/cases/upload/{filename} makes bob's own case
    secrets = [ids["case"]["sha256"], ids["result"]["model_sha256"], "first"]
    checked = 0
    with service.client(ids["bob"]) as bob:
        for method, path in _routes(service):
            params = set(re.findall(r"{(\w+)}", path))
            unknown = params - set(values)
            assert not unknown, f"{method} {path}: add {unknown} to this test's ids"
            if params <= not_owned:  # nothing of alice's named (no params: the lists, below)
                continue
            body = {"model": None} if method == "POST" else {} if method == "PUT" else None
            answer = bob.request(method, path.format(**values), json=body)
            assert answer.status_code == 404, f"{method} {path}: {answer.status_code}"
            assert not any(s in answer.text for s in secrets), f"{method} {path} leaks"
            checked += 1
        assert checked >= 9
        for listing in ("/api/cases", "/api/jobs", "/api/tokens"):
            assert ids["case"]["sha256"] not in bob.get(listing).text
        assert bob.get("/api/jobs", params={"case_id": ids["case"]["id"]}).json() == []
    with service.client(ids["alice"]) as alice:  # and alice still has all of it
        assert alice.get(f"/api/results/{ids['result']['id']}").status_code == 200


def test_every_route_but_login_and_health_needs_authentication(shared) -> None:
    service, ids = shared
    values = {"case_id": ids["case"]["id"], "job_id": ids["job"]["id"],
              "result_id": ids["result"]["id"], "token_id": ids["token_id"], "kind": "rtstruct",
              "filename": "ct.nii.gz", "view": "axial", "index": 0}
    open_routes = {("POST", "/api/login"), ("GET", "/api/health")}
    with service.client() as anonymous:
        for method, path in _routes(service):
            if (method, path) in open_routes:
                continue
            answer = anonymous.request(method, path.format(**values))
            assert answer.status_code == 401, f"{method} {path}: {answer.status_code}"
        health = anonymous.get("/api/health").json()
        assert health["status"] == "ok" and health["database"] == "ok"
        assert anonymous.get("/docs").status_code == 200  # the documented API


def test_an_anonymous_upload_is_refused_before_its_body_is_read(tmp_path: Path) -> None:
    """Without a known credential a POST/PUT gets 401 without a byte of its body being read
    (a multipart form would otherwise be spooled to disk before the route's login check)."""
    import asyncio

    from autocontour.service import create_app

    app = create_app(make_settings(tmp_path / "home", workers=0))
    read: list[bytes] = []
    sent: list[dict] = []

    async def receive() -> dict:
        read.append(b"x")
        return {"type": "http.request", "body": b"x" * 65536, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    for headers in ([], [(b"authorization", b"Bearer made-up")],
                    [(b"cookie", b"autocontour_session=made-up")]):
        scope = {"type": "http", "method": "POST", "path": "/api/cases", "raw_path": b"/api/cases",
                 "query_string": b"", "headers": [(b"content-type",
                                                   b"multipart/form-data; boundary=x"),
                                                  *headers],
                 "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 80),
                 "client": ("127.0.0.1", 1), "root_path": "", "state": {}}
        read.clear()
        sent.clear()
        asyncio.run(app(scope, receive, send))
        assert sent[0]["status"] == 401 and read == [], headers
