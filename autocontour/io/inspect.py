"""Describe what a file or folder holds without loading pixel data where it can be avoided.

Used by ``autocontour info``: image series (modality, size, spacing, orientation), RTSTRUCTs
(ROI names and the series they reference), SEGs, and files skipped with the reason.

The geometry of a DICOM series is the one the reader (``read_volume``, hence ``convert`` and
``predict``) produces: slices sorted along their normal, the origin that of voxel (0, 0, 0) of
the volume as read (not the first file's position), the slice step as read (for a single slice:
SpacingBetweenSlices, else SliceThickness). What the reader refuses or corrects is flagged:
missing slices (gaps), duplicate positions, non-uniform spacing, gantry tilt.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from autocontour.errors import InvalidInputError
from autocontour.io.formats import Format, detect_format, read_volume
from autocontour.io.volume import Geometry

if TYPE_CHECKING:
    from autocontour.io.dicom_series import SeriesInfo


def describe(path: str | Path) -> dict[str, Any]:
    """A JSON-serialisable description of ``path`` (see module docstring)."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt is not Format.DICOM:
        volume = read_volume(path)
        arr = volume.array
        out: dict[str, Any] = {"path": str(path), "format": fmt.value,
                               **_geometry(volume.geometry), "dtype": str(arr.dtype),
                               "min": float(arr.min()), "max": float(arr.max()),
                               "modality": volume.modality}
        if np.issubdtype(arr.dtype, np.integer):
            values = np.unique(arr)
            if len(values) <= 256:
                out["label_values"] = [int(v) for v in values if v != 0]
        return out
    from autocontour.io.dicom_series import scan
    if path.is_file() and not zipfile.is_zipfile(path):
        ds = _single(path)
        if "ImagePositionPatient" not in ds:  # a lone RTSTRUCT, SEG, ...
            return {"path": str(path), "format": "dicom", "objects": [_dicom_object(str(path), ds)]}
        # One slice: the reader reads its whole series from the folder, so that is described.
        uid = str(ds.get("SeriesInstanceUID", ""))
        series = [_series(s) for s in scan(path.parent, pixels=False).series
                  if s.series_instance_uid == uid]
        return {"path": str(path), "format": "dicom", "series": series}
    result = scan(path, pixels=False)
    series = [_series(s) for s in result.series]
    return {"path": str(path), "format": "dicom", "series": series,
            "objects": [_dicom_object(name, ds) for name, ds in result.other_dicom],
            "skipped": [{"file": f, "why": why} for f, why in result.skipped
                        if not why.startswith("not an image slice")]}


def _single(path: Path) -> Dataset:
    """The header of one DICOM file."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many types for damaged files
        raise InvalidInputError(f"{path}: corrupt or truncated DICOM file ({exc})") from exc


def _series(s: SeriesInfo) -> dict[str, Any]:
    """One image series: the geometry the reader gives it, and what the reader would refuse.

    ``issues`` lists every gap, duplicate position, non-uniform step and gantry tilt (each a
    ``kind`` and a ``message``); ``refused`` is the reader's own error when it refuses the series
    (``convert`` and ``predict`` fail with it), else None. When refused, the geometry shown is
    the one the series would have without the problem (sorted slices, median step).
    """
    from autocontour.io.dicom_series import series_geometry

    first = s.slices[0].dataset
    refused = None
    try:
        geometry = series_geometry(s)  # exactly the reader's grid (headers only)
    except InvalidInputError as exc:
        refused = str(exc)
        geometry = _unchecked_geometry(s)
    return {"series_number": s.series_number, "series_instance_uid": s.series_instance_uid,
            "modality": s.modality, "description": s.description,
            "patient_position": str(first.get("PatientPosition", "")), "slices": len(s.slices),
            **_geometry(geometry), "issues": _slice_issues(s), "refused": refused}


def _sorted_slices(s: SeriesInfo) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row direction, column direction, positions along the normal) of the slices sorted as the
    reader sorts them, and the in-plane drift (mm) of each from the first."""
    iop = s.slices[0].orientation
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    ordered = sorted(s.slices, key=lambda sl: float(sl.position @ normal))
    depth = np.array([sl.position @ normal for sl in ordered])
    offsets = np.array([sl.position - ordered[0].position for sl in ordered])
    drift = np.column_stack([offsets @ row, offsets @ col])
    return np.column_stack([row, col, normal]), depth, drift


def _unchecked_geometry(s: SeriesInfo) -> Geometry:
    """The grid of a series the reader refuses, as it would be without the problem."""
    direction, depth, _ = _sorted_slices(s)
    first = s.slices[0].dataset
    steps = np.diff(depth)
    steps = steps[steps > 1e-3]
    dz = float(np.median(steps)) if len(steps) else float(
        first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1.0)
    lowest = min(s.slices, key=lambda sl: float(sl.position @ direction[:, 2]))
    row_spacing, col_spacing = (float(v) for v in first.PixelSpacing)
    return Geometry((len(s.slices), s.rows, s.columns), (col_spacing, row_spacing, dz),
                    tuple(float(v) for v in lowest.position), tuple(direction.ravel()))


