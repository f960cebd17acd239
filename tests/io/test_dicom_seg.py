"""DICOM SEG written with highdicom: valid, exact round trip, coded segments, refusals."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes
from rt_helpers import dciodvfy_errors, hard_case, write_ct

from autocontour.errors import GeometryMismatchError, InvalidInputError, OutputExistsError
from autocontour.io.dicom_seg import organ_codes, read_dicom_seg, write_dicom_seg
from autocontour.io.grid import reorient_to
from autocontour.io.volume import LabelMap
from autocontour.organs import HEAD_NECK, PELVIS


def test_phantom_round_trip_is_exact_and_valid(tmp_path, hn_case, ct_dir):
    seg = write_dicom_seg(hn_case.labels, ct_dir, tmp_path / "seg.dcm")
    assert dciodvfy_errors(seg) == []
    back = read_dicom_seg(seg, ct_dir)
    np.testing.assert_array_equal(back.array, hn_case.labels.array)
    ds = pydicom.dcmread(seg)
    labels = [s.SegmentLabel for s in ds.SegmentSequence]
    assert labels == [o.name for o in hn_case.labels.present()]
    parotid = ds.SegmentSequence[labels.index("Parotid_L")]
    assert parotid.SegmentedPropertyTypeCodeSequence[0].CodeValue == codes.SCT.ParotidGland.value
    assert ds.PatientID == "TEST01"


def test_feet_first_round_trip(tmp_path):
    ct, labels = hard_case()
    ct, labels = reorient_to(ct, "FFS"), reorient_to(labels, "FFS")
    ct = write_ct(ct, tmp_path / "ct", patient_position="FFS")
    write_dicom_seg(labels, ct, tmp_path / "seg.dcm")
    np.testing.assert_array_equal(read_dicom_seg(tmp_path / "seg.dcm", ct).array, labels.array)


def test_codes_for_targets_and_uncoded_organs():
    category, kind = organ_codes(PELVIS.by_name("CTV"))
    assert kind == codes.SCT.ClinicalTargetVolume
    assert category == codes.cid7150.SpatialAndRelationalConcept
    assert organ_codes(HEAD_NECK.by_name("Cochlea_L"))[1] == codes.cid7150.AnatomicalStructure


def test_refusals(tmp_path):
    ct, labels = hard_case()
    ct = write_ct(ct, tmp_path / "ct")
    out = tmp_path / "seg.dcm"
    write_dicom_seg(labels, ct, out)
    before = out.read_bytes()
    with pytest.raises(OutputExistsError):
        write_dicom_seg(labels, ct, out)
    assert out.read_bytes() == before
    empty = LabelMap(np.zeros_like(labels.array), labels.geometry, organs=HEAD_NECK)
    with pytest.raises(InvalidInputError, match="empty"):
        write_dicom_seg(empty, ct, tmp_path / "empty.dcm")
    shifted = replace(labels, geometry=replace(labels.geometry, origin=(0.0, 0.0, 0.0)))
    with pytest.raises(GeometryMismatchError, match="origin"):
        write_dicom_seg(shifted, ct, tmp_path / "moved.dcm")
    with pytest.raises(InvalidInputError, match="CT_0001.dcm"):
        read_dicom_seg(Path(ct.dicom.files[0]), ct)
    other = write_ct(hard_case()[0], tmp_path / "other")
    with pytest.raises(GeometryMismatchError, match="Frame of Reference"):
        read_dicom_seg(out, other)


def test_writing_leaves_the_read_series_header_alone(tmp_path):
    """The per-slice datasets share the header's elements: the header must not change."""
    ct, labels = hard_case()
    ct = write_ct(ct, tmp_path / "ct")
    header = ct.dicom.header
    before = {k: str(header[k].value) for k in ("SOPInstanceUID", "InstanceNumber",
                                                "ImagePositionPatient") if k in header}
    seg = pydicom.dcmread(write_dicom_seg(labels, ct, tmp_path / "seg.dcm"))
    assert {k: str(header[k].value) for k in before} == before
    referenced = {i.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence
                  for i in s.ReferencedInstanceSequence}
    assert referenced == set(ct.dicom.sop_instance_uids)
    np.testing.assert_array_equal(read_dicom_seg(tmp_path / "seg.dcm", ct).array, labels.array)
