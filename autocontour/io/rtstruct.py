"""DICOM RT Structure Set: label map -> contours (write) and contours -> label map (read).

Each organ's slice mask becomes closed polygons (``contours.mask_to_polygons``, whose docstring
explains why both rt-utils-style and dicompyler-style readers recover the exact voxels). Holes
and islands are written as separate contours on the slice, the DICOM convention readers combine
by XOR (even-odd), which also covers islands inside holes; keyhole contours would put voxel
centres on the cut. Points go to LPS through the full direction matrix, so feet-first, prone and
oblique series work.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence as Sequence_
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID, ImplicitVRLittleEndian, RTStructureSetStorage
from scipy import ndimage

from autocontour.errors import (
    EmptyStructureError,
    GeometryMismatchError,
    InvalidInputError,
    OutputExistsError,
)
from autocontour.io.contours import fill_polygons, mask_to_polygons
from autocontour.io.dicom_series import read_series_grid
from autocontour.io.dicom_write import (
    MANUFACTURER,
    atomic_save,
    file_meta,
    make_uid,
    now_date_time,
    write_dicom_series,
)
from autocontour.io.volume import DicomSeriesRef, Geometry, LabelMap, Volume, require_same_grid
from autocontour.organs import ORGAN_SETS, Organ, OrganSet, get_organ_set

CONTOUR_SEQUENCE, CONTOUR_IMAGES, GEOMETRIC_TYPE, N_POINTS, CONTOUR_NUMBER, CONTOUR_DATA = (
    BaseTag(t) for t in (0x30060040, 0x30060016, 0x30060042, 0x30060046, 0x30060048, 0x30060050))
_ELEMENT_HEADER = struct.Struct("<HHI")
PLANE_TOLERANCE = 0.1  # a contour may lie this fraction of a slice step off the slice plane
_PATIENT_STUDY_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                           "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName",
                           "StudyID", "AccessionNumber")


@dataclass(frozen=True)
class RTStructWriteReport:
    """What ``write_rtstruct`` wrote: ROI names, organs left out as empty, contour count."""

    path: Path
    written: list[str]
    empty: list[str]
    n_contours: int


@dataclass(frozen=True)
class RTStructReadReport:
    """What ``read_rtstruct`` made of a file; nothing in it is dropped without being listed.

    Attributes:
        organ_set: name of the organ set the ROI names were mapped onto.
        mapped: ROI name -> organ name.
        unmapped: ROI name -> why it was not mapped (those ROIs are not in the label map).
        empty: mapped ROI names without a single voxel.
        skipped: ROI name -> contours that are not CLOSED_PLANAR and were ignored.
        overlaps: (larger organ, smaller organ, voxels held by both); the smaller organ won.
    """

    path: Path
    organ_set: str
    mapped: dict[str, str]
    unmapped: dict[str, str]
    empty: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    overlaps: list[tuple[str, str, int]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Writing.

def reference_grid(reference: Volume | str | Path) -> tuple[Geometry, DicomSeriesRef | None]:
    """Grid and DICOM identity of a reference series; a path is read from its headers only."""
    if isinstance(reference, Volume):
        return reference.geometry, reference.dicom
    return read_series_grid(reference)


def reference_series(reference: Volume | str | Path, labels: LabelMap
                     ) -> tuple[Geometry, DicomSeriesRef]:
    """The grid ``labels`` were drawn on and the DICOM identity of its series.

    Raises:
        InvalidInputError: unreadable series, or a Volume without a DICOM identity.
        GeometryMismatchError: the grids differ, or the labels carry another Frame of Reference.
    """
    geometry, ref = reference_grid(reference)
    if ref is None:
        raise InvalidInputError(
            "the reference image has no DICOM series (it came from NIfTI/NRRD/HDF5); pass "
            "write_reference_to=FOLDER to write a matching DICOM series, or reference one")
    if len(ref.sop_instance_uids) != geometry.shape[0]:
        raise InvalidInputError(
            f"reference series {ref.series_instance_uid}: {len(ref.sop_instance_uids)} SOP "
            f"instance UIDs for {geometry.shape[0]} slices")
    require_same_grid(geometry, labels.geometry, "label map")
    frame = labels.geometry.frame_of_reference_uid
    if frame and frame != ref.frame_of_reference_uid:
        raise GeometryMismatchError(f"label map is in Frame of Reference {frame}, the reference "
                                    f"series in {ref.frame_of_reference_uid}")
    return geometry, ref


def _element(tag: int, value: bytes, pad: bytes = b" ") -> bytes:
    """One element in Implicit VR Little Endian: tag, 4-byte length, value of even length."""
    if len(value) % 2:
        value += pad
    return _ELEMENT_HEADER.pack(tag >> 16, tag & 0xFFFF, len(value)) + value


def _items(encoded: list[bytes]) -> bytes:
    """The value of a defined-length sequence: each encoded item behind an item header."""
    return b"".join(_ELEMENT_HEADER.pack(0xFFFE, 0xE000, len(i)) + i for i in encoded)


def _item() -> Dataset:
    """A sequence item marked as already in the file's encoding, so that pydicom's writer does
    not re-walk every nested contour item to correct ambiguous VRs (there are none)."""
    item = Dataset()
    item.set_original_encoding(True, True, default_encoding)
    return item


def _image_ref(sop_class: str, sop_uid: str) -> Dataset:
    item = _item()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_uid
    return item


def _bounding_boxes(array: np.ndarray, max_label: int) -> list[tuple[slice, ...] | None]:
    """``ndimage.find_objects`` restricted to the box holding any label: 4x faster on a CT
    where the organs fill a small part of the grid."""
    planes = array.reshape(array.shape[0], -1).max(axis=1)
    zs = np.flatnonzero(planes)
    if zs.size == 0:
        return [None] * max_label
    plane = array[zs[0]:zs[-1] + 1].max(axis=0)
    ys, xs = np.flatnonzero(plane.max(axis=1)), np.flatnonzero(plane.max(axis=0))
    offset = (zs[0], ys[0], xs[0])
    sub = array[zs[0]:zs[-1] + 1, ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1]
    return [None if box is None else tuple(slice(s.start + o, s.stop + o)
                                           for s, o in zip(box, offset))
            for box in ndimage.find_objects(sub, max_label=max_label)]


def _organ_contours(crop: np.ndarray, geometry: Geometry, box: tuple[slice, ...],
                    sop_class: str, sop_uids: tuple[str, ...]) -> tuple[RawDataElement, int]:
    """The ContourSequence of one organ (one CLOSED_PLANAR item per polygon) and its length.

    The items are encoded here as bytes and handed to pydicom as one raw element: building
    thousands of contour items as validated pydicom objects would take most of the write time.
    Points are written to 0.0001 mm. Implicit VR has 4-byte lengths, so a long contour never
    meets the 64 KiB limit that Explicit VR puts on a DS value. ``crop`` is the structure's
    boolean mask inside ``box`` of ``geometry``.
    """
    z0, y0, x0 = (s.start for s in box)
    items: list[bytes] = []
    for dz in range(crop.shape[0]):
        polygons = mask_to_polygons(crop[dz])
        if not polygons:
            continue
        k = z0 + dz
        rc = np.concatenate(polygons)
        xyz = np.column_stack([rc[:, 1] + x0, rc[:, 0] + y0, np.full(len(rc), k, float)])
        lps = geometry.index_to_physical(xyz)
        image = _element(CONTOUR_IMAGES, _items([
            _element(0x00081150, sop_class.encode(), b"\0")
            + _element(0x00081155, sop_uids[k].encode(), b"\0")]))
        for points in np.split(lps, np.cumsum([len(p) for p in polygons])[:-1]):
            data = "\\".join(map("{:.4f}".format, points.ravel().tolist())).encode()
            items.append(image + _element(GEOMETRIC_TYPE, b"CLOSED_PLANAR")
                         + _element(N_POINTS, str(len(points)).encode())
                         + _element(CONTOUR_NUMBER, str(len(items) + 1).encode())
                         + _element(CONTOUR_DATA, data))
    value = _items(items)
    return RawDataElement(CONTOUR_SEQUENCE, "SQ", len(value), value, 0, True, True), len(items)


def _header(ref: DicomSeriesRef, series_description: str) -> Dataset:
    header = ref.header if ref.header is not None else Dataset()
    date, now = now_date_time()
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword in _PATIENT_STUDY_KEYWORDS:
        setattr(ds, keyword, header.get(keyword, ""))
    ds.StudyInstanceUID = ref.study_instance_uid
    ds.FrameOfReferenceUID = ref.frame_of_reference_uid
    ds.PositionReferenceIndicator = header.get("PositionReferenceIndicator", "")
    ds.InstanceCreationDate = ds.StructureSetDate = ds.SeriesDate = date
    ds.InstanceCreationTime = ds.StructureSetTime = ds.SeriesTime = now
    ds.SOPClassUID = RTStructureSetStorage
    ds.SOPInstanceUID = make_uid(None, None)
    ds.Modality = "RTSTRUCT"
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MANUFACTURER
    ds.SoftwareVersions = pydicom.__version__
    ds.SeriesDescription = series_description[:64]
    ds.OperatorsName = ""
    ds.SeriesInstanceUID = make_uid(None, None)
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.StructureSetLabel = "autocontour"
    ds.StructureSetName = series_description[:64]
    ds.ApprovalStatus = "UNAPPROVED"  # automatic contours must be reviewed before planning
    images = Sequence([_image_ref(ref.sop_class_uid, uid) for uid in ref.sop_instance_uids])
    series = _item()
    series.SeriesInstanceUID = ref.series_instance_uid
    series.ContourImageSequence = images
    study = _item()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # the study, as RT objects cite it
    study.ReferencedSOPInstanceUID = ref.study_instance_uid
    study.RTReferencedSeriesSequence = [series]
    frame = _item()
    frame.FrameOfReferenceUID = ref.frame_of_reference_uid
    frame.RTReferencedStudySequence = [study]
    ds.ReferencedFrameOfReferenceSequence = [frame]
    return ds


def write_rtstruct(labels: LabelMap, reference: Volume | str | Path, path: str | Path, *,
                   organs: list[str] | None = None, series_description: str = "autocontour",
                   overwrite: bool = False, write_reference_to: str | Path | None = None,
                   allow_empty: bool = False,
                   extra: Sequence_[tuple[Organ, np.ndarray]] = ()) -> RTStructWriteReport:
    """Write ``labels`` as an RT Structure Set referencing the series they were drawn on.

    Args:
        labels: label map on the reference grid, array (z, y, x).
        reference: the image series (a Volume with ``dicom`` set, or a folder/zip to read).
        path: output .dcm file; written to a temporary file and renamed into place.
        organs: names to write (default: every organ of the set); empty ones are skipped.
        write_reference_to: for a reference without DICOM identity (read from NIfTI, NRRD,
            HDF5): a folder that receives a matching DICOM series (CT unless the volume says
            MR), which the RTSTRUCT then references, so a planning system can import both.
        allow_empty: write the file even when no requested organ has a voxel (a structure set
            without ROIs); by default that is an error, so that an empty result is never
            imported into a planning system as if it were one.
        extra: structures that overlap the organs and so cannot be labels of the map, each an
            organ (name, colour, RT ROI interpreted type) and a boolean mask on the label grid:
            the body outline (``External``). Their ROI numbers follow the organs'.

    Returns:
        RTStructWriteReport with the ROIs written and the organs left out as empty.

    Raises:
        GeometryMismatchError: the label grid differs from the reference (says which part).
        UnknownOptionError: a requested organ is not in the label map's organ set.
        OutputExistsError: ``path`` exists and ``overwrite`` is False (nothing written).
        EmptyStructureError: no requested organ has a voxel and ``allow_empty`` is False
            (nothing written, not even the ``write_reference_to`` series).
        InvalidInputError: the reference is not a DICOM series.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists; pass overwrite=True to replace it (nothing "
                                "written)")
    wanted = list(labels.organs) if organs is None else [
        labels.organs.by_name(n) for n in dict.fromkeys(organs)]
    for organ, mask in extra:
        if mask.shape != labels.shape:
            raise GeometryMismatchError(f"{organ.name}: mask of shape {mask.shape}, the label "
                                        f"map's is {labels.shape}")
    boxes = _bounding_boxes(labels.array, max(labels.organs.labels))
    if not allow_empty and all(boxes[organ.label - 1] is None for organ in wanted):
        what = (f"every requested organ is empty ({', '.join(o.name for o in wanted)})" if wanted
                else "no organ was requested")
        raise EmptyStructureError(f"{path}: no ROI to write: {what}; nothing written (pass "
                                  "allow_empty=True for an RT Structure Set without ROIs)")
    if write_reference_to is not None and isinstance(reference, Volume) and reference.dicom is None:
        require_same_grid(reference.geometry, labels.geometry, "label map")
        series = write_dicom_series(reference, write_reference_to,
                                    modality=reference.modality or "CT", overwrite=overwrite)
        frame = replace(reference.geometry, frame_of_reference_uid=series.frame_of_reference_uid)
        reference = replace(reference, geometry=frame, dicom=series)
        labels = replace(labels, geometry=frame)
    _, ref = reference_series(reference, labels)
    ds = _header(ref, series_description)
    roi_seq, contour_seq, obs_seq, written, empty = Sequence(), Sequence(), Sequence(), [], []
    n_contours = 0
    next_number = max(labels.organs.labels) + 1
    structures = [(o, o.label, boxes[o.label - 1], None) for o in wanted]
    for organ, mask in extra:
        found = ndimage.find_objects(mask.view(np.uint8), max_label=1)
        structures.append((organ, next_number, found[0] if found else None, mask))
        next_number += 1
    for organ, number, box, mask in structures:
        if box is None:
            empty.append(organ.name)
            continue
        roi = _item()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = ref.frame_of_reference_uid
        roi.ROIName = organ.name
        roi.ROIGenerationAlgorithm = "AUTOMATIC"
        roi_seq.append(roi)
        contours = _item()
        contours.ROIDisplayColor = list(organ.color)
        crop = labels.array[box] == organ.label if mask is None else mask[box]
        contours[CONTOUR_SEQUENCE], count = _organ_contours(
            crop, labels.geometry, box, ref.sop_class_uid, ref.sop_instance_uids)
        contours.ReferencedROINumber = number
        contour_seq.append(contours)
        n_contours += count
        obs = _item()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = organ.interpreted_type
        obs.ROIInterpreter = ""
        obs_seq.append(obs)
        written.append(organ.name)
    ds.StructureSetROISequence = roi_seq
    ds.ROIContourSequence = contour_seq
    ds.RTROIObservationsSequence = obs_seq
    ds.file_meta = file_meta(ds.SOPClassUID, ds.SOPInstanceUID, ImplicitVRLittleEndian)
    ds.set_original_encoding(True, True, convert_encodings(ds.SpecificCharacterSet))
    atomic_save(ds, path)
    return RTStructWriteReport(path, written, empty, n_contours)


