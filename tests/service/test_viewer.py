"""The viewer's data over HTTP: slices the right way up, windowed as asked, contours that are the
RTSTRUCT's and agree with the label map, the reference's contours, reviews kept as versions."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import Service, make_settings, start_server, stop_server, with_users
from PIL import Image

from autocontour.io import write_volume
from autocontour.io.contours import fill_polygons
from autocontour.phantoms import head_neck_case


@pytest.fixture(scope="module")
def viewed(tmp_path_factory) -> Iterator[tuple[Service, dict]]:
    """A server with alice's contoured phantom case carrying its true labels as reference."""
    folder = tmp_path_factory.mktemp("viewer")
    settings = make_settings(folder / "home")
    with_users(settings.home)
    phantom = head_neck_case(90071, shape=(40, 64, 64))
    ct = write_volume(phantom.ct, folder / "ct.nii.gz")
    truth = write_volume(phantom.labels, folder / "truth.nii.gz")
    server, thread, url = start_server(settings)
    service = Service(url, settings)
    try:
        token = service.token("alice", "alice-password")
        with service.client(token) as client:
            case = client.post("/api/cases", files=[
                ("files", ("ct.nii.gz", ct.read_bytes())),
                ("reference", ("truth.nii.gz", truth.read_bytes()))],
                data={"contour": "true"}).json()
            job = service.wait(client, case["jobs"][0]["id"])
            assert job["state"] == "done", job
        yield service, {"token": token, "case": case["id"], "result": job["result_id"],
                        "phantom": phantom}
    finally:
        stop_server(server, thread)


def _png(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)))


def test_slices_are_windowed_as_asked_and_cached_by_the_browser(viewed) -> None:
    service, ids = viewed
    ct = ids["phantom"].ct.array  # already LPS: the display layout
    with service.client(ids["token"]) as client:
        info = client.get(f"/api/cases/{ids['case']}/image").json()
        assert info["shape"] == [40, 64, 64] and info["presets"]["lung"] == [1500, -600]
        assert info["views"]["coronal"] == {"count": 64, "rows": 40, "cols": 64,
                                            "pixel_mm": [info["spacing"][2],
                                                         info["spacing"][0]]}
        assert len(info["z_mm"]) == 40 and info["z_mm"] == sorted(info["z_mm"])
        answer = client.get(f"/api/cases/{ids['case']}/slices/axial/20.png",
                            params={"window": 400, "level": 40})
        assert answer.headers["content-type"] == "image/png"
        assert "max-age" in answer.headers["cache-control"]
        grey = _png(answer.content)
        expected = np.clip((ct[20].astype(float) - (40 - 200)) * 255 / 400, 0, 255)
        assert grey.shape == (64, 64) and np.abs(grey - expected).max() <= 1.0
        bone = _png(client.get(f"/api/cases/{ids['case']}/slices/axial/20.png",
                               params={"window": 1800, "level": 400}).content)
        assert not np.array_equal(bone, grey)
        coronal = _png(client.get(f"/api/cases/{ids['case']}/slices/coronal/32.png").content)
        assert coronal.shape == (40, 64)
        expected = np.clip((ct[::-1, 32, :].astype(float) + 160) * 255 / 400, 0, 255)
        assert np.abs(coronal - expected).max() <= 1.0  # the head at the top
        for bad in ("axial/40.png", "coronal/64.png", "sagittal/-1.png", "oblique/3.png"):
            assert client.get(f"/api/cases/{ids['case']}/slices/{bad}").status_code in (404,
                                                                                          422)
        assert client.get(f"/api/cases/{ids['case']}/slices/axial/1.png",
                          params={"window": 0}).status_code == 422


def _mask(polygons: list, shape: tuple[int, int]) -> np.ndarray:
    return fill_polygons(shape, [np.asarray(p)[:, ::-1] for p in polygons])  # (row, col)


def test_axial_contours_are_the_rtstructs_and_match_the_label_map(viewed, tmp_path: Path
                                                                  ) -> None:
    service, ids = viewed
    with service.client(ids["token"]) as client:
        structures = client.get(f"/api/results/{ids['result']}/structures").json()
        names = [s["name"] for s in structures]
        assert "Parotid_L" in names and "External" in names
        colours = {s["name"]: tuple(s["color"]) for s in structures}
        assert colours["Parotid_L"] != colours["Parotid_R"]  # left and right told apart
        labels_file = tmp_path / "labels.nii.gz"
        labels_file.write_bytes(client.get(f"/api/results/{ids['result']}/files/labels").content)
        from autocontour.io import read_volume

        labels = read_volume(labels_file).array
        organs = {o.name: o.label for o in ids["phantom"].labels.organs}
        checked = 0
        for k in range(0, 40, 3):
            drawn = client.get(f"/api/results/{ids['result']}/contours/axial/{k}").json()
            for entry in drawn["structures"]:
                if entry["name"] not in organs:
                    continue  # the body outline
                filled = _mask(entry["polygons"], (64, 64))
                truth = labels[k] == organs[entry["name"]]
                assert np.array_equal(filled, truth), (k, entry["name"])
                checked += 1
        assert checked > 20


