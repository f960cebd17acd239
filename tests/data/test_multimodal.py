"""The generic multi-modal folder loader: with and without a manifest, and every bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autocontour.data.multimodal import load_multimodal_folder
from autocontour.errors import GeometryMismatchError, InvalidInputError
from autocontour.io import write_volume
from autocontour.io.volume import Geometry, Volume


def _vol(array: np.ndarray, spacing: float = 1.0) -> Volume:
    return Volume(array[None], Geometry((1, *array.shape), (spacing, spacing, 1.0), (0, 0, 0)))


def _case(folder, name: str, mods=("T1", "FLAIR"), lesion: bool = True) -> None:
    rng = np.random.default_rng(len(name))
    for m in mods:
        write_volume(_vol(rng.uniform(0, 100, (16, 16)).astype(np.float32)),
                     folder / name / f"{m}.nii.gz")
    if lesion:
        lab = np.zeros((16, 16), np.uint8)
        lab[4:8, 4:8] = 1
        write_volume(_vol(lab), folder / name / "lesion.nii.gz")


def test_without_manifest_reads_named_modalities(tmp_path) -> None:
    _case(tmp_path, "b")
    _case(tmp_path, "a", lesion=False)
    (tmp_path / "notes").mkdir()  # a folder without images is not a case
    cases = load_multimodal_folder(tmp_path, ["FLAIR", "T1"])
    assert [c.case_id for c in cases] == ["a", "b"]
    assert cases[0].lesion is None and cases[1].lesion.array.sum() == 16
    assert cases[1].mask is None
    unit = cases[1].unit("T1")  # percentile scaling without a display range
    assert unit.min() == 0.0 and unit.max() == 1.0 and unit.shape == (16, 16)


def test_manifest_display_range(tmp_path) -> None:
    _case(tmp_path, "a")
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"modalities": ["T1", "FLAIR"], "display_range": {"T1": [0, 200]}}))
    (case,) = load_multimodal_folder(tmp_path)
    assert np.allclose(case.unit("T1"), case.images["T1"].array[0] / 200)


@pytest.mark.parametrize(("setup", "mods", "error", "match"), [
    ("nothing", ["T1"], InvalidInputError, "no such folder"),
    ("no_manifest", None, InvalidInputError, "name the modalities"),
    ("bad_json", None, InvalidInputError, "not valid JSON"),
    ("missing_mod", ["T1", "T2"], InvalidInputError, "no image for modality 'T2'"),
    ("unlisted", ["T2"], InvalidInputError, "not \\['T2'\\]"),
    ("grid", ["T1", "FLAIR"], GeometryMismatchError, "FLAIR"),
    ("fractional", ["T1"], InvalidInputError, "whole numbers"),
    ("empty", ["T1"], InvalidInputError, "no cases"),
])
def test_bad_folders(tmp_path, setup, mods, error, match) -> None:
    root = tmp_path / "set"
    if setup != "nothing":
        root.mkdir()
    if setup in ("no_manifest", "missing_mod", "fractional"):
        _case(root, "a", mods=("T1",))
    if setup == "bad_json":
        (root / "dataset.json").write_text("{")
    if setup == "unlisted":
        _case(root, "a")
        (root / "dataset.json").write_text(json.dumps({"modalities": ["T1", "FLAIR"]}))
    if setup == "grid":
        _case(root, "a", mods=("T1",))
        write_volume(_vol(np.zeros((16, 16), np.float32), spacing=2.0), root / "a" / "FLAIR.nii.gz")
    if setup == "fractional":
        write_volume(_vol(np.full((16, 16), 0.5, np.float32)), root / "a" / "mask.nii.gz")
    with pytest.raises(error, match=match):
        load_multimodal_folder(root, mods)


def test_unit_errors(tmp_path) -> None:
    _case(tmp_path, "a")
    (case,) = load_multimodal_folder(tmp_path, ["T1"])
    with pytest.raises(InvalidInputError, match="no modality 'CT'"):
        case.unit("CT")
    with pytest.raises(InvalidInputError, match="slice 3"):
        case.unit("T1", 3)
