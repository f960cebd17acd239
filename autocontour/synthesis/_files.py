"""What the synthesis trainers share: reading their versioned PyTorch files, resuming a run.

The pseudo-MRI CycleGAN and the multi-modal generator each save checkpoints and model files as a
``torch.save`` dictionary with a ``format`` name and a ``version``; both are read by
:func:`~autocontour.artifacts.versioned.read_versioned` (one layer down, because the segmentation
training also reads pseudo-MRI generators), with ``weights_only`` (a file never runs code), so a
wrong file gets one line saying what it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autocontour.artifacts.versioned import read_versioned
from autocontour.errors import InvalidInputError

__all__ = ["read_versioned", "resume_state"]


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
