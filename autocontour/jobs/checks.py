"""Checks of a job's paths that run before anything heavy is imported, read or written.

Every front end calls these first (the CLI before it imports a job's module, which pulls in
PyTorch and MONAI; the jobs again at their start), so a missing input, a format that is not
recognised, a damaged header, or an output that is a file, holds an earlier result or cannot be
written is refused in well under a second, with one line that names the path and the problem,
and before anything was written.

This module imports nothing heavy: :mod:`autocontour.io.formats` (for ``detect_format``) is
imported only once an input is known to exist.
"""

from __future__ import annotations

import os
from pathlib import Path

from autocontour.errors import InvalidInputError, OutputExistsError

#: First bytes of an HDF5 file, found at offset 0 or at 512, 1024, 2048... (a user block).
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_NAMES = {"nifti": "a NIfTI", "nrrd": "an NRRD", "hdf5": "an HDF5"}


def check_input(path: str | Path) -> Path:
    """Refuse an input image that is missing, unreadable or not in a recognised format.

    Checked: the path exists and can be read; its format is recognised (``detect_format``); a
    DICOM folder holds at least one file; a ``.zip`` is a zip archive; a NIfTI, NRRD or HDF5
    path is a file whose first bytes are that format's header.

    Returns:
        The path.

    Raises:
        InvalidInputError: the problem, naming the path.
        UnknownOptionError: a format that is not supported (the supported ones are listed).
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"{path}: no such file or folder")
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise InvalidInputError(f"{path}: cannot be read (permission denied)")
    from autocontour.io.formats import Format, detect_format
    fmt = detect_format(path)
    if fmt is Format.DICOM:
        if path.is_dir() and not any(f.is_file() for f in path.rglob("*")):
            raise InvalidInputError(f"{path}: no CT/MR/PET image series found (the folder "
                                    "holds no files)")
        if path.is_file() and path.name.lower().endswith(".zip"):
            import zipfile
            if not zipfile.is_zipfile(path):
                raise InvalidInputError(f"{path}: not a zip archive (damaged, or another kind "
                                        "of file named .zip)")
        return path
    if not path.is_file():
        raise InvalidInputError(f"{path}: is a folder, not {_NAMES[fmt.value]} file")
    _check_header(path, fmt.value)
    return path


def _check_header(path: Path, fmt: str) -> None:
    """Refuse a NIfTI, NRRD or HDF5 file whose first bytes are not that format's header."""
    with path.open("rb") as fh:
        head = fh.read(2056)
    name = path.name.lower()
    if fmt == "nifti":
        if name.endswith(".gz"):
            ok = head[:2] == b"\x1f\x8b"
        else:
            ok = len(head) >= 4 and (int.from_bytes(head[:4], "little") in (348, 540)
                                     or int.from_bytes(head[:4], "big") in (348, 540))
        what = "a gzip-compressed NIfTI" if name.endswith(".gz") else "a NIfTI"
    elif fmt == "nrrd":
        ok, what = head[:4] == b"NRRD", "an NRRD"
    else:
        ok = any(head[k:k + 8] == _HDF5_SIGNATURE for k in (0, 512, 1024, 2048))
        what = "an HDF5"
    if not ok:
        size = "an empty file" if not head else "another kind of file"
        raise InvalidInputError(f"{path}: not {what} file ({size})")


def check_file(path: str | Path, what: str = "file") -> Path:
    """Refuse a path that is not an existing, readable file (a config, a model file).

    Raises:
        InvalidInputError: ``"<path>: no such <what>"``, or a folder, or unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"{path}: no such {what}")
    if path.is_dir():
        raise InvalidInputError(f"{path}: is a folder, not a {what}")
    if not os.access(path, os.R_OK):
        raise InvalidInputError(f"{path}: cannot be read (permission denied)")
    return path


def check_folder(path: str | Path, what: str = "folder") -> Path:
    """Refuse a path that is not an existing, readable folder (a data set, a source folder).

    Raises:
        InvalidInputError: ``"<path>: no such <what>"``, or a file, or unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"{path}: no such {what}")
    if not path.is_dir():
        raise InvalidInputError(f"{path}: is a file, not a {what}")
    if not os.access(path, os.R_OK | os.X_OK):
        raise InvalidInputError(f"{path}: cannot be read (permission denied)")
    return path


def check_config(path: str | Path, what: str = "config") -> Path:
    """Refuse a config file that is missing, unreadable, not YAML/JSON or not a mapping (its
    options are checked by the job that reads it).

    Raises:
        InvalidInputError: ``"<path>: no such <what>"``, or the reading problem.
    """
    from autocontour.config_files import read_config_mapping
    read_config_mapping(check_file(path, what))
    return Path(path)


