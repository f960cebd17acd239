"""``autocontour info`` (``describe``) shows the geometry ``read_volume`` will produce and flags
what the reader refuses or corrects: missing slices, non-uniform spacing, gantry tilt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from autocontour.io import read_volume, write_dicom_series
from autocontour.io.grid import reorient_to
from autocontour.io.inspect import describe, format_description
from autocontour.io.volume import Geometry, Volume
from autocontour.jobs.files import describe_file


def _files(folder: Path) -> list[Path]:
    """Slice files in the writer's z order (CT_0001 is voxel z=0)."""
    return sorted(f for f in folder.iterdir() if f.is_file())


def _edit(files: list[Path], change) -> None:
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        change(k, ds)
        ds.save_as(f)


def _series(path: Path) -> dict:
    info = describe_file(path)
    assert len(info["series"]) == 1
    return info["series"][0]


def _kinds(series: dict) -> list[str]:
    return [issue["kind"] for issue in series["issues"]]


def test_a_clean_series_matches_the_reader_and_has_no_issues(ct_dir: Path) -> None:
    series = _series(ct_dir)
    geometry = read_volume(ct_dir).geometry
    np.testing.assert_allclose(series["origin_mm"], geometry.origin, atol=1e-3)
    np.testing.assert_allclose(series["spacing_mm"], geometry.spacing, atol=1e-4)
    assert series["issues"] == [] and series["refused"] is None
    assert series["size_xyz"] == list(reversed(geometry.shape)) and series["slices"] == geometry.shape[0]
    assert "!" not in format_description(describe(ct_dir))


@pytest.mark.parametrize("position", ["FFS", "FFP", "HFP"])
def test_origin_is_voxel_0_of_the_volume_as_read_not_the_first_file(
        tmp_path: Path, hn_case, position: str) -> None:
    folder = tmp_path / position
    write_dicom_series(reorient_to(hn_case.ct, position), folder, patient_position=position)
    files = _files(folder)
    for f, other in zip(files, reversed(files), strict=True):  # the first file is now the last
        f.rename(f.with_name(f"x{other.name}"))                # slice (scanner's numbering)
    first = pydicom.dcmread(_files(folder)[0], stop_before_pixels=True)
    geometry = read_volume(folder).geometry
    assert not np.allclose([float(v) for v in first.ImagePositionPatient], geometry.origin)
    series = _series(folder)
    np.testing.assert_allclose(series["origin_mm"], geometry.origin, atol=1e-3)
    assert series["orientation"] == geometry.orientation_code
    assert series["patient_position"] == position and series["issues"] == []


def test_a_single_slice_has_the_readers_spacing(tmp_path: Path) -> None:
    array = np.zeros((1, 8, 10), dtype=np.int16)
    write_dicom_series(Volume(array, Geometry(array.shape, (0.8, 0.9, 5.0), (1.0, 2.0, 3.0)),
                              modality="CT"), tmp_path / "one")
    _edit(_files(tmp_path / "one"), lambda k, ds: setattr(ds, "SpacingBetweenSlices", 20))
    spacing = read_volume(tmp_path / "one").geometry.spacing
    assert spacing[2] == 20.0  # SpacingBetweenSlices before SliceThickness (5 mm)
    slice_file = _files(tmp_path / "one")[0]
    for path in (tmp_path / "one", slice_file):  # a slice file describes its series
        np.testing.assert_allclose(_series(path)["spacing_mm"], spacing)


def test_a_missing_slice_is_flagged_with_the_readers_refusal(ct_dir: Path) -> None:
    files = _files(ct_dir)
    files[7].unlink()
    files[12].unlink()
    series = _series(ct_dir)
    gaps = [issue for issue in series["issues"] if issue["kind"] == "missing slices"]
    assert [g["missing"] for g in gaps] == [1, 1] and [g["gap_mm"] for g in gaps] == [6.0, 6.0]
    assert "missing slice" in series["refused"]
    assert series["spacing_mm"][2] == 3.0 and series["slices"] == len(files) - 2
    text = format_description(describe(ct_dir))
    assert "! missing slices: ~1 slice(s) missing" in text and "refuse this series" in text


def test_non_uniform_spacing_is_flagged(ct_dir: Path) -> None:
    def squeeze(k: int, ds: pydicom.Dataset) -> None:  # slices 8.. move 1 mm down
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z - (1.0 if k >= 8 else 0.0)]
    _edit(_files(ct_dir), squeeze)
    series = _series(ct_dir)
    assert _kinds(series) == ["non-uniform spacing"]
    issue = series["issues"][0]
    assert (issue["min_mm"], issue["max_mm"]) == (2.0, 3.0)
    assert "non-uniform slice spacing" in series["refused"]


def test_a_duplicate_position_is_flagged(ct_dir: Path) -> None:
    def same(k: int, ds: pydicom.Dataset) -> None:
        if k == 5:
            x, y, z = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y, z - 3.0]
    _edit(_files(ct_dir), same)
    series = _series(ct_dir)
    assert "duplicate position" in _kinds(series) and "same slice position" in series["refused"]


def test_gantry_tilt_is_flagged_and_the_grid_is_the_readers(ct_dir: Path, hn_case) -> None:
    dx = hn_case.ct.spacing[0]

    def tilt(k: int, ds: pydicom.Dataset) -> None:
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x + k * dx, y, z]
    _edit(_files(ct_dir), tilt)
    series = _series(ct_dir)
    assert _kinds(series) == ["gantry tilt"] and series["refused"] is None
    expected = np.degrees(np.arctan2(15 * dx, 15 * 3.0))
    assert series["issues"][0]["degrees"] == pytest.approx(expected, abs=0.01)
    np.testing.assert_allclose(series["origin_mm"], read_volume(ct_dir).geometry.origin,
                               atol=1e-3)
    assert "! gantry tilt" in format_description(describe(ct_dir))
