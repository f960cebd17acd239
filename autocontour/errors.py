"""Exceptions raised for problems a user can fix (bad files, wrong options).

Every message names the file (or option) and the problem, so the CLI can print it as one line
and exit non-zero without a traceback (and a future web service can return it as a 4xx body).

The lowest module of the package (it imports nothing from it): :func:`look_up_option` and
:func:`did_you_mean` write every "unknown X 'y'; did you mean 'z'? (choices: ...)" message.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping


class AutocontourError(Exception):
    """Base class of every error the user can act on."""


class InvalidInputError(AutocontourError, ValueError):
    """An input file or folder is unreadable, inconsistent or not what was expected."""


class MissingSliceError(InvalidInputError):
    """A DICOM series has a gap larger than 1.5x its median slice step."""


class MultipleSeriesError(InvalidInputError):
    """A folder holds more than one image series and the caller did not pick one.

    Attributes:
        series: one line per series (number, UID, modality, slice count, description).
    """

    def __init__(self, message: str, series: list[str]) -> None:
        super().__init__(message)
        self.series = series


class GeometryMismatchError(InvalidInputError):
    """Two grids that must match (a label map and its CT) do not."""


class EmptyStructureError(InvalidInputError):
    """Every organ to be written is empty, so the RT Structure Set would hold no ROI."""


class UnknownOptionError(AutocontourError, ValueError):
    """A string option (organ set, site, format) is not one of the known values."""


class OutputExistsError(AutocontourError, FileExistsError):
    """Writing would overwrite a file that already holds something; nothing was written."""


class JobCancelled(AutocontourError):
    """A job was asked to stop (its cancellation check said so); nothing half-written is left."""


# ---------------------------------------------------------------------------------------------
# Messages for unknown options: one place that writes "did you mean ...? (choices: ...)".

def normalise_name(text: str) -> str:
    """``text`` stripped, in lower case, with ``_`` and spaces as ``-``.

    The spelling-insensitive form of names such as organ sets and phantom sites:
    ``" Head_Neck"`` -> ``"head-neck"``.
    """
    return text.strip().lower().replace("_", "-").replace(" ", "-")


def closest_choice(value: str, choices: Iterable[str],
                   aliases: Mapping[str, str] | None = None) -> str | None:
    """The choice most similar to ``value`` (``difflib``, cutoff 0.6), or None if none is close.

    Args:
        value: what the user wrote (after any normalisation).
        choices: the valid values.
        aliases: other accepted names -> the choice each stands for; they are compared too, and
            a close alias gives the choice it stands for.
    """
    candidates = [*choices, *(aliases or {})]
    close = difflib.get_close_matches(value, candidates, n=1)
    if not close:
        return None
    return (aliases or {}).get(close[0], close[0])


def did_you_mean(message: str, value: str, choices: Iterable[str], *,
                 aliases: Mapping[str, str] | None = None) -> str:
    """``message`` with the closest choice (if any is close) and the list of all choices.

    Example: ``did_you_mean("unknown loss 'dicec'", "dicec", ["ce", "dice", "dicece"])`` gives
    ``"unknown loss 'dicec'; did you mean 'dicece'? (choices: ce, dice, dicece)"``.

    Args:
        message: the problem, e.g. ``"unknown loss 'dicec'"``.
        value: the value to compare with ``choices`` (normalised as the caller looks it up).
        choices: the valid values, listed in this order.
        aliases: other accepted names, compared too but not listed (see :func:`closest_choice`).
    """
    choices = list(choices)
    close = closest_choice(value, choices, aliases)
    hint = f"; did you mean {close!r}?" if close is not None else ""
    return f"{message}{hint} (choices: {', '.join(choices)})"


def look_up_option(what: str, value: object, choices: Iterable[str], *,
                   normalise: Callable[[str], str] | None = None,
                   aliases: Mapping[str, str] | None = None) -> str:
    """The choice that ``value`` names, or an :class:`UnknownOptionError` that suggests one.

    Args:
        what: the option's name in the message, e.g. ``"loss"`` gives ``"unknown loss 'x'"``.
        value: what the user gave; ``str(value)`` is looked up.
        choices: the valid values.
        normalise: applied to ``str(value)`` before the look-up, e.g. ``str.lower`` or
            :func:`normalise_name`; default: none (exact match).
        aliases: other accepted names (after ``normalise``) -> the choice each stands for.

    Returns:
        The matching choice (normalised, aliases resolved).

    Raises:
        UnknownOptionError: ``"unknown {what} {value!r}; did you mean ...? (choices: ...)"``.
    """
    choices = list(choices)
    key = str(value)
    if normalise is not None:
        key = normalise(key)
    if aliases:
        key = aliases.get(key, key)
    if key not in choices:
        raise UnknownOptionError(did_you_mean(f"unknown {what} {value!r}", key, choices,
                                              aliases=aliases))
    return key