def check_dataset(path: str | Path) -> Path:
    """Refuse a path that is not a folder holding a data set (no training cache), as the jobs
    do, before they are imported.

    Raises:
        InvalidInputError: no such folder, a file, unreadable, or see
            :meth:`~autocontour.data.folder.DatasetFolder.require`.
    """
    check_folder(path, "data set folder")
    from autocontour.data.folder import DatasetFolder  # numpy and h5py, not PyTorch
    DatasetFolder(path).require()
    return Path(path)


def check_import_source(path: str | Path) -> Path:
    """Refuse a source folder of ``dataset import`` that is missing or holds nothing.

    Raises:
        InvalidInputError: no such folder, a file, unreadable, or empty (hidden files aside).
    """
    folder = check_folder(path, "source folder")
    if not any(not p.name.startswith(".") for p in folder.iterdir()):
        raise InvalidInputError(f"{folder}: empty folder, no cases to import")
    return folder


def check_exists(path: str | Path) -> Path:
    """Refuse a path that does not exist (a file or a folder of label maps, say).

    Raises:
        InvalidInputError: ``"<path>: no such file or folder"``.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"{path}: no such file or folder")
    return path


def check_output_folder(out: str | Path, overwrite: bool = False, what: str = "output folder",
                        must_be_empty: bool = True, can_overwrite: bool = True) -> Path:
    """Refuse an output folder that cannot be written, before any work is done.

    Args:
        out: the folder the job will create (or fill).
        overwrite: an existing, non-empty folder may be replaced.
        what: how messages name it (e.g. ``"--out"``).
        must_be_empty: False for jobs that add to a folder (checked by the job itself).
        can_overwrite: whether the job has an ``--overwrite`` option (for the message).

    Returns:
        The folder.

    Raises:
        InvalidInputError: ``out`` or a folder above it is a file, or the folder it would be
            created in cannot be written.
        OutputExistsError: ``out`` holds files, ``must_be_empty`` and not ``overwrite``.
    """
    out = Path(out)
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise InvalidInputError(f"{out}: is a file, not a folder; choose another {what}")
        if must_be_empty and not overwrite and any(out.iterdir()):
            hint = " or pass --overwrite" if can_overwrite else ""
            raise OutputExistsError(f"{out}: already holds files; choose another {what}{hint} "
                                    "(nothing was read or written)")
    _check_writable_parent(out, what)
    return out


def check_output_file(path: str | Path, overwrite: bool = False, what: str = "output") -> Path:
    """Refuse an output image path (a file, or a folder for a DICOM series) before any work.

    Raises:
        UnknownOptionError: a format that cannot be written (the supported ones are listed).
        InvalidInputError: a folder where a file goes (or the reverse), or a place that cannot
            be written.
        OutputExistsError: the output exists and ``overwrite`` is False.
    """
    path = Path(path)
    from autocontour.io.formats import Format, detect_format
    if detect_format(path, for_writing=True) is Format.DICOM:
        return check_output_folder(path, overwrite, what)
    if path.exists() or path.is_symlink():
        if path.is_dir():
            raise InvalidInputError(f"{path}: is a folder, not a file; choose another {what}")
        if not overwrite:
            raise OutputExistsError(f"{path}: already exists; not overwritten (pass "
                                    "--overwrite to replace it)")
    _check_writable_parent(path, what)
    return path


def _check_writable_parent(target: Path, what: str) -> None:
    """Refuse ``target`` when the nearest existing folder above it is a file or not writable.

    A job writes beside ``target`` under a temporary name and renames it, so that folder must
    let us create and rename entries.
    """
    parent = target.absolute().parent
    while not parent.exists() and not parent.is_symlink() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InvalidInputError(f"{target}: {parent} is a file, not a folder; choose another "
                                f"{what}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{target}: cannot write in {parent} (permission denied); "
                                f"choose another {what}")


def check_model(model: str | Path) -> Path:
    """Refuse a ``--model`` that is neither a shipped model's name nor a readable file.

    A bare word (no folder, no suffix) that is not an existing file is looked up among the
    shipped models (``autocontour model list``), with the closest name when it is unknown.

    Raises:
        InvalidInputError: no such file, a folder, unreadable.
        UnknownOptionError: an unknown shipped model name.
    """
    from autocontour.inference.catalogue import is_model_name, shipped_model  # no PyTorch

    if not is_model_name(model):
        return check_file(model, "model file or training checkpoint")
    return shipped_model(str(model)).path

