"""Read a folder of co-registered multi-modal images with lesion labels (BRATS-like data).

Layout (what :func:`autocontour.phantoms.brain_lesion.write_lesion_cases` writes)::

    <folder>/dataset.json                optional manifest (below)
    <folder>/<case>/<MODALITY>.nii.gz    one image per modality, all on one grid
    <folder>/<case>/lesion.nii.gz        optional lesion label (integers, 0 = background)
    <folder>/<case>/mask.nii.gz          optional organ mask (where lesions may lie)

``dataset.json`` holds ``{"modalities": [...], "display_range": {modality: [lo, hi]},
"cases": [{"case_id": ..., "files": {modality or "lesion"/"mask": file name}}]}``; every key
but ``modalities`` may be left out. Without a manifest, pass ``modalities`` and every
sub-folder holding ``<MODALITY>.nii.gz`` (or ``.nii``, ``.nrrd``) for each is a case. Any format
:func:`autocontour.io.read_volume` reads may be named in the manifest.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autocontour.errors import InvalidInputError
from autocontour.io import read_volume
from autocontour.io.volume import Volume, require_same_grid

MANIFEST = "dataset.json"
_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".h5")


@dataclass(frozen=True)
class MultiModalCase:
    """One case: co-registered images, optional lesion label and organ mask.

    Attributes:
        case_id: the case folder's name (or the manifest's ``case_id``).
        images: modality -> Volume, all on the same grid.
        lesion: integer Volume (0 background) or None.
        mask: organ mask Volume (non-zero inside) or None.
        display_range: modality -> (lo, hi) mapped to 0..1 by :meth:`unit`; a modality not in
            it is scaled by its 0.5th and 99.5th percentiles.
    """

    case_id: str
    images: dict[str, Volume]
    lesion: Volume | None = None
    mask: Volume | None = None
    display_range: dict[str, tuple[float, float]] = field(default_factory=dict)

    def unit(self, modality: str, index: int = 0) -> np.ndarray:
        """Slice ``index`` of ``modality`` as float32 in 0..1 (y, x).

        Raises:
            InvalidInputError: the case has no such modality or slice.
        """
        if modality not in self.images:
            raise InvalidInputError(f"case {self.case_id} has no modality {modality!r}; it has "
                                    f"{sorted(self.images)}")
        array = self.images[modality].array
        if not 0 <= index < array.shape[0]:
            raise InvalidInputError(f"case {self.case_id}: slice {index} is outside 0.."
                                    f"{array.shape[0] - 1}")
        image = array[index].astype(np.float32)
        if modality in self.display_range:
            lo, hi = self.display_range[modality]
        else:
            lo, hi = (float(v) for v in np.percentile(array, (0.5, 99.5)))
        return np.clip((image - lo) / max(hi - lo, 1e-6), 0.0, 1.0).astype(np.float32)


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in _SUFFIXES:
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


def _read_case(case_id: str, files: dict[str, Path], modalities: Sequence[str],
               display_range: dict[str, tuple[float, float]]) -> MultiModalCase:
    images = {m: read_volume(files[m]) for m in modalities}
    reference = images[modalities[0]].geometry
    for m in modalities[1:]:
        require_same_grid(reference, images[m].geometry, str(files[m]))
    extra: dict[str, Volume | None] = {}
    for key in ("lesion", "mask"):
        if key not in files:
            extra[key] = None
            continue
        volume = read_volume(files[key])
        require_same_grid(reference, volume.geometry, str(files[key]))
        array = volume.array
        if not np.issubdtype(array.dtype, np.integer):
            if not np.array_equal(array, np.round(array)):
                raise InvalidInputError(f"{files[key]}: a {key} must hold whole numbers")
            array = array.astype(np.int32)
        if array.min() < 0:
            raise InvalidInputError(f"{files[key]}: a {key} must not hold negative values, got "
                                    f"{int(array.min())}")
        extra[key] = volume.with_array(array.astype(np.uint8) if array.max() < 256 else array)
    return MultiModalCase(case_id, images, extra["lesion"], extra["mask"], display_range)


def load_multimodal_folder(
    folder: str | Path, modalities: Sequence[str] | None = None
) -> list[MultiModalCase]:
    """Read every case of a multi-modal folder (layout in the module docstring).

    Args:
        folder: the data set's top folder.
        modalities: the modalities to read (in this order); None: the manifest's list.

    Returns:
        The cases, sorted by case ID.

    Raises:
        InvalidInputError: no such folder; a manifest that is not valid JSON or lacks
            ``modalities`` when none are given; no manifest and no ``modalities``; a modality the
            manifest does not list; a case missing a modality's file; images of one case on
            different grids; a lesion or mask that is not whole, non-negative numbers; no cases.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"{folder}: no such folder")
    manifest_path = folder / MANIFEST
    manifest: dict = {}
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{manifest_path}: not valid JSON ({exc})") from None
    listed = manifest.get("modalities")
    if modalities is None:
        if not listed:
            raise InvalidInputError(
                f"{folder}: name the modalities (no {MANIFEST} listing them)")
        modalities = listed
    mods = tuple(modalities)
    if not mods:
        raise InvalidInputError("at least one modality is needed")
    if listed:
        missing = [m for m in mods if m not in listed]
        if missing:
            raise InvalidInputError(f"{manifest_path}: lists modalities {listed}, not {missing}")
    ranges = {m: (float(r[0]), float(r[1]))
              for m, r in manifest.get("display_range", {}).items()}
    cases: list[MultiModalCase] = []
    if "cases" in manifest:
        for entry in manifest["cases"]:
            case_id = str(entry["case_id"])
            base = folder / case_id
            files: dict[str, Path] = {}
            for key in (*mods, "lesion", "mask"):
                name = entry.get("files", {}).get(key)
                path = base / name if name else _find(base, key)
                if path is not None and path.is_file():
                    files[key] = path
                elif key in mods:
                    raise InvalidInputError(f"{base}: no {key} image")
            cases.append(_read_case(case_id, files, mods, ranges))
    else:
        for base in sorted(p for p in folder.iterdir() if p.is_dir()):
            found = {key: _find(base, key) for key in (*mods, "lesion", "mask")}
            if all(found[m] is None for m in mods):
                continue  # not a case folder
            absent = [m for m in mods if found[m] is None]
            if absent:
                raise InvalidInputError(f"{base}: no image for modality {absent[0]!r}")
            files = {k: v for k, v in found.items() if v is not None}
            cases.append(_read_case(base.name, files, mods, ranges))
    if not cases:
        raise InvalidInputError(f"{folder}: no cases with modalities {list(mods)}")
    return sorted(cases, key=lambda c: c.case_id)
