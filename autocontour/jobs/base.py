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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from autocontour.errors import InvalidInputError, JobCancelled


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
        self._base = (0, 0.0)  # (stages done, fraction) when the stage list last grew
        self._progress = progress
        self._cancel = cancel
        self._job = job
        self._kept = kept

    def check(self) -> None:
        """Raise :class:`JobCancelled` if the job was asked to stop."""
        if self._cancel is not None and self._cancel():
            done = f" after {self.done} of {len(self.stages)} stages" if self.stages else ""
            raise JobCancelled(f"{self._job} cancelled{done}; {self._kept}")

    def extend(self, stages: Sequence[str], keep: int | None = None) -> None:
        """Add stages learnt on the way (e.g. the pipeline of a model chosen after reading the
        CT), after the first ``keep`` stages (default: all; the rest were placeholders): the
        fraction never goes back, the rest of the way is shared among the stages left."""
        self._base = (self.done, self.fraction())
        self.stages = self.stages[:keep] + list(stages)

    def fraction(self, done: int | None = None) -> float:
        """The fraction of the job done after ``done`` stages (default: those done so far)."""
        done = self.done if done is None else done
        base_done, base = self._base
        left = max(len(self.stages), done) - base_done
        return 1.0 if left <= 0 else base + (1 - base) * (done - base_done) / left

    def finished(self, stage: str, message: str = "", last: bool = False) -> None:
        """Report ``stage`` as finished, then check for cancellation (not after the last one:
        its outputs are written by then)."""
        self.done += 1
        self.note(stage, message, 1.0 if last else self.fraction())
        if not last:
            self.check()

    def note(self, stage: str, message: str = "", fraction: float | None = None) -> None:
        """Report a message without finishing a stage (e.g. a warning, a sub-step)."""
        if self._progress is not None:
            frac = self.fraction() if fraction is None else fraction
            self._progress(Progress(stage, min(max(frac, 0.0), 1.0), message))


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
