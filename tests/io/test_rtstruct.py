"""RTSTRUCT writing and reading: validity, exact round trips, independent readers, failure paths."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from rt_helpers import (
    RT_UTILS_WARNINGS,
    dciodvfy_errors,
    dicompyler_masks,
    hard_case,
    rt_utils_masks,
    slice_positions,
    write_ct,
)

from autocontour.errors import (
    EmptyStructureError,
    GeometryMismatchError,
    InvalidInputError,
    OutputExistsError,
    UnknownOptionError,
)
from autocontour.evaluation import dice
from autocontour.io import read_volume
from autocontour.io.contours import mask_to_polygons
from autocontour.io.grid import reorient_to
from autocontour.io.rtstruct import read_rtstruct, write_rtstruct
from autocontour.io.volume import Geometry, LabelMap
from autocontour.organs import HEAD_NECK, PELVIS


@pytest.fixture
def hard(tmp_path: Path):
    """(CT Volume with DICOM identity, labels, CT folder, RTSTRUCT path) of the hard shapes."""
    ct, labels = hard_case()
    ct = write_ct(ct, tmp_path / "ct")
    rs = tmp_path / "rs.dcm"
    write_rtstruct(labels, ct, rs)
    return ct, labels, tmp_path / "ct", rs


def test_phantom_round_trip_is_exact_and_valid(tmp_path, hn_case, ct_dir):
    rs = tmp_path / "rs.dcm"
    report = write_rtstruct(hn_case.labels, ct_dir, rs)  # reference given as a folder
    assert dciodvfy_errors(rs) == []
    assert report.written == [o.name for o in hn_case.labels.present()]
    labels, read = read_rtstruct(rs, ct_dir)
    np.testing.assert_array_equal(labels.array, hn_case.labels.array)
    assert read.organ_set == "head-neck" and read.unmapped == {} and read.overlaps == []
    ds = pydicom.dcmread(rs)
    assert ds.PatientID == "TEST01" and ds.Modality == "RTSTRUCT"
    roi = {r.ROIName: r for r in ds.StructureSetROISequence}
    parotid = HEAD_NECK.by_name("Parotid_L")
    assert roi["Parotid_L"].ROINumber == parotid.label
    colours = {c.ReferencedROINumber: list(c.ROIDisplayColor) for c in ds.ROIContourSequence}
    assert colours[parotid.label] == list(parotid.color)
    assert {o.RTROIInterpretedType for o in ds.RTROIObservationsSequence} == {"ORGAN"}


def test_every_slice_referenced_and_every_contour_on_its_slice(hard):
    ct, _, ct_dir, rs = hard
    ds = pydicom.dcmread(rs)
    series = (ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
              .RTReferencedSeriesSequence[0])
    assert series.SeriesInstanceUID == ct.dicom.series_instance_uid
    assert [i.ReferencedSOPInstanceUID for i in series.ContourImageSequence] == list(
        ct.dicom.sop_instance_uids)
    planes = slice_positions(ct_dir)
    for roi in ds.ROIContourSequence:
        for contour in roi.ContourSequence:
            points = np.asarray(contour.ContourData, float).reshape(-1, 3)
            assert contour.ContourGeometricType == "CLOSED_PLANAR"
            assert int(contour.NumberOfContourPoints) == len(points) >= 3
            position, normal = planes[contour.ContourImageSequence[0].ReferencedSOPInstanceUID]
            np.testing.assert_allclose((points - position) @ normal, 0, atol=1e-3)


@RT_UTILS_WARNINGS
def test_holes_and_islands_survive_independent_readers(hard):
    ct, labels, ct_dir, rs = hard
    names = [o.name for o in labels.present()]
    ours, _ = read_rtstruct(rs, ct)
    np.testing.assert_array_equal(ours.array, labels.array)
    rt_utils = rt_utils_masks(ct_dir, rs, names, ct.dicom.sop_instance_uids)
    dicompyler = dicompyler_masks(rs, names, ct.geometry)
    for name in names:
        truth = labels.mask(name)
        assert dice(rt_utils[name], truth) >= 0.98, name
        assert dice(dicompyler[name], truth) >= 0.98, name
    ring = labels.mask("Bone_Mandible_L")[10]
    assert not rt_utils["Bone_Mandible_L"][10, 40, 46] and ring[40, 37]  # hole stays a hole
    assert rt_utils["Lens_L"][10, 40, 46] and dicompyler["Lens_L"][10, 40, 46]


@RT_UTILS_WARNINGS
def test_phantom_organs_read_back_by_rt_utils_and_dicompyler(tmp_path, hn_case, ct_dir):
    """Every phantom organ drawn on the tiny grid (5 mm pixels lose a few), through independent
    readers."""
    rs = tmp_path / "rs.dcm"
    write_rtstruct(hn_case.labels, ct_dir, rs)
    ct = read_volume(ct_dir)
    names = [o.name for o in hn_case.labels.present()]
    assert len(names) >= 20
    rt_utils = rt_utils_masks(ct_dir, rs, names, ct.dicom.sop_instance_uids)
    dicompyler = dicompyler_masks(rs, names, ct.geometry)
    for name in names:
        truth = hn_case.labels.mask(name)
        assert dice(rt_utils[name], truth) >= 0.98, (name, dice(rt_utils[name], truth))
        assert dice(dicompyler[name], truth) >= 0.98, (name, dice(dicompyler[name], truth))


@RT_UTILS_WARNINGS
def test_reads_rt_utils_pixel_centre_contours_exactly(hard, tmp_path):
    from rt_utils import RTStructBuilder

    ct, labels, ct_dir, _ = hard
    theirs = RTStructBuilder.create_new(str(ct_dir))
    order = {str(s.SOPInstanceUID): k for k, s in enumerate(theirs.series_data)}
    perm = np.argsort([order[u] for u in ct.dicom.sop_instance_uids])
    for organ in labels.present():
        mask = np.moveaxis(labels.mask(organ.name), 0, 2)[:, :, perm]
        theirs.add_roi(mask=mask, name=organ.name, color=list(organ.color))
    theirs.save(str(tmp_path / "theirs.dcm"))
    back, report = read_rtstruct(tmp_path / "theirs.dcm", ct)
    np.testing.assert_array_equal(back.array, labels.array)
    assert report.empty == []


@RT_UTILS_WARNINGS
@pytest.mark.parametrize("position", ["FFS", "HFP"])
def test_feet_first_and_prone_series_round_trip(tmp_path, position):
    ct, labels = hard_case()
    ct_p, labels_p = reorient_to(ct, position), reorient_to(labels, position)
    ct_p = write_ct(ct_p, tmp_path / "ct", patient_position=position)
    rs = tmp_path / "rs.dcm"
    write_rtstruct(labels_p, ct_p, rs)
    assert dciodvfy_errors(rs) == []
    assert dciodvfy_errors(Path(ct_p.dicom.files[0])) == []
    back, _ = read_rtstruct(rs, tmp_path / "ct")  # the series as a reader sorts it
    np.testing.assert_array_equal(reorient_to(back, "HFS").array, labels.array)
    names = [o.name for o in labels.present()]
    theirs = rt_utils_masks(tmp_path / "ct", rs, names, ct_p.dicom.sop_instance_uids)
    for name in names:
        assert dice(theirs[name], labels_p.mask(name)) >= 0.98, name


def test_oblique_direction_round_trip(tmp_path):
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    ct, labels = hard_case(direction=(c, -s, 0, s, c, 0, 0, 0, 1))
    ct = write_ct(ct, tmp_path / "ct")
    write_rtstruct(labels, ct, tmp_path / "rs.dcm")
    back, _ = read_rtstruct(tmp_path / "rs.dcm", tmp_path / "ct")
    np.testing.assert_array_equal(back.array, labels.array)


def test_polygons_have_no_voxel_centre_on_an_edge():
    mask = np.zeros((6, 6), bool)
    mask[2, 2] = True
    (square,) = mask_to_polygons(mask)
    assert len(square) == 4
    np.testing.assert_allclose(np.abs(square - (2, 2)).max(), 0.45)


def test_empty_organ_is_reported_not_written(hard):
    ct, labels, _, _ = hard
    out = hard[3].with_name("subset.dcm")
    report = write_rtstruct(labels, ct, out, organs=["Brainstem", "Eye_L"])
    assert report.written == ["Brainstem"] and report.empty == ["Eye_L"]
    assert [r.ROIName for r in pydicom.dcmread(out).StructureSetROISequence] == ["Brainstem"]
    with pytest.raises(UnknownOptionError, match="Bladder"):
        write_rtstruct(labels, ct, out, organs=["Bladder"], overwrite=True)


def test_all_empty_organs_are_an_error_not_an_empty_structure_set(hard, tmp_path):
    """A structure set without ROIs is never written as if it were a result, unless asked."""
    ct, labels, _, _ = hard
    out = tmp_path / "empty.dcm"
    with pytest.raises(EmptyStructureError, match=r"empty.dcm: no ROI to write.*Eye_L"):
        write_rtstruct(labels, ct, out, organs=["Eye_L"])
    nothing = labels.with_array(np.zeros_like(labels.array))
    with pytest.raises(EmptyStructureError, match="every requested organ is empty"):
        write_rtstruct(nothing, ct, out)
    with pytest.raises(EmptyStructureError, match="no organ was requested"):
        write_rtstruct(labels, ct, out, organs=[])
    assert not out.exists()
    report = write_rtstruct(nothing, ct, out, allow_empty=True)
    assert report.written == [] and report.empty == list(labels.organs.names)
    assert len(pydicom.dcmread(out).StructureSetROISequence) == 0


def test_all_empty_organs_write_no_reference_series(tmp_path, hn_case):
    """Nothing at all is written, not even the DICOM series for a NIfTI reference."""
    empty = hn_case.labels.with_array(np.zeros_like(hn_case.labels.array))
    with pytest.raises(EmptyStructureError):
        write_rtstruct(empty, hn_case.ct, tmp_path / "rs.dcm", write_reference_to=tmp_path / "ct")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("change, word", [
    ({"spacing": (0.9, 0.9, 3.0)}, "spacing"),
    ({"origin": (-30.0, -40.0, 14.0)}, "origin"),
    ({"direction": (-1, 0, 0, 0, 1, 0, 0, 0, -1)}, "direction"),
])
def test_grid_mismatch_says_what_differs(hard, change, word):
    ct, labels, _, rs = hard
    moved = LabelMap(labels.array, replace(labels.geometry, **change), organs=labels.organs)
    with pytest.raises(GeometryMismatchError, match=word):
        write_rtstruct(moved, ct, rs.with_name("x.dcm"))
    other_frame = replace(labels.geometry, frame_of_reference_uid="1.2.3.4")
    with pytest.raises(GeometryMismatchError, match="1.2.3.4"):
        write_rtstruct(replace(labels, geometry=other_frame), ct, rs.with_name("x.dcm"))
    cropped = LabelMap(labels.array[:-1], Geometry(labels.array[:-1].shape, labels.spacing,
                                                   labels.origin), organs=labels.organs)
    with pytest.raises(GeometryMismatchError, match="shape"):
        write_rtstruct(cropped, ct, rs.with_name("x.dcm"))
    assert not rs.with_name("x.dcm").exists()


def test_overwrite_refused_and_old_file_kept(hard):
    ct, labels, _, rs = hard
    before = rs.read_bytes()
    with pytest.raises(OutputExistsError, match=str(rs)):
        write_rtstruct(labels, ct, rs)
    assert rs.read_bytes() == before
    write_rtstruct(labels, ct, rs, overwrite=True)
    assert rs.read_bytes() != before and not list(rs.parent.glob(".rs.dcm*"))


def test_non_rtstruct_and_broken_files_are_named(hard, tmp_path):
    ct, _, _, rs = hard
    slice_file = Path(ct.dicom.files[0])
    with pytest.raises(InvalidInputError, match=r"not an RT Structure Set.*CT Image Storage"):
        read_rtstruct(slice_file, ct)
    cut = tmp_path / "cut.dcm"
    data = rs.read_bytes()
    for length in (len(data) // 3, len(data) - 7):
        cut.write_bytes(data[:length])
        with pytest.raises(InvalidInputError, match=f"{cut}.*(truncated|without)"):
            read_rtstruct(cut, ct)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all" * 20)
    with pytest.raises(InvalidInputError, match=str(junk)):
        read_rtstruct(junk, ct)


def _edit(rs: Path, change) -> Path:
    ds = pydicom.dcmread(rs)
    change(ds)
    out = rs.with_name("edited.dcm")
    ds.save_as(out)
    return out


def test_unmapped_names_listed_and_clinic_names_mapped(hard):
    ct, labels, _, rs = hard

    def rename(ds):
        names = {"Parotid_L": "Parotid Lt", "Brainstem": "PRV_Brainstem_3mm"}
        for roi in ds.StructureSetROISequence:
            roi.ROIName = names.get(roi.ROIName, roi.ROIName)

    back, report = read_rtstruct(_edit(rs, rename), ct, organs="head-neck")
    assert report.mapped["Parotid Lt"] == "Parotid_L"
    assert "PRV_Brainstem_3mm" in report.unmapped
    assert not back.mask("Brainstem").any()
    np.testing.assert_array_equal(back.mask("Parotid_L"), labels.mask("Parotid_L"))


def test_contour_off_the_slices_names_the_roi(hard):
    ct, _, _, rs = hard

    def shift(ds):
        contour = ds.ROIContourSequence[0].ContourSequence[0]
        points = np.asarray(contour.ContourData, float).reshape(-1, 3)
        points[:, 2] += 1.25  # half a slice
        contour.ContourData = [f"{v:.4f}" for v in points.ravel()]

    name = pydicom.dcmread(rs).StructureSetROISequence[0].ROIName
    with pytest.raises(InvalidInputError, match=f"ROI '{name}'.*not on a slice"):
        read_rtstruct(_edit(rs, shift), ct)


def test_other_frame_of_reference_is_refused(hard):
    ct, _, _, rs = hard

    def move(ds):
        for roi in ds.StructureSetROISequence:
            roi.ReferencedFrameOfReferenceUID = "1.2.3.4"

    with pytest.raises(GeometryMismatchError, match="1.2.3.4"):
        read_rtstruct(_edit(rs, move), ct)


def test_overlaps_smaller_organ_wins_and_is_reported(hard, tmp_path):
    ct, labels, _, rs = hard
    big = labels.mask("Brainstem")
    small = np.zeros_like(big)
    small[8:12, 28:36, 18:30] = True  # half inside the Brainstem ellipsoid
    extra = LabelMap(np.where(small, HEAD_NECK.by_name("SpinalCord").label, 0).astype(np.uint8),
                     labels.geometry, organs=HEAD_NECK)
    write_rtstruct(extra, ct, tmp_path / "extra.dcm")
    second = pydicom.dcmread(tmp_path / "extra.dcm")

    def merge(ds):
        ds.StructureSetROISequence.extend(second.StructureSetROISequence)
        ds.ROIContourSequence.extend(second.ROIContourSequence)

    back, report = read_rtstruct(_edit(rs, merge), ct)
    assert report.overlaps == [("Brainstem", "SpinalCord", int((big & small).sum()))]
    np.testing.assert_array_equal(back.mask("SpinalCord"), small)
    np.testing.assert_array_equal(back.mask("Brainstem"), big & ~small)


def test_organ_set_is_guessed_from_the_names(tmp_path, hard):
    ct, labels, _, _ = hard
    array = np.select([labels.array == 1, labels.array == 12], [1, 6]).astype(np.uint8)
    pelvis = LabelMap(array, labels.geometry, organs=PELVIS)
    write_rtstruct(pelvis, ct, tmp_path / "pelvis.dcm")
    back, report = read_rtstruct(tmp_path / "pelvis.dcm", ct)
    assert report.organ_set == "pelvis" and [o.name for o in back.present()] == ["Bladder", "CTV"]
    observations = pydicom.dcmread(tmp_path / "pelvis.dcm").RTROIObservationsSequence
    assert [o.RTROIInterpretedType for o in observations] == ["ORGAN", "CTV"]


def test_nifti_only_input_gets_a_matching_ct_series(tmp_path, hn_case):
    """A user with only NIfTI gets a DICOM CT series plus an RTSTRUCT that references it."""
    from autocontour.io import read_labels, read_volume, write_volume
    ct = read_volume(write_volume(hn_case.ct, tmp_path / "ct.nii.gz"))
    labels = read_labels(write_volume(hn_case.labels, tmp_path / "label.nii.gz"), "head-neck")
    with pytest.raises(InvalidInputError, match="write_reference_to"):
        write_rtstruct(labels, ct, tmp_path / "rs.dcm")
    report = write_rtstruct(labels, ct, tmp_path / "rs.dcm", write_reference_to=tmp_path / "dcm")
    assert set(report.written) == {o.name for o in hn_case.labels.present()}
    series = read_volume(tmp_path / "dcm")
    np.testing.assert_array_equal(series.array, hn_case.ct.array)
    back, _ = read_rtstruct(tmp_path / "rs.dcm", tmp_path / "dcm", organs="head-neck")
    np.testing.assert_array_equal(back.array, hn_case.labels.array)
