"""Folders a failed write created, found and removed again (nothing half-made is left behind)."""

from __future__ import annotations

import shutil
from pathlib import Path


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
