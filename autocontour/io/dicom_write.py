"""Write a Volume as a DICOM CT or MR image series (one file per slice).

Needed when a user has only NIfTI/HDF5: a planning system must import the CT together with our
RTSTRUCT, and an RTSTRUCT can only reference real DICOM image instances. Geometry comes from the
Volume exactly (any direction: feet-first, prone, oblique), so contours drawn on the Volume land
on the right voxels. UIDs are random, or deterministic when ``uid_seed`` is given (reproducible
test data and re-exports).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    PYDICOM_ROOT_UID,
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from autocontour.errors import InvalidInputError, OutputExistsError, UnknownOptionError
from autocontour.io.volume import DicomSeriesRef, Geometry, Volume

MANUFACTURER = "autocontour"
_SOP_CLASSES = {"CT": CTImageStorage, "MR": MRImageStorage}
_POSITIONS = ("HFS", "FFS", "HFP", "FFP", "HFDL", "HFDR", "FFDL", "FFDR")


def make_uid(uid_root: str | None, uid_seed: str | None, *parts: object) -> UID:
    """A DICOM UID under ``uid_root``: random, or a hash of ``uid_seed`` and ``parts``."""
    root = uid_root or PYDICOM_ROOT_UID
    if not root.endswith("."):
        root += "."
    if uid_seed is None:
        return generate_uid(root)
    return generate_uid(root, [str(uid_seed), *map(str, parts)])


def now_date_time() -> tuple[str, str]:
    """Current local date and time as DICOM DA and TM strings."""
    now = dt.datetime.now()
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S")


def format_ds(values: np.ndarray | list[float]) -> list[str]:
    """Decimal strings of at most 16 characters (the DS limit), as precise as that allows."""
    return [format_number_as_ds(float(v)) for v in np.asarray(values, dtype=float).ravel()]


def file_meta(sop_class: str, sop_instance: str, transfer_syntax: str) -> FileMetaDataset:
    """The file meta information group of a DICOM file written by autocontour."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def temporary_sibling(path: Path, suffix: str = ".tmp") -> Path:
    """A new name beside ``path`` for a file or folder that is written, then renamed into place.

    The name is only chosen, not created: whatever creates it (``open``, ``mkdir``) gives it the
    mode the user's umask allows, like any other file, whereas ``tempfile.mkstemp``/``mkdtemp``
    create 0600/0700, which an import service running as another user cannot read.
    """
    return path.with_name(f".{path.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:12]}{suffix}")


