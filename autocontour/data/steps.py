"""What every preprocessing step shares: the step interface, its context and its typed record.

A step maps (image, optional labels) to new ones and returns a *record* of what it did. A record
is self-contained and JSON-serialisable: from the record alone (no step, no image) a label map on
the step's output grid is mapped back exactly onto its input grid, so predictions made after
preprocessing land on the source CT (same shape, spacing, origin and direction).

Record types:

* :class:`IntensityRecord`: values changed, grid unchanged (clip bounds in image units, mean/std).
* :class:`CropRecord`: a box ``[start, stop)`` in (z, y, x) indices of the input grid; inverting
  pads with background (0).
* :class:`ResampleRecord`: input and output grids; inverting resamples labels (nearest neighbour)
  back onto the input grid.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeVar

import numpy as np

from autocontour.errors import GeometryMismatchError, InvalidInputError, look_up_option
from autocontour.io.grid import resample_image, resample_labels
from autocontour.io.volume import Geometry, LabelMap, Volume

Box = tuple[int, int, int]
V = TypeVar("V", bound=Volume)


@dataclass(frozen=True)
class SourceInfo:
    """What a step may need to know about the image the recipe started from.

    Attributes:
        rescale_slope, rescale_intercept: from the first slice's DICOM header when the image came
            from a DICOM series (``Volume.dicom.header``), else None. Steps that take bounds in
            stored pixel values convert them with these, even after a grid change dropped the
            DICOM reference.
    """

    rescale_slope: float | None = None
    rescale_intercept: float | None = None

    @classmethod
    def of(cls, image: Volume) -> SourceInfo:
        header = image.dicom.header if image.dicom is not None else None
        if header is None or "RescaleIntercept" not in header:
            return cls()
        slope = header.get("RescaleSlope", 1) or 1
        return cls(float(slope), float(header.RescaleIntercept))


# ---------------------------------------------------------------------------------------------
# Records.


@dataclass(frozen=True)
class StepRecord(ABC):
    """What one step did: its kind and the grids before and after it.

    Attributes:
        step: the ``kind`` of the step that made the record.
        input_geometry: the grid the step received.
        output_geometry: the grid it returned (equal to the input for intensity steps).
    """

    type: ClassVar[str]
    step: str
    input_geometry: Geometry
    output_geometry: Geometry

    def invert_labels(self, labels: LabelMap) -> LabelMap:
        """Map labels on ``output_geometry`` back onto ``input_geometry``.

        Raises:
            GeometryMismatchError: ``labels`` is not on the step's output grid.
        """
        why = self.output_geometry.mismatch(labels.geometry)
        if why is not None:
            raise GeometryMismatchError(
                f"labels to invert through step {self.step!r} are not on its output grid: {why}")
        return self._invert(labels)

    @abstractmethod
    def _invert(self, labels: LabelMap) -> LabelMap:
        """The inverse, for labels already checked to be on ``output_geometry``."""

    def move_channel(self, channel: Volume) -> Volume:
        """Take another image channel on ``input_geometry`` the way the step moved the image:
        the same crop box, or linear resampling onto ``output_geometry``; an intensity step
        leaves it as it is (intensity steps change the first channel only)."""
        return channel

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, Geometry) else _jsonable(value)
        return out

    @staticmethod
    def from_dict(data: dict[str, Any]) -> StepRecord:
        """Rebuild any record from :meth:`to_dict` output.

        Raises:
            InvalidInputError: an unknown record type or missing fields.
        """
        types = {c.type: c for c in (IntensityRecord, CropRecord, ResampleRecord)}
        cls = types.get(data.get("type", ""))
        if cls is None:
            raise InvalidInputError(f"unknown preprocessing record type {data.get('type')!r}")
        kwargs = {k: v for k, v in data.items() if k != "type"}
        try:
            for name in ("input_geometry", "output_geometry"):
                kwargs[name] = Geometry.from_dict(kwargs[name])
            return cls(**kwargs)
        except (KeyError, TypeError) as exc:
            raise InvalidInputError(f"malformed {cls.type} record: {exc}") from None


@dataclass(frozen=True)
class IntensityRecord(StepRecord):
    """Values the step used, in the units of its input image (e.g. HU bounds, mean, std)."""

    type: ClassVar[str] = "intensity"
    values: dict[str, float] = field(default_factory=dict)

    def _invert(self, labels: LabelMap) -> LabelMap:
        return labels


@dataclass(frozen=True)
class CropRecord(StepRecord):
    """A box ``[start, stop)`` in (z, y, x) indices of ``input_geometry``."""

    type: ClassVar[str] = "crop"
    start: Box = (0, 0, 0)
    stop: Box = (0, 0, 0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", tuple(int(v) for v in self.start))
        object.__setattr__(self, "stop", tuple(int(v) for v in self.stop))

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop, strict=True))

    def move_channel(self, channel: Volume) -> Volume:
        return crop(channel, self.start, self.stop)

    def _invert(self, labels: LabelMap) -> LabelMap:
        out = np.zeros(self.input_geometry.shape, dtype=labels.array.dtype)
        out[self.slices] = labels.array
        return replace(labels, array=out, geometry=self.input_geometry, dicom=None)


@dataclass(frozen=True)
class ResampleRecord(StepRecord):
    """Resampling from ``input_geometry`` to ``output_geometry`` (same physical field of view)."""

    type: ClassVar[str] = "resample"

    def move_channel(self, channel: Volume) -> Volume:
        if self.input_geometry.mismatch(self.output_geometry) is None:
            return channel
        return resample_image(channel, self.output_geometry)

    def _invert(self, labels: LabelMap) -> LabelMap:
        if self.input_geometry.mismatch(self.output_geometry) is None:
            return labels
        return resample_labels(labels, self.input_geometry)


@dataclass(frozen=True)
class AppliedRecord:
    """Everything a recipe did to one image, enough to undo it from JSON alone.

    Attributes:
        recipe: the recipe's name.
        original: the grid of the image the recipe received (where predictions must land).
        steps: one record per step, in the order applied.
    """

    recipe: str
    original: Geometry
    steps: tuple[StepRecord, ...]

    @property
    def final_geometry(self) -> Geometry:
        """The grid of the preprocessed image (and of predictions made on it)."""
        return self.steps[-1].output_geometry if self.steps else self.original

    def invert_labels(self, labels: LabelMap) -> LabelMap:
        """Labels on :attr:`final_geometry` -> labels on :attr:`original`, step by step backwards.

        Raises:
            GeometryMismatchError: ``labels`` is not on the preprocessed grid.
        """
        why = self.final_geometry.mismatch(labels.geometry)
        if why is not None:
            raise GeometryMismatchError(
                f"labels are not on the grid recipe {self.recipe!r} produced: {why}")
        for record in reversed(self.steps):
            labels = record.invert_labels(labels)
        return labels

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe, "original": self.original.to_dict(),
                "steps": [r.to_dict() for r in self.steps]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppliedRecord:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            InvalidInputError: missing fields or an unknown record type.
        """
        try:
            return cls(str(data["recipe"]), Geometry.from_dict(data["original"]),
                       tuple(StepRecord.from_dict(r) for r in data["steps"]))
        except KeyError as exc:
            raise InvalidInputError(f"malformed preprocessing record: missing {exc}") from None


