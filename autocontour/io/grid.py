"""Grid operations: resampling onto another grid and reorienting the array layout.

Every function keeps each voxel at its LPS position (mm): only the grid the values are stored
on changes. Resampling goes through SimpleITK with the full geometry (any direction matrix):

* :func:`resample_image` / :func:`resample_labels`: a Volume (linear) or LabelMap (nearest
  neighbour) onto a :class:`Geometry`.
* :func:`resample_channel`: one float array (e.g. a class probability) from one grid onto a box
  of another, linear.
* :func:`canonical`: the array layout an orientation code such as "LPS" names (permuted and
  flipped when axis-aligned, resampled when oblique).
* :func:`reorient_to`: the layout a scanner uses for a patient position ("FFS", "HFP", ...).
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import TypeVar

import numpy as np
import SimpleITK as sitk

from autocontour.errors import GeometryMismatchError, InvalidInputError, UnknownOptionError
from autocontour.io.volume import Geometry, LabelMap, Volume

V = TypeVar("V", bound=Volume)
Box = tuple[slice, slice, slice]  # (z, y, x) slices of an array

ALIGNED_TOL = 1e-3
"""A direction column whose largest component is within this of 1 counts as axis-aligned."""

# Where the column (x), row (y) and slice (z) index axes point, as DICOMOrient letters: each
# letter is the patient direction the axis runs towards. All four are proper rotations of LPS.
POSITION_ORIENTATION: dict[str, str] = {
    "HFS": "LPS",  # rows run to patient left, columns to posterior, slices to superior
    "FFS": "RPI",
    "HFP": "RAS",
    "FFP": "LAI",
}

_PAIRS = {"L": (0, 1.0), "R": (0, -1.0), "P": (1, 1.0), "A": (1, -1.0), "S": (2, 1.0),
          "I": (2, -1.0)}


# ---------------------------------------------------------------------------------------------
# Resampling.


def resample_image(image: V, geometry: Geometry) -> V:
    """Linear interpolation of ``image`` onto ``geometry``.

    Args:
        image: a Volume of shape (z, y, x) on any grid.
        geometry: the target grid.

    Returns:
        A volume of the same class on ``geometry``: float32 array of shape ``geometry.shape``,
        points outside ``image``'s grid taking the image minimum; ``dicom`` dropped.
    """
    source = sitk.Cast(image.to_sitk(), sitk.sitkFloat32)
    default = float(np.min(image.array))
    out = _resample(source, geometry, sitk.sitkLinear, default)
    return replace(image, array=sitk.GetArrayFromImage(out), geometry=geometry, dicom=None)


def resample_labels(labels: V, geometry: Geometry) -> V:
    """Nearest-neighbour resampling of ``labels`` onto ``geometry``.

    Args:
        labels: a LabelMap (or integer Volume) of shape (z, y, x) on any grid.
        geometry: the target grid.

    Returns:
        The same class on ``geometry``: array of shape ``geometry.shape`` and the input's dtype,
        points outside ``labels``' grid background (0); ``dicom`` dropped.
    """
    out = _resample(labels.to_sitk(), geometry, sitk.sitkNearestNeighbor, 0.0)
    return replace(labels, array=sitk.GetArrayFromImage(out), geometry=geometry, dicom=None)


def resample_channel(channel: np.ndarray, source: Geometry, target: Geometry,
                     box: Box | None = None, *, outside: float = 0.0) -> np.ndarray:
    """One float channel on ``source`` linearly interpolated onto (a box of) ``target``.

    Args:
        channel: array of shape ``source.shape`` (z, y, x); computed in float32. The whole
            channel is the input, so target voxels near a box's edges see every source voxel.
        source: the grid of ``channel``.
        target: the grid to interpolate onto.
        box: (z, y, x) slices of ``target`` (non-empty, within the grid) to compute; None for
            the whole grid.
        outside: the value of points outside the source grid.

    Returns:
        float32 array of the box's shape (``target.shape`` when ``box`` is None).

    Raises:
        GeometryMismatchError: ``channel`` is not of shape ``source.shape``.
    """
    if channel.shape != source.shape:
        raise GeometryMismatchError(f"channel of shape {channel.shape} is not on the source "
                                    f"grid of shape {source.shape}")
    if box is None:
        box = tuple(slice(0, n) for n in target.shape)
    start_xyz = np.array([box[2].start, box[1].start, box[0].start], dtype=float)
    origin = target.index_to_physical(start_xyz[None])[0]
    shape = tuple(s.stop - s.start for s in box)
    grid = Geometry(shape, target.spacing, tuple(origin), target.direction)
    image = source.apply_to_sitk(sitk.GetImageFromArray(np.ascontiguousarray(channel,
                                                                             np.float32)))
    return sitk.GetArrayFromImage(_resample(image, grid, sitk.sitkLinear, outside,
                                            sitk.sitkFloat32))


def _resample(image: sitk.Image, geometry: Geometry, interpolator: int, default: float,
              pixel_type: int | None = None) -> sitk.Image:
    """``image`` resampled onto ``geometry`` (identity transform).

    Args:
        image: a 3-D SimpleITK image with its own spacing, origin and direction.
        geometry: the output grid.
        interpolator: a SimpleITK interpolator, e.g. ``sitk.sitkLinear``.
        default: the value of points outside ``image``.
        pixel_type: output pixel type; None keeps ``image``'s.
    """
    f = sitk.ResampleImageFilter()
    f.SetSize([int(s) for s in reversed(geometry.shape)])
    f.SetOutputSpacing(geometry.spacing)
    f.SetOutputOrigin(geometry.origin)
    f.SetOutputDirection(geometry.direction)
    f.SetInterpolator(interpolator)
    f.SetDefaultPixelValue(default)
    f.SetOutputPixelType(image.GetPixelID() if pixel_type is None else pixel_type)
    return f.Execute(image)


# ---------------------------------------------------------------------------------------------
# Orientation.


def canonical(volume: V, orientation: str = "LPS") -> V:
    """The same image stored in the layout ``orientation`` names, for the network.

    An axis-aligned grid is permuted and flipped (SimpleITK ``DICOMOrient``, no interpolation);
    an oblique one is resampled with linear interpolation (nearest neighbour for a label map)
    onto the nearest axis-aligned grid that covers it, with the same voxel sizes, voxels outside
    the original taking its minimum (air). Either way every voxel keeps its LPS position, so
    contours found on the result map back onto ``volume``'s grid.

    Args:
        volume: a Volume or LabelMap of shape (z, y, x).
        orientation: target orientation code, e.g. "LPS".

    Returns:
        ``volume`` itself when it is already in that orientation (no copy); otherwise a volume
        of the same class and dtype (modality, organs kept) without ``dicom``, since the array
        no longer follows the slice files.

    Raises:
        UnknownOptionError: an invalid orientation code.
        InvalidInputError: permuting and flipping did not reach the orientation.
    """
    code = check_orientation_code(orientation)
    geometry = volume.geometry
    if not is_axis_aligned(geometry):
        return _resample_axis_aligned(volume, code)
    if geometry.orientation_code == code:
        return volume
    return _permute_flip(volume, code, code)


def reorient_to(volume: V, patient_position: str) -> V:
    """The same image stored as a scanner would for ``patient_position``.

    Used to make feet-first/prone test data and to check that writers follow the full direction
    matrix.

    Args:
        volume: any Volume or LabelMap of shape (z, y, x); an oblique one is brought to the
            nearest axes (permuted and flipped, not resampled).
        patient_position: "HFS", "FFS", "HFP" or "FFP" (any case).

    Returns:
        A volume of the same class (organs, modality kept) whose array is permuted/flipped and
        whose direction/origin are updated; ``dicom`` is dropped, since the array no longer
        follows the original slice files.

    Raises:
        UnknownOptionError: unknown patient position.
        InvalidInputError: no permutation/flip of the axes reaches the target orientation.
    """
    code = POSITION_ORIENTATION.get(patient_position.upper())
    if code is None:
        raise UnknownOptionError(f"patient position {patient_position!r} is not one of "
                                 f"{sorted(POSITION_ORIENTATION)}")
    return _permute_flip(volume, code, f"{patient_position} ({code})")


def is_axis_aligned(geometry: Geometry, tol: float = ALIGNED_TOL) -> bool:
    """True when every index axis runs along a patient axis (a signed permutation)."""
    return bool(np.all(np.abs(geometry.direction_matrix).max(axis=0) > 1.0 - tol))


def obliquity_deg(geometry: Geometry) -> float:
    """Largest angle in degrees between an index axis and its nearest patient axis."""
    cosines = np.clip(np.abs(geometry.direction_matrix).max(axis=0), -1.0, 1.0)
    return float(np.degrees(np.arccos(cosines)).max())


def check_orientation_code(code: str) -> str:
    """``code`` upper-cased, e.g. "lps" -> "LPS".

    Raises:
        UnknownOptionError: the code does not name one of L/R, P/A and S/I each.
    """
    text = str(code).strip().upper()
    axes = [_PAIRS[c][0] for c in text if c in _PAIRS]
    if len(text) != 3 or len(axes) != 3 or sorted(axes) != [0, 1, 2]:
        raise UnknownOptionError(
            f"orientation code {code!r} must name one of L/R, P/A and S/I each, e.g. 'LPS'")
    return text


def _permute_flip(volume: V, code: str, what: str) -> V:
    """``volume`` with its axes permuted and flipped (no interpolation) towards ``code``.

    Raises:
        InvalidInputError: the result is not in ``code`` (``what`` names the target).
    """
    geometry = volume.geometry
    image = sitk.DICOMOrient(volume.to_sitk(), code)
    new = Geometry.from_sitk(image, geometry.frame_of_reference_uid)
    if new.orientation_code != code:
        raise InvalidInputError(f"cannot reorient a grid with direction {geometry.direction} "
                                f"to {what} by permuting and flipping its axes")
    return replace(volume, array=sitk.GetArrayFromImage(image), geometry=new, dicom=None)


def _code_matrix(code: str) -> np.ndarray:
    """3x3 direction matrix whose columns point where the letters of ``code`` say."""
    matrix = np.zeros((3, 3))
    for column, letter in enumerate(code):
        axis, sign = _PAIRS[letter]
        matrix[axis, column] = sign
    return matrix


def _resample_axis_aligned(volume: V, code: str) -> V:
    """Resample an oblique volume onto the axis-aligned ``code`` grid covering it."""
    geometry = volume.geometry
    target = _code_matrix(code)
    # Give each target axis the spacing of the source axis closest to it.
    alignment = np.abs(target.T @ geometry.direction_matrix)  # [target axis, source axis]
    perm = max(itertools.permutations(range(3)),
               key=lambda p: sum(alignment[i, p[i]] for i in range(3)))
    spacing = np.asarray(geometry.spacing)[list(perm)]
    size_xyz = np.asarray(geometry.shape[::-1])
    corners = np.array(list(itertools.product(*[(0, n - 1) for n in size_xyz])), dtype=float)
    along = geometry.index_to_physical(corners) @ target  # corner coordinates on target axes
    lo, hi = along.min(axis=0), along.max(axis=0)
    size = np.floor((hi - lo) / spacing + 1e-6).astype(int) + 1
    start = lo + ((hi - lo) - (size - 1) * spacing) / 2.0  # centre the grid on the box
    grid = Geometry(tuple(size[::-1]), tuple(spacing), tuple(target @ start), target,
                    geometry.frame_of_reference_uid)
    if isinstance(volume, LabelMap):
        return resample_labels(volume, grid)  # SimpleITK keeps the integer dtype
    out = resample_image(volume, grid)  # float32
    dtype = volume.array.dtype
    array = out.array
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        array = np.clip(np.rint(array), info.min, info.max)
    return replace(out, array=array.astype(dtype, copy=False))
