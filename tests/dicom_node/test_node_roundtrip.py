"""A CT series in from dcmtk's storescu, its RTSTRUCT out to dcmtk's storescp.

The contouring round trip is one test (one node with one worker thread, so the model is loaded
once, and no state shared between tests that pytest-xdist may run on different workers); the
checks that need no contouring start nodes without workers (their jobs stay queued).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pydicom
import pytest
from conftest import (
    DEST_AE,
    Destination,
    echo,
    free_port,
    needs_dcmtk,
    phantom_series,
    store_series,
)

from autocontour.cli import main
from autocontour.store.accounts import find_user
from autocontour.store.cases import cases_of
from autocontour.store.schema import Job

pytestmark = needs_dcmtk


def test_c_echo_answers_and_a_calling_ae_title_not_allowed_is_rejected(start_node,
                                                                       tmp_path: Path) -> None:
    node = start_node()
    done = echo(node.port)
    assert done.returncode == 0, done.stderr
    refused = echo(node.port, "INTRUDER")
    assert refused.returncode != 0
    assert "Association Rejected" in refused.stderr
    assert "Calling AE Title Not Recognized" in refused.stderr
    wrong_called = echo(node.port, "SCANNER", "-aec", "SOMEBODY")  # the last -aec wins
    assert wrong_called.returncode != 0 and "Called AE Title Not Recognized" in wrong_called.stderr
    ct = phantom_series(tmp_path / "ct", 90055)
    assert store_series(node.port, ct, "INTRUDER").returncode != 0  # nothing gets in either
    time.sleep(0.5)
    assert node.series() == [] and not list((node.home / "dicom" / "incoming").iterdir())


def test_a_series_with_a_missing_slice_is_failed_naming_the_gap(start_node,
                                                                tmp_path: Path) -> None:
    node = start_node()
    partial = phantom_series(tmp_path / "partial", 90052)
    files = sorted(partial.iterdir(), key=lambda f: float(pydicom.dcmread(
        f, stop_before_pixels=True).ImagePositionPatient[2]))
    before_gap = pydicom.dcmread(files[19], stop_before_pixels=True)
    files[20].unlink()
    assert store_series(node.port, partial).returncode == 0
    row = node.wait_series(1, ("queued", "failed"))
    assert row.state == "failed" and row.case_id is None and row.job_id is None
    assert row.instances == 39
    assert row.message.startswith(f"partial series, not contoured: {before_gap.SOPInstanceUID}"
                                  ".dcm: missing slice(s) after position"), row.message
    assert "(~1 slice(s) missing)" in row.message
    assert f"(its files: dicom/series/{row.id}/)" in row.message
    assert len(list((node.home / "dicom" / "series" / str(row.id)).glob("*.dcm"))) == 39
    assert node.sends(row.id) == []


def test_the_same_series_sent_again_is_the_same_case_and_the_same_job(start_node,
                                                                       tmp_path: Path) -> None:
    node = start_node(destinations=[{"ae_title": DEST_AE, "host": "127.0.0.1", "port": 1}])
    ct = phantom_series(tmp_path / "ct", 90056)
    for _ in range(2):
        assert store_series(node.port, ct).returncode == 0
        node.wait_for(lambda: node.series()[-1].state == "queued", why="queued")
    first, again = node.series()
    assert again.id != first.id and again.case_id == first.case_id
    assert again.job_id == first.job_id and f"its job {first.job_id} is reused" in again.message
    with node.node.store.session() as session:
        assert len(cases_of(session, find_user(session, "alice"))) == 1
        assert session.query(Job).count() == 1
    assert [s.state for s in node.sends(again.id)] == ["waiting"]  # sent again when done


def test_round_trip_with_rules_retries_and_status(start_node, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    """No rule matches the first series: the CT chooses the model, the RTSTRUCT goes to the
    destination that is up; sent again, the same job's RTSTRUCT goes again. SeriesDescription
    ``RULE-DOWN`` chooses the head-and-neck model and the SEG too, for two destinations that
    are down: one comes up (sent on a retry), one never does (failed after 4 attempts)."""
    up, late, never = (Destination(free_port(), tmp_path / name)
                       for name in ("up", "late", "never"))
    where = {"ae_title": DEST_AE, "host": "127.0.0.1"}
    up.start()
    node = start_node(workers=1, destinations=[{**where, "port": up.port}], rules=[
        {"series_description": "^RULE-DOWN$", "model": "head-neck", "send_seg": True,
         "destinations": [{**where, "port": late.port}, {**where, "port": never.port}]}])
    try:
        ct = phantom_series(tmp_path / "ct", 90051)
        started = time.monotonic()
        sent = store_series(node.port, ct)
        assert sent.returncode == 0, sent.stderr
        row = node.wait_series(1)
        assert row.state == "done", row.message
        assert (row.calling_ae, row.instances, row.rule, row.model) == (
            "SCANNER", 40, "no rule matched", None)
        with node.node.store.session() as session:
            job = session.get(Job, row.job_id)
            cases = cases_of(session, find_user(session, "alice"))
        assert job.state == "done" and job.case_id == row.case_id and job.model is None
        assert [c.id for c in cases] == [row.case_id]  # a case of the owner, as the page lists
        assert cases[0].description.startswith("DICOM from SCANNER")
        [send] = node.wait_for(lambda: [s for s in node.sends(row.id) if s.state == "sent"],
                               why="the send")
        seconds = time.monotonic() - started
        assert send.attempts == 1 and "RTSTRUCT stored at DEST@127.0.0.1" in send.message
        [rtstruct] = up.received()
        ds = pydicom.dcmread(rtstruct)
        first_ct = pydicom.dcmread(next(ct.iterdir()), stop_before_pixels=True)
        assert ds.Modality == "RTSTRUCT" and ds.StudyInstanceUID == first_ct.StudyInstanceUID
        frame = ds.ReferencedFrameOfReferenceSequence[0]
        assert frame.FrameOfReferenceUID == first_ct.FrameOfReferenceUID
        referenced = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
        assert referenced.SeriesInstanceUID == first_ct.SeriesInstanceUID
        assert len(referenced.ContourImageSequence) == 40
        assert len(ds.StructureSetROISequence) > 10
        assert not list((node.home / "dicom" / "incoming").iterdir())  # the store has it
        print(f"40 slices to the RTSTRUCT at the destination: {seconds:.1f} s")

        assert store_series(node.port, ct).returncode == 0  # again: the same job, sent again
        again = node.wait_series(2)
        assert (again.case_id, again.job_id) == (row.case_id, row.job_id)
        node.wait_for(lambda: [s for s in node.sends(again.id) if s.state == "sent"],
                      why="the second send")
        assert len(up.received("RS")) == 2

        ruled = phantom_series(tmp_path / "ruled", 90053, description="RULE-DOWN")
        assert store_series(node.port, ruled).returncode == 0
        row = node.wait_series(3)
        assert row.state == "done", row.message
        assert row.model == "head-neck" and row.rule.startswith("rule 1 (SeriesDescription")
        node.wait_for(lambda: node.sends(row.id)[0].state == "retrying", why="a failed try")
        first_try = node.sends(row.id)[0]
        assert first_try.attempts >= 1 and "Connection refused" in first_try.message
        assert "next in" in first_try.message
        late.start()
        node.wait_for(lambda: node.sends(row.id)[0].state == "sent", timeout=30, why="late")
        node.wait_for(lambda: node.sends(row.id)[1].state == "failed", timeout=30,
                      why="giving up")
        came_up, down = node.sends(row.id)
        assert came_up.attempts >= 2 and came_up.message.startswith("RTSTRUCT and SEG stored")
        assert sorted(p.name[:2] for p in late.received()) == ["RS", "SG"]
        assert down.attempts == 4 and down.message.startswith(
            f"gave up after 4 attempt(s): cannot connect to 127.0.0.1:{never.port} "
            "(Connection refused)")

        capsys.readouterr()
        assert main(["dicom-node", "status", "--home", str(node.home), "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert [(s["id"], s["state"], s["job_state"]) for s in status["series"]] == [
            (3, "done", "done"), (2, "done", "done"), (1, "done", "done")]
        assert status["series"][0]["model"] == "head-neck"
        assert status["series"][2]["model"] is None and status["series"][2]["model_used"]
        assert [d["state"] for d in status["series"][0]["sends"]] == ["sent", "failed"]
        assert main(["dicom-node", "status", "--home", str(node.home)]) == 0
        table = capsys.readouterr().out
        assert "SCANNER" in table and "RULE-DOWN" in table and "head-neck" in table
        assert "gave up after 4 attempt(s)" in table and "RTSTRUCT stored at DEST@" in table
    finally:
        for destination in (up, late, never):
            destination.stop()