def test_left_is_on_the_viewers_right_and_the_head_at_the_top(viewed) -> None:
    service, ids = viewed
    with service.client(ids["token"]) as client:
        def centre(view: str, index: int, name: str) -> np.ndarray:
            drawn = client.get(f"/api/cases/{ids['case']}/reference/contours/{view}/{index}")
            for entry in drawn.json()["structures"]:
                if entry["name"] == name:
                    return np.concatenate([np.asarray(p) for p in entry["polygons"]]).mean(0)
            raise AssertionError(f"{name} not on {view} {index}")
        truth = ids["phantom"].labels
        z = int(np.flatnonzero((truth.array == truth.organs.by_name("Parotid_L").label)
                               .any(axis=(1, 2)))[0]) + 2
        left, right = centre("axial", z, "Parotid_L"), centre("axial", z, "Parotid_R")
        assert left[0] > right[0] + 10  # patient left at larger columns: the viewer's right
        cord = np.argwhere(truth.array == truth.organs.by_name("SpinalCord").label)
        y = int(np.median(cord[:, 1]))
        brainstem, spinal = centre("coronal", y, "Brainstem"), centre("coronal", y, "SpinalCord")
        assert brainstem[1] < spinal[1]  # superior at smaller rows: the head at the top


def test_a_review_is_saved_as_versions_and_exported_with_the_result(viewed) -> None:
    service, ids = viewed
    result = ids["result"]
    with service.client(ids["token"]) as client:
        assert client.get(f"/api/results/{result}/review").json()["version"] == 0
        before = client.get(f"/api/results/{result}/files/rtstruct").content
        first = client.put(f"/api/results/{result}/review", json={
            "organs": {"Parotid_L": {"status": "needs edit", "comment": "too small laterally"},
                       "Brainstem": {"status": "accepted"}}, "comment": "edit the parotid"})
        assert first.status_code == 200 and first.json()["version"] == 1
        assert first.json()["reviewer"] == "alice"
        second = client.put(f"/api/results/{result}/review", json={
            "organs": {"Parotid_L": {"status": "accepted"}}, "comment": "fine after all"})
        assert second.json()["version"] == 2
        latest = client.get(f"/api/results/{result}/review").json()
        assert latest["organs"]["Parotid_L"]["status"] == "accepted"
        bad = client.put(f"/api/results/{result}/review",
                         json={"organs": {"Liver": {"status": "accepted"}}})
        assert bad.status_code == 422 and "no structure 'Liver'" in bad.json()["detail"]
        wrong = client.put(f"/api/results/{result}/review",
                           json={"organs": {"Eye_L": {"status": "maybe"}}})
        assert wrong.status_code == 422
        archive = zipfile.ZipFile(io.BytesIO(client.get(f"/api/results/{result}/archive")
                                             .content))
        assert json.loads(archive.read("review.json"))["version"] == 2
        assert archive.read("rtstruct.dcm") == before  # the result itself is untouched
        assert client.get(f"/api/results/{result}/files/rtstruct").content == before


def test_the_reference_contours_are_named_as_the_models_organs(viewed) -> None:
    service, ids = viewed
    with service.client(ids["token"]) as client:
        shown = client.get(f"/api/cases/{ids['case']}/reference/structures").json()
        assert {s["name"] for s in shown} == \
            {o.name for o in ids["phantom"].labels.present()}


def test_the_body_outline_shows_in_every_view_and_sides_are_told_apart(viewed) -> None:
    from autocontour.inference.overview import MIN_PAIR_DISTANCE

    service, ids = viewed
    with service.client(ids["token"]) as client:
        for view in ("axial", "coronal", "sagittal"):
            drawn = client.get(f"/api/results/{ids['result']}/contours/{view}/20").json()
            assert "External" in {s["name"] for s in drawn["structures"]}, view
        colours = {s["name"]: np.asarray(s["color"]) / 255 for s in
                   client.get(f"/api/results/{ids['result']}/structures").json()}
        for pair in ("Eye", "Parotid"):
            distance = np.linalg.norm(colours[f"{pair}_L"] - colours[f"{pair}_R"])
            assert distance >= MIN_PAIR_DISTANCE, pair
        script = client.get("/static/viewer.js")
        assert script.status_code == 200 and script.headers["cache-control"] == "no-cache"
        assert "text/html" in client.get("/").headers["content-type"]
