"""Grid operations keep every voxel at its LPS position: reorienting, canonical layout, resampling."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from autocontour.errors import GeometryMismatchError, UnknownOptionError
from autocontour.io.dicom_write import write_dicom_series
from autocontour.io.grid import canonical, reorient_to, resample_channel
from autocontour.io.volume import Geometry, LabelMap, Volume
from autocontour.organs import HEAD_NECK
from autocontour.phantoms import PhantomCase

EXPECTED = {"HFS": "LPS", "FFS": "RPI", "HFP": "RAS", "FFP": "LAI"}


def _labels() -> LabelMap:
    array = np.random.default_rng(1).integers(0, 4, size=(5, 6, 7)).astype(np.uint8)
    geometry = Geometry(array.shape, (0.5, 0.8, 2.0), (10.0, -20.0, 30.0),
                        frame_of_reference_uid="1.2.3")
    return LabelMap(array, geometry, organs=HEAD_NECK)


@pytest.mark.parametrize("position", list(EXPECTED))
def test_every_voxel_keeps_its_lps_position(position):
    labels = _labels()
    moved = reorient_to(labels, position)
    assert moved.geometry.orientation_code == EXPECTED[position]
    assert isinstance(moved, LabelMap) and moved.organs is labels.organs
    assert moved.geometry.frame_of_reference_uid == "1.2.3"
    zyx = np.argwhere(np.ones(moved.shape, bool))
    lps = moved.geometry.index_to_physical(zyx[:, ::-1])
    back = np.rint(labels.geometry.physical_to_index(lps)).astype(int)
    np.testing.assert_array_equal(labels.array[back[:, 2], back[:, 1], back[:, 0]],
                                  moved.array[zyx[:, 0], zyx[:, 1], zyx[:, 2]])
    assert np.linalg.det(moved.direction) == pytest.approx(1.0)


def test_round_trip_and_dicom_identity_dropped(tmp_path):
    labels = _labels()
    ct = Volume(labels.array.astype(np.int16), labels.geometry, modality="CT")
    ct = ct.with_array(ct.array, dicom=write_dicom_series(ct, tmp_path / "ct"))
    ffs = reorient_to(ct, "ffs")
    assert ffs.dicom is None and ffs.modality == "CT"
    back = reorient_to(ffs, "HFS")
    np.testing.assert_array_equal(back.array, ct.array)
    assert back.geometry.mismatch(ct.geometry) is None


def test_unknown_position():
    with pytest.raises(UnknownOptionError, match="HFDL"):
        reorient_to(_labels(), "HFDL")


def test_canonical_returns_the_same_object_when_already_in_layout(hn_case: PhantomCase) -> None:
    assert canonical(hn_case.ct) is hn_case.ct
    assert canonical(hn_case.labels) is hn_case.labels


def test_canonical_rejects_a_bad_orientation_code() -> None:
    with pytest.raises(UnknownOptionError, match="orientation code"):
        canonical(Volume(np.zeros((2, 2, 2)), Geometry((2, 2, 2), (1, 1, 1), (0, 0, 0))), "XYZ")


def test_resample_channel_whole_grid_and_box_agree_with_simpleitk() -> None:
    source = Geometry((6, 7, 8), (2.0, 2.0, 3.0), (-5.0, -4.0, 1.0))
    target = Geometry((9, 10, 12), (1.3, 1.1, 2.2), (-7.0, -5.0, 0.0),
                      (0.8, -0.6, 0.0, 0.6, 0.8, 0.0, 0.0, 0.0, 1.0))
    channel = np.random.default_rng(0).random(source.shape).astype(np.float32)
    image = source.apply_to_sitk(sitk.GetImageFromArray(channel))
    reference = target.apply_to_sitk(sitk.Image([*target.shape[::-1]], sitk.sitkFloat32))
    expected = sitk.GetArrayFromImage(sitk.Resample(image, reference, sitk.Transform(),
                                                    sitk.sitkLinear, 0.5, sitk.sitkFloat32))
    whole = resample_channel(channel, source, target, outside=0.5)
    assert whole.dtype == np.float32 and whole.shape == target.shape
    np.testing.assert_array_equal(whole, expected)
    box = (slice(2, 7), slice(1, 9), slice(3, 12))
    np.testing.assert_allclose(resample_channel(channel, source, target, box, outside=0.5),
                               expected[box], atol=1e-6)
    with pytest.raises(GeometryMismatchError, match="source grid"):
        resample_channel(channel[:-1], source, target)
