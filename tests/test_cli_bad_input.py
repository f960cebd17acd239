"""Every bad invocation of every command: one line on stderr, exit code 2, nothing written.

The table runs ``autocontour.cli.main(argv)`` in-process: the exit code is 2 (whether the problem
was found by argparse or by a job), stderr is exactly one line ``autocontour: error: ...`` that
names the problem, stdout stays empty, and the working folder is byte-for-byte as it was (no
output, no ``.partial`` folder, nothing existing changed). Then: a full disk and an unwritable
folder while writing, a ``ValueError`` from a job, the progress bar cleared before the error, and
a refusal that never imports PyTorch.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from autocontour import cli
from autocontour.cli import main
from autocontour.errors import InvalidInputError
from autocontour.jobs import Progress
from autocontour.jobs import checks as checks_module

MODEL = "no such model file or training checkpoint"


@pytest.fixture
def work(tmp_path: Path, ct_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder of good and bad inputs and outputs (``ct`` is a good DICOM series).

    ``ro/`` cannot be written: by its mode, and (as root ignores modes) by ``os.access``.
    """
    (tmp_path / "afile").write_text("keep me")
    (tmp_path / "notes.nii.gz").write_text("an earlier result")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.txt").write_text("an earlier result")
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti file")
    (tmp_path / "bad.h5").write_bytes(b"\0" * 600)
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    (tmp_path / "fake.zip").write_bytes(b"not an archive" * 20)
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("CT/IM0001.dcm", bytes(2 * 1024**2))
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access

    def access(path: object, mode: int, **kwargs: object) -> bool:
        if mode & os.W_OK and Path(str(path)).absolute().is_relative_to(ro):
            return False
        return real_access(path, mode, **kwargs)
    monkeypatch.setattr(checks_module.os, "access", access)
    ro.chmod(0o555)
    yield tmp_path
    ro.chmod(0o755)


def _state(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time, every folder with -1."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file()
            else (-1, -1) for p in root.rglob("*")}


