"""Read a CT/MR series from a DICOM folder or zip, refusing what would put contours in the wrong place.

Slices are sorted by their position along the slice normal (never by file name or
InstanceNumber), rescale slope/intercept is applied per slice, and the geometry comes from
ImageOrientationPatient / ImagePositionPatient / PixelSpacing. What is checked, each with an error
that names the file: a missing slice (gap > 1.5x the median step), two slices at one position,
non-uniform spacing, orientation that changes between slices, truncated or corrupt files, several
series in one folder (listed, so the user can pick by UID or SeriesNumber). Gantry tilt is
resampled (each slice shifted in-plane onto an orthogonal grid) and reported in ``warnings``.
Files that are not DICOM (a README, a viewer program, ``autorun.inf``), DICOM objects that are not
CT/MR/PET slices (RTSTRUCT, RTPLAN, screenshots) and DICOMDIR indexes are skipped, and
``read_dicom_series`` lists them in ``warnings``.

A zip is read member by member in memory; nothing is ever extracted to disk. Members that could
be harmful if extracted are skipped and listed, never read: names that leave the archive's folder
(``../``) or are absolute, symbolic links, encrypted members, and archives inside the archive
(not opened). A zip whose members would expand to more than :data:`MAX_ZIP_BYTES` in all, or
whose compression ratio exceeds :data:`MAX_ZIP_RATIO` (a zip bomb), is refused before any member
is decompressed (both limits can also be passed to :func:`scan`).
"""

from __future__ import annotations

import io
import logging
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from scipy import ndimage

from autocontour.errors import InvalidInputError, MissingSliceError, MultipleSeriesError
from autocontour.io.volume import DicomSeriesRef, Geometry, Volume

log = logging.getLogger(__name__)

IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2": "CT",
    "1.2.840.10008.5.1.4.1.1.4": "MR",
    "1.2.840.10008.5.1.4.1.1.128": "PT",
}
MULTIFRAME_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR",
    "1.2.840.10008.5.1.4.1.1.128.1": "Enhanced PET",
}
PIXEL_DATA = 0x7FE00010
GAP_FACTOR = 1.5          # a step larger than this times the median step is a missing slice
UNIFORM_TOLERANCE = 0.05  # relative step variation accepted as rounding
TILT_TOLERANCE_MM = 0.05  # in-plane drift of slice origins below this is not a tilt
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage

#: Most bytes the members of one zip may expand to (a 512x512x600 CT series is ~0.3 GiB).
MAX_ZIP_BYTES = 4 * 1024**3
#: Highest compression ratio (uncompressed / compressed, over the members read) accepted; CT
#: slices compress 2-10:1, even blank ones stay far below this, a zip bomb is far above.
MAX_ZIP_RATIO = 200.0
#: Below this many uncompressed bytes the ratio is not judged (tiny zips compress oddly).
ZIP_RATIO_MIN_BYTES = 1024**2
#: Members with these suffixes are archives: skipped and listed, never opened.
ARCHIVE_SUFFIXES = (".zip", ".7z", ".rar", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz",
                    ".jar", ".cab", ".iso")
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class _Slice:
    source: str
    dataset: Dataset
    position: np.ndarray
    orientation: np.ndarray


@dataclass
class SeriesInfo:
    """One image series found in a folder or zip (what ``autocontour info`` lists)."""

    series_instance_uid: str
    series_number: int | None
    modality: str
    description: str
    rows: int
    columns: int
    slices: list[_Slice] = field(repr=False)

    def line(self) -> str:
        number = "-" if self.series_number is None else str(self.series_number)
        return (f"series {number}: {self.modality}, {len(self.slices)} slices of "
                f"{self.columns}x{self.rows}, {self.description or '(no description)'}, "
                f"UID {self.series_instance_uid}")


@dataclass
class ScanResult:
    """Everything found under a path: image series, and what was skipped with the reason."""

    series: list[SeriesInfo]
    skipped: list[tuple[str, str]]
    other_dicom: list[tuple[str, Dataset]]