# ---------------------------------------------------------------------------------------------
# Steps.


class Step(ABC):
    """One preprocessing step: a frozen dataclass of parameters with a serialisation ``kind``.

    Class attributes:
        kind: the name under which ``to_dict`` stores the step.
        rescales_values: the output is no longer in the input's units (e.g. 0..1, z-scores), so
            steps that read HU or stored values must come before it (checked by ``Recipe``).
    """

    kind: ClassVar[str]
    rescales_values: ClassVar[bool] = False

    @abstractmethod
    def apply(self, image: Volume, labels: LabelMap | None,
              source: SourceInfo) -> tuple[Volume, LabelMap | None, StepRecord]:
        """Preprocess one image (and its labels, moved with it when the grid changes).

        Args:
            image: the output of the previous step.
            labels: a label map on the image's grid, or None.
            source: facts about the recipe's original input (DICOM rescale).

        Returns:
            (image, labels, record); labels is None when None was given.
        """

    def needs_source_values(self) -> bool:
        """True when the step reads the image in its original units (HU, stored values)."""
        return False

    def to_dict(self) -> dict[str, Any]:
        params = {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}
        return {"kind": self.kind, **params}


class ChannelStep(Step):
    """A step that derives a new image channel from the image it receives (grid unchanged).

    :meth:`~autocontour.data.recipes.Recipe.apply` appends the derived channel after the
    image's; the recipe's later grid steps move it with the image (``StepRecord.move_channel``)
    and its later intensity steps leave it alone. Steps that need something besides their
    parameters (a generator's weights) name it in :meth:`resources` and get it by :meth:`bind`.

    Class attributes:
        channel_name: how reports name the channel (e.g. "pseudo-MRI").
    """

    channel_name: ClassVar[str]

    @abstractmethod
    def derive(self, image: Volume, source: SourceInfo) -> tuple[Volume, StepRecord]:
        """(the new channel on ``image``'s grid, the record of the step)."""

    def resources(self) -> tuple[str, ...]:
        """The keys of what :meth:`bind` must be given (none by default)."""
        return ()

    def bind(self, resources: Mapping[str, Any], device: str = "cpu",
             where: str = "") -> ChannelStep:
        """This step with its resources (a step that needs none returns itself)."""
        return self

    def apply(self, image: Volume, labels: LabelMap | None,
              source: SourceInfo) -> tuple[Volume, LabelMap | None, StepRecord]:
        """Not used: a channel step adds a channel, which only a recipe can carry.

        Raises:
            InvalidInputError: always.
        """
        raise InvalidInputError(f"step {self.kind!r} adds an image channel: run it inside a "
                                "Recipe")