# ---------------------------------------------------------------------------------------------
# Reading.

def guess_organ_set(names: list[str]) -> OrganSet:
    """The known organ set that maps the most of ``names`` (the first listed on a tie)."""
    return max(ORGAN_SETS.values(), key=lambda s: len(s.match(names).mapped))


def read_structure_set(path: Path) -> Dataset:
    """Read and check an RTSTRUCT file.

    Raises:
        InvalidInputError: unreadable, truncated (a value shorter than its declared length, as
            pydicom reads a cut file without complaint), not an RT Structure Set, or missing the
            ROI sequences.
    """
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file")
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, EOFError, OSError, ValueError, struct.error) as exc:
        raise InvalidInputError(f"{path}: not a readable DICOM file ({exc})") from exc
    for tag in ds.keys():  # noqa: SIM118 (iterating a Dataset parses the raw elements)
        elem: RawDataElement | DataElement = ds.get_item(tag)
        if (isinstance(elem, RawDataElement) and elem.length != 0xFFFFFFFF
                and len(elem.value or b"") < elem.length):
            raise InvalidInputError(
                f"{path}: truncated or corrupt DICOM file: element {elem.tag} declares "
                f"{elem.length} bytes, the file holds {len(elem.value or b'')}")
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class != RTStructureSetStorage:
        name = UID(sop_class).name if sop_class else "none"
        raise InvalidInputError(f"{path}: not an RT Structure Set: SOP class {name} "
                                f"({sop_class or '-'}), modality {ds.get('Modality', '-')}")
    for keyword in ("StructureSetROISequence", "ROIContourSequence"):
        if keyword not in ds:
            raise InvalidInputError(f"{path}: RT Structure Set without {keyword} (truncated or "
                                    "incomplete file)")
    return ds


