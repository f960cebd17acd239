"""The body outline (External): couch out, arms and cavities in, debris out, organs clipped."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pydicom
import pytest

from autocontour.inference.body import EXTERNAL, body_outline, clip_to_body
from autocontour.io import write_dicom_series, write_rtstruct
from autocontour.io.grid import canonical
from autocontour.io.rtstruct import read_rtstruct
from autocontour.io.volume import LabelMap, Volume
from autocontour.phantoms import head_neck_case, make_case, pelvis_case


@pytest.fixture(scope="module")
def pelvis():
    return pelvis_case(90002)


def couch_rows(ct: Volume) -> np.ndarray:
    """Rows whose median over the slices and columns is dense after the patient's own run of
    such rows: the tabletop's plates (nothing else spans the field under the patient)."""
    dense = np.median(ct.array.transpose(1, 0, 2).reshape(ct.shape[1], -1), axis=1) > -300
    rows = np.flatnonzero(dense)
    after_patient = rows[0] + np.argmin(dense[rows[0]:])  # first row of air under the patient
    return rows[rows > after_patient]


def test_pelvis_outline_holds_every_organ_and_no_couch(pelvis) -> None:
    body = body_outline(pelvis.ct)
    labels = pelvis.labels.array
    assert body[labels > 0].all()
    rows = couch_rows(pelvis.ct)
    assert rows.size >= 2  # the phantom has a couch: the test looks at something
    # nothing below the tabletop's top row, and of that row (where the patient lies on it,
    # within a pixel) hardly anything
    assert not body[:, rows.min() + 1:, :].any()
    assert body[:, rows.min(), :].mean() < 0.02
    # the body is the patient, not the field: air in front of the patient is outside
    assert not body[:, :5, :].any()
    assert 0.2 < body.mean() < 0.6


def test_holes_inside_the_patient_are_filled() -> None:
    thorax = make_case("thorax", 90002)
    body = body_outline(thorax.ct)
    lung_air = (thorax.ct.array < -500) & body
    assert lung_air.sum() > 0.05 * body.sum()  # the lungs are inside the outline
    assert body[thorax.labels.array > 0].all()


def test_arms_beside_the_trunk_are_body_and_debris_is_not(pelvis) -> None:
    pad = 36  # widen the field by 12 cm each side: room for the arms
    base = pelvis.ct
    array = np.pad(base.array, [(0, 0), (0, 0), (pad, pad)], constant_values=-1000)
    origin = base.geometry.index_to_physical(np.array([[-pad, 0, 0]]))[0]
    ct = Volume(array, replace(base.geometry, shape=array.shape, origin=tuple(origin)),
                modality="CT")
    array = array.copy()
    body0 = body_outline(ct)
    ys, xs = np.nonzero(body0.any(axis=0))
    cy = int(ys.mean())
    z, y, x = np.ogrid[:ct.shape[0], :ct.shape[1], :ct.shape[2]]
    radius = 7  # pixels of 3.3 mm: thin arms, 4.6 cm across, 2.5 % of the trunk each
    arm_l = (y - cy) ** 2 + (x - (xs.max() + radius + 3)) ** 2 <= radius ** 2
    arm_r = (y - cy) ** 2 + (x - (xs.min() - radius - 3)) ** 2 <= radius ** 2
    arms = np.broadcast_to(arm_l | arm_r, ct.shape)
    array[arms] = 40
    debris = (z == ct.shape[0] // 2) & (abs(y - 5) <= 1) & (abs(x - 10) <= 1)  # 9 voxels
    array[debris] = 300
    body = body_outline(ct.with_array(array))
    assert body[arms].mean() > 0.95
    assert not body[debris].any()
    assert body[body0].all()


def test_no_body_in_an_image_without_tissue() -> None:
    ct = pelvis_case(90003, shape=(12, 32, 32)).ct
    empty = ct.with_array(np.full(ct.shape, -1000, np.int16))
    assert not body_outline(empty).any()


def test_outline_follows_the_array_in_any_orientation(pelvis) -> None:
    lps = pelvis.ct
    flipped = Volume(lps.array[::-1, :, ::-1].copy(), replace(
        lps.geometry, origin=tuple(lps.geometry.index_to_physical(
            np.array([[lps.shape[2] - 1, 0, lps.shape[0] - 1]]))[0]),
        direction=(-1, 0, 0, 0, 1, 0, 0, 0, -1)), modality="CT")
    back = canonical(LabelMap(body_outline(flipped).view(np.uint8), flipped.geometry,
                              organs=pelvis.labels.organs), "LPS")
    assert np.array_equal(back.array.astype(bool), body_outline(lps))


def test_clip_to_body_removes_and_reports_what_lay_outside(pelvis) -> None:
    body = body_outline(pelvis.ct)
    array = pelvis.labels.array.copy()
    array[:, :3, :4] = 1  # "bladder" in the air in front of the patient: 3*4 voxels per slice
    clipped_map, clipped = clip_to_body(pelvis.labels.with_array(array), body)
    assert [c.organ for c in clipped] == ["Bladder"]
    assert clipped[0].voxels == 12 * pelvis.ct.shape[0]
    assert clipped[0].volume_cc == pytest.approx(clipped[0].voxels * np.prod(pelvis.ct.spacing)
                                                 / 1000)
    assert np.array_equal(clipped_map.array, pelvis.labels.array)
    same, none = clip_to_body(pelvis.labels, body)
    assert none == [] and same is pelvis.labels


def _dicom_case(tmp_path) -> tuple[Volume, LabelMap]:
    """A small head-and-neck phantom written as a DICOM series: the CT (with its identity) and
    its labels on that series' grid."""
    case = head_neck_case(90004, shape=(16, 64, 64))
    series = write_dicom_series(case.ct, tmp_path / "ct")
    ct = replace(case.ct, geometry=replace(case.ct.geometry,
                                           frame_of_reference_uid=series.frame_of_reference_uid),
                 dicom=series)
    return ct, replace(case.labels, geometry=ct.geometry)


def test_rtstruct_carries_the_external_after_the_organs(tmp_path) -> None:
    ct, labels = _dicom_case(tmp_path)
    body = body_outline(ct)
    report = write_rtstruct(labels, ct, tmp_path / "rt.dcm", extra=[(EXTERNAL, body)])
    assert report.written[-1] == "External"
    ds = pydicom.dcmread(tmp_path / "rt.dcm")
    numbers = {int(r.ROINumber): r.ROIName for r in ds.StructureSetROISequence}
    assert numbers[max(labels.organs.labels) + 1] == "External"
    types = {int(o.ReferencedROINumber): o.RTROIInterpretedType
             for o in ds.RTROIObservationsSequence}
    assert types[max(labels.organs.labels) + 1] == "EXTERNAL"
    # the organs read back as they were written; the External is not an organ of the set
    back, read = read_rtstruct(tmp_path / "rt.dcm", ct, organs="head-neck")
    assert "External" in read.unmapped
    assert np.array_equal(back.array, labels.array)


def test_an_extra_mask_of_another_shape_is_refused(tmp_path) -> None:
    from autocontour.errors import GeometryMismatchError

    ct, labels = _dicom_case(tmp_path)
    with pytest.raises(GeometryMismatchError, match="External"):
        write_rtstruct(labels, ct, tmp_path / "rt.dcm",
                       extra=[(EXTERNAL, np.ones((2, 2, 2), bool))])
    assert not (tmp_path / "rt.dcm").exists()
