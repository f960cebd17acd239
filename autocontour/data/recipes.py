"""Preprocessing recipes: named, serialisable step sequences that can be undone exactly.

A :class:`Recipe` is stored inside every model checkpoint. ``apply`` maps (image, labels) to the
network's input and returns an :class:`~autocontour.data.steps.AppliedRecord`; with that record
``invert_labels`` maps a prediction back onto the source CT's exact grid (crop -> re-pad with
background, resample -> nearest-neighbour resample onto the recorded geometry).

Named recipes (``get_recipe(name)``); bounds say their space: HU = after rescale slope/intercept,
stored = DICOM stored pixel values, before it:

================== ============================================================================
name               steps
================== ============================================================================
seed002-cervix     clip stored values to 0..1600 (before rescale; seed 002's data ran 0..2072),
                   scale stored 0..1600 to 0..1, resample to 72 x 256 x 256 (z, y, x; linear)
seed004-structseg  body crop (-500 HU; couch, air and arms removed, 10 mm margin), clip to
                   -1000..1500 HU (our window: seed 004 gives none), z-score inside the body
                   (> -500 HU), no resampling
nnunet-ct          clip to the fingerprint's foreground 0.5/99.5 percentiles (HU), z-score with
                   its global foreground mean/std, resample to its target spacing; needs
                   ``fingerprint=`` (see ``fingerprint.recipe_from_fingerprint``)
nnunet-mr          NormalizeMR, resample to the fingerprint's target spacing; needs ``fingerprint=``
mr                 NormalizeMR: clip to the foreground's 0.5/99.5 percentiles, foreground z-score
none               nothing (the image as read)
================== ============================================================================

A recipe may derive more image channels from the image (:class:`~autocontour.data.steps.
ChannelStep`, e.g. :class:`~autocontour.data.steps_pseudo_mri.PseudoMRIChannel`, added to a
named recipe by :func:`with_channel`): ``apply`` then returns the image and the derived channels
(:attr:`Preprocessed.channels`), the grid steps after a channel step move every channel alike
and the intensity steps change the first channel only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from autocontour.data.steps import (
    AppliedRecord,
    ChannelStep,
    SourceInfo,
    Step,
    check_choice,
    step_from_dict,
)
from autocontour.data.steps_body import CropBody
from autocontour.data.steps_grid import CropToLabels, Resample
from autocontour.data.steps_intensity import ClipIntensity, NormalizeMR, ScaleToUnit, ZScore
from autocontour.data.steps_pseudo_mri import PseudoMRIChannel
from autocontour.errors import InvalidInputError
from autocontour.io.volume import LabelMap, Volume, require_same_grid

if TYPE_CHECKING:
    from autocontour.data.fingerprint import Fingerprint

STEP_KINDS: dict[str, type[Step]] = {cls.kind: cls for cls in (
    ClipIntensity, ScaleToUnit, ZScore, NormalizeMR, Resample, CropBody, CropToLabels,
    PseudoMRIChannel)}
_INTENSITY_STEPS = (ClipIntensity, ScaleToUnit, ZScore, NormalizeMR)


@dataclass(frozen=True)
class Preprocessed:
    """A recipe's output: the network's input, the labels on its grid, and how to undo it.

    Attributes:
        image: the first channel (the image the recipe received, preprocessed).
        labels: the labels on its grid, or None.
        record: what each step did.
        extra: the channels the recipe's channel steps derived, on the same grid, in order.
    """

    image: Volume
    labels: LabelMap | None
    record: AppliedRecord
    extra: tuple[Volume, ...] = ()

    @property
    def channels(self) -> tuple[Volume, ...]:
        """Every channel of the network's input: the image, then the derived ones."""
        return (self.image, *self.extra)

    def stacked(self) -> np.ndarray:
        """The network's input as one float32 array (C, z, y, x)."""
        return np.stack([np.asarray(c.array, np.float32) for c in self.channels])