def _slice_issues(s: SeriesInfo) -> list[dict[str, Any]]:
    """Every missing slice (gap), duplicate position, non-uniform step and gantry tilt, with the
    reader's thresholds."""
    from autocontour.io.dicom_series import GAP_FACTOR, TILT_TOLERANCE_MM, UNIFORM_TOLERANCE

    issues: list[dict[str, Any]] = []
    if len(s.slices) < 2:
        return issues
    _, depth, drift = _sorted_slices(s)
    steps = np.diff(depth)
    duplicates = steps < 1e-3
    if duplicates.any():
        issues.append({"kind": "duplicate position", "message": (
            f"{int(duplicates.sum())} slice(s) at the position of another (duplicates or two "
            f"series mixed), first at {depth[int(np.argmax(duplicates))]:.2f} mm")})
    real = steps[~duplicates]
    if not len(real):
        return issues
    median = float(np.median(real))
    gaps = [(float(depth[k]), float(step)) for k, step in enumerate(steps)
            if step > GAP_FACTOR * median]
    for after, step in gaps:
        missing = round(step / median) - 1
        issues.append({"kind": "missing slices", "after_mm": round(after, 3),
                       "gap_mm": round(step, 3), "missing": missing, "message": (
                           f"~{missing} slice(s) missing after {after:.2f} mm: a gap of "
                           f"{step:.2f} mm where slices are {median:.2f} mm apart")})
    regular = real[real <= GAP_FACTOR * median]
    if len(regular) and np.abs(regular - median).max() > UNIFORM_TOLERANCE * median:
        issues.append({"kind": "non-uniform spacing", "min_mm": round(float(regular.min()), 3),
                       "max_mm": round(float(regular.max()), 3), "message": (
                           f"slice steps from {regular.min():.2f} to {regular.max():.2f} mm "
                           f"({median:.2f} mm median)")})
    if np.abs(drift).max() > TILT_TOLERANCE_MM and depth[-1] > depth[0]:
        tilt = float(np.degrees(np.arctan2(np.abs(drift[-1]).max(), depth[-1] - depth[0])))
        issues.append({"kind": "gantry tilt", "degrees": round(tilt, 2), "message": (
            f"gantry tilt of ~{tilt:.1f} deg: the reader resamples the slices onto an "
            "orthogonal grid (origin of the first slice)")})
    return issues


def _geometry(g: Geometry) -> dict[str, Any]:
    z, y, x = g.shape
    return {"size_xyz": [x, y, z], "spacing_mm": [round(s, 4) for s in g.spacing],
            "origin_mm": [round(o, 3) for o in g.origin], "orientation": g.orientation_code,
            "axial": g.is_axial}


def _dicom_object(name: str, ds: Dataset) -> dict[str, Any]:
    out: dict[str, Any] = {"file": name, "modality": str(ds.get("Modality", "")),
                           "sop_class": getattr(ds.get("SOPClassUID"), "name", "")}
    if out["modality"] == "RTSTRUCT":
        contours = {int(c.ReferencedROINumber): len(c.get("ContourSequence", []))
                    for c in ds.get("ROIContourSequence", [])}
        out["rois"] = [{"number": int(r.ROINumber), "name": str(r.ROIName),
                        "contours": contours.get(int(r.ROINumber), 0)}
                       for r in ds.get("StructureSetROISequence", [])]
        refs = [s.SeriesInstanceUID for f in ds.get("ReferencedFrameOfReferenceSequence", [])
                for st in f.get("RTReferencedStudySequence", [])
                for s in st.get("RTReferencedSeriesSequence", [])]
        out["referenced_series"] = refs
    elif out["modality"] == "SEG":
        out["segments"] = [str(s.SegmentLabel) for s in ds.get("SegmentSequence", [])]
    return out


def format_description(info: dict[str, Any]) -> str:
    """Human-readable lines for ``describe``'s result."""
    lines = [f"{info['path']} ({info['format']})"]

    def geo(d: dict[str, Any]) -> str:
        return (f"{'x'.join(map(str, d['size_xyz']))} voxels, spacing "
                f"{'x'.join(f'{s:g}' for s in d['spacing_mm'])} mm, orientation {d['orientation']}"
                f"{'' if d['axial'] else ' (not axial)'}, origin {d['origin_mm']}")
    if "size_xyz" in info:
        lines.append(f"  {info.get('modality') or 'image'}: {geo(info)}")
        lines.append(f"  {info['dtype']}, values {info['min']:g} .. {info['max']:g}")
        if info.get("label_values"):
            lines.append(f"  label values: {info['label_values']}")
    for s in info.get("series", []):
        lines.append(f"  series {s['series_number']}: {s['modality']} "
                     f"{s['description'] or '(no description)'} {s['patient_position']}".rstrip())
        lines.append(f"    {geo(s)}")
        lines.append(f"    UID {s['series_instance_uid']}")
        for issue in s.get("issues", []):
            lines.append(f"    ! {issue['kind']}: {issue['message']}")
        if s.get("refused"):
            lines.append(f"    ! convert and predict refuse this series: {s['refused']}")
    for o in info.get("objects", []):
        lines.append(f"  {o['modality'] or 'DICOM'} {o['file']}")
        for r in o.get("rois", []):
            lines.append(f"    ROI {r['number']:>3} {r['name']} ({r['contours']} contours)")
        if o.get("segments"):
            lines.append(f"    segments: {', '.join(o['segments'])}")
    if info.get("skipped"):
        lines.append(f"  skipped {len(info['skipped'])} file(s): "
                     + "; ".join(f"{s['file']} ({s['why']})" for s in info["skipped"][:5]))
    return "\n".join(lines)
