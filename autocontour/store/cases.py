"""Uploads kept by their content, and the results made from them.

An upload is copied into the store in 1 MiB blocks while its SHA-256 is computed (never read
whole into memory), then read with the same readers and zip rules as ``autocontour predict``
(``autocontour.io.formats.read_volume``: junk members skipped; traversal, links, bombs and nested
archives refused). Only a file that reads as an image becomes a case; anything else is removed
and refused with the reason, and nothing is recorded. The content lives once under
``files/<first two hex digits>/<sha256>/<file name>``, however many users upload it; each user's
upload of it is one case, the same upload again returns that case.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from autocontour.errors import AutocontourError, InvalidInputError
from autocontour.io.formats import detect_format, read_volume
from autocontour.store.database import Store
from autocontour.store.schema import Case, Result, User

BLOCK = 1 << 20
MAX_UPLOAD_BYTES = 8 << 30
"""Default size limit of one upload (8 GiB: a 512x512x2000 CT series is about 1 GiB)."""


class NotFoundError(AutocontourError, LookupError):
    """No such case or result for this user (another user's is not found either)."""


class ConflictError(AutocontourError):
    """What was asked would replace something kept (nothing was changed)."""


LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".h5", ".hdf5")


def add_upload(store: Store, session: Session, owner: User, source: str | Path | BinaryIO,
               filename: str | None = None, description: str = "",
               max_bytes: int = MAX_UPLOAD_BYTES) -> tuple[Case, bool]:
    """Keep an uploaded CT (a DICOM zip, NIfTI, NRRD or HDF5 file) as a case of ``owner``.

    Args:
        source: the uploaded file, or an open binary stream of it (e.g. the service's spool).
        filename: the name the user gave it (default: ``source``'s; required with a stream);
            its suffix says the format.
        max_bytes: refuse a larger upload (checked while copying: nothing is kept).

    Returns:
        (the case, True when it is new; False when ``owner`` had uploaded the same content).

    Raises:
        InvalidInputError: not a file, larger than ``max_bytes``, or not an image the readers
            accept (the message names the file and the problem); nothing is kept.
    """
    if isinstance(source, str | Path):
        source = Path(source)
        name = Path(filename or source.name).name
        if not source.is_file():
            raise InvalidInputError(f"{name}: not a file (upload a DICOM series as one .zip)")
    else:
        name = Path(filename or "upload").name
    if not name or name in (".", ".."):
        raise InvalidInputError("the upload has no file name (its suffix says the format)")
    kind = detect_format(name).value
    incoming = store.files / "incoming" / uuid.uuid4().hex
    incoming.mkdir(parents=True)
    try:
        copy = incoming / name
        digest, size = _copy_hashing(source, copy, max_bytes, name)
        existing = _case_by_content(session, owner, digest)
        if existing is not None:
            return existing, False
        content = store.files / digest[:2] / digest
        if not content.exists():
            try:
                read_volume(copy)
            except AutocontourError as exc:
                raise InvalidInputError(f"{name}: not accepted: {_as_uploaded(exc, copy, name)}") \
                    from None
            content.parent.mkdir(parents=True, exist_ok=True)
            try:
                incoming.rename(content)
            except OSError:  # another upload of the same content won the race: keep theirs
                if not content.exists():
                    raise
        stored = next(content.iterdir()).name
        case = Case(owner_id=owner.id, sha256=digest, filename=stored, format=kind,
                    size_bytes=size, description=description[:255])
        session.add(case)
        try:
            session.commit()
        except IntegrityError:  # the same user uploaded the same content at the same time
            session.rollback()
            return _case_by_content(session, owner, digest), False  # type: ignore[return-value]
        return case, True
    finally:
        shutil.rmtree(incoming, ignore_errors=True)


def _as_uploaded(exc: Exception, copy: Path, name: str) -> str:
    """A reader's message about the store's copy, naming the file as the user sent it (the
    store's folders are nobody's business)."""
    text = str(exc)
    for form in (str(copy), str(copy.resolve())):
        text = text.replace(form + ": ", "").replace(form, name)
    return text


