"""Find the cases in the layouts clinics and researchers have, without reading them yet.

Three layouts:

* ``dicom``: one folder per case holding a CT (or MR) series and an RTSTRUCT drawn on it
  (nested folders are fine). The RTSTRUCT's ROI names are mapped with the organ-set matcher.
* ``nifti``: one folder per case holding an image and a label map (the label file's name contains
  label, seg, mask or gt), or one flat folder of ``<case>.nii.gz`` + ``<case>_label.nii.gz``
  pairs (also ``_seg``, ``_mask``, ``_gt``; the image may be ``<case>_image`` or ``<case>_ct``).
* ``nnunet``: the nnU-Net raw layout (``dataset.json``, ``imagesTr/``, ``labelsTr/``).

Each case becomes a :class:`CaseSource` whose ``load()`` reads it; discovery problems that
concern one case (no label, ambiguous files) become a skipped entry, never an abort.

Without an organ set, a folder written by ``autocontour phantom`` uses the one its
``phantoms.json`` records (:data:`PHANTOM_MANIFEST`); otherwise DICOM and nnU-Net sources guess it
from the ROI/label names, and NIfTI pairs (numbers, no names) need it given.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from autocontour.errors import InvalidInputError, UnknownOptionError
from autocontour.io.dicom_series import read_dicom_series, scan
from autocontour.io.formats import read_labels, read_volume
from autocontour.io.rtstruct import guess_organ_set, read_rtstruct
from autocontour.io.volume import LabelMap, Volume
from autocontour.organs import OrganSet, get_organ_set

LAYOUTS = ("auto", "dicom", "nifti", "nnunet")
_VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".h5", ".hdf5")
#: The manifest ``autocontour phantom`` writes beside its cases (site and organ set).
PHANTOM_MANIFEST = "phantoms.json"
_LABEL_WORDS = re.compile(r"(^|[_\-.])(label|labels|seg|segmentation|mask|gt|truth)([_\-.]|$)",
                          re.IGNORECASE)


@dataclass
class LoadedCase:
    images: list[Volume]
    labels: LabelMap
    notes: dict = field(default_factory=dict)


@dataclass
class CaseSource:
    """One case found in a source folder; ``load`` reads it (may raise InvalidInputError)."""

    case_id: str
    files: list[Path]
    load: Callable[[], LoadedCase]

    def signature(self) -> str:
        """Cheap identity of the source files (name, size, mtime): unchanged files skip reading."""
        h = hashlib.sha256()
        for f in sorted(self.files):
            if f.is_file():
                st = f.stat()
                h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
            else:
                h.update(f"{f}|missing\n".encode())
        return h.hexdigest()


def clean_case_id(name: str) -> str:
    """A case ID safe as an HDF5 group and a file name."""
    cleaned = re.sub(r"[^A-Za-z0-9_\-]+", "_", name).strip("_")
    if not cleaned:
        raise InvalidInputError(f"cannot make a case ID from {name!r}")
    return cleaned


def _volume_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir()
                  if f.is_file() and f.name.lower().endswith(_VOLUME_SUFFIXES))


def _stem(path: Path) -> str:
    name = path.name
    for suffix in _VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def detect_layout(src: Path) -> str:
    """The layout of ``src`` (see module docstring).

    Raises:
        InvalidInputError: ``src`` is missing, empty, or in none of the layouts.
    """
    from autocontour.data.nnunet import is_nnunet_raw
    if not src.is_dir():
        raise InvalidInputError(f"{src}: not a folder")
    if is_nnunet_raw(src):
        return "nnunet"
    entries = sorted(p for p in src.iterdir() if not p.name.startswith("."))
    if not entries:
        raise InvalidInputError(f"{src}: empty folder, no cases to import")
    first_case = next((d for d in entries if d.is_dir()), src)
    if _has_dicom(first_case):
        return "dicom"
    if _volume_files(src) or any(_volume_files(d) for d in entries if d.is_dir()):
        return "nifti"
    raise InvalidInputError(f"{src}: neither DICOM case folders, image/label pairs nor the "
                            "nnU-Net raw layout")


def _has_dicom(folder: Path) -> bool:
    """Whether any file under ``folder`` is DICOM (stops at the first one)."""
    for f in folder.rglob("*"):
        if f.is_file():
            with f.open("rb") as fh:
                if fh.read(132)[128:132] == b"DICM":
                    return True
    return False


# --------------------------------------------------------------------------------------------
# DICOM: CT series + RTSTRUCT per case folder.

def _load_dicom(case_id: str, folder: Path, organs: OrganSet | None) -> LoadedCase:
    found = scan(folder, pixels=False)
    rtstructs = [(name, ds) for name, ds in found.other_dicom
                 if str(ds.get("Modality", "")) == "RTSTRUCT"]
    if not rtstructs:
        raise InvalidInputError(f"case {case_id}: no RTSTRUCT in {folder} (no label)")
    if len(rtstructs) > 1:
        raise InvalidInputError(f"case {case_id}: {len(rtstructs)} RTSTRUCTs ("
                                + ", ".join(Path(n).name for n, _ in rtstructs)
                                + "); keep the one to train on")
    name, ds = rtstructs[0]
    referenced = [s.SeriesInstanceUID for f in ds.get("ReferencedFrameOfReferenceSequence", [])
                  for st in f.get("RTReferencedStudySequence", [])
                  for s in st.get("RTReferencedSeriesSequence", [])]
    series = referenced[0] if referenced else None
    image = read_dicom_series(folder, series=series)
    labels, report = read_rtstruct(name, image, organs=organs)
    if not report.mapped:
        raise InvalidInputError(f"case {case_id}: no ROI name of {Path(name).name} maps to "
                                f"organ set {labels.organs.name!r}: {sorted(report.unmapped)}")
    return LoadedCase([image], labels, {"unmapped": report.unmapped, "empty": report.empty,
                                        "overlaps": report.overlaps})


def _guess_organs(folders: list[Path]) -> OrganSet:
    """The organ set that maps the most ROI names of the first RTSTRUCT found."""
    for folder in folders:
        for _, ds in scan(folder, pixels=False).other_dicom:
            if str(ds.get("Modality", "")) == "RTSTRUCT":
                return guess_organ_set([str(r.get("ROIName", ""))
                                        for r in ds.get("StructureSetROISequence", [])])
    raise InvalidInputError(f"no RTSTRUCT found under {folders[0].parent}; nothing to import")


def _dicom_sources(src: Path, organs: OrganSet | None) -> tuple[OrganSet, list[CaseSource]]:
    folders = sorted(d for d in src.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not folders:  # the folder itself is one case
        folders = [src]
    organs = organs or _guess_organs(folders)
    sources = []
    for d in folders:
        cid = clean_case_id(d.name)
        files = sorted(f for f in d.rglob("*") if f.is_file())
        sources.append(CaseSource(cid, files, partial(_load_dicom, cid, d, organs)))
    return organs, sources


# --------------------------------------------------------------------------------------------
# NIfTI (or NRRD/HDF5) image + label pairs.

def _pick_image(case_id: str, images: list[Path]) -> Path:
    if len(images) == 1:
        return images[0]
    preferred = [f for f in images if re.search(r"(^|[_\-.])(ct|image|img)([_\-.]|$)",
                                                f.name, re.IGNORECASE)]
    if len(preferred) == 1:
        return preferred[0]
    raise InvalidInputError(f"case {case_id}: cannot tell which image to use among "
                            + ", ".join(f.name for f in images))


def _load_pair(case_id: str, image: Path, label: Path, organs: OrganSet) -> LoadedCase:
    volume = read_volume(image)
    return LoadedCase([volume], read_labels(label, organs, reference=volume))


def _nifti_sources(src: Path, organs: OrganSet | None) -> tuple[OrganSet, list[CaseSource]]:
    if organs is None:
        raise UnknownOptionError(f"{src}: label maps carry numbers, not names; say which organ "
                                 "set they use with --organs (head-neck, pelvis, chest)")
    pairs: list[tuple[str, Path | None, Path | None, str]] = []
    flat = _volume_files(src)
    if flat:
        labels = {re.sub(_LABEL_WORDS, "", _stem(f)): f for f in flat if _LABEL_WORDS.search(_stem(f))}
        images = {re.sub(r"[_\-](image|img|ct|0000)$", "", _stem(f), flags=re.IGNORECASE): f
                  for f in flat if not _LABEL_WORDS.search(_stem(f))}
        for key in sorted(set(labels) | set(images)):
            pairs.append((key, images.get(key), labels.get(key), str(src)))
    for d in sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = _volume_files(d)
        label_files = [f for f in files if _LABEL_WORDS.search(_stem(f))]
        images = [f for f in files if f not in label_files]
        if len(label_files) > 1:
            names = ", ".join(f.name for f in label_files)
            pairs.append((d.name, None, None, f"several label files: {names}"))
            continue
        try:
            image = _pick_image(d.name, images) if images else None
        except InvalidInputError as exc:
            pairs.append((d.name, None, None, str(exc)))
            continue
        pairs.append((d.name, image, label_files[0] if label_files else None, str(d)))
    sources = []
    for key, image, label, where in pairs:
        cid = clean_case_id(key)
        files = [f for f in (image, label) if f is not None]
        sources.append(CaseSource(cid, files,
                                  partial(_checked_pair, cid, image, label, where, organs)))
    return organs, sources


def _checked_pair(case_id: str, image: Path | None, label: Path | None, where: str,
                  organs: OrganSet) -> LoadedCase:
    if image is None and label is None:
        raise InvalidInputError(f"case {case_id}: {where}")
    if label is None:
        raise InvalidInputError(f"case {case_id}: no label file for {image.name} (no label)")
    if image is None:
        raise InvalidInputError(f"case {case_id}: label {label.name} has no image")
    return _load_pair(case_id, image, label, organs)


# --------------------------------------------------------------------------------------------

def _nnunet_sources(src: Path, organs: OrganSet | None) -> tuple[OrganSet, list[CaseSource]]:
    from autocontour.data.nnunet import read_dataset_json
    meta = read_dataset_json(src)
    organ_set = organs or guess_organ_set(list(meta["labels"]))
    return organ_set, [CaseSource(clean_case_id(cid), [*images, label],
                                  partial(_load_nnunet, cid, images, label, meta["labels"],
                                          organ_set, list(meta["channel_names"].values())))
                       for cid, (images, label) in meta["cases"].items()]


def _load_nnunet(case_id: str, images: list[Path], label: Path, names: dict[str, int],
                 organs: OrganSet, modalities: list[str]) -> LoadedCase:
    from autocontour.data.nnunet import load_case
    return LoadedCase(*load_case(case_id, images, label, names, organs, modalities))


def recorded_organs(src: Path) -> OrganSet | None:
    """The organ set a phantom folder's :data:`PHANTOM_MANIFEST` records, else None.

    The manifest's ``organ_set`` (exact names and label values) is used; a manifest with only
    a ``site`` gives that site's set.

    Raises:
        InvalidInputError: the manifest is there but unreadable or names no organ set.
    """
    path = src / PHANTOM_MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        if "organ_set" in manifest:
            return OrganSet.from_dict(manifest["organ_set"])
        return get_organ_set(manifest["site"])
    except (OSError, ValueError, KeyError, TypeError, UnknownOptionError) as exc:
        raise InvalidInputError(f"{path}: cannot read the organ set it records ({exc}); pass "
                                "--organs") from exc


def find_cases(src: str | Path, organs: OrganSet | None, layout: str = "auto"
               ) -> tuple[str, OrganSet, list[CaseSource]]:
    """(layout used, organ set, the cases found) under ``src``.

    The organ set is ``organs`` when given, else the one a phantom folder's manifest records
    (:func:`recorded_organs`), else guessed from the ROI/label names (DICOM, nnU-Net).

    Raises:
        InvalidInputError: no such folder, an empty one, no case found, or an unreadable
            phantom manifest (without ``organs``).
        UnknownOptionError: an unknown layout name, or NIfTI pairs without an organ set.
    """
    src = Path(src)
    if layout not in LAYOUTS:
        raise UnknownOptionError(f"unknown layout {layout!r} (choices: {', '.join(LAYOUTS)})")
    layout = detect_layout(src) if layout == "auto" else layout
    if organs is None and src.is_dir():
        organs = recorded_organs(src)
    finder = {"dicom": _dicom_sources, "nifti": _nifti_sources, "nnunet": _nnunet_sources}
    organs, sources = finder[layout](src, organs)
    if not sources:
        raise InvalidInputError(f"{src}: no cases found in the {layout} layout")
    return layout, organs, sources