def _iter_files(path: Path, skipped: list[tuple[str, str]], max_bytes: int | None = None,
                max_ratio: float | None = None) -> Iterator[tuple[str, bytes | Path]]:
    """(display name, file path or bytes) for every file under a folder or inside a zip.

    Zip members are read in memory (never extracted); members refused by :func:`_zip_members`
    go to ``skipped`` with the reason.
    """
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            yield str(f), f
    elif path.is_file() and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                for info in _zip_members(path, zf, skipped, max_bytes, max_ratio):
                    name = f"{path}!{info.filename}"
                    data = _read_member(path, zf, info)
                    if data[:4] == _ZIP_MAGIC:
                        skipped.append((name, "archive inside the archive, not opened"))
                        continue
                    yield name, data
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise InvalidInputError(f"{path}: damaged zip archive ({exc})") from exc
    elif path.is_file() and path.suffix.lower() == ".zip":
        raise InvalidInputError(f"{path}: not a zip archive (damaged, or another kind of file "
                                "named .zip)")
    elif path.is_file():
        yield str(path), path
    else:
        raise InvalidInputError(f"{path}: no such file or folder")


def _unsafe_name(filename: str) -> str | None:
    """Why a zip member's name would be unsafe to extract, or None when it is safe."""
    parts = filename.replace("\\", "/").split("/")
    if filename.startswith(("/", "\\")) or (len(filename) > 1 and filename[1] == ":"):
        return "absolute path, not read"
    if ".." in parts:
        return "name leaves the archive's folder (../), not read"
    return None


def _zip_members(path: Path, zf: zipfile.ZipFile, skipped: list[tuple[str, str]],
                 max_bytes: int | None, max_ratio: float | None) -> list[zipfile.ZipInfo]:
    """The members of ``zf`` to read; the others go to ``skipped``.

    Raises:
        InvalidInputError: the members to read would expand beyond ``max_bytes`` or their
            compression ratio exceeds ``max_ratio`` (checked before anything is decompressed).
    """
    max_bytes = MAX_ZIP_BYTES if max_bytes is None else max_bytes
    max_ratio = MAX_ZIP_RATIO if max_ratio is None else max_ratio
    members = []
    for info in zf.infolist():
        if info.is_dir():
            continue
        name = f"{path}!{info.filename}"
        mode = info.external_attr >> 16
        if why := _unsafe_name(info.filename):
            skipped.append((name, why))
        elif info.create_system == 3 and stat.S_ISLNK(mode):
            skipped.append((name, "symbolic link, not followed"))
        elif info.flag_bits & 0x1:
            skipped.append((name, "encrypted (password-protected), not read"))
        elif info.filename.lower().endswith(ARCHIVE_SUFFIXES):
            skipped.append((name, "archive inside the archive, not opened"))
        else:
            members.append(info)
    total = sum(i.file_size for i in members)
    packed = sum(i.compress_size for i in members)
    if total > max_bytes:
        raise InvalidInputError(
            f"{path}: its files would expand to {_size(total)}, more than the {_size(max_bytes)} "
            "allowed (a zip bomb?); nothing was extracted")
    if total >= ZIP_RATIO_MIN_BYTES and total > max_ratio * max(packed, 1):
        raise InvalidInputError(
            f"{path}: compressed {total / max(packed, 1):.0f}:1, more than the "
            f"{max_ratio:.0f}:1 allowed (a zip bomb?); nothing was extracted")
    return members


