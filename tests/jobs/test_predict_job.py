"""The predict job: progress by stage, cancellation between stages, atomic outputs, a warm model."""

from __future__ import annotations

from pathlib import Path

import pytest

from autocontour.errors import InvalidInputError, JobCancelled, OutputExistsError
from autocontour.jobs import PredictRequest, Progress, load_contourer, predict
from autocontour.jobs import prediction as predict_module


@pytest.fixture(scope="module")
def contourer():  # the shipped model, loaded once for the module (as a service keeps it warm)
    return load_contourer(None, "cpu")


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".partial" in p.name or ".old" in p.name]


def test_reports_every_stage_in_order_and_never_prints(tmp_path: Path, ct_dir: Path, contourer,
                                                       capsys: pytest.CaptureFixture) -> None:
    reports: list[Progress] = []
    result = predict(PredictRequest(ct_dir, tmp_path / "out"), progress=reports.append,
                     contourer=contourer)
    stages = [r.stage for r in reports]
    planned = ["load model", "read", *contourer.stages(), "write"]
    # On this tiny CT the 3-D-small region cannot be placed: its organs come from a second
    # run of the 2-D member (reported as "network 2d" again) instead of "network 3d_small".
    assert stages[:6] == planned[:6] == ["load model", "read", "check", "reorient", "anatomy",
                                         "preprocess"]
    assert stages[-5:] == ["regrid", "postprocess", "body", "organ checks", "write"]
    assert set(stages) <= set(planned) and len(stages) == len(planned)
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] > 0.0
    assert {"rtstruct.dcm", "seg.dcm", "labels.nii.gz", "overview.png", "report.json"} <= {
        p.name for p in (tmp_path / "out").iterdir()}
    assert result.report["organs"] and result.model == contourer.model.name
    assert list(result.labels.shape) == result.report["input"]["shape_zyx"]
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""  # a job reports, it never prints


@pytest.mark.parametrize("stop_after", ["read", "network 2d", "regrid"])
def test_cancel_between_stages_writes_nothing(tmp_path: Path, ct_dir: Path, contourer,
                                              stop_after: str) -> None:
    seen: list[str] = []
    with pytest.raises(JobCancelled, match="nothing was written"):
        predict(PredictRequest(ct_dir, tmp_path / "out"), contourer=contourer,
                progress=lambda p: seen.append(p.stage), cancel=lambda: stop_after in seen)
    assert seen[-1] == stop_after
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_an_existing_result_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "rtstruct.dcm").write_bytes(b"an earlier result")
    with pytest.raises(OutputExistsError, match="already holds files"):
        predict(PredictRequest(tmp_path / "no-such-ct", out))  # the input is never looked at
    assert (out / "rtstruct.dcm").read_bytes() == b"an earlier result"


def test_overwrite_replaces_the_result_only_once_the_new_one_is_complete(
        tmp_path: Path, ct_dir: Path, contourer) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "rtstruct.dcm").write_bytes(b"an earlier result")
    seen: list[str] = []
    with pytest.raises(JobCancelled):
        predict(PredictRequest(ct_dir, out, overwrite=True), contourer=contourer,
                progress=lambda p: seen.append(p.stage), cancel=lambda: "regrid" in seen)
    assert (out / "rtstruct.dcm").read_bytes() == b"an earlier result"
    predict(PredictRequest(ct_dir, out, overwrite=True), contourer=contourer)
    assert (out / "rtstruct.dcm").read_bytes() != b"an earlier result"
    assert (out / "report.json").is_file() and _leftovers(tmp_path) == []


def test_a_warm_model_is_not_loaded_again(tmp_path: Path, ct_dir: Path, contourer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def no_loading(*args: object) -> None:
        raise AssertionError("the model was loaded again")

    monkeypatch.setattr(predict_module, "load_contourer", no_loading)
    result = predict(PredictRequest(ct_dir, tmp_path / "a"), contourer=contourer)
    assert result.report["organs"]


def test_bad_input_is_one_clear_error_and_nothing_is_written(tmp_path: Path, contourer) -> None:
    bad = tmp_path / "ct.nii.gz"
    bad.write_bytes(b"not a nifti file")
    with pytest.raises(InvalidInputError, match="ct.nii.gz"):
        predict(PredictRequest(bad, tmp_path / "out"), contourer=contourer)
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_only_the_organs_asked_for(tmp_path: Path, ct_dir: Path, contourer) -> None:
    result = predict(PredictRequest(ct_dir, tmp_path / "out", organs=("Eye_L", "eye_r")),
                     contourer=contourer)
    assert {o["name"] for o in result.report["organs"]} | set(
        result.report["organs_not_found"]) == {"Eye_L", "Eye_R"}


def test_an_unknown_precision_is_refused_before_anything_is_read(tmp_path: Path, ct_dir: Path,
                                                                  contourer) -> None:
    from autocontour.errors import UnknownOptionError

    with pytest.raises(UnknownOptionError, match="precision 'half'"):
        predict(PredictRequest(ct_dir, tmp_path / "out", precision="half"),
                contourer=contourer, progress=lambda p: pytest.fail("work started"))
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_the_report_names_the_precision_the_networks_ran_in(tmp_path: Path, ct_dir: Path,
                                                            contourer) -> None:
    result = predict(PredictRequest(ct_dir, tmp_path / "out", precision="fp32"),
                     contourer=contourer)
    assert result.report["model"]["precision"] == "float32"
