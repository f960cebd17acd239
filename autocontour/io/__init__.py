"""Volumes and the files they come from and go to: DICOM series, NIfTI, NRRD, HDF5, RTSTRUCT, SEG.

Grid operations (resampling, reorientation) are in :mod:`autocontour.io.grid`.

Heavy writers (highdicom for SEG) are imported on first use so that ``import autocontour.io`` and
the CLI start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from autocontour.io.formats import Format, detect_format, read_labels, read_volume, write_volume
from autocontour.io.volume import DicomSeriesRef, Geometry, LabelMap, Volume

_LAZY = {
    "read_dicom_series": "autocontour.io.dicom_series",
    "write_dicom_series": "autocontour.io.dicom_write",
    "read_rtstruct": "autocontour.io.rtstruct",
    "write_rtstruct": "autocontour.io.rtstruct",
    "write_dicom_seg": "autocontour.io.dicom_seg",
    "read_dicom_seg": "autocontour.io.dicom_seg",
    **dict.fromkeys(("canonical", "is_axis_aligned", "obliquity_deg", "reorient_to",
                     "resample_channel", "resample_image", "resample_labels"),
                    "autocontour.io.grid"),
}

if TYPE_CHECKING:  # _LAZY spelled out for IDEs and type checkers (tests/test_exports.py)
    from autocontour.io.dicom_seg import read_dicom_seg, write_dicom_seg
    from autocontour.io.dicom_series import read_dicom_series
    from autocontour.io.dicom_write import write_dicom_series
    from autocontour.io.grid import (
        canonical,
        is_axis_aligned,
        obliquity_deg,
        reorient_to,
        resample_channel,
        resample_image,
        resample_labels,
    )
    from autocontour.io.rtstruct import read_rtstruct, write_rtstruct

__all__ = ["DicomSeriesRef", "Format", "Geometry", "LabelMap", "Volume", "canonical",
           "detect_format", "is_axis_aligned", "obliquity_deg", "read_dicom_seg",
           "read_dicom_series", "read_labels", "read_rtstruct", "read_volume", "reorient_to",
           "resample_channel", "resample_image", "resample_labels", "write_dicom_seg",
           "write_dicom_series", "write_rtstruct", "write_volume"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autocontour.io' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
