"""Every output follows the user's umask (an import service running as another user reads it).

Files written through a temporary name (``tempfile.mkstemp`` makes 0600, ``mkdtemp`` 0700) must
end up like any other file: 0644/0755 under umask 022, 0640/0750 under 027.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from autocontour.artifacts.files import CHECKPOINT, KEYS, MODEL, write_file
from autocontour.io import Volume, write_dicom_series, write_volume
from autocontour.jobs import PredictRequest, load_contourer, predict
from autocontour.jobs.files import ConvertRequest, convert
from autocontour.phantoms import head_neck_case

UMASKS = [0o022, 0o027]


@pytest.fixture(scope="module")
def contourer():  # the shipped model, loaded once for the module
    return load_contourer(None, "cpu")


@pytest.fixture(scope="module")
def head() -> Volume:
    """A head-and-neck phantom CT long enough (72 mm) for the model's anatomy check."""
    return head_neck_case(seed=3, shape=(24, 64, 64)).ct


@pytest.fixture(params=UMASKS, ids=lambda m: f"umask{m:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The process umask set for the test, restored afterwards."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _wrong_modes(root: Path, umask: int) -> dict[str, str]:
    """Files and folders under ``root`` (itself included) whose mode the umask does not give."""
    wrong = {}
    for path in [root, *root.rglob("*")]:
        want = (0o777 if path.is_dir() else 0o666) & ~umask
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode != want:
            wrong[str(path.relative_to(root.parent))] = f"{mode:o} (want {want:o})"
    return wrong


def test_predict_outputs_follow_the_umask(tmp_path: Path, head: Volume, contourer,
                                          umask: int) -> None:
    write_dicom_series(head, tmp_path / "ct")
    result = predict(PredictRequest(tmp_path / "ct", tmp_path / "out"), contourer=contourer)
    names = {p.name for p in result.output.iterdir()}
    assert {"rtstruct.dcm", "seg.dcm", "labels.nii.gz", "overview.png", "report.json"} <= names
    assert _wrong_modes(result.output, umask) == {}


def test_predict_from_nifti_writes_a_ct_series_that_follows_the_umask(
        tmp_path: Path, head: Volume, contourer, umask: int) -> None:
    image = write_volume(head, tmp_path / "ct.nii.gz")
    result = predict(PredictRequest(image, tmp_path / "out"), contourer=contourer)
    assert any((result.output / "ct").glob("*.dcm")) and (result.output / "rtstruct.dcm").is_file()
    assert _wrong_modes(result.output, umask) == {}


def test_a_dicom_series_follows_the_umask(tmp_path: Path, hn_case, umask: int) -> None:
    write_dicom_series(hn_case.ct, tmp_path / "ct")
    assert _wrong_modes(tmp_path / "ct", umask) == {}
    write_dicom_series(hn_case.ct, tmp_path / "ct", overwrite=True)  # replaced: same modes
    assert _wrong_modes(tmp_path / "ct", umask) == {}


def test_a_converted_image_follows_the_umask(tmp_path: Path, ct_dir: Path, umask: int) -> None:
    for name in ("ct.nii.gz", "ct.nrrd", "ct.h5", "again"):
        out = convert(ConvertRequest(ct_dir, tmp_path / "conv" / name)).output
        assert out.exists()
    assert _wrong_modes(tmp_path / "conv", umask) == {}


@pytest.mark.parametrize("kind", [CHECKPOINT, MODEL])
def test_checkpoints_and_model_files_follow_the_umask(tmp_path: Path, umask: int,
                                                      kind: str) -> None:
    write_file(tmp_path / "files" / "a.pt", kind, dict.fromkeys(KEYS[kind]))
    assert _wrong_modes(tmp_path / "files", umask) == {}