def _contour_points(item: Dataset, roi: str, path: Path) -> np.ndarray:
    """(N, 3) LPS points of one contour, parsed straight from the raw DS bytes when possible."""
    elem = item.get_item(CONTOUR_DATA)
    if elem is None or elem.value in (None, b"", ""):
        raise InvalidInputError(f"{path}: ROI {roi!r} has a contour without ContourData")
    value = elem.value
    try:
        if isinstance(value, bytes):
            values = np.array(value.split(b"\\"), dtype=float)
        else:
            values = np.atleast_1d(np.asarray(value, dtype=float))
    except ValueError as exc:
        raise InvalidInputError(f"{path}: ROI {roi!r} has unreadable ContourData ({exc})") from exc
    if values.size % 3 or not np.all(np.isfinite(values)):
        raise InvalidInputError(f"{path}: ROI {roi!r} has ContourData of {values.size} values, "
                                "not finite (x, y, z) triples")
    return values.reshape(-1, 3)


def _rasterise(roi: str, items: list[Dataset], g: Geometry, path: Path
               ) -> tuple[tuple[slice, ...], np.ndarray] | None:
    """Even-odd fill of one ROI's closed contours: (bounding box, cropped mask) or None."""
    planes: dict[int, list[np.ndarray]] = {}
    for item in items:
        points = _contour_points(item, roi, path)
        index = g.physical_to_index(points)
        k = round(float(index[:, 2].mean()))
        if np.abs(index[:, 2] - k).max() > PLANE_TOLERANCE or not 0 <= k < g.shape[0]:
            raise InvalidInputError(
                f"{path}: ROI {roi!r} has a contour at {np.round(points[0], 2).tolist()} mm that "
                f"is not on a slice of the reference image (slice index {index[0, 2]:.2f} of "
                f"0..{g.shape[0] - 1}); the structure set belongs to another image grid")
        planes.setdefault(k, []).append(index[:, 1::-1])  # (row, col)
    if not planes:
        return None
    rc = np.concatenate([p for polys in planes.values() for p in polys])
    r0, c0 = np.maximum(np.floor(rc.min(axis=0)).astype(int), 0)
    r1, c1 = np.minimum(np.ceil(rc.max(axis=0)).astype(int) + 1, g.shape[1:])
    k0, k1 = min(planes), max(planes) + 1
    if r1 <= r0 or c1 <= c0:
        return None
    crop = np.zeros((k1 - k0, r1 - r0, c1 - c0), dtype=bool)
    for k, polys in planes.items():
        crop[k - k0] = fill_polygons(crop.shape[1:], [p - (r0, c0) for p in polys])
    if not crop.any():
        return None
    return (slice(k0, k1), slice(r0, r1), slice(c0, c1)), crop


