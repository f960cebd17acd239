"""The clinician's page in a real browser (Debian's Chromium driven by Playwright) against the
running service: log in, upload a CT with reference contours, follow the job, page through the
slices, hide an organ, play, compare with the reference, review and save, download the RTSTRUCT.

Screenshots go to ``tests/service/artifacts/``; with ``AUTOCONTOUR_UPDATE_DOCS=1`` the viewer's
is also written to ``docs/viewer.png`` (the README's picture)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from conftest import Service

from autocontour.io import write_volume
from autocontour.phantoms import head_neck_case

CHROMIUM = os.environ.get("AUTOCONTOUR_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
DOCS = Path(__file__).parents[2] / "docs"
WAIT_MS = 20_000


@pytest.fixture
def browser() -> Iterator[object]:
    """A headless Chromium, or a skip that says why there is none."""
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set "
                    "AUTOCONTOUR_TEST_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        except Exception as exc:  # noqa: BLE001 - any failure to start is a reason to skip
            pytest.skip(f"Chromium at {CHROMIUM} cannot start: {str(exc).splitlines()[0]}")
        try:
            yield browser
        finally:
            browser.close()


def _slice(page) -> int:
    """The slice number the page shows (1-based), from 'Slice 21 / 40 · z 1.5 mm'."""
    return int(page.text_content("#slice-info").split()[1])


def _drawn(page) -> list[str]:
    """The organs whose contours the main canvas shows now (its data-organs)."""
    return [n for n in (page.get_attribute("#canvas-main", "data-organs") or "").split(",") if n]


def _wait_drawn(page, slice_number: int) -> None:
    """Until the canvas shows slice ``slice_number`` (1-based)."""
    page.wait_for_function(
        "n => document.querySelector('#canvas-main').dataset.slice === String(n - 1)",
        arg=slice_number, timeout=WAIT_MS)


def test_a_clinician_uploads_views_compares_reviews_and_downloads(
        browser, tmp_path: Path, service: Service) -> None:
    """``service``: conftest's server (``start_server(make_settings(...))``: one worker thread on
    the CPU, users alice and bob)."""
    docs = bool(os.environ.get("AUTOCONTOUR_UPDATE_DOCS"))  # the README's picture: a finer CT
    case = head_neck_case(90052, shape=(64, 128, 128) if docs else (40, 64, 64))
    ct = write_volume(case.ct, tmp_path / "ct.nii.gz")
    reference = write_volume(case.labels, tmp_path / "reference.nii.gz")
    ARTIFACTS.mkdir(exist_ok=True)

    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    # --- logging in: a wrong password is said in words, then the right one -----------------
    page.goto(service.url)
    page.fill("#login-name", "alice")
    page.fill("#login-password", "not her password")
    page.click("#login-form button[type=submit]")
    page.wait_for_function("document.querySelector('#login-error').textContent !== ''")
    assert "Wrong user name or password" in page.text_content("#login-error")
    page.fill("#login-password", "alice-password")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#workspace:not([hidden])")
    assert page.text_content("#user-name") == "alice"

    # --- upload the CT and its reference; the job's progress comes from its events ----------
    page.evaluate("""() => {  // remember every progress text the case list shows
        window.seenStages = [];
        new MutationObserver(() => {
            for (const s of document.querySelectorAll('.job .job-stage')) {
                window.seenStages.push(s.textContent);
            }
        }).observe(document.querySelector('#cases'), {subtree: true, childList: true});
    }""")
    page.set_input_files("#pick-file", str(ct))
    page.set_input_files("#upload-reference", str(reference))
    page.fill("#upload-description", "phantom 90052")
    page.click("#upload-button")
    page.wait_for_function("document.querySelector('#upload-status').textContent.includes('Case')")
    # the finished job's result opens by itself
    page.wait_for_selector("#canvas-main[data-slice]", timeout=120_000)
    stages = page.evaluate("window.seenStages")
    assert any("%" in s for s in stages), stages
    assert page.text_content("[data-job-state]") == "done"
    result_id = int(page.get_attribute("[data-result]", "data-result"))

    # --- paging with the keyboard and the wheel ----------------------------------------------
    page.click("#canvas-main")  # the viewer has the focus
    count = int(page.get_attribute("#slice-slider", "max")) + 1
    start = _slice(page)
    assert count == case.ct.array.shape[0] and start == count // 2 + 1
    assert f"Slice {start} / {count} · z " in page.text_content("#slice-info")
    page.keyboard.press("ArrowDown")
    assert _slice(page) == start + 1
    page.keyboard.press("PageDown")
    assert _slice(page) == start + 11
    page.keyboard.press("PageUp")
    page.keyboard.press("ArrowUp")
    assert _slice(page) == start
    page.keyboard.press("End")
    assert _slice(page) == count
    page.keyboard.press("Home")
    assert _slice(page) == 1
    page.mouse.wheel(0, 120)
    page.wait_for_function("document.querySelector('#slice-info').textContent.startsWith('Slice 2 ')")
    for _ in range(start - 2):
        page.keyboard.press("ArrowDown")
    _wait_drawn(page, start)
    page.evaluate("document.activeElement.blur()")  # no focus ring in the picture
    page.wait_for_timeout(300)  # the neighbours' prefetch settles before the screenshot
    page.screenshot(path=str(ARTIFACTS / "viewer.png"))
    if docs:
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(ARTIFACTS / "viewer.png", DOCS / "viewer.png")

    # --- one organ hidden and shown again ----------------------------------------------------
    drawn = _drawn(page)
    organ = next(n for n in drawn if n != "External")
    page.uncheck(f"#organs input[data-organ='{organ}']")
    page.wait_for_function("o => !document.querySelector('#canvas-main').dataset.organs"
                           ".split(',').includes(o)", arg=organ)
    assert set(_drawn(page)) == set(drawn) - {organ}
    page.check(f"#organs input[data-organ='{organ}']")
    page.wait_for_function("o => document.querySelector('#canvas-main').dataset.organs"
                           ".split(',').includes(o)", arg=organ)

    # --- playing: Space starts it, the slice moves by itself, Space stops it ------------------
    page.click("#canvas-main")
    before = _slice(page)
    page.keyboard.press("Space")
    page.wait_for_function("n => Number(document.querySelector('#slice-info').textContent"
                           ".split(' ')[1]) >= n + 2", arg=before, timeout=5_000)
    assert page.text_content("#play") == "Pause"
    page.keyboard.press("Space")
    stopped = _slice(page)
    page.wait_for_timeout(700)
    assert _slice(page) == stopped and page.text_content("#play") == "Play"

    # --- the reference: overlaid (dashed), then side by side; the scores ---------------------
    page.select_option("#compare-mode", "overlay")
    page.wait_for_function("document.querySelector('#canvas-main').dataset.reference !== ''")
    assert not page.is_hidden("#legend")
    page.select_option("#compare-mode", "side")
    page.wait_for_function("document.querySelector('#canvas-ref').dataset.organs !== ''")
    page.click("#tab-compare")
    rows = page.locator("#compare-table tbody tr")
    assert rows.count() >= 10
    organs = [rows.nth(i).locator("th").text_content() for i in range(rows.count())]
    assert {"Brainstem", "Parotid_L", "Parotid_R", "SpinalCord"} <= set(organs)
    dice = float(page.text_content("#compare-table tr[data-organ='Brainstem'] td"))
    assert 0 < dice <= 1
    assert "mean Dice" in page.text_content("#compare-summary")
    page.screenshot(path=str(ARTIFACTS / "comparison.png"), full_page=True)

    # --- the review: two organs marked, comments, saved as version 1 --------------------------
    page.click("#tab-review")
    page.check("#review-rows tr[data-organ='Brainstem'] input[value='accepted']")
    page.check("#review-rows tr[data-organ='Parotid_L'] input[value='needs edit']")
    page.fill("#review-rows tr[data-organ='Parotid_L'] .comment", "trim the medial edge")
    page.fill("#review-comment", "good apart from the left parotid")
    page.click("#review-save")
    page.wait_for_function("document.querySelector('#review-version').textContent"
                           ".startsWith('Version 1')")
    assert "alice" in page.text_content("#review-version")
    client = service.login("alice", "alice-password")
    try:
        review = client.get(f"/api/results/{result_id}/review").json()
    finally:
        client.close()
    assert review["version"] == 1 and review["reviewer"] == "alice"
    assert review["organs"]["Brainstem"]["status"] == "accepted"
    assert review["organs"]["Parotid_L"] == {"status": "needs edit",
                                             "comment": "trim the medial edge"}
    assert review["comment"] == "good apart from the left parotid"

    # --- the RTSTRUCT through its download button ---------------------------------------------
    page.click("#tab-downloads")
    with page.expect_download() as download:
        page.click("[data-download='rtstruct']")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.endswith(".dcm")
    assert pydicom.dcmread(saved).Modality == "RTSTRUCT"

    assert not problems, problems
    context.close()
