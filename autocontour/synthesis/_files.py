"""What the synthesis trainers share: reading their versioned PyTorch files.

The pseudo-MRI CycleGAN and the multi-modal generator each save checkpoints and model files as a
``torch.save`` dictionary with a ``format`` name and a ``version``; both are read here, with
``weights_only`` (a file never runs code), so a wrong file gets one line saying what it is.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from autocontour.errors import InvalidInputError

#: Every autocontour file kind a user might hand to the wrong command, by its ``format``.
KINDS = {"autocontour-checkpoint": "a segmentation training checkpoint",
         "autocontour-model": "a segmentation model file",
         "autocontour-pseudo-mri": "a pseudo-MRI model",
         "autocontour-synthesis": "a synthesis model"}


def read_versioned(path: str | Path, fmt: str, version: int, what: str,
                   map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The dictionary of a ``torch.save`` file of format ``fmt`` and ``version``.

    Args:
        what: how messages name the expected file (e.g. "pseudo-MRI model").

    Raises:
        InvalidInputError: missing, unreadable, not a PyTorch file, another kind of file (named
            when it is an autocontour one), or another version.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: no {what} here")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot be read ({exc.strerror})") from None
    if magic != b"PK\x03\x04":  # torch.save writes a zip archive
        raise InvalidInputError(f"{path}: not a readable {what} (not a PyTorch file)")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError,
            AttributeError, IndexError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(f"{path}: not a readable {what} ({first[:120]})") from None
    kind = data.get("format") if isinstance(data, Mapping) else None
    if kind != fmt:
        named = f" (it is {KINDS[kind]})" if kind in KINDS else ""
        raise InvalidInputError(f"{path}: not a {what}{named}")
    if data.get("version") != version:
        raise InvalidInputError(f"{path}: {what} file version {data.get('version')!r}; this "
                                f"autocontour reads version {version}")
    return dict(data)


def resume_state(out: Path, checkpoint: str, resume: bool, what: str, read: Any,
                 config: dict[str, Any], resumable: Any) -> dict[str, Any] | None:
    """The saved state a training run in ``out`` resumes from (None for a new run).

    Args:
        checkpoint: the checkpoint's file name in ``out``.
        what: how messages name the run (e.g. "pseudo-MRI").
        read: the reader of the checkpoint file (``path -> dict``).
        config: the run's config as a dict, compared with the checkpoint's ``config``.
        resumable: option names that may differ on resume.

    Raises:
        OutputExistsError: ``out`` holds a checkpoint and ``resume`` is False.
        InvalidInputError: nothing to resume, or a config that differs from the checkpoint's
            in anything but ``resumable``.
    """
    from autocontour.errors import OutputExistsError

    path = Path(out) / checkpoint
    if path.exists() and not resume:
        raise OutputExistsError(f"{out}: already holds a {what} checkpoint; pass --resume "
                                "to continue it, or choose another 'out'")
    if not resume:
        return None
    if not path.exists():
        raise InvalidInputError(f"{out}: no {checkpoint} to resume")
    saved = read(path)
    differ = sorted(k for k in config if k not in resumable and saved["config"].get(k) != config[k])
    if differ:
        raise InvalidInputError(f"{path}: cannot resume: the config differs from the "
                                f"checkpoint's in {', '.join(differ)}")
    return saved
