"""The demo, evaluate and phantom jobs: typed requests, progress, cancellation, atomic outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autocontour.errors import InvalidInputError, JobCancelled, OutputExistsError
from autocontour.io import write_volume
from autocontour.jobs import (
    DemoRequest,
    EvaluateRequest,
    PhantomRequest,
    Progress,
    evaluate,
    run_demo,
    write_phantoms,
)
from autocontour.phantoms import PhantomCase

SMALL = (20, 48, 48)


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if ".partial" in p.name or ".old-" in p.name]


def test_demo_job_scores_the_phantom_and_a_cancel_keeps_the_earlier_output(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "demo"
    reports: list[Progress] = []
    result = run_demo(DemoRequest(out, seed=90002, shape=SMALL), progress=reports.append)
    assert [r.stage for r in reports] == ["load model", "phantom", "contour", "score"]
    assert reports[-1].fraction == 1.0
    saved = json.loads((out / "demo_report.json").read_text())
    assert saved == result.report and 0.0 < saved["mean_dice"] <= 1.0
    assert (out / "contours" / "rtstruct.dcm").is_file() and (out / "ct").is_dir()
    assert capsys.readouterr().out == ""
    with pytest.raises(OutputExistsError, match="--overwrite"):
        run_demo(DemoRequest(out, seed=90002, shape=SMALL))
    seen: list[str] = []
    with pytest.raises(JobCancelled):
        run_demo(DemoRequest(out, seed=90003, shape=SMALL, overwrite=True),
                 progress=lambda p: seen.append(p.stage), cancel=lambda: "phantom" in seen)
    assert json.loads((out / "demo_report.json").read_text())["seed"] == 90002
    assert _leftovers(tmp_path) == []


@pytest.fixture
def label_folders(tmp_path: Path, hn_case: PhantomCase) -> tuple[Path, Path]:
    pred, truth = tmp_path / "pred", tmp_path / "truth"
    for case in ("a", "b"):
        write_volume(hn_case.labels, pred / f"{case}.nii.gz")
        write_volume(hn_case.labels, truth / f"{case}.nii.gz")
    return pred, truth


def test_evaluate_job_reports_each_case_and_writes_the_report_whole(
        tmp_path: Path, label_folders: tuple[Path, Path]) -> None:
    pred, truth = label_folders
    reports: list[Progress] = []
    report = evaluate(EvaluateRequest(pred, truth, "head-neck", out=tmp_path / "report"),
                      progress=reports.append)
    assert [r.stage for r in reports] == ["case a", "case b", "write"]
    assert all(row["dice"] == 1.0 for row in report.rows)
    assert sorted(p.name for p in report.written) == sorted(
        p.name for p in (tmp_path / "report").iterdir())
    assert _leftovers(tmp_path) == []


def test_evaluate_job_cancelled_writes_nothing(tmp_path: Path,
                                               label_folders: tuple[Path, Path]) -> None:
    pred, truth = label_folders
    with pytest.raises(JobCancelled):
        evaluate(EvaluateRequest(pred, truth, "head-neck", out=tmp_path / "report"),
                 cancel=lambda: True)
    assert not (tmp_path / "report").exists() or not any((tmp_path / "report").iterdir())


@pytest.mark.parametrize(("changes", "error", "match"), [
    ({"cases": 0}, InvalidInputError, "--cases must be at least 1, got 0"),
    ({"site": "knee"}, Exception, "knee"),
])
def test_phantom_job_refuses_bad_requests(tmp_path: Path, changes: dict, error: type,
                                          match: str) -> None:
    request = {"site": "pelvis", "cases": 1, "out": tmp_path / "p", "shape": SMALL,
               "dicom": False, **changes}
    with pytest.raises(error, match=match):
        write_phantoms(PhantomRequest(**request))
    assert not (tmp_path / "p").exists()


def test_phantom_job_out_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "p").write_text("keep me")
    with pytest.raises(InvalidInputError, match="p: is a file"):
        write_phantoms(PhantomRequest("pelvis", 1, tmp_path / "p", shape=SMALL, dicom=False))
    assert (tmp_path / "p").read_text() == "keep me"


def test_phantom_job_cancelled_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "p"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    seen: list[str] = []
    with pytest.raises(JobCancelled):
        write_phantoms(PhantomRequest("pelvis", 3, out, shape=SMALL, dicom=False),
                       progress=lambda p: seen.append(p.stage), cancel=lambda: len(seen) >= 1)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    result = write_phantoms(PhantomRequest("pelvis", 2, out, shape=SMALL, dicom=False))
    assert len(result.manifest["cases"]) == 2 and (out / "phantoms.json").is_file()
    with pytest.raises(OutputExistsError, match="phantom set is already there"):
        write_phantoms(PhantomRequest("pelvis", 1, out, shape=SMALL, dicom=False))


def test_a_failed_report_leaves_no_folder_it_created(tmp_path: Path, monkeypatch,
                                                     label_folders: tuple[Path, Path]) -> None:
    import errno

    from autocontour.jobs import evaluation

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "boxplots.png")

    monkeypatch.setattr(evaluation, "boxplot_per_organ", full_disk)
    pred, truth = label_folders
    with pytest.raises(OSError):
        evaluate(EvaluateRequest(pred, truth, "head-neck", out=tmp_path / "new" / "report"))
    assert not (tmp_path / "new").exists()


def test_a_failed_predict_leaves_no_folder_it_created(tmp_path: Path, monkeypatch,
                                                      ct_dir: Path) -> None:
    import errno

    from autocontour.inference import overview
    from autocontour.jobs import PredictRequest, predict

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "overview.png")

    monkeypatch.setattr(overview, "write_overview", full_disk)
    with pytest.raises(OSError):
        predict(PredictRequest(ct_dir, tmp_path / "a" / "b" / "out"))
    assert not (tmp_path / "a").exists()


def test_threads_default_to_the_cpus_the_process_may_use(monkeypatch) -> None:
    import os

    import torch

    from autocontour.jobs.base import default_threads, use_threads
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5})
    assert default_threads() == 3
    before = torch.get_num_threads()
    try:
        use_threads(2)
        assert torch.get_num_threads() == 2
        use_threads(None)  # leaves the setting alone
        assert torch.get_num_threads() == 2
        with pytest.raises(InvalidInputError, match="--threads must be at least 1"):
            use_threads(0)
    finally:
        torch.set_num_threads(before)
