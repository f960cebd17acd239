"""`autocontour predict` and its output folder, from DICOM and from NIfTI input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from oracles import band_model, sphere_ct, tiny_real_model

from autocontour.cli import main
from autocontour.inference.model_file import save_model
from autocontour.io import read_rtstruct, read_volume, write_volume
from autocontour.phantoms import PhantomCase


@pytest.fixture
def band_file(tmp_path: Path) -> Path:
    """The oracle model cannot be saved (not a registry network): a tiny real one can."""
    return save_model(tiny_real_model(), tmp_path / "tiny.pt")


def test_predict_dicom_folder_writes_every_output(tmp_path: Path, ct_dir: Path,
                                                  band_file: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["predict", str(ct_dir), "-o", str(out), "--model", str(band_file),
                 "--device", "cpu", "--quiet"]) == 0
    assert {p.name for p in out.iterdir()} >= {"report.json", "labels.nii.gz", "overview.png",
                                                "rtstruct.dcm"}
    report = json.loads((out / "report.json").read_text())
    ct = read_volume(ct_dir)
    assert report["input"]["series_instance_uid"] == ct.dicom.series_instance_uid
    assert report["model"]["name"] == "tiny" and "network 2d" in report["seconds"]
    assert set(report["seconds"]) >= {"check", "preprocess", "regrid", "write", "total"}
    rt = pydicom.dcmread(out / "rtstruct.dcm")
    ref = rt.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
    assert ref.RTReferencedSeriesSequence[0].SeriesInstanceUID == ct.dicom.series_instance_uid
    labels = read_volume(out / "labels.nii.gz")
    assert labels.shape == ct.shape
    assert "contoured with tiny" in capsys.readouterr().out
    # the body outline: the last ROI (type EXTERNAL), body.nii.gz, its volume in the report
    assert rt.StructureSetROISequence[-1].ROIName == "External"
    assert rt.RTROIObservationsSequence[-1].RTROIInterpretedType == "EXTERNAL"
    body = read_volume(out / "body.nii.gz").array
    assert body.shape == ct.shape and set(np.unique(body)) == {0, 1}
    assert report["body"]["volume_cc"] == pytest.approx(
        body.sum() * np.prod(ct.spacing) / 1000, abs=0.1)
    assert report["files"]["body"] == "body.nii.gz" and report["body"]["clipped"] == []
    assert (ct.array[body > 0] > -500).mean() > 0.9  # the body is mostly tissue ...
    assert (ct.array[body == 0] < -500).mean() > 0.9  # ... and outside, air (and the couch)


def test_predict_nifti_writes_a_matching_ct_series(tmp_path: Path, hn_case: PhantomCase,
                                                   band_file: Path) -> None:
    src = write_volume(hn_case.ct, tmp_path / "ct.nii.gz")
    out = tmp_path / "out"
    assert main(["predict", str(src), "-o", str(out), "--model", str(band_file),
                 "--organs", "Brainstem,Parotid_L", "Eye_L", "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["files"]["ct"] == "ct/"
    ct = read_volume(out / "ct")
    assert ct.shape == hn_case.ct.shape
    assert set(report["model"]["rule"]) == {"Brainstem", "Parotid_L", "Eye_L"}
    if report["organs"]:
        labels, _ = read_rtstruct(out / "rtstruct.dcm", ct)
        assert {o.name for o in labels.present()} <= {"Brainstem", "Parotid_L", "Eye_L"}


def test_predict_refuses_an_occupied_output_folder(tmp_path: Path, ct_dir: Path,
                                                   band_file: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier result")
    assert main(["predict", str(ct_dir), "-o", str(out), "--model", str(band_file)]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "earlier result"


def test_predict_refuses_an_mr_without_writing(tmp_path: Path, hn_case: PhantomCase,
                                               band_file: Path, capsys) -> None:
    src = write_volume(hn_case.mr, tmp_path / "t1.nii.gz")
    out = tmp_path / "out"
    assert main(["predict", str(src), "-o", str(out), "--model", str(band_file),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "t1.nii.gz" in err and "CT" in err
    assert not out.exists()


def test_predict_with_a_bad_model_file_is_one_clear_line(tmp_path: Path, ct_dir: Path,
                                                         capsys) -> None:
    bad = tmp_path / "model.pt"
    bad.write_text("nonsense")
    assert main(["predict", str(ct_dir), "-o", str(tmp_path / "o"), "--model", str(bad)]) == 2
    assert "model.pt" in capsys.readouterr().err


def test_write_outputs_is_all_or_nothing(tmp_path: Path, monkeypatch) -> None:
    from autocontour.inference import Contourer, outputs, overview
    ct, _ = sphere_ct()
    prediction = Contourer(band_model()).run(ct)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(overview, "write_overview", broken)
    with pytest.raises(RuntimeError):
        outputs.write_outputs(prediction, ct, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.partial-*"))


def test_no_organ_found_gives_an_rtstruct_without_roi_and_a_warning(tmp_path: Path) -> None:
    from autocontour.inference import Prediction, write_outputs
    ct, truth = sphere_ct()
    nothing = Prediction(truth.with_array(np.zeros_like(truth.array)), model={"name": "oracle"})
    report = write_outputs(nothing, ct, tmp_path / "out")
    assert report["organs"] == [] and "seg" not in report["files"]
    assert [w for w in report["warnings"] if w.startswith("no organ found: rtstruct.dcm")]
    assert len(pydicom.dcmread(tmp_path / "out" / "rtstruct.dcm").StructureSetROISequence) == 0


def test_model_command_prints_the_rule(band_file: Path, capsys) -> None:
    assert main(["model", str(band_file)]) == 0
    out = capsys.readouterr().out
    assert "3d_small" in out and "OpticChiasm" in out
