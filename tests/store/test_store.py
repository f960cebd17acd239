"""The case store: schema and migrations, accounts, uploads by content, results never replaced."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from autocontour.cli import main
from autocontour.errors import InvalidInputError
from autocontour.io import write_dicom_series, write_volume
from autocontour.phantoms import head_neck_case
from autocontour.store.accounts import UserExistsError, add_user, authenticate
from autocontour.store.cases import (
    NotFoundError,
    add_result,
    add_upload,
    case_file,
    cases_of,
    get_case,
)
from autocontour.store.database import open_store
from autocontour.store.schema import Base


@pytest.fixture
def store(tmp_path: Path):
    return open_store(tmp_path / "home")


@pytest.fixture(scope="module")
def ct_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("upload")
    return write_volume(head_neck_case(90041, shape=(12, 32, 32)).ct, folder / "ct.nii.gz")


def test_the_migrations_build_exactly_the_schema(store) -> None:
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    open_store(store.home)  # opening again migrates nothing and loses nothing


def test_a_store_that_cannot_be_created_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="file/home: cannot create the store's folder"):
        open_store(tmp_path / "file" / "home")


def test_passwords_are_kept_only_as_argon2_hashes(store) -> None:
    with store.session() as session:
        user = add_user(session, "alice", "correct horse")
        assert user.password_hash.startswith("$argon2id$")
        assert "correct horse" not in user.password_hash
        assert authenticate(session, "alice", "correct horse").id == user.id
        assert authenticate(session, "alice", "wrong horse!") is None
        assert authenticate(session, "nobody", "correct horse") is None
        with pytest.raises(UserExistsError, match="user alice exists already"):
            add_user(session, "alice", "another one")
        with pytest.raises(InvalidInputError, match="at least 8 characters"):
            add_user(session, "bob", "short")
        with pytest.raises(InvalidInputError, match="user name '../x'"):
            add_user(session, "../x", "long enough")


def test_the_same_upload_is_the_same_case_and_is_stored_once(store, ct_file: Path) -> None:
    with store.session() as session:
        alice, bob = add_user(session, "alice", "password1"), add_user(session, "bob", "password2")
        case, new = add_upload(store, session, alice, ct_file, description="first")
        assert new and case.format == "nifti" and case.filename == "ct.nii.gz"
        assert case_file(store, case).read_bytes() == ct_file.read_bytes()
        again, new_again = add_upload(store, session, alice, ct_file, filename="renamed.nii.gz")
        assert (again.id, new_again) == (case.id, False)
        theirs, new_theirs = add_upload(store, session, bob, ct_file)
        assert new_theirs and theirs.id != case.id and theirs.sha256 == case.sha256
        assert [c.id for c in cases_of(session, alice)] == [case.id]
        stored = [p for p in store.files.rglob("*") if p.is_file()]
        assert stored == [case_file(store, case)]  # one copy of the content, nothing left over


def test_another_users_case_is_not_found(store, ct_file: Path) -> None:
    with store.session() as session:
        alice, bob = add_user(session, "alice", "password1"), add_user(session, "bob", "password2")
        case, _ = add_upload(store, session, alice, ct_file)
        assert get_case(session, alice, case.id).id == case.id
        with pytest.raises(NotFoundError, match=f"case {case.id}: not found"):
            get_case(session, bob, case.id)
        with pytest.raises(NotFoundError):
            get_case(session, alice, case.id + 100)


@pytest.mark.parametrize("kind", ["not an image", "traversal zip", "folder"])
def test_a_bad_upload_is_refused_and_nothing_is_kept(store, tmp_path: Path, kind: str) -> None:
    if kind == "not an image":
        bad = tmp_path / "ct.nii.gz"
        bad.write_bytes(b"this is not a NIfTI file at all" * 10)
        message = "ct.nii.gz: not accepted"
    elif kind == "traversal zip":
        bad = tmp_path / "series.zip"
        with zipfile.ZipFile(bad, "w") as archive:
            archive.writestr("../../etc/evil.dcm", b"x" * 200)
        message = "series.zip: not accepted"
    else:
        bad = tmp_path / "folder"
        bad.mkdir()
        message = "folder: not a file"
    with store.session() as session:
        alice = add_user(session, "alice", "password1")
        with pytest.raises(InvalidInputError, match=message):
            add_upload(store, session, alice, bad)
        assert cases_of(session, alice) == []
    assert [p for p in store.files.rglob("*") if p.is_file()] == []


def test_an_upload_over_the_limit_is_refused_while_copying(store, ct_file: Path) -> None:
    with store.session() as session:
        alice = add_user(session, "alice", "password1")
        limit = ct_file.stat().st_size - 1
        with pytest.raises(InvalidInputError, match="ct.nii.gz: larger than the upload limit"):
            add_upload(store, session, alice, ct_file, max_bytes=limit)
        assert cases_of(session, alice) == []
        case, new = add_upload(store, session, alice, ct_file, max_bytes=limit + 1)
        assert new and case.size_bytes == limit + 1
    assert [p for p in store.files.rglob("*") if p.is_file()] == [case_file(store, case)]


def test_a_dicom_zip_is_a_case(store, tmp_path: Path) -> None:
    series = tmp_path / "series"
    write_dicom_series(head_neck_case(90042, shape=(12, 32, 32)).ct, series)
    upload = tmp_path / "patient.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        for f in sorted(series.iterdir()):
            archive.write(f, f"CT/{f.name}")
        archive.writestr("__MACOSX/._junk", b"junk")  # skipped, as predict skips it
    with store.session() as session:
        case, new = add_upload(store, session, add_user(session, "alice", "password1"), upload)
        assert new and case.format == "dicom" and case.size_bytes == upload.stat().st_size


def test_results_are_added_beside_the_earlier_ones(store, ct_file: Path) -> None:
    with store.session() as session:
        alice = add_user(session, "alice", "password1")
        case, _ = add_upload(store, session, alice, ct_file)
        first = add_result(session, case, model_name="hn-phantom-default", model_version="0.1.0",
                           model_sha256="a" * 64, folder="results/1")
        second = add_result(session, case, model_name="hn-phantom-default",
                            model_version="0.2.0", model_sha256="b" * 64, folder="results/2")
    with store.session() as session:  # what another process sees
        results = get_case(session, alice, case.id).results
        assert [(r.id, r.model_version, r.folder) for r in results] == [
            (first.id, "0.1.0", "results/1"), (second.id, "0.2.0", "results/2")]


def test_user_add_from_the_command_line(tmp_path: Path, monkeypatch,
                                        capsys: pytest.CaptureFixture) -> None:
    import io

    home = tmp_path / "home"
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["user", "add", "carol", "--password-stdin", "--home", str(home)]) == 0
    assert "user carol added (id 1)" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["user", "add", "carol", "--password-stdin", "--home", str(home)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["autocontour: error: user carol exists already; nothing was changed"]
    with open_store(home).session() as session:
        assert authenticate(session, "carol", "a long password") is not None


def test_user_add_without_a_terminal_password_is_one_line(tmp_path: Path, monkeypatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    def closed(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr("getpass.getpass", closed)
    assert main(["user", "add", "dave", "--home", str(tmp_path / "home")]) == 2
    assert capsys.readouterr().err.strip() == ("autocontour: error: no password given; nothing "
                                               "was changed")
    with open_store(tmp_path / "home").session() as session:
        assert authenticate(session, "dave", "anything at all") is None



def test_a_refusal_names_the_file_as_sent_not_the_stores_folders(store, tmp_path: Path) -> None:
    bad = tmp_path / "scan.nii.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with store.session() as session:
        alice = add_user(session, "alice", "password1")
        with pytest.raises(InvalidInputError) as refused:
            add_upload(store, session, alice, bad)
    assert str(refused.value).startswith("scan.nii.gz: not accepted: ")
    assert str(store.home) not in str(refused.value) and "incoming" not in str(refused.value)
