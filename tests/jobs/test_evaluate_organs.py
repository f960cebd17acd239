"""The evaluate job without an organ set: the set the files record, else "label N" per value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from autocontour.cli import main
from autocontour.errors import InvalidInputError
from autocontour.io import LabelMap, write_volume
from autocontour.jobs import EvaluateRequest, evaluate
from autocontour.jobs.evaluation import FOUND_LABELS, label_value_set, organs_of_files
from autocontour.organs import OrganSet
from autocontour.phantoms import PhantomCase


def _grown(labels: LabelMap, organ: str) -> LabelMap:
    """The label map with one organ dilated by one voxel into the background."""
    array = labels.array.copy()
    label = labels.organs.by_name(organ).label
    array[ndimage.binary_dilation(array == label) & (array == 0)] = label
    return labels.with_array(array)


def _write(folder: Path, labels: LabelMap, suffix: str, cases=("a", "b")) -> Path:
    for case in cases:
        write_volume(labels, folder / f"{case}{suffix}")
    return folder


def test_nifti_without_organs_scores_each_label_value_found(tmp_path: Path,
                                                            hn_case: PhantomCase) -> None:
    truth = _write(tmp_path / "truth", hn_case.labels, ".nii.gz")
    pred = _write(tmp_path / "pred", _grown(hn_case.labels, "Parotid_L"), ".nii.gz")
    report = evaluate(EvaluateRequest(pred, truth, out=tmp_path / "report"))
    present = sorted(o.label for o in hn_case.labels.present())
    assert report.organs.name == FOUND_LABELS
    assert report.organs.labels == present
    assert {r["organ"] for r in report.rows} == {f"label {v}" for v in present}
    parotid = hn_case.labels.organs.by_name("Parotid_L").label
    for row in report.rows:
        if row["organ"] == f"label {parotid}":
            assert 0.5 < row["dice"] < 1.0
        else:
            assert row["dice"] == 1.0
    assert f"Organ set: {FOUND_LABELS}" in (tmp_path / "report" / "report.md").read_text()


def test_values_only_in_the_prediction_are_scored_too(tmp_path: Path,
                                                      hn_case: PhantomCase) -> None:
    array = hn_case.labels.array.copy()
    array[0, :2, :2] = 200  # a value the truth never holds: a false positive everywhere
    pred = _write(tmp_path / "pred", hn_case.labels, ".nii.gz", cases=("b",))
    write_volume(LabelMap(array, hn_case.labels.geometry, organs=label_value_set(
        np.unique(array))), pred / "a.nii.gz")
    truth = _write(tmp_path / "truth", hn_case.labels, ".nii.gz")
    report = evaluate(EvaluateRequest(pred, truth))
    extra = {r["case"]: r for r in report.rows if r["organ"] == "label 200"}
    assert extra["a"]["truth_empty"] and not extra["a"]["pred_empty"]
    assert extra["b"]["truth_empty"] and extra["b"]["pred_empty"]  # rightly absent


def test_the_organ_set_the_files_record_is_used(tmp_path: Path, hn_case: PhantomCase) -> None:
    truth = _write(tmp_path / "truth", hn_case.labels, ".h5")  # HDF5 records the organ set
    pred = _write(tmp_path / "pred", _grown(hn_case.labels, "Brainstem"), ".nii.gz")
    report = evaluate(EvaluateRequest(pred, truth))
    assert report.organs == hn_case.labels.organs
    assert {r["organ"] for r in report.rows} == {o.name for o in hn_case.labels.present()}
    given = evaluate(EvaluateRequest(pred, truth, "head-neck"))
    assert given.rows == report.rows


def test_files_recording_different_sets_are_refused(tmp_path: Path,
                                                    hn_case: PhantomCase) -> None:
    truth = _write(tmp_path / "truth", hn_case.labels, ".h5")
    other = OrganSet("custom", hn_case.labels.organs.organs)  # same labels, another set
    pred = _write(tmp_path / "pred", LabelMap(hn_case.labels.array, hn_case.labels.geometry,
                                              organs=other), ".h5")
    with pytest.raises(InvalidInputError, match=r"records organ set '\w+' and .* another "
                                                r"\('[\w-]+'\); pass --organs"):
        evaluate(EvaluateRequest(pred, truth))


def test_background_only_files_have_nothing_to_score(tmp_path: Path,
                                                     hn_case: PhantomCase) -> None:
    empty = hn_case.labels.with_array(np.zeros_like(hn_case.labels.array))
    for side in ("pred", "truth"):
        write_volume(empty, tmp_path / side / "a.nii.gz")
    with pytest.raises(InvalidInputError, match="no label values"):
        organs_of_files([tmp_path / "pred" / "a.nii.gz", tmp_path / "truth" / "a.nii.gz"])


def test_label_value_set_refuses_values_over_255() -> None:
    assert label_value_set([0, 3, 1, 3]).names == ["label 1", "label 3"]
    with pytest.raises(InvalidInputError, match="1..255"):
        label_value_set([1, 300])


def test_cli_evaluate_without_organs(tmp_path: Path, hn_case: PhantomCase,
                                     capsys: pytest.CaptureFixture) -> None:
    truth = _write(tmp_path / "truth", hn_case.labels, ".nii.gz")
    pred = _write(tmp_path / "pred", hn_case.labels, ".nii.gz")
    assert main(["evaluate", str(pred), str(truth), "--quiet"]) == 0
    stdout = capsys.readouterr().out
    assert "2 case(s)" in stdout and "| label 1 |" in stdout
