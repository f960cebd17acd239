"""``autocontour predict --pseudo-mri``: a CT + pseudo-MRI model end to end, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from autocontour.artifacts import read_file
from autocontour.cli import main
from autocontour.errors import InvalidInputError
from autocontour.inference import Contourer
from autocontour.inference.model_file import load_model, save_model
from autocontour.io import read_volume, write_dicom_series, write_volume
from autocontour.jobs import PredictRequest, predict
from autocontour.phantoms import pelvis_case


@pytest.fixture(scope="module")
def pelvis_ct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh tiny pelvis phantom CT (not one of the training cases) as NIfTI."""
    path = tmp_path_factory.mktemp("ct") / "ct.nii.gz"
    write_volume(pelvis_case(seed=42, shape=(16, 48, 48)).ct, path)
    return path


@pytest.fixture(scope="module")
def checkpoint(two_channel_run) -> Path:
    config, _ = two_channel_run
    return Path(config.out) / "last.pt"


def test_predict_writes_the_pseudo_mri_on_the_ct_grid(tmp_path: Path, pelvis_ct: Path,
                                                      checkpoint: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["predict", str(pelvis_ct), "-o", str(out), "--model", str(checkpoint),
                 "--pseudo-mri", "--device", "cpu", "--quiet"]) == 0
    assert "inputs: CT + pseudo-MRI; pseudo-MRI: " in capsys.readouterr().out
    ct, mr = read_volume(pelvis_ct), read_volume(out / "pseudo_mri.nii.gz")
    assert mr.shape == ct.shape and ct.geometry.mismatch(mr.geometry) is None
    assert -1.0 <= mr.array.min() < mr.array.max() <= 1.0
    report = json.loads((out / "report.json").read_text())
    assert report["inputs"] == ["CT", "pseudo-MRI"] == report["model"]["inputs"]
    assert report["files"]["pseudo_mri"] == "pseudo_mri.nii.gz"
    assert "pseudo_mri_dicom" not in report["files"]  # a NIfTI CT: no DICOM MR series
    assert read_volume(out / "labels.nii.gz").shape == ct.shape
    # the pseudo-MRI is the one the networks saw: the recipe's channel (here on the same grid)
    contourer = Contourer.from_checkpoint(checkpoint)
    seen = contourer.model.recipe.apply(ct).extra[0]
    np.testing.assert_allclose(mr.array, seen.array, atol=1e-4)


def test_a_model_file_holds_the_generator_and_predicts_the_same(
        tmp_path: Path, pelvis_ct: Path, checkpoint: Path) -> None:
    model = load_model(checkpoint)
    path = save_model(model, tmp_path / "model.pt", half=False)
    data = read_file(path)
    assert data["version"] == 4 and list(data["generators"]) == list(model.recipe.resources())
    again = load_model(path)
    assert again.recipe == model.recipe and again.recipe.steps[0].bound is not None
    ct = read_volume(pelvis_ct)
    a = Contourer(model, "cpu").run(ct, precision="fp32", body=False)
    b = Contourer(again, "cpu").run(ct, precision="fp32", body=False, derived=True)
    np.testing.assert_array_equal(a.labels.array, b.labels.array)
    assert set(b.derived) == {"pseudo-MRI"} and a.derived == {}
    # a model file whose generator is not the one its recipe recorded: one line
    other = {**data}
    key = next(iter(data["generators"]))
    payload = data["generators"][key]
    state = {k: v + 1.0 if v.is_floating_point() else v for k, v in payload["state"].items()}
    other["generators"] = {key: {**payload, "state": state}}
    bad = tmp_path / "bad.pt"
    torch.save(other, bad)
    with pytest.raises(InvalidInputError, match=f"bad.pt: the recipe's pseudo-MRI step needs "
                                                f"generator {key[:12]}, but holds generator "
                                                "[0-9a-f]{12} instead"):
        load_model(bad)


def test_a_dicom_ct_gets_a_dicom_mr_series_in_its_frame_of_reference(
        tmp_path: Path, pelvis_ct: Path, checkpoint: Path) -> None:
    series = tmp_path / "ct"
    write_dicom_series(read_volume(pelvis_ct), series, modality="CT", patient_id="PMR01")
    result = predict(PredictRequest(series, tmp_path / "out", model=checkpoint, device="cpu",
                                    pseudo_mri=True, precision="fp32"))
    assert result.report["files"]["pseudo_mri_dicom"] == "pseudo_mri/"
    mr_files = sorted((tmp_path / "out" / "pseudo_mri").iterdir())
    ct_files = sorted(series.iterdir())
    assert len(mr_files) == len(ct_files) == 16
    mr, ct = pydicom.dcmread(mr_files[0]), pydicom.dcmread(ct_files[0])
    assert mr.Modality == "MR" and mr.FrameOfReferenceUID == ct.FrameOfReferenceUID
    assert mr.StudyInstanceUID == ct.StudyInstanceUID and mr.PatientID == "PMR01"


def test_pseudo_mri_with_a_ct_only_model_is_refused_before_any_work(
        tmp_path: Path, pelvis_ct: Path, tiny_config, capsys) -> None:
    from autocontour.training import Trainer

    config = tiny_config(tmp_path / "run", epochs=1, steps_per_epoch=1)
    Trainer(config, progress=False).fit()
    out = tmp_path / "out"
    assert main(["predict", str(pelvis_ct), "-o", str(out), "--model",
                 str(tmp_path / "run" / "last.pt"), "--pseudo-mri", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--pseudo-mri: model 'run/last' takes CT only, no pseudo-MRI" in err[0]
    assert not out.exists()
    # the same model without the switch predicts, and its report says it took the CT alone;
    # as a checkpoint of format version 1 (before ``generators`` existed) too
    ckpt = tmp_path / "run" / "last.pt"
    data = torch.load(ckpt, weights_only=True)
    assert data["version"] == 2 and "generators" not in data
    torch.save({**data, "version": 1}, ckpt)
    assert main(["predict", str(pelvis_ct), "-o", str(out), "--model", str(ckpt),
                 "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["inputs"] == ["CT"] and "pseudo_mri" not in report["files"]