@dataclass(frozen=True)
class Recipe:
    """A named sequence of preprocessing steps.

    Raises:
        InvalidInputError: an empty name, a non-step, or a step that reads HU or stored values
            (stored-value bounds, the body crop) placed after one that rescales values.
    """

    name: str
    steps: tuple[Step, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        if not self.name:
            raise InvalidInputError("a recipe needs a name")
        rescaled_by = None
        for step in self.steps:
            if not isinstance(step, Step):
                raise InvalidInputError(f"recipe {self.name!r}: {step!r} is not a step")
            if rescaled_by is not None and step.needs_source_values():
                raise InvalidInputError(
                    f"recipe {self.name!r}: step {step.kind!r} reads HU/stored values but comes "
                    f"after {rescaled_by!r}, which changed them; put it first")
            if step.rescales_values:
                rescaled_by = rescaled_by or step.kind

    @property
    def channels(self) -> int:
        """Image channels of the network's input: 1 + the channel steps'."""
        return 1 + sum(isinstance(s, ChannelStep) for s in self.steps)

    def inputs(self, first: str = "CT") -> list[str]:
        """Names of the input channels, e.g. ["CT", "pseudo-MRI"] (``first`` names the image)."""
        return [first, *(s.channel_name for s in self.steps if isinstance(s, ChannelStep))]

    def resources(self) -> tuple[str, ...]:
        """Keys of what the channel steps need bound (generator SHA-256s), in step order."""
        return tuple(k for s in self.steps if isinstance(s, ChannelStep) for k in s.resources())

    def bind(self, resources: Mapping[str, object], device: str = "cpu",
             where: str = "") -> Recipe:
        """This recipe with every channel step given what it needs (see
        :meth:`~autocontour.data.steps.ChannelStep.bind`); a recipe without one is returned
        as it is.

        Raises:
            InvalidInputError: a resource is missing or is not what the step recorded (naming
                ``where``, e.g. the model file).
        """
        if not any(isinstance(s, ChannelStep) for s in self.steps):
            return self
        return replace(self, steps=tuple(s.bind(resources, device, where)
                                         if isinstance(s, ChannelStep) else s
                                         for s in self.steps))

    def to(self, device: str) -> Recipe:
        """This recipe with its bound channel steps running on ``device`` (unbound ones and
        steps without resources unchanged)."""
        steps = []
        for step in self.steps:
            bound = getattr(step, "bound", None)
            if isinstance(step, ChannelStep) and bound is not None:
                step = step.bind(dict.fromkeys(step.resources(), bound), device)
            steps.append(step)
        return replace(self, steps=tuple(steps))

    def bound_resources(self) -> dict[str, object]:
        """{key: resource} the channel steps were bound with (what a file must embed)."""
        out: dict[str, object] = {}
        for step in self.steps:
            bound = getattr(step, "bound", None)
            if isinstance(step, ChannelStep) and bound is not None:
                out.update(dict.fromkeys(step.resources(), bound))
        return out

    def apply(self, image: Volume, labels: LabelMap | None = None) -> Preprocessed:
        """Preprocess an image and, if given, its labels (moved and cropped with it).

        Args:
            image: a CT/MR volume, any orientation; its DICOM header (if any) gives the rescale
                for stored-value bounds.
            labels: a label map on the image's grid, or None (inference).

        Returns:
            The preprocessed image (float32 after intensity steps), labels and the record;
            with channel steps also the derived channels (:attr:`Preprocessed.extra`): each is
            derived from the image as it is at its step, then moved by the later grid steps
            exactly as the image (same crop box, same resampling) and left alone by the later
            intensity steps.

        Raises:
            GeometryMismatchError: ``labels`` is not on the image's grid.
            InvalidInputError: a step cannot run on this image (see each step), or a channel
                step was not bound to what it needs (:meth:`bind`).
        """
        if labels is not None:
            require_same_grid(image.geometry, labels.geometry, "labels to preprocess")
        source = SourceInfo.of(image)
        records = []
        current, moved = image, labels
        extra: list[Volume] = []
        for step in self.steps:
            if isinstance(step, ChannelStep):
                channel, record = step.derive(current, source)
                extra.append(channel)
            else:
                current, moved, record = step.apply(current, moved, source)
                extra = [record.move_channel(c) for c in extra]
            records.append(record)
        return Preprocessed(current, moved, AppliedRecord(self.name, image.geometry,
                                                          tuple(records)), tuple(extra))

    def invert_labels(self, labels: LabelMap, record: AppliedRecord) -> LabelMap:
        """Labels on the preprocessed grid -> labels on the original image's exact grid.

        Raises:
            InvalidInputError: ``record`` was made by another recipe.
            GeometryMismatchError: ``labels`` is not on the grid the recipe produced.
        """
        kinds = [r.step for r in record.steps]
        if record.recipe != self.name or kinds != [s.kind for s in self.steps]:
            raise InvalidInputError(f"the record was made by recipe {record.recipe!r} "
                                    f"({', '.join(kinds) or 'no steps'}), not by {self.name!r}")
        return record.invert_labels(labels)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "steps": [s.to_dict() for s in self.steps]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """Rebuild from :meth:`to_dict` output (e.g. a checkpoint's JSON).

        Raises:
            InvalidInputError: missing fields or bad step parameters.
            UnknownOptionError: an unknown step kind.
        """
        try:
            name, steps = data["name"], data["steps"]
        except (KeyError, TypeError):
            raise InvalidInputError(f"a recipe needs 'name' and 'steps', got {data!r}") from None
        return cls(str(name), tuple(step_from_dict(s, STEP_KINDS) for s in steps))


def with_channel(recipe: Recipe, step: ChannelStep) -> Recipe:
    """``recipe`` with ``step`` added, named ``<name>+<step kind>`` (e.g. "seed004-structseg+
    pseudo_mri"): after the recipe's leading grid steps (body crop, resampling: the channel is
    derived on the smaller grid) and before its first intensity step (it reads HU).

    Raises:
        InvalidInputError: the recipe already has a step of that kind.
    """
    if any(s.kind == step.kind for s in recipe.steps):
        raise InvalidInputError(f"recipe {recipe.name!r} already has a {step.kind!r} step")
    at = next((i for i, s in enumerate(recipe.steps) if isinstance(s, _INTENSITY_STEPS)),
              len(recipe.steps))
    steps = (*recipe.steps[:at], step, *recipe.steps[at:])
    return Recipe(f"{recipe.name}+{step.kind}", steps)


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("seed002-cervix", (
        ClipIntensity(0.0, 1600.0, space="stored"),
        ScaleToUnit(0.0, 1600.0, space="stored"),
        Resample(shape=(72, 256, 256)),
    )),
    Recipe("seed004-structseg", (
        CropBody(),
        ClipIntensity(-1000.0, 1500.0),
        ZScore(mode="foreground", threshold=-500.0),
    )),
    Recipe("mr", (NormalizeMR(),)),
    Recipe("none", ()),
)}
FINGERPRINT_RECIPES = ("nnunet-ct", "nnunet-mr")


def get_recipe(name: str, fingerprint: Fingerprint | None = None) -> Recipe:
    """A named recipe; the nnU-Net ones are computed from a data set's fingerprint.

    Args:
        name: one of :data:`RECIPES` or :data:`FINGERPRINT_RECIPES`.
        fingerprint: required for "nnunet-ct" / "nnunet-mr".

    Raises:
        UnknownOptionError: an unknown name (with the closest one).
        InvalidInputError: an nnU-Net recipe without a fingerprint, or of the other modality.
    """
    key = name.strip().lower().replace("_", "-")
    if key in RECIPES:
        return RECIPES[key]
    check_choice(key, (*RECIPES, *FINGERPRINT_RECIPES), "preprocessing recipe")
    if fingerprint is None:
        raise InvalidInputError(f"recipe {key!r} is computed from the data set's fingerprint: "
                                "pass fingerprint= (see `autocontour dataset fingerprint`)")
    from autocontour.data.fingerprint import recipe_from_fingerprint
    recipe = recipe_from_fingerprint(fingerprint)
    if recipe.name != key:
        raise InvalidInputError(f"recipe {key!r} does not fit a {fingerprint.modality} data set; "
                                f"its fingerprint gives {recipe.name!r}")
    return recipe