def _read_member(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The bytes of one member, never more than its stated size (in memory, nothing extracted)."""
    name = f"{path}!{info.filename}"
    try:
        with zf.open(info) as fh:
            return fh.read(info.file_size)
    except NotImplementedError as exc:  # e.g. Deflate64, written by some Windows tools
        raise InvalidInputError(f"{name}: compressed with a method that cannot be read "
                                f"({exc}); zip the files again with ordinary (deflate) "
                                "compression") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError) as exc:
        raise InvalidInputError(f"{name}: damaged zip member ({exc})") from exc


def _size(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


def _read(name: str, content: bytes | Path, pixels: bool = True) -> Dataset | None:
    """Parse one file; None for a file that is not DICOM at all (junk), error if DICOM but broken.

    A file is opened once: its preamble decides whether it is DICOM, and with ``pixels`` the rest
    is read in the same call (pydicom parses bytes faster than a file, element by element).
    """
    if isinstance(content, Path):
        with content.open("rb") as fh:
            head = fh.read(132)
            is_dicom = head[128:132] == b"DICM"
            if pixels and (is_dicom or name.lower().endswith(".dcm")):
                fh.seek(0)
                content = fh.read()
    else:
        is_dicom = content[128:132] == b"DICM"
    if not is_dicom and not name.lower().endswith(".dcm"):
        return None
    try:
        fp = io.BytesIO(content) if isinstance(content, bytes) else content
        return pydicom.dcmread(fp, force=not is_dicom, stop_before_pixels=not pixels)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{name}: corrupt or truncated DICOM file ({exc})") from exc


def _skip_reason(name: str) -> str | None:
    """Why a file is skipped from its name alone (not opened), or None to read it."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].rsplit("!", 1)[-1]
    if base.startswith("._") or "__MACOSX" in name:
        return "macOS resource fork"
    if base.upper() == "DICOMDIR":
        return "DICOMDIR, an index of the files, not needed"
    if base.lower().endswith(ARCHIVE_SUFFIXES):
        return "archive, not opened"
    return None


def scan(path: str | Path, pixels: bool = True, *, max_zip_bytes: int | None = None,
         max_zip_ratio: float | None = None) -> ScanResult:
    """Read every file under ``path`` (folder, zip or single file) and group image slices by series.

    Args:
        path: a folder (searched recursively), a .zip archive or one file.
        pixels: False: parse headers only (enough for geometry and UIDs).
        max_zip_bytes: most bytes a zip's members may expand to; None: :data:`MAX_ZIP_BYTES`.
        max_zip_ratio: highest compression ratio of a zip; None: :data:`MAX_ZIP_RATIO`.

    Raises:
        InvalidInputError: a damaged or refused zip (see the module docstring), a corrupt
            DICOM file, an image slice without geometry, a multi-frame image.
    """
    path = Path(path)
    groups: dict[str, list[_Slice]] = {}
    skipped: list[tuple[str, str]] = []
    other: list[tuple[str, Dataset]] = []
    for name, content in _iter_files(path, skipped, max_zip_bytes, max_zip_ratio):
        if why := _skip_reason(name):
            skipped.append((name, why))
            continue
        ds = _read(name, content, pixels)
        if ds is None:
            skipped.append((name, "not a DICOM file"))
            continue
        sop = str(ds.get("SOPClassUID", ""))
        meta = getattr(ds, "file_meta", None)
        if meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == \
                DICOMDIR_SOP_CLASS:
            skipped.append((name, "DICOMDIR, an index of the files, not needed"))
            continue
        if not sop and not (meta is not None and meta.get("MediaStorageSOPClassUID")):
            raise InvalidInputError(f"{name}: corrupt or truncated DICOM file (no SOP class: "
                                    "the content could not be parsed)")
        if sop in MULTIFRAME_SOP_CLASSES:
            raise InvalidInputError(
                f"{name}: {MULTIFRAME_SOP_CLASSES[sop]} multi-frame images are not supported; "
                "export the series as single-frame slices")
        if sop not in IMAGE_SOP_CLASSES or (pixels and "PixelData" not in ds):
            other.append((name, ds))
            why = f"not an image slice ({ds.get('Modality', '?')}, SOP class {sop or 'missing'})"
            skipped.append((name, why))
            continue
        missing = [k for k in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                               "SeriesInstanceUID", "Rows", "Columns") if k not in ds]
        if missing:
            raise InvalidInputError(f"{name}: image slice without {', '.join(missing)}")
        groups.setdefault(str(ds.SeriesInstanceUID), []).append(_Slice(
            name, ds, np.asarray(ds.ImagePositionPatient, dtype=float),
            np.asarray(ds.ImageOrientationPatient, dtype=float)))
    series = []
    for uid, slices in groups.items():
        first = slices[0].dataset
        number = first.get("SeriesNumber")
        series.append(SeriesInfo(uid, int(number) if number not in (None, "") else None,
                                 str(first.get("Modality", IMAGE_SOP_CLASSES[first.SOPClassUID])),
                                 str(first.get("SeriesDescription", "")), int(first.Rows),
                                 int(first.Columns), slices))
    series.sort(key=lambda s: (s.series_number is None, s.series_number or 0,
                               s.series_instance_uid))
    return ScanResult(series, skipped, other)


