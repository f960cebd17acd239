"""Reading a DICOM series from a zip (or folder) with extras, and refusing unsafe zips.

A zip is read in memory, member by member: nothing is extracted, members that would be unsafe
to extract are skipped and listed, and a zip bomb is refused before anything is decompressed.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pydicom.fileset import FileSet

from autocontour.errors import InvalidInputError
from autocontour.io import dicom_series, read_volume
from autocontour.io.dicom_series import read_dicom_series, scan

VIEWER = b"MZ\x90\x00" + bytes(300)  # the first bytes of a Windows program


def _dicomdir(ct_dir: Path, where: Path) -> Path:
    """A real DICOMDIR (Media Storage Directory) indexing the series, written by pydicom."""
    fs = FileSet()
    for f in sorted(ct_dir.iterdir()):
        fs.add(str(f))
    fs.write(str(where))
    return where / "DICOMDIR"


def _zip(path: Path, ct_dir: Path, extras: dict[str, bytes] | None = None,
         compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for f in sorted(ct_dir.iterdir()):
            zf.write(f, f"CT/{f.name}")
        for name, data in (extras or {}).items():
            zf.writestr(name, data)
    return path


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_zip_with_a_dicomdir_a_readme_a_viewer_and_autorun_is_read(ct_dir, tmp_path, hn_case):
    dicomdir = _dicomdir(ct_dir, tmp_path / "media")
    archive = _zip(tmp_path / "cd.zip", ct_dir, {
        "DICOMDIR": dicomdir.read_bytes(), "README.TXT": b"Patient CD, exported by PACS",
        "viewer/viewer.exe": VIEWER, "autorun.inf": b"[autorun]\nopen=viewer\\viewer.exe\n"})
    warnings: list[str] = []
    vol = read_volume(archive, warnings=warnings)
    np.testing.assert_array_equal(vol.array, hn_case.ct.array)
    assert len(warnings) == 1 and "skipped 4 file(s)" in warnings[0]
    for name in ("DICOMDIR, an index", "README.TXT (not a DICOM file", "viewer.exe (not a DICOM",
                 "autorun.inf (not a DICOM"):
        assert name in warnings[0]


def test_folder_with_extras_is_read_and_they_are_listed(ct_dir, tmp_path, hn_case):
    (ct_dir / "DICOMDIR").write_bytes(_dicomdir(ct_dir, tmp_path / "media").read_bytes())
    (ct_dir / "autorun.inf").write_text("[autorun]\n")
    (ct_dir / "viewer.exe").write_bytes(VIEWER)
    (ct_dir / "images.zip").write_bytes(b"PK\x03\x04 not opened")
    warnings: list[str] = []
    vol = read_dicom_series(ct_dir, warnings=warnings)
    np.testing.assert_array_equal(vol.array, hn_case.ct.array)
    assert len(warnings) == 1 and "skipped 4 file(s)" in warnings[0]
    assert "images.zip (archive, not opened)" in warnings[0] and "DICOMDIR" in warnings[0]


def test_a_dicomdir_under_another_name_is_skipped_by_its_sop_class(ct_dir, tmp_path, hn_case):
    (ct_dir / "index.dcm").write_bytes(_dicomdir(ct_dir, tmp_path / "media").read_bytes())
    found = scan(ct_dir, pixels=False)
    assert [why for name, why in found.skipped if name.endswith("index.dcm")] == [
        "DICOMDIR, an index of the files, not needed"]
    assert read_dicom_series(ct_dir).shape == hn_case.ct.shape


@pytest.mark.parametrize("name, why", [
    ("../../evil.dcm", "leaves the archive's folder"),
    ("CT/../../evil.dcm", "leaves the archive's folder"),
    ("..\\evil.dcm", "leaves the archive's folder"),
    ("/tmp/evil.dcm", "absolute path"),
    ("C:/Windows/evil.dcm", "absolute path"),
])
def test_members_whose_names_leave_the_folder_are_skipped_never_read(ct_dir, tmp_path, hn_case,
                                                                      name, why):
    slice_bytes = next(iter(sorted(ct_dir.iterdir()))).read_bytes()
    archive = tmp_path / "up.zip"
    _zip(archive, ct_dir)
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr(zipfile.ZipInfo(name), slice_bytes)  # would be a duplicate slice if read
    before = _tree(tmp_path)
    warnings: list[str] = []
    vol = read_volume(archive, warnings=warnings)
    np.testing.assert_array_equal(vol.array, hn_case.ct.array)
    assert why in warnings[0] and name in warnings[0]
    assert _tree(tmp_path) == before and not Path("/tmp/evil.dcm").exists()


def test_symlink_members_are_skipped(ct_dir, tmp_path, hn_case):
    archive = _zip(tmp_path / "up.zip", ct_dir)
    link = zipfile.ZipInfo("CT/passwd.dcm")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr(link, "/etc/passwd")
    found = scan(archive, pixels=False)
    assert (f"{archive}!CT/passwd.dcm", "symbolic link, not followed") in found.skipped
    assert read_volume(archive).shape == hn_case.ct.shape


def test_nested_zips_are_listed_not_opened(ct_dir, tmp_path, hn_case):
    inner = _zip(tmp_path / "inner.zip", ct_dir)
    archive = _zip(tmp_path / "outer.zip", ct_dir, {
        "more/series.zip": inner.read_bytes(),
        "more/series.bin": inner.read_bytes()})  # a zip by its content, not its name
    found = scan(archive, pixels=False)
    skipped = dict(found.skipped)
    assert skipped[f"{archive}!more/series.zip"] == "archive inside the archive, not opened"
    assert skipped[f"{archive}!more/series.bin"] == "archive inside the archive, not opened"
    assert len(found.series) == 1 and len(found.series[0].slices) == hn_case.ct.shape[0]


def test_a_zip_bomb_is_refused_before_anything_is_decompressed(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("CT/IM0001.dcm", bytes(8 * 1024**2))  # 8 MiB of zeros: ~1000:1
    assert bomb.stat().st_size < 64 * 1024

    def never(*args, **kwargs):
        raise AssertionError("a member was decompressed")
    monkeypatch.setattr(dicom_series, "_read_member", never)
    with pytest.raises(InvalidInputError, match=r"bomb.zip: compressed \d+:1, more than the "
                                                r"200:1 allowed \(a zip bomb\?\)"):
        read_volume(bomb)
    with pytest.raises(InvalidInputError, match="would expand to 8.0 MiB, more than the 1.0 MiB"):
        scan(bomb, max_zip_bytes=1024**2)
    monkeypatch.setattr(dicom_series, "MAX_ZIP_BYTES", 4 * 1024**2)
    with pytest.raises(InvalidInputError, match="more than the 4.0 MiB allowed"):
        read_volume(bomb)
    assert _tree(tmp_path) == {"bomb.zip"}


def test_limits_are_per_call_and_the_defaults_fit_a_large_ct(ct_dir, tmp_path, hn_case):
    archive = _zip(tmp_path / "up.zip", ct_dir, compression=zipfile.ZIP_STORED)
    size = sum(f.stat().st_size for f in ct_dir.iterdir())
    with pytest.raises(InvalidInputError, match="zip bomb"):
        scan(archive, max_zip_bytes=size - 1)
    assert len(scan(archive, max_zip_bytes=size).series) == 1
    slice_bytes = 512 * 512 * 2 + 4096  # a 512x512 CT slice with a generous header
    assert 600 * slice_bytes * 4 < dicom_series.MAX_ZIP_BYTES
    assert dicom_series.MAX_ZIP_RATIO >= 100  # CT slices compress 2-10:1


def test_a_file_named_zip_that_is_not_one(tmp_path):
    fake = tmp_path / "study.zip"
    fake.write_bytes(b"this is not an archive" * 20)
    with pytest.raises(InvalidInputError, match=r"study.zip: not a zip archive"):
        read_volume(fake)


def test_a_zip_without_a_series_lists_what_it_skipped(tmp_path):
    archive = tmp_path / "docs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("README.TXT", "no images here")
        zf.writestr("../escape.dcm", "x")
    with pytest.raises(InvalidInputError, match=r"no CT/MR/PET image series found \(skipped 2 "
                                                r"file\(s\).*escape.dcm.*README.TXT"):
        read_volume(archive)


def test_an_unsupported_compression_method_is_one_clear_error(ct_dir, tmp_path):
    archive = _zip(tmp_path / "win.zip", ct_dir, compression=zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    # Mark every member as Deflate64 (method 9, written by some Windows tools) in both headers.
    for sig, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        start = 0
        while (start := data.find(sig, start)) >= 0:
            data[start + offset:start + offset + 2] = (9).to_bytes(2, "little")
            start += 4
    archive.write_bytes(bytes(data))
    with pytest.raises(InvalidInputError, match=r"win.zip!CT/.*: compressed with a method that "
                                                "cannot be read"):
        read_volume(archive)


def test_reading_a_zip_writes_nothing(ct_dir, tmp_path, monkeypatch):
    archive = _zip(tmp_path / "up.zip", ct_dir, {"README": b"x", "../up.dcm": b"y"})
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    read_volume(archive)
    assert _tree(tmp_path) == before
