"""Atomic output folders: written under a temporary name, renamed when complete, never over an
existing result unless asked, and nothing half-made left behind (folders a failed write created
are removed again).

The one mechanism for every output folder of the package (the predict outputs, the demo,
phantoms): stdlib only, so the CLI can use it before anything heavy is imported.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autocontour.errors import OutputExistsError


def first_missing(path: Path) -> Path | None:
    """The topmost folder of ``path`` that does not exist yet (what ``mkdir(parents=True)``
    creates first); None if ``path`` exists."""
    if path.exists():
        return None
    top = path
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    return top


def remove_if_no_files(folder: Path | None) -> None:
    """Remove ``folder`` (a tree a failed job created) if it holds no file."""
    if folder is not None and folder.is_dir() and not any(
            f.is_file() for f in folder.rglob("*")):
        shutil.rmtree(folder, ignore_errors=True)


def refuse_existing(out: Path, overwrite: bool, what: str = "output folder") -> None:
    """Refuse to write over an existing, non-empty output before any work is done.

    Raises:
        OutputExistsError: ``out`` is a file, or a folder that holds files, and ``overwrite``
            is False (nothing was read or written).
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise OutputExistsError(f"{out}: already holds files; choose another {what} or pass "
                                "--overwrite (nothing was read or written)")


@contextmanager
def atomic_folder(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``out`` that becomes ``out`` when the block ends without error.

    On an error (or a cancellation) the temporary folder is removed, with any folder above it
    that was created for it, and ``out`` is left as it was; an existing ``out`` is replaced only
    when ``overwrite`` is True, and only once the new one is complete.

    Raises:
        OutputExistsError: see :func:`refuse_existing` (checked before and after the block).
    """
    out = Path(out)
    refuse_existing(out, overwrite)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    created = first_missing(tmp.parent)
    tmp.mkdir(parents=True)
    done = False
    try:
        yield tmp
        refuse_existing(out, overwrite)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
        done = True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            remove_if_no_files(created)
