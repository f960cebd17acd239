"""Versioned ``torch.save`` files of the synthesis networks, and the pseudo-MRI generator.

The pseudo-MRI CycleGAN and the multi-modal generator save checkpoints and model files as a
``torch.save`` dictionary with a ``format`` name and a ``version``. :func:`read_versioned` reads
them with ``weights_only`` (a file never runs code), so a wrong file gets one line saying what it
is. :func:`read_pseudo_mri_generator` gives the CT -> MR generator of a pseudo-MRI model file
(``autocontour pseudo-mri train``'s ``model.pt`` or ``checkpoint.pt``) as the plain values the
pseudo-MRI recipe step runs and segmentation checkpoints embed.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from autocontour.data.steps_pseudo_mri import Normalisation, PseudoMRIGenerator
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


#: The ``format`` and version of a pseudo-MRI checkpoint or model file.
PSEUDO_MRI_FORMAT = "autocontour-pseudo-mri"
PSEUDO_MRI_VERSION = 1


def read_pseudo_mri_generator(path: str | Path) -> PseudoMRIGenerator:
    """The CT -> MR generator of a pseudo-MRI model or checkpoint file, with its SHA-256.

    Raises:
        InvalidInputError: see :func:`read_versioned`; a file whose generator is damaged.
    """
    data = read_versioned(path, PSEUDO_MRI_FORMAT, PSEUDO_MRI_VERSION, "pseudo-MRI model")
    try:
        entry = data["networks"]["ct_to_mr"]
        payload = {"spec": entry["spec"], "state": entry["state"],
                   "normalisation": Normalisation.from_dict(data["normalisation"]).to_dict()}
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"{path}: damaged pseudo-MRI model ({str(exc)[:120]})") from None
    return PseudoMRIGenerator.from_payload(payload, str(path))