def _run(capsys: pytest.CaptureFixture, argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refuses before main's try
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


BAD = [
    # predict: input, then output, then model
    ("predict {d}/missing -o {d}/out", "missing: no such file or folder"),
    ("predict {d}/x.png -o {d}/out", "x.png: unknown format"),
    ("predict {d}/bad.nii.gz -o {d}/out", "bad.nii.gz: not a gzip-compressed NIfTI file"),
    ("predict {d}/bad.h5 -o {d}/out", "bad.h5: not an HDF5 file"),
    ("predict {d}/empty -o {d}/out", "empty: no CT/MR/PET image series found"),
    ("predict {d}/fake.zip -o {d}/out", "fake.zip: not a zip archive"),
    ("predict {d}/ct -o {d}/afile", "afile: is a file, not a folder"),
    ("predict {d}/ct -o {d}/afile --overwrite", "afile: is a file, not a folder"),
    ("predict {d}/ct -o {d}/full", "full: already holds files"),
    ("predict {d}/ct -o {d}/afile/sub", "afile is a file, not a folder"),
    ("predict {d}/ct -o {d}/ro/out", "ro (permission denied)"),
    ("predict {d}/ct -o {d}/out --model {d}/missing.pt", f"missing.pt: {MODEL}"),
    ("predict {d}/ct", "the following arguments are required: -o/--output"),
    # demo
    ("demo --out {d}/afile", "afile: is a file, not a folder"),
    ("demo -o {d}/afile", "afile: is a file, not a folder"),
    ("demo --out {d}/full", "full: already holds files"),
    ("demo --out {d}/ro/demo", "ro (permission denied)"),
    ("demo --out {d}/out --model {d}/missing.pt", f"missing.pt: {MODEL}"),
    ("demo --out {d}/out --shape 12x12", "shape must look like 128x128x64"),
    # phantom
    ("phantom --site head-neck --out {d}/afile", "afile: is a file, not a folder"),
    ("phantom --site head-neck --out {d}/afile/sub", "afile is a file, not a folder"),
    ("phantom --site head-neck --out {d}/ro/p", "ro (permission denied)"),
    ("phantom --site head-neck --cases 0 --out {d}/p", "--cases: must be at least 1, got 0"),
    ("phantom --site head-neck --cases two --out {d}/p", "expected a whole number, got 'two'"),
    ("phantom --site knee --out {d}/p", "unknown phantom site 'knee'"),
    ("phantom --site pelvis --sex other --out {d}/p", "invalid choice: 'other'"),
    # info
    ("info {d}/missing", "missing: no such file or folder"),
    ("info {d}/x.png", "x.png: unknown format"),
    ("info {d}/fake.zip", "fake.zip: not a zip archive"),
    ("info {d}/bomb.zip", "bomb.zip: compressed"),
    ("info {d}/bad.nii.gz", "bad.nii.gz: not a gzip-compressed NIfTI file"),
    # convert
    ("convert {d}/missing {d}/o.nii.gz", "missing: no such file or folder"),
    ("convert {d}/bomb.zip {d}/o.nii.gz", "(a zip bomb?)"),
    ("convert {d}/ct {d}/o.png", "o.png: unknown format"),
    ("convert {d}/ct {d}/afile", "afile: is a file, not a folder"),
    ("convert {d}/ct {d}/notes.nii.gz", "notes.nii.gz: already exists"),
    ("convert {d}/ct {d}/full", "full: already holds files"),
    ("convert {d}/ct {d}/ro/o.nii.gz", "ro (permission denied)"),
    ("convert {d}/ct {d}/o.nii.gz --modality PET", "invalid choice: 'PET'"),
    # evaluate
    ("evaluate {d}/missing {d}/empty --organs head-neck", "missing: no such file or folder"),
    ("evaluate {d}/empty {d}/missing --organs head-neck", "missing: no such file or folder"),
    ("evaluate {d}/empty {d}/empty --organs head-neck --out {d}/afile", "afile: is a file"),
    ("evaluate {d}/empty {d}/empty --organs head-neck --out {d}/ro/r", "(permission denied)"),
    ("evaluate {d}/empty {d}/empty --organs knee", "unknown organ set 'knee'"),
    ("evaluate {d}/empty {d}/empty --tolerance wide", "invalid float value: 'wide'"),
    ("evaluate {d}/afile {d}/afile", "afile: not a label-map file"),
    ("evaluate {d}/empty {d}/empty", "empty: no label maps found"),
    # train
    ("train {d}/missing.yaml", "missing.yaml: no such training config"),
    ("train {d}/empty", "empty: is a folder, not a training config"),
    ("train {d}/afile", "afile: config must be a mapping"),
    ("train {d}/afile --fold 0 --folds all", "not allowed with argument"),
    # dataset
    ("dataset import {d}/missing --out {d}/ds", "missing: no such source folder"),
    ("dataset import {d}/afile --out {d}/ds", "afile: is a file, not a source folder"),
    ("dataset import {d}/empty --out {d}/afile", "afile: is a file, not a folder"),
    ("dataset import {d}/empty --out {d}/ds --layout zip", "invalid choice: 'zip'"),
    ("dataset import {d}/empty --out {d}/ds", "empty: empty folder, no cases to import"),
    ("dataset audit {d}/empty --out {d}/au", "empty: no data set here"),
    ("dataset fingerprint {d}/missing", "missing: no such data set folder"),
    ("dataset split {d}/afile", "afile: is a file, not a data set folder"),
    ("dataset fingerprint {d}/empty", "empty: no data set here"),
    ("dataset split {d}/empty", "empty: no data set here"),
    ("dataset split {d}/empty --folds 1", "--folds: must be at least 2, got 1"),
    ("dataset export {d}/empty --nnunet {d}/nn", "empty: no data set here"),
    ("dataset export {d}/empty --nnunet {d}/full",
     "full: already holds files; choose another --nnunet (nothing"),
    ("dataset", "the following arguments are required: ACTION"),
    # model
    ("model {d}/missing.pt", f"missing.pt: {MODEL}"),
    ("model {d}/empty", "empty: is a folder, not a model file"),
    ("model {d}/afile", "afile: not a readable model file"),
    # user, serve, worker (the store's folder cannot be made in a file; bad settings)
    ("user token alice --home {d}/afile/home", "afile/home: cannot create the store's folder"),
    ("serve --home {d}/afile/home", "afile/home: cannot create the store's folder"),
    ("serve --port 70000 --home {d}/h", "port (--port or AUTOCONTOUR_PORT): Input should be"),
    ("serve --workers -1 --home {d}/h", "--workers: must be at least 0, got -1"),
    ("serve --queue-url amqp://x --home {d}/empty", "queue URL 'amqp://x': use redis://"),
    ("worker --home {d}/afile/home", "afile/home: cannot create the store's folder"),
    ("worker --threads 0", "--threads: must be at least 1, got 0"),
    # dicom-node (bad settings files: tests/dicom_node/test_node_config.py)
    ("dicom-node --config {d}/missing.yaml", "missing.yaml: no such settings file"),
    ("dicom-node --config {d}/empty", "empty: is a folder, not a settings file"),
    ("dicom-node --config {d}/afile", "afile: must be a mapping of settings"),
    ("dicom-node --config {d}/x.png", "x.png: not a text (YAML) file"),
    ("dicom-node --config {d}/bad.h5", "bad.h5: not valid YAML"),
    ("dicom-node --home {d}/empty", "the DICOM node needs its settings: --config FILE, or"),
    ("dicom-node --port -1 --config {d}/afile", "--port: must be at least 0, got -1"),
    ("dicom-node --workers many", "--workers: expected a whole number, got 'many'"),
    ("dicom-node statu", "invalid choice: 'statu'"),
    ("dicom-node status --limit 0", "--limit: must be at least 1, got 0"),
    ("dicom-node status --home {d}/afile/home", "afile/home: cannot create the store's folder"),
    # the command itself
    ("", "the following arguments are required: COMMAND"),
    ("contour {d}/ct", "invalid choice: 'contour'"),
]


@pytest.mark.parametrize("template, message", BAD, ids=[row[0] or "(none)" for row in BAD])
def test_bad_invocation_is_one_line_exit_2_and_writes_nothing(
        work: Path, capsys: pytest.CaptureFixture, template: str, message: str) -> None:
    argv = template.format(d=work).split()
    before = _state(work)
    code, out, err = _run(capsys, argv)
    assert code == 2, err
    assert err.startswith("autocontour: error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err, err
    assert out == ""
    assert _state(work) == before  # nothing written, nothing existing changed


# --- a full disk, an unwritable folder, a ValueError ------------------------------------------

def _disk_full(path: object) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def _assert_one_line_and_nothing_left(code: int, out: str, err: str, root: Path,
                                      before: dict, *fragments: str) -> None:
    assert code == 2, err
    line = err.split("\r")[-1]  # what follows a cleared progress bar, if one was shown
    assert line.startswith("autocontour: error: ") and err.count("\n") == 1, err
    assert all(f in line for f in fragments), err
    assert "Traceback" not in err and out == ""
    assert _state(root) == before
    assert not [p for p in root.rglob("*") if ".partial" in p.name or ".old" in p.name]


def test_disk_full_while_writing_phantoms(tmp_path: Path, capsys: pytest.CaptureFixture,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def write_cases(site: str, cases: int, out: Path, **kwargs: object) -> dict:
        (out / "case0").mkdir(parents=True)
        (out / "case0" / "ct.nii.gz").write_bytes(b"half a case")
        raise _disk_full(out / "case0" / "label.nii.gz")
    monkeypatch.setattr("autocontour.jobs.phantoms.write_cases", write_cases)
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "notes.txt").write_text("mine")
    before = _state(tmp_path)
    for out in (tmp_path / "new" / "deeper", tmp_path / "keep"):
        code, stdout, err = _run(capsys, ["phantom", "--site", "pelvis", "--out", str(out)])
        _assert_one_line_and_nothing_left(code, stdout, err, tmp_path, before,
                                          "label.nii.gz: No space left on device")


def test_disk_full_while_writing_the_demo(tmp_path: Path, capsys: pytest.CaptureFixture,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def write_dicom_series(volume: object, out: Path, **kwargs: object) -> None:
        out.mkdir()
        (out / "CT_0000.dcm").write_bytes(b"half a slice")
        raise _disk_full(out / "CT_0001.dcm")
    monkeypatch.setattr("autocontour.jobs.demo.write_dicom_series", write_dicom_series)
    before = _state(tmp_path)
    code, out, err = _run(capsys, ["demo", "--out", str(tmp_path / "new" / "demo")])
    _assert_one_line_and_nothing_left(code, out, err, tmp_path, before,
                                      "CT_0001.dcm: No space left on device")


def test_disk_full_while_writing_predict_outputs(ct_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import SimpleITK as sitk

    from autocontour.jobs.prediction import PredictRequest
    written: list[str] = []

    def write_image(image: object, path: str, *args: object, **kwargs: object) -> None:
        Path(path).write_bytes(b"half a label map")
        written.append(path)
        raise _disk_full(path)
    monkeypatch.setattr(sitk, "WriteImage", write_image)
    force = ["--force"] if "force" in {f.name for f in dataclasses.fields(PredictRequest)} else []
    before = _state(tmp_path)
    code, out, err = _run(capsys, ["predict", str(ct_dir), "-o", str(tmp_path / "out"),
                                   "--quiet", "--device", "cpu", *force])
    assert written, err  # the failure came from the write, not from an earlier check
    _assert_one_line_and_nothing_left(code, out, err, tmp_path, before,
                                      "labels.nii.gz", ": No space left on device")


def test_disk_full_while_converting(ct_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def write_hdf5(volume: object, path: Path) -> None:
        path.write_bytes(b"half a file")
        raise _disk_full(path)
    monkeypatch.setattr("autocontour.io.formats._write_hdf5", write_hdf5)
    before = _state(tmp_path)
    code, out, err = _run(capsys, ["convert", str(ct_dir), str(tmp_path / "ct.h5")])
    _assert_one_line_and_nothing_left(code, out, err, tmp_path, before, "No space left on device")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder, whatever its mode")
def test_a_folder_without_write_permission(ct_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        for argv in (["predict", str(ct_dir), "-o", str(ro / "out")],
                     ["phantom", "--site", "pelvis", "--out", str(ro / "p")],
                     ["convert", str(ct_dir), str(ro / "ct.nii.gz")]):
            code, _, err = _run(capsys, argv)
            assert code == 2 and "permission denied" in err and err.count("\n") == 1, err
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_an_os_error_names_the_path_and_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def write_phantoms(request: object, progress: object = None) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/mnt/pacs/out")
    monkeypatch.setattr("autocontour.jobs.phantoms.write_phantoms", write_phantoms)
    code, _, err = _run(capsys, ["phantom", "--site", "pelvis", "--out", str(tmp_path / "p")])
    assert code == 2 and err == "autocontour: error: /mnt/pacs/out: Permission denied\n"


def test_a_value_error_from_a_job_is_one_line_and_debug_shows_it(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    def write_phantoms(request: object, progress: object = None) -> None:
        raise ValueError("cannot mix male and female\nin one pelvis")
    monkeypatch.setattr("autocontour.jobs.phantoms.write_phantoms", write_phantoms)
    argv = ["phantom", "--site", "pelvis", "--out", str(tmp_path / "p")]
    code, out, err = _run(capsys, argv)
    assert code == 2 and err.count("\n") == 1 and out == ""
    assert err == ("autocontour: error: cannot mix male and female in one pelvis (--debug shows "
                   "the traceback)\n")
    with pytest.raises(ValueError, match="cannot mix"):
        main(["--debug", *argv])


@pytest.mark.parametrize("closed_by_its_block", [True, False])
def test_the_progress_bar_is_cleared_before_the_error_line(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
        closed_by_its_block: bool) -> None:
    def write_phantoms(request: object, progress: cli._Bar) -> None:
        progress(Progress("case 0", 0.5, "pelvis 5 written"))
        progress.write("warning: a message while the bar is shown")
        raise InvalidInputError("case 1: it went wrong half-way")
    monkeypatch.setattr("autocontour.jobs.phantoms.write_phantoms", write_phantoms)
    if not closed_by_its_block:  # main itself must clear a bar left open
        monkeypatch.setattr(cli._Bar, "__exit__", lambda self, *exc: None)
    code, _, err = _run(capsys, ["phantom", "--site", "pelvis", "--out", str(tmp_path / "p")])
    assert code == 2 and "phantoms:  50%" in err  # the bar was drawn
    before, sep, after = err.rpartition("autocontour: error: ")
    assert sep and after == "case 1: it went wrong half-way\n"
    assert before.endswith("\r") and before.split("\r")[-2].strip() == ""  # the bar was wiped
    assert "\rwarning: a message while the bar is shown\n" in err
    assert cli._Bar._open == []


# --- a refusal never waits for PyTorch ------------------------------------------------------

def test_refusing_a_missing_input_is_fast_and_never_imports_torch(tmp_path: Path) -> None:
    root = Path(cli.__file__).parent.parent
    notes = tmp_path / "notes.txt"  # not a label map: evaluate refuses it before MONAI loads
    notes.write_text("not a label map")
    empty = tmp_path / "empty"  # a folder without files: predict refuses it unread
    empty.mkdir()
    argv = ["predict", str(tmp_path / "no-such-ct"), "-o", str(tmp_path / "out")]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "autocontour.cli", *argv], cwd=root,
                          capture_output=True, text=True, timeout=60, check=False)
    seconds = time.perf_counter() - started
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"autocontour: error: {tmp_path / 'no-such-ct'}: no such file or folder\n"
    assert seconds < 2.0, f"a refusal took {seconds:.1f} s"
    code = ("import sys\nfrom autocontour.cli import main\n"
            f"assert main({argv!r}) == 2\n"
            f"assert main(['predict', {str(empty)!r}, '-o', {str(tmp_path / 'o')!r}]) == 2\n"
            f"assert main(['evaluate', {str(notes)!r}, {str(notes)!r}]) == 2\n"
            f"assert main(['train', {str(notes)!r}]) == 2\n"
            f"assert main(['dataset', 'split', {str(empty)!r}]) == 2\n"
            f"assert main(['dataset', 'import', {str(empty)!r}, '--out', "
            f"{str(tmp_path / 'ds')!r}]) == 2\n"
            "print(','.join(m for m in ('torch', 'monai', 'highdicom', 'matplotlib') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"a refusal imported {done.stdout.strip()}"
    assert not any((tmp_path / name).exists() for name in ("out", "o", "ds"))


def test_a_zip_with_extras_is_not_bad_input(ct_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    archive = tmp_path / "cd.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(ct_dir.iterdir()):
            zf.write(f, f"DICOM/{f.name}")
        zf.writestr("README.TXT", "exported by PACS")
        zf.writestr("viewer.exe", b"MZ" + bytes(200))
        zf.writestr("autorun.inf", "[autorun]\nopen=viewer.exe\n")
        zf.writestr("../escape.dcm", "never read")
    code, out, err = _run(capsys, ["convert", str(archive), str(tmp_path / "ct.nii.gz")])
    assert code == 0 and "-> " in out and (tmp_path / "ct.nii.gz").is_file()
    assert err.startswith("warning: ") and err.count("\n") == 1 and "skipped 4 file(s)" in err
    assert "escape.dcm (name leaves the archive's folder (../), not read)" in err
    code, out, _ = _run(capsys, ["info", str(archive)])
    assert code == 0 and "README.TXT" in out


def test_a_predict_process_ends_quickly_with_every_output_complete(ct_dir: Path,
                                                                  tmp_path: Path) -> None:
    """The console command skips the interpreter's teardown after a successful predict
    (os._exit): every file must be complete and all it printed must arrive all the same."""
    root = Path(cli.__file__).parent.parent
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "autocontour.cli", "predict", str(ct_dir), "-o",
                           str(out), "--quiet", "--threads", "1"], cwd=root,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "organ(s) contoured" in done.stdout
    assert done.stdout.rstrip().splitlines()[-1].startswith("  stages: ")
    report = json.loads((out / "report.json").read_text())
    assert report["organs"] and (out / "rtstruct.dcm").stat().st_size > 0
    assert pydicom.dcmread(out / "rtstruct.dcm").StructureSetROISequence
    failed = subprocess.run([sys.executable, "-m", "autocontour.cli", "predict", str(ct_dir),
                             "-o", str(out), "--quiet"], cwd=root, capture_output=True,
                            text=True, timeout=300, check=False)
    assert failed.returncode == 2 and "already holds files" in failed.stderr  # as before