def _overlaps(masks: list[tuple[str, tuple[slice, ...], np.ndarray]]
              ) -> list[tuple[str, str, int]]:
    """(larger, smaller, voxels in both) for every overlapping pair; ``masks`` is largest first."""
    def part(crop: np.ndarray, box: tuple[slice, ...], region: list[slice]) -> np.ndarray:
        return crop[tuple(slice(r.start - b.start, r.stop - b.start) for r, b in zip(region, box))]

    found = []
    for i, (name_a, box_a, crop_a) in enumerate(masks):
        for name_b, box_b, crop_b in masks[i + 1:]:
            both = [slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(box_a, box_b)]
            if all(r.stop > r.start for r in both):
                count = int(np.count_nonzero(part(crop_a, box_a, both) & part(crop_b, box_b, both)))
                if count:
                    found.append((name_a, name_b, count))
    return found


def read_rtstruct(rtstruct_path: str | Path, reference: Volume | str | Path,
                  organs: OrganSet | str | None = None) -> tuple[LabelMap, RTStructReadReport]:
    """Rasterise an RTSTRUCT onto the grid of the image series it was drawn on.

    Contours on one slice are combined by XOR (holes, islands in holes); a voxel belongs to a
    contour when its centre is inside it or on its edge (see ``contours.fill_polygons``). ROI names are mapped with ``OrganSet.match``; where
    organs overlap the smaller one wins and the pair is reported.

    Args:
        rtstruct_path: the RTSTRUCT file.
        reference: the image series (Volume, or folder/zip read with ``read_dicom_series``).
        organs: organ set (or its name); default: the known set that maps the most ROI names.

    Returns:
        (label map on the reference grid (z, y, x), report of mapped/unmapped/empty ROIs).

    Raises:
        InvalidInputError: unreadable/truncated file, not an RTSTRUCT, or a contour off the
            reference slices (the message names the ROI).
        GeometryMismatchError: the ROIs' Frame of Reference differs from the reference image's.
    """
    path = Path(rtstruct_path)
    ds = read_structure_set(path)
    grid, ref = reference_grid(reference)
    names = {int(r.ROINumber): str(r.get("ROIName", f"ROI {r.ROINumber}"))
             for r in ds.StructureSetROISequence}
    frame = grid.frame_of_reference_uid or (ref.frame_of_reference_uid if ref else None)
    for roi in ds.StructureSetROISequence:
        roi_frame = str(roi.get("ReferencedFrameOfReferenceUID", "") or "")
        if frame and roi_frame and roi_frame != frame:
            raise GeometryMismatchError(
                f"{path}: ROI {names[int(roi.ROINumber)]!r} is in Frame of Reference "
                f"{roi_frame}, the reference image is in {frame}: drawn on another scan")
    organ_set = guess_organ_set(list(names.values())) if organs is None else (
        get_organ_set(organs) if isinstance(organs, str) else organs)
    match = organ_set.match(list(names.values()))
    masks, empty, skipped = [], [], {}
    for roi_contours in ds.ROIContourSequence:
        name = names.get(int(roi_contours.ReferencedROINumber))
        if name not in match.mapped:
            continue
        items = list(roi_contours.get("ContourSequence", []))
        closed = [c for c in items if c.get("ContourGeometricType", "") == "CLOSED_PLANAR"]
        if len(closed) < len(items):
            kinds = sorted({str(c.get("ContourGeometricType", "?")) for c in items} -
                           {"CLOSED_PLANAR"})
            skipped[name] = f"{len(items) - len(closed)} {'/'.join(kinds)} contours ignored"
        result = _rasterise(name, closed, grid, path)
        if result is None:
            empty.append(name)
        else:
            masks.append((match.mapped[name], *result))
    drawn = {m[0] for m in masks}
    empty += [n for n in match.mapped if n not in empty and match.mapped[n] not in drawn]
    masks.sort(key=lambda m: -int(np.count_nonzero(m[2])))
    array = np.zeros(grid.shape, dtype=np.uint8)
    for organ_name, box, crop in masks:
        array[box][crop] = organ_set.by_name(organ_name).label
    labels = LabelMap(array, grid, organs=organ_set)
    report = RTStructReadReport(path, organ_set.name, dict(match.mapped), dict(match.unmapped),
                                empty, skipped, _overlaps(masks))
    return labels, report
