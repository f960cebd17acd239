"""Writing a Volume as a DICOM CT/MR series: validity, exact geometry, values, UIDs, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from rt_helpers import dciodvfy_errors

from autocontour.errors import InvalidInputError, OutputExistsError, UnknownOptionError
from autocontour.io.dicom_series import read_dicom_series
from autocontour.io.dicom_write import write_dicom_series
from autocontour.io.grid import reorient_to
from autocontour.io.volume import Geometry, Volume

_C, _S = np.cos(np.radians(25)), np.sin(np.radians(25))
DIRECTIONS = {
    "HFS": (1, 0, 0, 0, 1, 0, 0, 0, 1),
    "FFS": (-1, 0, 0, 0, 1, 0, 0, 0, -1),
    "HFP": (-1, 0, 0, 0, -1, 0, 0, 0, 1),
    "oblique": (_C, -_S, 0, _S, _C, 0, 0, 0, 1),
}


def _volume(direction=DIRECTIONS["HFS"], dtype=np.int16, spacing=(0.7, 0.9, 2.5)) -> Volume:
    rng = np.random.default_rng(0)
    array = rng.integers(-1024, 2000, size=(6, 20, 24)).astype(dtype)
    return Volume(array, Geometry(array.shape, spacing, (-12.0, 30.5, -80.0), direction),
                  modality="CT")


def test_phantom_ct_is_valid_and_reads_back(tmp_path, hn_case):
    ref = write_dicom_series(hn_case.ct, tmp_path / "ct", patient_id="P1")
    assert dciodvfy_errors(Path(ref.files[0])) == []
    back = read_dicom_series(tmp_path / "ct")
    np.testing.assert_array_equal(back.array, hn_case.ct.array)
    assert back.geometry.mismatch(hn_case.ct.geometry) is None
    assert back.dicom.sop_instance_uids == ref.sop_instance_uids
    assert back.dicom.frame_of_reference_uid == hn_case.ct.geometry.frame_of_reference_uid
    ds = pydicom.dcmread(ref.files[0])
    assert (ds.Manufacturer, ds.PatientID, ds.Modality) == ("autocontour", "P1", "CT")
    assert ds.pixel_array.dtype == np.int16 and float(ds.RescaleSlope) == 1.0


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_any_direction_keeps_geometry(tmp_path, name):
    volume = _volume(DIRECTIONS[name])
    write_dicom_series(volume, tmp_path / "ct")
    back = read_dicom_series(tmp_path / "ct")
    assert back.geometry.mismatch(volume.geometry) is None
    np.testing.assert_array_equal(back.array, volume.array)


def test_pixel_spacing_is_row_then_column(tmp_path):
    ref = write_dicom_series(_volume(spacing=(0.7, 0.9, 2.5)), tmp_path / "ct")
    ds = pydicom.dcmread(ref.files[0])
    assert [float(v) for v in ds.PixelSpacing] == [0.9, 0.7]
    assert float(ds.SliceThickness) == 2.5


@pytest.mark.parametrize("position", ["FFS", "HFP"])
def test_reoriented_series_is_valid(tmp_path, position):
    volume = reorient_to(_volume(), position)
    ref = write_dicom_series(volume, tmp_path / "ct", patient_position=position)
    assert dciodvfy_errors(Path(ref.files[-1])) == []
    assert pydicom.dcmread(ref.files[0]).PatientPosition == position


def test_float_ct_is_rounded_to_hu_and_mr_keeps_its_values(tmp_path):
    base = _volume()
    ct = Volume(base.array + 0.4, base.geometry, modality="CT")
    write_dicom_series(ct, tmp_path / "ct")
    np.testing.assert_array_equal(read_dicom_series(tmp_path / "ct").array, base.array)
    mr_values = np.linspace(0.0, 1.0, base.array.size).reshape(base.shape)
    ref = write_dicom_series(Volume(mr_values, base.geometry), tmp_path / "mr", modality="MR")
    assert dciodvfy_errors(Path(ref.files[0])) == []
    np.testing.assert_allclose(read_dicom_series(tmp_path / "mr").array, mr_values, atol=1e-4)
    with pytest.raises(InvalidInputError, match="NaN"):
        write_dicom_series(Volume(np.full(base.shape, np.nan), base.geometry), tmp_path / "nan")


def test_uids_are_deterministic_with_a_seed(tmp_path):
    volume = _volume()
    a = write_dicom_series(volume, tmp_path / "a", uid_seed="case-7")
    b = write_dicom_series(volume, tmp_path / "b", uid_seed="case-7")
    c = write_dicom_series(volume, tmp_path / "c", uid_seed="case-8")
    d = write_dicom_series(volume, tmp_path / "d")
    assert a.sop_instance_uids == b.sop_instance_uids and a.study_instance_uid == b.study_instance_uid
    assert set(a.sop_instance_uids).isdisjoint(c.sop_instance_uids + d.sop_instance_uids)
    assert len(set(a.sop_instance_uids)) == volume.shape[0]
    e = write_dicom_series(volume, tmp_path / "e", uid_root="1.2.3.", study_instance_uid="1.2.9")
    assert e.series_instance_uid.startswith("1.2.3.") and e.study_instance_uid == "1.2.9"


def test_overwrite_refused_then_allowed(tmp_path):
    volume = _volume()
    out = tmp_path / "ct"
    first = write_dicom_series(volume, out)
    before = sorted(p.read_bytes() for p in out.iterdir())
    with pytest.raises(OutputExistsError, match="not empty"):
        write_dicom_series(volume, out)
    assert sorted(p.read_bytes() for p in out.iterdir()) == before
    second = write_dicom_series(volume, out, overwrite=True)
    assert set(first.sop_instance_uids).isdisjoint(second.sop_instance_uids)
    assert len(list(out.iterdir())) == volume.shape[0]
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="notes.txt"):
        write_dicom_series(volume, out, overwrite=True)
    assert (out / "notes.txt").exists() and not list(tmp_path.glob(".ct.*"))


@pytest.mark.parametrize("kwargs, word", [({"modality": "US"}, "modality"),
                                          ({"patient_position": "XYZ"}, "position")])
def test_unknown_options(tmp_path, kwargs, word):
    with pytest.raises(UnknownOptionError, match=word):
        write_dicom_series(_volume(), tmp_path / "ct", **kwargs)
    assert not (tmp_path / "ct").exists()
