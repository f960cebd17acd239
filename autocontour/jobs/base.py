"""What every job shares: progress reports, cancellation, atomic outputs.

A job is a function ``job(request, progress=None, cancel=None) -> result``: the request is a
frozen dataclass, the result a dataclass, ``progress`` is called with :class:`Progress` reports
(stage name, fraction of the whole job done, a message) and ``cancel`` is asked between stages
whether to stop (the job then raises :class:`~autocontour.errors.JobCancelled` and leaves nothing
half-written). A job never prints: the CLI turns the reports into a progress bar (the planned
service will turn them into a progress field).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from autocontour.errors import InvalidInputError, JobCancelled, OutputExistsError
from autocontour.paths import first_missing, remove_if_no_files


@dataclass(frozen=True)
class Progress:
    """One progress report of a job.

    Attributes:
        stage: the stage now finished or running (e.g. "read", "network 2d", "epoch 3").
        fraction: how much of the whole job is done, in [0, 1].
        message: a line for people (may be empty).
    """

    stage: str
    fraction: float
    message: str = ""


ProgressCallback = Callable[[Progress], None]
CancelCheck = Callable[[], bool]


class Reporter:
    """Reports a job's stages to its callback and checks for cancellation between them.

    Args:
        stages: the stages the job expects to run, in order (their count sets the fractions;
            a stage not listed counts as one more).
        progress: the job's progress callback (None: no reports).
        cancel: the job's cancellation check (None: never cancelled).
        job: the job's name, for the cancellation message.
        kept: what a cancellation leaves, for its message.
    """

    def __init__(self, stages: Sequence[str], progress: ProgressCallback | None = None,
                 cancel: CancelCheck | None = None, job: str = "job",
                 kept: str = "nothing was written") -> None:
        self.stages = list(stages)
        self.done = 0
        self._progress = progress
        self._cancel = cancel
        self._job = job
        self._kept = kept

    def check(self) -> None:
        """Raise :class:`JobCancelled` if the job was asked to stop."""
        if self._cancel is not None and self._cancel():
            done = f" after {self.done} of {len(self.stages)} stages" if self.stages else ""
            raise JobCancelled(f"{self._job} cancelled{done}; {self._kept}")

    def finished(self, stage: str, message: str = "", last: bool = False) -> None:
        """Report ``stage`` as finished, then check for cancellation (not after the last one:
        its outputs are written by then)."""
        self.done += 1
        total = self.done if last else max(len(self.stages), self.done)
        self.note(stage, message, self.done / total)
        if not last:
            self.check()

    def note(self, stage: str, message: str = "", fraction: float | None = None) -> None:
        """Report a message without finishing a stage (e.g. a warning, a sub-step)."""
        if self._progress is not None:
            total = max(len(self.stages), 1)
            frac = self.done / total if fraction is None else fraction
            self._progress(Progress(stage, min(max(frac, 0.0), 1.0), message))


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


def default_threads() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity``), the CLI's default threads.

    PyTorch's own default counts the machine's cores, not the ones the process is allowed (a
    container, a batch system, ``taskset``); on a shared 2-core machine that oversubscription
    made the demo 3-4x slower than one thread.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def use_threads(threads: int | None) -> None:
    """Set PyTorch's intra-op threads to ``threads``; None leaves the process's setting alone.

    Raises:
        InvalidInputError: ``threads`` below 1.
    """
    if threads is None:
        return
    if threads < 1:
        raise InvalidInputError(f"--threads must be at least 1, got {threads}")
    import torch

    torch.set_num_threads(threads)
