"""DICOM Segmentation (SEG) objects of a label map, written and read with highdicom.

A SEG carries the voxels themselves (no contour round-off), one BINARY segment per present organ
named with its TG-263 name and coded with a SNOMED CT anatomical code where pydicom's code
dictionary has one (a generic "Anatomical Structure" otherwise), referencing every slice of the
series the labels were drawn on.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import SegmentationStorage

from autocontour.errors import GeometryMismatchError, InvalidInputError, OutputExistsError
from autocontour.io.dicom_write import MANUFACTURER, atomic_save, format_ds, make_uid
from autocontour.io.rtstruct import guess_organ_set, reference_grid, reference_series
from autocontour.io.volume import DicomSeriesRef, Geometry, LabelMap, Volume
from autocontour.organs import Organ, OrganSet, get_organ_set

# organ key (organs.py) -> keyword of pydicom's SNOMED CT code dictionary
_SCT_KEYWORDS = {
    "brainstem": "BrainStem", "eye": "Eye", "lens": "Lens", "opticnerve": "OpticNerve",
    "chiasm": "OpticChiasm", "temporallobe": "TemporalLobe", "pituitary": "Pituitary",
    "parotid": "ParotidGland", "innerear": "InnerEar", "middleear": "MiddleEar",
    "tmj": "TemporomandibularJoint", "spinalcord": "SpinalCord", "mandible": "Mandible",
    "bladder": "Bladder", "rectum": "Rectum", "femoralhead": "FemoralHead",
    "prostate": "Prostate", "ctv": "ClinicalTargetVolume", "lung": "Lung", "heart": "Heart",
    "clavicle": "Clavicle",
}
_ALGORITHM = hd.AlgorithmIdentificationSequence(
    name="autocontour", family=codes.cid7162.ArtificialIntelligence, version=pydicom.__version__)


def organ_codes(organ: Organ) -> tuple[Code, Code]:
    """(SegmentedPropertyCategory, SegmentedPropertyType) codes of an organ."""
    if organ.interpreted_type == "CTV":
        return codes.cid7150.SpatialAndRelationalConcept, codes.SCT.ClinicalTargetVolume
    keyword = _SCT_KEYWORDS.get(organ.key)
    kind = getattr(codes.SCT, keyword) if keyword else codes.cid7150.AnatomicalStructure
    return codes.cid7150.AnatomicalStructure, kind


def _source_images(geometry: Geometry, ref: DicomSeriesRef) -> list[Dataset]:
    """One pixel-less dataset per slice, in z order, made from the series header and geometry
    (highdicom needs each slice's UID and position, not its pixels: no file is re-read)."""
    header = ref.header
    if header is None and ref.files:
        header = pydicom.dcmread(ref.files[0], stop_before_pixels=True)
    if header is None:
        raise InvalidInputError("the reference series has neither a header nor files to "
                                "describe its slices; read it with read_dicom_series")
    slices = []
    for k, uid in enumerate(ref.sop_instance_uids):
        # a shallow copy sharing the header's elements (highdicom only reads them; a deep copy
        # per slice took 0.4 s for 160 slices); the three elements set here are new ones
        ds = Dataset()
        ds.update(header)
        for keyword in ("SOPInstanceUID", "InstanceNumber", "ImagePositionPatient"):
            if keyword in ds:
                delattr(ds, keyword)
        ds.SOPInstanceUID = uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = format_ds(geometry.slice_origin(k))
        slices.append(ds)
    return slices


def write_dicom_seg(labels: LabelMap, reference: Volume | str | Path, path: str | Path, *,
                    overwrite: bool = False) -> Path:
    """Write ``labels`` as a BINARY DICOM SEG referencing the reference series' slices.

    Args:
        labels: label map (z, y, x) on the reference grid.
        reference: the image series (Volume with ``dicom``, or a folder/zip to read).
        path: output file, written to a temporary file and renamed into place.

    Raises:
        GeometryMismatchError: the grids differ. OutputExistsError: ``path`` exists and
        ``overwrite`` is False. InvalidInputError: no organ is present, or no DICOM reference.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists; pass overwrite=True to replace it (nothing "
                                "written)")
    geometry, ref = reference_series(reference, labels)
    present = labels.present()
    if not present:
        raise InvalidInputError(f"{path}: the label map is empty; a SEG needs one segment")
    lookup = np.zeros(256, dtype=np.uint8)
    descriptions = []
    for number, organ in enumerate(present, start=1):
        lookup[organ.label] = number
        category, kind = organ_codes(organ)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=organ.name,
            segmented_property_category=category, segmented_property_type=kind,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=_ALGORITHM,
            display_color=hd.color.CIELabColor.from_rgb(*organ.color)))
    seg = hd.seg.Segmentation(
        source_images=_source_images(geometry, ref), pixel_array=lookup[labels.array],
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=make_uid(None, None),
        series_number=100, sop_instance_uid=make_uid(None, None), instance_number=1,
        manufacturer=MANUFACTURER, manufacturer_model_name=MANUFACTURER,
        software_versions=pydicom.__version__, device_serial_number="0",
        series_description="autocontour")
    atomic_save(seg, path)
    return path


def read_dicom_seg(path: str | Path, reference: Volume | str | Path,
                   organs: OrganSet | str | None = None) -> LabelMap:
    """Read a SEG onto the reference grid; segment labels are mapped with ``OrganSet.match``.

    Segments whose label maps to no organ are left out. Where segments overlap, the one with
    the higher segment number wins.

    Raises:
        InvalidInputError: unreadable file, not a SEG. GeometryMismatchError: the SEG is in
        another Frame of Reference than the reference image.
    """
    path = Path(path)
    try:
        seg = hd.seg.segread(path)
    except (InvalidDicomError, EOFError, OSError, ValueError, AttributeError, KeyError) as exc:
        raise InvalidInputError(f"{path}: not a readable DICOM SEG ({exc})") from exc
    if seg.SOPClassUID != SegmentationStorage:
        raise InvalidInputError(f"{path}: not a DICOM SEG (SOP class {seg.SOPClassUID})")
    geometry, ref = reference_grid(reference)
    if ref is None:
        raise InvalidInputError("the reference image has no DICOM series to match the SEG to")
    if seg.FrameOfReferenceUID != ref.frame_of_reference_uid:
        raise GeometryMismatchError(
            f"{path}: Frame of Reference {seg.FrameOfReferenceUID} differs from the reference "
            f"image's {ref.frame_of_reference_uid}")
    names = {n: seg.get_segment_description(n).segment_label for n in seg.get_segment_numbers()}
    organ_set = guess_organ_set(list(names.values())) if organs is None else (
        get_organ_set(organs) if isinstance(organs, str) else organs)
    mapped = organ_set.match(list(names.values())).mapped
    lookup = np.zeros(max(names) + 1, dtype=np.uint8)
    for number, name in names.items():
        if name in mapped:
            lookup[number] = organ_set.by_name(mapped[name]).label
    if (int(seg.Rows), int(seg.Columns)) != geometry.shape[1:]:
        raise GeometryMismatchError(f"{path}: frames of {seg.Columns}x{seg.Rows} pixels, the "
                                    f"reference slices are {geometry.shape[2]}x{geometry.shape[1]}")
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=list(ref.sop_instance_uids),
        segment_numbers=sorted(names), combine_segments=True, skip_overlap_checks=True,
        assert_missing_frames_are_empty=True)
    return LabelMap(lookup[pixels], geometry, organs=organ_set)