def step_from_dict(data: dict[str, Any], kinds: dict[str, type[Step]]) -> Step:
    """Rebuild a step from ``to_dict`` output, looking its kind up in ``kinds``.

    Raises:
        UnknownOptionError: an unknown kind (with the closest known one).
        InvalidInputError: parameters the step does not take or rejects.
    """
    kind = check_choice(str(data.get("kind", "")), tuple(kinds), "preprocessing step")
    cls = kinds[kind]
    params = {k: v for k, v in data.items() if k != "kind"}
    try:
        return cls(**params)
    except TypeError as exc:
        raise InvalidInputError(f"bad parameters for step {kind!r}: {exc}") from None


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    """Return ``value`` if it is one of ``choices``.

    Raises:
        UnknownOptionError: naming ``what``, the closest choice and all choices.
    """
    return look_up_option(what, value, choices)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def optional_tuple(value: Any, cast: type, n: int, what: str) -> tuple | None:
    """Normalise an optional n-vector parameter (list from JSON, tuple in code) to a tuple.

    Raises:
        InvalidInputError: not n values, or a value that is not positive.
    """
    if value is None:
        return None
    try:
        out = tuple(cast(v) for v in value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{what} must be {n} numbers, got {value!r}") from None
    if len(out) != n or min(out) <= 0:
        raise InvalidInputError(f"{what} must be {n} positive numbers, got {value!r}")
    return out


# ---------------------------------------------------------------------------------------------
# Crop helpers shared by steps and records (resampling is in ``autocontour.io.grid``).


def crop(volume: V, start: Box, stop: Box) -> V:
    """The sub-volume ``[start, stop)`` (z, y, x) with its origin moved to the box's first voxel."""
    g = volume.geometry
    corner = g.index_to_physical(np.array([[start[2], start[1], start[0]]], dtype=float))[0]
    shape = tuple(b - a for a, b in zip(start, stop, strict=True))
    geometry = Geometry(shape, g.spacing, tuple(corner), g.direction, g.frame_of_reference_uid)
    box = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
    array = np.ascontiguousarray(volume.array[box])
    return replace(volume, array=array, geometry=geometry, dicom=None)


def crop_pair(image: Volume, labels: LabelMap | None, start: Box, stop: Box,
              step: str) -> tuple[Volume, LabelMap | None, CropRecord]:
    """Crop an image and its labels with the same box and record it."""
    out = crop(image, start, stop)
    cropped = crop(labels, start, stop) if labels is not None else None
    record = CropRecord(step, image.geometry, out.geometry, start, stop)
    return out, cropped, record
