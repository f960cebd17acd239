"""Every shipped model end to end: the CT's site picks the model, a chest CT is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autocontour.cli import main
from autocontour.inference.anatomy import AnatomyError
from autocontour.io import write_volume
from autocontour.jobs import PredictRequest, predict
from autocontour.phantoms import make_case
from autocontour.phantoms.export import write_cases


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


@pytest.mark.parametrize("sex", ["female", "male"])
def test_a_pelvis_ct_gets_the_pelvis_model(tmp_path: Path, sex: str) -> None:
    seed = 90031 if sex == "female" else 90032
    write_cases("pelvis", 1, tmp_path / "cases", seed=seed, sex=sex)
    case_dir = tmp_path / "cases" / f"pv_s{seed}"
    result = predict(PredictRequest(case_dir / "ct", tmp_path / "out", device="cpu"))
    report = result.report
    assert result.choice["model"] == report["model_choice"]["model"] == "pelvis"
    assert "abdomen-pelvis" in result.choice["reason"]
    assert report["model_choice"]["candidates"]["head-neck"]["refusal"]
    assert report["sex"]["sex"] == sex and report["sex"]["source"] == "DICOM PatientSex"
    found = {o["name"] for o in report["organs"]}
    assert {"Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R"} <= found
    own, other = ("CTV", "Prostate") if sex == "female" else ("Prostate", "CTV")
    assert own in found and other not in found
    truth = make_case("pelvis", seed, sex=sex).labels
    for organ in ("Bladder", "Femur_Head_L", own):
        label = truth.organs.by_name(organ).label
        assert _dice(result.labels.array == label, truth.array == label) > 0.6, organ
    assert report["body"]["volume_cc"] > 1000  # a pelvis: litres, not a sliver


def test_a_head_and_neck_ct_gets_the_head_and_neck_model(tmp_path: Path) -> None:
    ct = write_volume(make_case("head-neck", 90033).ct, tmp_path / "hn.nii.gz")
    result = predict(PredictRequest(ct, tmp_path / "out", device="cpu"))
    assert result.choice["model"] == "head-neck" and result.model == "hn-phantom-default"
    assert result.report["sex"] is None  # no organ of one sex in this model


def test_a_chest_ct_fits_no_model_and_is_refused(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    ct = write_volume(make_case("thorax", 90034).ct, tmp_path / "chest.nii.gz")
    with pytest.raises(AnatomyError, match="chest.nii.gz: no shipped model fits this CT"):
        predict(PredictRequest(ct, tmp_path / "out", device="cpu"))
    assert main(["predict", str(ct), "-o", str(tmp_path / "cli"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "thorax" in err[0] and "--model" in err[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "cli").exists()


def test_model_list_shows_every_shipped_model(capsys: pytest.CaptureFixture) -> None:
    assert main(["model", "list"]) == 0
    out = capsys.readouterr().out
    assert "head-neck  (hn_phantom_default.pt" in out and "pelvis  (pelvis_phantom_default.pt" in out
    assert "mean Dice: validation" in out and "rebuild: python scripts/train_default_model.py" in out
    assert main(["model", "list", "--json"]) == 0
    models = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert set(models) == {"head-neck", "pelvis"}
    assert models["pelvis"]["organs"] == ["Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R",
                                          "Prostate", "CTV"]
    assert models["pelvis"]["regions"] == ["abdomen-pelvis"]


def test_a_model_name_that_is_not_shipped_is_one_line(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    ct = write_volume(make_case("head-neck", 90033, shape=(16, 32, 32)).ct, tmp_path / "ct.nii")
    assert main(["predict", str(ct), "-o", str(tmp_path / "out"), "--model", "pelvsi"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown shipped model 'pelvsi'" in err and "pelvis" in err
    assert not (tmp_path / "out").exists()


def test_the_head_and_neck_model_contours_small_organs_on_a_1_mm_grid(tmp_path: Path) -> None:
    """A CT with 1 mm pixels: the small organs come from the member on its own 1 mm grid,
    the added organs (larynx, oesophagus, ...) from the model grid; all 31 are found."""
    from autocontour.organs import HEAD_NECK

    case = make_case("head-neck", 90035, shape=(96, 256, 256))
    ct = write_volume(case.ct, tmp_path / "hn.nii.gz")
    result = predict(PredictRequest(ct, tmp_path / "out", device="cpu"))
    report = result.report
    fine = report["model"]["members"]["3d_fine"]
    assert fine["roi"]["margin_mm"] == 10.0 and "network 3d_fine" in report["seconds"]
    from_fine = [o for o, m in report["model"]["rule"].items() if m == "3d_fine"]
    assert from_fine and set(from_fine) <= set(fine["roi"]["organs"])
    found = {o["name"] for o in report["organs"]}
    assert found == set(HEAD_NECK.names)
    for organ in ("Larynx", "Glnd_Thyroid", "Cavity_Oral", *from_fine[:3]):
        label = HEAD_NECK.by_name(organ).label
        assert _dice(result.labels.array == label, case.labels.array == label) > 0.5, organ