def atomic_save(dataset: Dataset, path: Path) -> None:
    """Save a pydicom/highdicom dataset through a temporary file renamed into place, so that a
    failure never leaves a half-written file where a complete one is expected. The file's mode
    follows the umask (see :func:`temporary_sibling`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        dataset.save_as(tmp, enforce_file_format=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _stored_values(array: np.ndarray, modality: str) -> tuple[np.ndarray, float, float]:
    """Stored int16/uint16 pixels and (slope, intercept) such that value = stored*slope+intercept.

    CT values are rounded to whole HU (CT scanners store integers); MR values that are not
    integers are scaled linearly onto the full uint16 range.
    """
    values = np.asarray(array)
    if not np.all(np.isfinite(values)):
        raise InvalidInputError("the volume holds NaN or infinite values; DICOM cannot store them")
    if modality == "CT" and not np.issubdtype(values.dtype, np.integer):
        values = np.rint(values)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    integral = np.issubdtype(values.dtype, np.integer) or bool(np.all(values == np.rint(values)))
    if integral and lo >= -32768 and hi <= 32767:
        return values.astype(np.int16), 1.0, 0.0
    if integral and lo >= 0 and hi <= 65535:
        return values.astype(np.uint16), 1.0, 0.0
    slope = (hi - lo) / 65535.0 or 1.0
    stored = np.rint((values - lo) / slope).clip(0, 65535).astype(np.uint16)
    return stored, slope, lo


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"{out_dir}: exists and is not a folder; nothing was written")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise OutputExistsError(
            f"{out_dir}: folder is not empty; pass overwrite=True to replace it (nothing written)")
    foreign = [p.name for p in out_dir.iterdir() if not (p.is_file() and p.suffix == ".dcm")]
    if foreign:
        raise OutputExistsError(
            f"{out_dir}: holds {foreign[:3]} besides .dcm files; refusing to replace a folder "
            "that is not an image series (nothing written)")


def _install(tmp: Path, out_dir: Path) -> None:
    """Move the finished series from ``tmp`` into ``out_dir``, replacing what was there."""
    if out_dir.is_dir():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)


def _base_dataset(volume: Volume, modality: str, patient_id: str, patient_name: str,
                  study_uid: str, series_uid: str, frame_uid: str, series_description: str,
                  series_number: int, patient_position: str) -> Dataset:
    date, time = now_date_time()
    g = volume.geometry
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"] if modality == "CT" else [
        "DERIVED", "SECONDARY", "OTHER"]
    ds.SOPClassUID = _SOP_CLASSES[modality]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = time
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.Manufacturer = MANUFACTURER
    ds.InstitutionName = ""
    ds.ReferringPhysicianName = ""
    ds.StationName = ""
    ds.SeriesDescription = series_description[:64]
    ds.ManufacturerModelName = MANUFACTURER
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.SoftwareVersions = pydicom.__version__
    if modality == "CT":
        ds.KVP = ""
    else:
        ds.ScanningSequence = "RM"  # research mode: the sequence is not known
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "3D"
        ds.EchoTime = ""
        ds.RepetitionTime = ""
        ds.EchoTrainLength = ""
        ds.MagneticFieldStrength = ""
    ds.SliceThickness = format_ds([g.spacing[2]])[0]
    ds.PatientPosition = patient_position
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.AcquisitionNumber = 1
    ds.PatientOrientation = ""
    ds.ImageLaterality = "B"  # axial cross-sections hold both sides of the body
    ds.ImageOrientationPatient = format_ds(g.direction_matrix[:, :2].T)
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = g.shape[1], g.shape[2]
    # DICOM order: spacing between rows (y), then between columns (x).
    ds.PixelSpacing = format_ds([g.spacing[1], g.spacing[0]])
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    return ds


def _place(ds: Dataset, geometry: Geometry, k: int, uid: str) -> None:
    """Make ``ds`` the header of slice ``k``: its UID, number and position."""
    position = geometry.slice_origin(k)
    ds.SOPInstanceUID = uid
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = format_ds(position)
    ds.SliceLocation = format_ds([float(position @ geometry.slice_normal)])[0]


def write_dicom_series(volume: Volume, out_dir: str | Path, *, modality: str = "CT",
                       patient_id: str = "ANONYMOUS", patient_name: str = "Anonymous^Patient",
                       study_instance_uid: str | None = None,
                       series_description: str = "autocontour", series_number: int = 1,
                       patient_position: str = "HFS", overwrite: bool = False,
                       uid_root: str | None = None, uid_seed: str | None = None,
                       patient_sex: str = "") -> DicomSeriesRef:
    """Write ``volume`` as one DICOM file per z slice (CT or MR Image IOD).

    Values are stored as int16/uint16 with RescaleSlope/Intercept (see ``_stored_values``).
    ImagePositionPatient of slice k is ``origin + direction[:, 2] * spacing_z * k``, so the
    Volume's geometry is kept for any direction. The Frame of Reference UID is the volume's own
    when it has one. The series is written to a temporary sibling folder and moved into place.

    Args:
        volume: the image, array (z, y, x).
        out_dir: folder to create, or (``overwrite=True``) a folder of .dcm files to replace.
        modality: "CT" or "MR".
        patient_position: DICOM PatientPosition written with the series (e.g. "HFS").
        uid_root: UID prefix (default pydicom's root).
        uid_seed: makes every UID a hash of it (one seed per case: same seed, same UIDs).
        patient_sex: DICOM PatientSex: "M", "F", "O" or "" (unknown).

    Returns:
        The written series; ``sop_instance_uids`` and ``files`` follow the array's z order.

    Raises:
        UnknownOptionError: modality or patient position not known.
        OutputExistsError: ``out_dir`` is not empty and ``overwrite`` is False, or it holds
            more than .dcm files (never deleted).
        InvalidInputError: the volume holds NaN/inf.
    """
    modality = modality.upper()
    if modality not in _SOP_CLASSES:
        raise UnknownOptionError(f"modality {modality!r} is not one of {sorted(_SOP_CLASSES)}")
    if patient_position not in _POSITIONS:
        raise UnknownOptionError(
            f"patient position {patient_position!r} is not one of {list(_POSITIONS)}")
    if patient_sex not in ("M", "F", "O", ""):
        raise UnknownOptionError(f"patient sex {patient_sex!r} is not one of M, F, O or ''")
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    stored, slope, intercept = _stored_values(volume.array, modality)

    study_uid = study_instance_uid or make_uid(uid_root, uid_seed, "study")
    series_uid = make_uid(uid_root, uid_seed, "series", modality, series_number)
    frame_uid = volume.geometry.frame_of_reference_uid or make_uid(uid_root, uid_seed, "frame")
    ds = _base_dataset(volume, modality, patient_id, patient_name, study_uid, series_uid,
                       frame_uid, series_description, series_number, patient_position)
    ds.PatientSex = patient_sex
    ds.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
    if modality == "CT" or (slope, intercept) != (1.0, 0.0):
        # MR IODs expect no Modality LUT: written only when values would otherwise be lost.
        ds.RescaleIntercept = format_ds([intercept])[0]
        ds.RescaleSlope = format_ds([slope])[0]
    if modality == "CT":
        ds.RescaleType = "HU"
        ds.WindowCenter, ds.WindowWidth = "40", "400"
    else:
        lo, hi = float(volume.array.min()), float(volume.array.max())
        ds.WindowCenter, ds.WindowWidth = format_ds([(lo + hi) / 2, max(hi - lo, 1.0)])
    meta = ds.file_meta = file_meta(ds.SOPClassUID, "", ExplicitVRLittleEndian)

    g = volume.geometry
    uids = [make_uid(uid_root, uid_seed, "image", series_uid, k) for k in range(g.shape[0])]
    names = [f"{modality}_{k + 1:04d}.dcm" for k in range(g.shape[0])]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(out_dir, "")
    tmp.mkdir()  # not tempfile.mkdtemp (0700): the series folder follows the umask
    try:
        for k in range(g.shape[0]):
            _place(ds, g, k, uids[k])
            meta.MediaStorageSOPInstanceUID = uids[k]
            ds.PixelData = np.ascontiguousarray(stored[k]).astype("<i2" if ds.PixelRepresentation
                                                                    else "<u2").tobytes()
            ds.save_as(tmp / names[k], enforce_file_format=True)
        _install(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    del ds.PixelData
    _place(ds, g, 0, uids[0])  # what remains is the pixel-less header of the first slice
    return DicomSeriesRef(study_uid, series_uid, frame_uid, str(ds.SOPClassUID), tuple(uids),
                          tuple(str(out_dir / n) for n in names), ds)