def select_series(found: list[SeriesInfo], path: str | Path, series: str | int | None,
                  skipped: list[tuple[str, str]] | None = None) -> SeriesInfo:
    """Pick one series by UID or SeriesNumber; with several and no choice, list them in the error.

    ``skipped`` (what :func:`scan` skipped) is summarised in the error when nothing was found.
    """
    if not found:
        raise InvalidInputError(f"{path}: no CT/MR/PET image series found"
                                + (f" ({skipped_summary(skipped)})" if skipped else ""))
    listing = [s.line() for s in found]
    if series is None:
        if len(found) == 1:
            return found[0]
        raise MultipleSeriesError(
            f"{path}: holds {len(found)} image series; pick one by UID or number "
            f"(--series): " + "; ".join(listing), listing)
    chosen = [s for s in found if s.series_instance_uid == str(series)
              or (s.series_number is not None and str(s.series_number) == str(series))]
    if len(chosen) == 1:
        return chosen[0]
    why = "matches several series, pick by UID" if chosen else "matches no series"
    raise InvalidInputError(f"{path}: series {series!r} {why}; found: " + "; ".join(listing))


def skipped_summary(skipped: list[tuple[str, str]], most: int = 5) -> str:
    """One line for the files :func:`scan` skipped: their count, then the first ``most``."""
    shown = "; ".join(f"{name} ({why})" for name, why in skipped[:most])
    more = f"; and {len(skipped) - most} more" if len(skipped) > most else ""
    return f"skipped {len(skipped)} file(s) that are not slices of an image series: {shown}{more}"


def _selected(path: Path, series: str | int | None,
              pixels: bool) -> tuple[SeriesInfo, list[tuple[str, str]]]:
    """The series asked for and what the scan skipped."""
    if path.is_file() and not zipfile.is_zipfile(path):
        if path.suffix.lower() == ".zip":
            raise InvalidInputError(f"{path}: not a zip archive (damaged, or another kind of "
                                    "file named .zip)")
        ds = _read(str(path), path, pixels=False)
        if ds is None or "SeriesInstanceUID" not in ds:
            raise InvalidInputError(f"{path}: not a DICOM image file")
        series, path = str(ds.SeriesInstanceUID), path.parent
    found = scan(path, pixels)
    return select_series(found.series, path, series, found.skipped), found.skipped


def read_dicom_series(path: str | Path, series: str | int | None = None,
                      warnings: list[str] | None = None) -> Volume:
    """Read one image series from a folder, a zip, or the folder of a single slice file.

    Args:
        path: folder (searched recursively), .zip archive, or one slice (its folder is read).
        series: SeriesInstanceUID or SeriesNumber, needed when the folder holds several series.
        warnings: if given, receives a line for every correction made (gantry tilt resampled)
            and one listing the files skipped (not DICOM, not image slices, DICOMDIR, refused
            zip members).

    Returns:
        A Volume (z, y, x) in the stored units after rescale (HU for CT), with ``dicom`` set.

    Raises:
        InvalidInputError (or MissingSliceError / MultipleSeriesError): see the module docstring.
    """
    info, skipped = _selected(Path(path), series, pixels=True)
    stack = _stack(info, warnings if warnings is not None else [])
    if skipped and warnings is not None:
        warnings.append(f"{path}: {skipped_summary(skipped)}")
    array = _pixels(stack.slices, info)
    if stack.drift is not None:
        array = _untilt(array, stack.drift, *stack.geometry.spacing[:2])
    return Volume(array, stack.geometry, modality=info.modality, dicom=stack.ref)


def read_series_grid(path: str | Path, series: str | int | None = None,
                     warnings: list[str] | None = None) -> tuple[Geometry, DicomSeriesRef]:
    """The grid and DICOM identity of a series from its headers alone (no pixel data decoded).

    What an RTSTRUCT or SEG writer needs to reference a series; the same checks as
    ``read_dicom_series`` apply, except those on pixel data.
    """
    info, _ = _selected(Path(path), series, pixels=False)
    stack = _stack(info, warnings if warnings is not None else [])
    return stack.geometry, stack.ref


def series_geometry(info: SeriesInfo) -> Geometry:
    """The grid the reader makes of a scanned series (headers only; ``info`` from ``scan``).

    Raises:
        InvalidInputError (or MissingSliceError): the reader would refuse the series.
    """
    return _stack(info, []).geometry


@dataclass
class _Stack:
    slices: list[_Slice]
    geometry: Geometry
    ref: DicomSeriesRef
    drift: np.ndarray | None  # (z, 2) in-plane offsets (mm) of tilted slices, None if orthogonal


