"""The light path checks every job (and the CLI, before importing a job) runs first."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autocontour.errors import InvalidInputError, OutputExistsError, UnknownOptionError
from autocontour.jobs import PhantomRequest, PredictRequest, predict, write_phantoms
from autocontour.jobs.checks import (
    check_exists,
    check_file,
    check_folder,
    check_input,
    check_output_file,
    check_output_folder,
)


def test_good_inputs_pass(ct_dir: Path, tmp_path: Path, hn_case) -> None:
    from autocontour.io import write_volume
    for name in ("ct.nii.gz", "ct.nii", "ct.nrrd", "ct.h5"):
        write_volume(hn_case.ct, tmp_path / name)
        assert check_input(tmp_path / name) == tmp_path / name
    assert check_input(ct_dir) == ct_dir
    assert check_input(next(ct_dir.iterdir())).suffix == ".dcm"


@pytest.mark.parametrize("name, content, match", [
    ("a.nii.gz", b"plain text", "not a gzip-compressed NIfTI file (another kind of file)"),
    ("a.nii", gzip.compress(b"x" * 400, mtime=0), "not a NIfTI file"),
    ("a.nrrd", b"", "not an NRRD file (an empty file)"),
    ("a.h5", b"\0" * 3000, "not an HDF5 file"),
    ("a.zip", b"PK but not really", "not a zip archive"),
], ids=["nii.gz", "nii", "nrrd", "h5", "zip"])
def test_a_damaged_header_is_refused(tmp_path: Path, name: str, content: bytes,
                                     match: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InvalidInputError, match=re.escape(f"{name}: {match}")):
        check_input(tmp_path / name)


def test_missing_unknown_and_misplaced_inputs(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="nope: no such file or folder"):
        check_input(tmp_path / "nope")
    (tmp_path / "a.png").write_bytes(b"png")
    with pytest.raises(UnknownOptionError, match="unknown format"):
        check_input(tmp_path / "a.png")
    (tmp_path / "dir.nii.gz").mkdir()
    with pytest.raises(InvalidInputError, match="dir.nii.gz: is a folder, not a NIfTI file"):
        check_input(tmp_path / "dir.nii.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no CT/MR/PET image series found"):
        check_input(tmp_path / "empty")
    with pytest.raises(InvalidInputError, match="nope: no such file or folder"):
        check_exists(tmp_path / "nope")
    with pytest.raises(InvalidInputError, match="empty: is a folder, not a config"):
        check_file(tmp_path / "empty", "config")
    with pytest.raises(InvalidInputError, match="a.png: is a file, not a data set"):
        check_folder(tmp_path / "a.png", "data set")


def test_output_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "a").write_text("x")
    assert check_output_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert check_output_folder(tmp_path / "full", overwrite=True) == tmp_path / "full"
    assert check_output_folder(tmp_path / "full", must_be_empty=False) == tmp_path / "full"
    with pytest.raises(OutputExistsError, match="full: already holds files.*--overwrite"):
        check_output_folder(tmp_path / "full")
    with pytest.raises(OutputExistsError, match=r"choose another --nnunet \(nothing"):
        check_output_folder(tmp_path / "full", what="--nnunet", can_overwrite=False)
    for out in (tmp_path / "file", tmp_path / "file" / "sub" / "deeper"):
        with pytest.raises(InvalidInputError, match="file.*is a file, not a folder"):
            check_output_folder(out, overwrite=True)
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: not mode & os.W_OK)
    with pytest.raises(InvalidInputError, match=r"cannot write in .* \(permission denied\)"):
        check_output_folder(tmp_path / "new")


def test_output_files(tmp_path: Path) -> None:
    (tmp_path / "old.nii.gz").write_text("x")
    (tmp_path / "dir.h5").mkdir()
    assert check_output_file(tmp_path / "old.nii.gz", overwrite=True) == tmp_path / "old.nii.gz"
    with pytest.raises(OutputExistsError, match="old.nii.gz: already exists"):
        check_output_file(tmp_path / "old.nii.gz")
    with pytest.raises(InvalidInputError, match="dir.h5: is a folder, not a file"):
        check_output_file(tmp_path / "dir.h5", overwrite=True)
    with pytest.raises(UnknownOptionError, match="unknown format"):
        check_output_file(tmp_path / "out.png")
    with pytest.raises(InvalidInputError, match="is a file, not a folder"):
        check_output_file(tmp_path / "old.nii.gz" / "ct.nrrd")
    assert check_output_file(tmp_path / "dicom") == tmp_path / "dicom"  # a DICOM folder


def test_jobs_check_their_paths_before_any_work(ct_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("keep me")
    with pytest.raises(InvalidInputError, match="file: is a file, not a folder"):
        predict(PredictRequest(ct_dir, tmp_path / "file", overwrite=True))
    with pytest.raises(InvalidInputError, match="is a file, not a folder"):
        write_phantoms(PhantomRequest("pelvis", 1, tmp_path / "file" / "p"))
    assert (tmp_path / "file").read_text() == "keep me"


def test_importing_the_checks_loads_nothing_heavy() -> None:
    code = ("import sys, autocontour.jobs.checks, autocontour.cli; "
            "print(','.join(m for m in ('torch', 'monai', 'highdicom', 'matplotlib', 'pydicom', "
            "'scipy', 'SimpleITK') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).parents[2], check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