def _copy_hashing(source: Path | BinaryIO, target: Path, max_bytes: int,
                  name: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(source.open("rb")) if isinstance(source, Path) else source
        dst = stack.enter_context(target.open("wb"))
        while block := src.read(BLOCK):
            size += len(block)
            if size > max_bytes:
                raise InvalidInputError(f"{name}: larger than the upload limit of "
                                        f"{max_bytes / 2**20:.4g} MiB; nothing was kept")
            digest.update(block)
            dst.write(block)
    return digest.hexdigest(), size


def _case_by_content(session: Session, owner: User, digest: str) -> Case | None:
    return session.scalar(select(Case).where(Case.owner_id == owner.id, Case.sha256 == digest))


def case_file(store: Store, case: Case) -> Path:
    """The stored upload of a case."""
    return store.files / case.sha256[:2] / case.sha256 / case.filename


def get_case(session: Session, owner: User, case_id: int) -> Case:
    """``owner``'s case ``case_id``.

    Raises:
        NotFoundError: no such case of this user (another user's case included).
    """
    case = session.get(Case, case_id)
    if case is None or case.owner_id != owner.id:
        raise NotFoundError(f"case {case_id}: not found")
    return case


def cases_of(session: Session, owner: User) -> list[Case]:
    """``owner``'s cases, newest first."""
    return list(session.scalars(select(Case).where(Case.owner_id == owner.id)
                                .order_by(Case.id.desc())))


def add_result(session: Session, case: Case, *, model_name: str, model_version: str,
               model_sha256: str, folder: str) -> Result:
    """Record a contouring of ``case``; earlier results stay as they are, listed beside it."""
    result = Result(case_id=case.id, model_name=model_name, model_version=model_version,
                    model_sha256=model_sha256, folder=folder)
    session.add(result)
    session.commit()
    return result


def add_upload_files(store: Store, session: Session, owner: User,
                     parts: list[tuple[str, BinaryIO]], description: str = "",
                     max_bytes: int = MAX_UPLOAD_BYTES) -> tuple[Case, bool]:
    """Keep the files of one DICOM series uploaded one by one (a browser's folder upload) as one
    case: they are packed, sorted by name, into an uncompressed zip with fixed dates, so the same
    files uploaded again make the same content hash and the same case.

    Raises:
        InvalidInputError: as :func:`add_upload`.
    """
    incoming = store.files / "incoming" / uuid.uuid4().hex
    incoming.mkdir(parents=True)
    try:
        packed = incoming / "series.zip"
        total = 0
        used: set[str] = set()
        with zipfile.ZipFile(packed, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, stream in sorted(parts, key=lambda part: part[0]):
                member = Path(name).name or "file"
                while member in used:
                    member = "_" + member
                used.add(member)
                info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
                with archive.open(info, "w", force_zip64=True) as target:
                    while block := stream.read(BLOCK):
                        total += len(block)
                        if total > max_bytes:
                            raise InvalidInputError(
                                f"{name}: the files are larger than the upload limit of "
                                f"{max_bytes / 2**20:.4g} MiB; nothing was kept")
                        target.write(block)
        return add_upload(store, session, owner, packed, "series.zip", description,
                          max_bytes + len(parts) * 1024 + 65536)
    finally:
        shutil.rmtree(incoming, ignore_errors=True)


def set_reference(store: Store, session: Session, case: Case, source: str | Path | BinaryIO,
                  filename: str, max_bytes: int = MAX_UPLOAD_BYTES) -> Case:
    """Keep reference contours of a case (an RTSTRUCT drawn on its CT, or a label map on its
    grid), against which each later result is scored.

    Checked before anything is recorded: an RTSTRUCT must be of the CT's Frame of Reference and
    name at least one organ autocontour knows; a label map must hold whole numbers on the CT's
    grid. A case has one reference: it is set once.

    Raises:
        ConflictError: the case has a reference already.
        InvalidInputError: larger than ``max_bytes``, or not contours of this CT (the reason).
    """
    name = Path(filename).name
    if case.reference_sha256 is not None:
        raise ConflictError(f"case {case.id} has its reference already "
                            f"({case.reference_filename}); nothing was changed")
    incoming = store.files / "incoming" / uuid.uuid4().hex
    incoming.mkdir(parents=True)
    try:
        copy = incoming / name
        digest, _ = _copy_hashing(Path(source) if isinstance(source, str) else source, copy,
                                  max_bytes, name)
        try:
            check_reference(case_file(store, case), copy)
        except AutocontourError as exc:
            raise InvalidInputError(f"{name}: not a reference of case {case.id}: "
                                    f"{_as_uploaded(exc, copy, name)}") from None
        content = store.files / digest[:2] / digest
        if not content.exists():
            content.parent.mkdir(parents=True, exist_ok=True)
            try:
                incoming.rename(content)
            except OSError:
                if not content.exists():
                    raise
        case.reference_filename = next(content.iterdir()).name
        case.reference_sha256 = digest
        session.commit()
        return case
    finally:
        shutil.rmtree(incoming, ignore_errors=True)


def is_label_map(path: str | Path) -> bool:
    """A reference named like a label map (else it is read as an RTSTRUCT)."""
    return str(path).lower().endswith(LABEL_SUFFIXES)


def check_reference(ct: Path, reference: Path) -> None:
    """Raise :class:`InvalidInputError` unless ``reference`` holds contours of the CT ``ct``."""
    import numpy as np

    from autocontour.io.rtstruct import read_rtstruct

    image = read_volume(ct)
    if is_label_map(reference):
        labels = read_volume(reference)
        if labels.shape != image.shape or not np.allclose(labels.spacing, image.spacing,
                                                          atol=1e-3) \
                or not np.allclose(labels.origin, image.origin, atol=1e-2):
            raise InvalidInputError(f"its grid {'x'.join(map(str, labels.shape[::-1]))} at "
                                    f"{np.round(labels.spacing, 3).tolist()} mm is not the CT's "
                                    f"({'x'.join(map(str, image.shape[::-1]))} at "
                                    f"{np.round(image.spacing, 3).tolist()} mm)")
        array = labels.array
        if not np.issubdtype(array.dtype, np.integer) and not np.array_equal(array,
                                                                            np.round(array)):
            raise InvalidInputError("a label map must hold whole numbers")
        return
    _, report = read_rtstruct(reference, image)
    if not report.mapped:
        raise InvalidInputError("no ROI name is one of autocontour's organs")


def reference_file(store: Store, case: Case) -> Path | None:
    """The stored reference contours of a case, or None."""
    if case.reference_sha256 is None or case.reference_filename is None:
        return None
    return store.files / case.reference_sha256[:2] / case.reference_sha256 / \
        case.reference_filename