def _stack(info: SeriesInfo, warnings: list[str]) -> _Stack:
    """Sort and check the slices of one series and derive its orthogonal grid."""
    slices = info.slices
    first = slices[0]
    for s in slices[1:]:
        if not np.allclose(s.orientation, first.orientation, atol=1e-4):
            raise InvalidInputError(
                f"{s.source}: ImageOrientationPatient {s.orientation.round(4).tolist()} differs "
                f"from {first.source} ({first.orientation.round(4).tolist()}); a series must have "
                "one orientation")
        if (int(s.dataset.Rows), int(s.dataset.Columns)) != (info.rows, info.columns):
            raise InvalidInputError(f"{s.source}: slice size {s.dataset.Columns}x{s.dataset.Rows} "
                                    f"differs from {info.columns}x{info.rows}")
    row_dir, col_dir = first.orientation[:3], first.orientation[3:]
    normal = np.cross(row_dir, col_dir)
    if abs(np.linalg.norm(normal) - 1) > 1e-3 or abs(row_dir @ col_dir) > 1e-3:
        raise InvalidInputError(f"{first.source}: ImageOrientationPatient is not two orthogonal "
                                f"unit vectors: {first.orientation.tolist()}")
    slices = sorted(slices, key=lambda s: float(s.position @ normal))
    first = slices[0]
    depth = np.array([s.position @ normal for s in slices])
    steps = np.diff(depth)
    if len(slices) > 1:
        _check_steps(slices, depth, steps)
    dz = float(np.median(steps)) if len(slices) > 1 else float(
        first.dataset.get("SpacingBetweenSlices") or first.dataset.get("SliceThickness") or 1.0)
    row_spacing, col_spacing = (float(v) for v in first.dataset.PixelSpacing)
    # In-plane drift of slice origins = gantry tilt (or a sheared stack): slices get shifted back.
    drift = np.array([[(s.position - first.position) @ row_dir,
                       (s.position - first.position) @ col_dir] for s in slices])
    if np.abs(drift).max() > TILT_TOLERANCE_MM:
        tilt = np.degrees(np.arctan2(np.abs(drift[-1]).max(), depth[-1] - depth[0]))
        msg = (f"{first.source}: series acquired with gantry tilt (~{tilt:.1f} deg); slices were "
               "resampled onto an orthogonal grid (linear interpolation)")
        warnings.append(msg)
        log.warning(msg)
    else:
        drift = None
    geometry = Geometry((len(slices), info.rows, info.columns), (col_spacing, row_spacing, dz),
                        tuple(first.position),
                        tuple(np.column_stack([row_dir, col_dir, normal]).ravel()),
                        str(first.dataset.get("FrameOfReferenceUID", "")) or None)
    header = Dataset()  # the first slice's attributes without its pixels (a copy would share them)
    header.update({tag: elem for tag, elem in first.dataset.items() if tag != PIXEL_DATA})
    header.file_meta = getattr(first.dataset, "file_meta", Dataset())
    ref = DicomSeriesRef(
        study_instance_uid=str(first.dataset.get("StudyInstanceUID", "")),
        series_instance_uid=info.series_instance_uid,
        frame_of_reference_uid=geometry.frame_of_reference_uid or "",
        sop_class_uid=str(first.dataset.SOPClassUID),
        sop_instance_uids=tuple(str(s.dataset.SOPInstanceUID) for s in slices),
        files=tuple(s.source for s in slices), header=header)
    return _Stack(slices, geometry, ref, drift)


def _check_steps(slices: list[_Slice], depth: np.ndarray, steps: np.ndarray) -> None:
    for k, step in enumerate(steps):
        if step < 1e-3:
            raise InvalidInputError(
                f"{slices[k + 1].source}: same slice position ({depth[k]:.2f} mm along the "
                f"normal) as {slices[k].source}; duplicate slice or two series mixed")
    median = float(np.median(steps))
    for k, step in enumerate(steps):
        if step > GAP_FACTOR * median:
            missing = round(step / median) - 1
            raise MissingSliceError(
                f"{slices[k].source}: missing slice(s) after position {depth[k]:.2f} mm: next "
                f"slice at {depth[k + 1]:.2f} mm, a gap of {step:.2f} mm where slices are "
                f"{median:.2f} mm apart (~{missing} slice(s) missing)")
    if np.abs(steps - median).max() > UNIFORM_TOLERANCE * median:
        k = int(np.argmax(np.abs(steps - median)))
        raise InvalidInputError(
            f"{slices[k + 1].source}: non-uniform slice spacing ({steps[k]:.2f} mm here, "
            f"{median:.2f} mm median); resample the series to uniform spacing first")


def _pixels(slices: list[_Slice], info: SeriesInfo) -> np.ndarray:
    """Stack stored values with each slice's rescale applied: int16 when that is exact (integer
    slope and intercept, values in range; the usual CT), float32 otherwise."""
    slopes = [float(s.dataset.get("RescaleSlope", 1) or 1) for s in slices]
    intercepts = [float(s.dataset.get("RescaleIntercept", 0) or 0) for s in slices]
    shape = (len(slices), info.rows, info.columns)
    if all(v.is_integer() for v in slopes + intercepts):
        out = np.empty(shape, dtype=np.int16)
        for k, s in enumerate(slices):
            bits = int(s.dataset.get("BitsStored", 16) or 16)
            if not _rescale_int16(_slice_pixels(s, info), int(slopes[k]), int(intercepts[k]),
                                  bits, out[k]):
                break
        else:
            return out
    stored = np.empty(shape, dtype=np.float32)
    for k, s in enumerate(slices):
        stored[k] = _slice_pixels(s, info)
        stored[k] *= slopes[k]
        stored[k] += intercepts[k]
    return stored


def _rescale_int16(raw: np.ndarray, slope: int, intercept: int, bits_stored: int,
                   out: np.ndarray) -> bool:
    """out = raw * slope + intercept when every value fits int16, else False (out untouched).

    The range is judged from BitsStored first (no pass over the pixels for the usual 12- or
    16-bit CT), from the actual values only when that bound is too wide.
    """
    def fits(lo: int, hi: int) -> bool:
        a, b = sorted((lo * slope + intercept, hi * slope + intercept))
        return -32768 <= a and b <= 32767

    signed = raw.dtype.kind == "i"
    bits = min(bits_stored, raw.dtype.itemsize * 8)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not fits(lo, hi) and not fits(int(raw.min()), int(raw.max())):
        return False
    if slope == 1:
        out[...] = raw
    else:
        out[...] = raw.astype(np.int32) * slope
    if intercept:
        out += intercept
    return True


def _slice_pixels(s: _Slice, info: SeriesInfo) -> np.ndarray:
    ds = s.dataset
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise InvalidInputError(f"{s.source}: colour image ({ds.SamplesPerPixel} samples/pixel) "
                                "in an image series")
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is not None and syntax.is_compressed:
        try:
            return ds.pixel_array
        except Exception as exc:  # pydicom raises several types for a missing codec
            raise InvalidInputError(f"{s.source}: cannot decode compressed pixel data "
                                    f"({syntax.name}): {exc}") from exc
    bits = int(ds.get("BitsAllocated", 16))
    dtype = {8: "u1", 16: "u2", 32: "u4"}.get(bits)
    if dtype is None:
        raise InvalidInputError(f"{s.source}: unsupported BitsAllocated {bits}")
    if int(ds.get("PixelRepresentation", 0)) == 1:
        dtype = dtype.replace("u", "i")
    dtype = ("<" if ds.is_little_endian in (None, True) else ">") + dtype
    count = info.rows * info.columns
    data = ds.PixelData
    if len(data) < count * bits // 8:
        raise InvalidInputError(f"{s.source}: truncated pixel data ({len(data)} of "
                                f"{count * bits // 8} bytes)")
    return np.frombuffer(data, dtype=dtype, count=count).reshape(info.rows, info.columns)


def _untilt(array: np.ndarray, drift: np.ndarray, col_spacing: float,
            row_spacing: float) -> np.ndarray:
    """Shift every slice in-plane so the stack becomes orthogonal (drift in mm along row/col)."""
    out = np.empty(array.shape, dtype=np.float32)
    fill = float(array.min())
    for k in range(array.shape[0]):
        shift = (drift[k, 1] / row_spacing, drift[k, 0] / col_spacing)  # (rows, columns)
        out[k] = ndimage.shift(array[k].astype(np.float32), shift, order=1, cval=fill)
    return out.astype(array.dtype) if np.issubdtype(array.dtype, np.integer) else out
