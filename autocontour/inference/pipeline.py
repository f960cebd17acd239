"""CT in, label map on the CT's own grid out: the one code path of the predict job (CLI, demo).

Stages (each timed, each reported to the caller's ``on_stage`` hook):

1. check: modality, intensities, spacing and orientation against what the model was trained on
   (refusals raise, the rest become warnings);
2. reorient: permute/flip the CT into the model's layout (no resampling unless oblique);
3. anatomy: the CT's body regions against the model's training CTs (a pelvis CT given to a
   head-and-neck model is refused unless forced; :mod:`autocontour.inference.anatomy`);
4. preprocess: the model's recipe (resample, body crop, intensity normalisation; for a model
   trained on CT + pseudo-MRI also the CT's pseudo-MRI, derived by the recipe's ``pseudo_mri``
   step and given to the networks as a second channel);
5. network <member>: sliding windows (Gaussian, overlap 0.5), optional mirrored TTA, each
   organ from the member the rule picks;
6. regrid: probabilities interpolated onto the input CT's exact grid, arg-max class by class in
   bounding boxes (memory bounded: no per-class array of the CT's size);
7. postprocess: largest connected component per organ where validation chose it;
8. body: the body outline (``External``) from HU alone (CT only; see
   :mod:`autocontour.inference.body`); organ voxels outside it are removed and reported;
9. organ checks: volumes, sides and heights against the training cases; organs clearly wrong
   are removed, doubtful ones flagged; for a model with organs of one sex only (pelvis: the
   prostate, the cervix CTV) the patient's sex is taken from the DICOM header or decided from
   the image, and the other sex's organs are removed.

Example::

    from autocontour.inference import Contourer
    from autocontour.io import read_volume
    labels = Contourer.from_checkpoint("model.pt").predict(read_volume("ct_folder/"))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autocontour import __version__
from autocontour.data.recipes import Preprocessed
from autocontour.errors import InvalidInputError, UnknownOptionError, did_you_mean
from autocontour.inference.anatomy import (
    AnatomyError,
    SafetyReport,
    check_anatomy,
    check_organs,
    decide_sex,
    remove_organs,
    sex_flags,
)
from autocontour.inference.body import Clipped, body_outline, clip_to_body
from autocontour.inference.catalogue import DEFAULT_MODEL
from autocontour.inference.checks import check_input
from autocontour.inference.combined import ContourModel, combined_probabilities
from autocontour.inference.model_file import load_model
from autocontour.inference.postprocess import keep_largest_component
from autocontour.inference.regrid import labels_on_grid
from autocontour.io.grid import canonical, resample_channel
from autocontour.io.volume import Geometry, LabelMap, Volume
from autocontour.models.inferer import autocast_dtype


@dataclass
class Prediction:
    """What one contouring run produced.

    Attributes:
        labels: the label map on the input CT's grid (organ set restricted to those asked for).
        seconds: stage name -> wall-clock seconds.
        warnings: what was noticed about the input and done about it.
        model: the model's name, versions, members and rule (for reports).
        safety: what the anatomy checks found: the CT's body regions, whether a refusal was
            overridden (``force``), and the organs removed or flagged.
        body: the body outline (``External``) on the input grid, boolean (z, y, x); None when
            not asked for or not a CT.
        clipped: organ voxels that lay outside the body outline and were removed.
        derived: the image channels the recipe derived from the CT (name -> volume, e.g.
            "pseudo-MRI"), as the networks saw them, taken onto the input CT's grid; only when
            asked for (``Contourer.run(derived=True)``).
    """

    labels: LabelMap
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    safety: SafetyReport = field(default_factory=SafetyReport)
    body: np.ndarray | None = None
    clipped: list[Clipped] = field(default_factory=list)
    derived: dict[str, Volume] = field(default_factory=dict)


def resolve_device(name: str | torch.device) -> torch.device:
    """"auto" -> CUDA when available, else CPU.

    Raises:
        InvalidInputError: "cuda" asked for but not available, or an unknown device name.
    """
    if isinstance(name, torch.device):
        return name
    key = str(name).strip().lower()
    if key == "auto":
        key = "cuda" if torch.cuda.is_available() else "cpu"
    if key.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInputError("device 'cuda' asked for, but PyTorch sees no CUDA GPU "
                                "(use --device cpu)")
    try:
        return torch.device(key)
    except RuntimeError:
        raise InvalidInputError(f"unknown device {name!r} (cpu, cuda, cuda:N or auto)") from None


#: "auto": the reduced precision the device computes natively; "fp32": float32 everywhere.
PRECISIONS = ("auto", "fp32")


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`.

    Raises:
        UnknownOptionError: another value (with the closest choice).
    """
    key = str(precision).strip().lower()
    if key not in PRECISIONS:
        raise UnknownOptionError(did_you_mean(f"unknown precision {precision!r}", key,
                                               list(PRECISIONS)))
    return key


def contour_on_grid(model: ContourModel, canon: Volume, target: Geometry,
                    organs: Sequence[str], *, tta: bool = False,
                    device: torch.device | str = "cpu",
                    on_stage: Callable[[str], None] | None = None,
                    precision: str = "fp32",
                    on_preprocessed: Callable[[Preprocessed], None] | None = None,
                    ) -> tuple[np.ndarray, list[str]]:
    """Preprocess, run the networks, and take the labels onto ``target`` (no checks).

    The core of :meth:`Contourer.run` (stages "preprocess", "network <member>", "regrid"),
    also used to score a model on cases at their own resolution (the build-model job). A member
    on its own, finer grid (:class:`~autocontour.inference.combined.FinePart`) is taken onto
    ``target`` from its own grid and painted over the model grid's labels: where its arg-max
    is one of its organs, that organ; elsewhere the model grid's answer without its organs.

    Args:
        model: the model.
        canon: the CT in the model's orientation (:func:`~autocontour.io.grid.canonical`).
        target: the grid the labels are wanted on (the CT's own).
        organs: the organs wanted (model names).
        tta, device, on_stage, precision: see :meth:`Contourer.run` (the default here is
            "fp32", as model building validates).
        on_preprocessed: called with the recipe's output (every input channel on the model
            grid, and the record) before the networks run.

    Returns:
        ``target.shape`` labels (label values of ``model.organs``) and warnings.
    """
    def stage(name: str) -> None:
        if on_stage is not None:
            on_stage(name)

    pre = model.recipe.apply(canon)
    image = torch.from_numpy(pre.stacked())
    if on_preprocessed is not None:
        on_preprocessed(pre)
    stage("preprocess")
    combined = combined_probabilities(model, image[None], organs=organs, tta=tta,
                                      device=device, on_stage=on_stage,
                                      grid=pre.image.geometry, canonical=canon,
                                      amp=check_precision(precision) == "auto")
    del image
    labels = labels_on_grid(combined.probabilities, pre.image.geometry, target)
    for part in combined.parts:
        painted = labels_on_grid(part.probabilities, part.geometry, target)
        labels[painted > 0] = painted[painted > 0]
    stage("regrid")
    return labels, combined.warnings


def channel_on_grid(channel: Volume, target: Geometry) -> Volume:
    """A derived input channel (on the model grid) linearly interpolated onto ``target`` (the
    input CT's grid); outside the model grid (a body crop) it takes the channel's minimum."""
    array = resample_channel(np.asarray(channel.array, np.float32), channel.geometry, target,
                             outside=float(np.min(channel.array)))
    return Volume(array, target, modality=channel.modality)


class Contourer:
    """Contours CTs with one model (a combined model file or a training checkpoint)."""

    def __init__(self, model: ContourModel, device: str | torch.device = "cpu",
                 source: Path | None = None) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.source = source
        """The file the model was loaded from (None: built in memory)."""

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu") -> Contourer:
        """Load a model file (``autocontour-model``) or a training checkpoint.

        Raises:
            InvalidInputError: see :func:`~autocontour.inference.model_file.load_model`.
        """
        return cls(load_model(path, "cpu"), device, Path(path))

    @classmethod
    def default(cls, device: str | torch.device = "cpu") -> Contourer:
        """The model shipped with the package (head & neck, trained on phantoms).

        Raises:
            InvalidInputError: the package was installed without its model file.
        """
        if not DEFAULT_MODEL.is_file():
            raise InvalidInputError(f"{DEFAULT_MODEL}: the shipped model is missing; rebuild it "
                                    "with scripts/train_default_model.py or pass --model")
        return cls.from_checkpoint(DEFAULT_MODEL, device)

    def predict(self, volume: Volume, *, tta: bool = False,
                organs: Iterable[str] | None = None) -> LabelMap:
        """The label map of ``volume`` on its own grid (see :meth:`run`)."""
        return self.run(volume, tta=tta, organs=organs).labels

    def stages(self, organs: Iterable[str] | None = None, body: bool = True) -> list[str]:
        """The stages :meth:`run` goes through for these organs, in order."""
        model = self.model
        wanted = model.resolve_organs(organs)
        members = {model.member_for(o) for o in wanted}
        members |= {model.members[m].roi.centre_from for m in list(members)
                    if model.members[m].roi is not None}
        return ["check", "reorient", "anatomy", "preprocess",
                *(f"network {m}" for m in model.members if m in members),
                "regrid", "postprocess",
                *(["body"] if body and model.expect.modality == "CT" else []), "organ checks"]

    def run(self, volume: Volume, *, tta: bool = False, organs: Iterable[str] | None = None,
            name: str = "input", on_stage: Callable[[str], None] | None = None,
            force: bool = False, body: bool = True, precision: str = "auto",
            derived: bool = False) -> Prediction:
        """Contour ``volume``.

        Args:
            volume: a CT (any orientation, spacing and size) with its geometry.
            tta: average with the left-right mirrored CT (paired organs swapped); about twice
                the network time.
            organs: organ names to contour (default: all the model knows); members no wanted
                organ comes from are not run.
            name: how messages name the input (a path, a series).
            on_stage: called with each stage's name (:meth:`stages`) when it finishes; it may
                raise (e.g. :class:`~autocontour.errors.JobCancelled`) to stop the run.
            force: contour a CT the anatomy check refuses (the refusal becomes a warning and
                the report says it was forced). Organs found clearly wrong after contouring
                are left out all the same.
            body: find the body outline (``External``, CT only; see
                :mod:`autocontour.inference.body`) and clip every organ to it.
            precision: "auto" runs the networks in the reduced precision the device computes
                natively (float16 on CUDA, bfloat16 on a CPU with AVX512-BF16 or AMX; float32
                elsewhere, :func:`~autocontour.models.inferer.autocast_dtype`); "fp32" always
                in float32.
            derived: also return the channels the recipe derived from the CT (the pseudo-MRI
                of a CT + pseudo-MRI model) on ``volume``'s grid (:attr:`Prediction.derived`).

        Returns:
            The :class:`Prediction`: labels on ``volume``'s exact grid, stage times, warnings.

        Raises:
            InvalidInputError: the input is refused (another modality, not HU, constant,
                non-finite, one slice) or an organ name the model does not know.
            AnatomyError: the CT does not show the anatomy the model was trained on (a pelvis
                CT given to a head-and-neck model), unless ``force``.
            UnknownOptionError: a ``precision`` other than "auto" or "fp32".
        """
        precision = check_precision(precision)
        model = self.model
        record = model.expect.record
        safety = SafetyReport(forced=False)
        wanted = model.resolve_organs(organs)
        seconds: dict[str, float] = {}
        clock = [time.perf_counter()]

        def finished(stage: str) -> None:
            now = time.perf_counter()
            seconds[stage] = round(seconds.get(stage, 0.0) + now - clock[0], 3)
            clock[0] = now
            if on_stage is not None:
                on_stage(stage)

        with torch.inference_mode():
            warnings = check_input(volume, model.expect, name)
            finished("check")
            canon = canonical(volume, model.expect.orientation)
            finished("reorient")
            if model.expect.modality == "CT":
                safety.anatomy = check_anatomy(canon, model.organs.name, record, model.name,
                                               name)
                refusal = safety.anatomy.refusal
                if refusal and not force:
                    raise AnatomyError(f"{refusal}: nothing was contoured; --force contours "
                                       "it anyway")
                if refusal:
                    safety.forced = True
                    warnings.append(f"contoured despite the anatomy check (--force): {refusal}")
                warnings += safety.anatomy.warnings
            finished("anatomy")
            kept: list[Preprocessed] = []
            labels, more = contour_on_grid(model, canon, volume.geometry, wanted, tta=tta,
                                           device=self.device, on_stage=finished,
                                           precision=precision,
                                           on_preprocessed=kept.append if derived else None)
            channels = {name: channel_on_grid(c, volume.geometry) for pre in kept
                        for name, c in zip(model.recipe.inputs()[1:], pre.extra, strict=True)}
            del kept
            warnings += more
            lcc = [model.organs.by_name(o).label for o in wanted
                   if model.largest_component.get(o, False)]
            if lcc:
                labels = keep_largest_component(labels, lcc)
            finished("postprocess")
        organ_set = model.organs.subset(wanted) if len(wanted) < len(model.organs.names) \
            else model.organs
        result = LabelMap(np.ascontiguousarray(labels, dtype=np.uint8), volume.geometry,
                          organs=organ_set)
        outline, clipped = None, []
        if body and model.expect.modality == "CT":
            # (found after the networks, not beside them in a thread: measured on 2 cores, a
            # thread slowed the networks by as much as it saved)
            outline = body_outline(volume)
            if outline.any():
                result, clipped = clip_to_body(result, outline)
                warnings += [f"{c.organ}: {c.volume_cc:.2f} cm³ outside the body outline "
                             "removed" for c in clipped if c.volume_cc >= 0.5]
            else:
                warnings.append("no body outline: no voxel above -500 HU")
                outline = None
            finished("body")
        if model.expect.modality == "CT":
            safety.organs = check_organs(result, volume, record)
            safety.sex = decide_sex(volume, result, record)
            sexed = sex_flags(result, safety.sex)  # these replace any other flag of theirs
            safety.organs = [f for f in safety.organs if f.organ not in {x.organ for x in sexed}]
            safety.organs += sexed
            result = remove_organs(result, safety.removed())
        finished("organ checks")
        seconds["total"] = round(sum(seconds.values()), 3)
        described = {**self.describe(tta, wanted), "precision": self.precision_of(precision)}
        return Prediction(result, seconds, warnings, described, safety, outline, clipped,
                          channels)

    def precision_of(self, precision: str = "auto") -> str:
        """The number type the networks run in for ``precision`` on this contourer's device."""
        dtype = autocast_dtype(self.device) if check_precision(precision) == "auto" else None
        return str(dtype or torch.float32).removeprefix("torch.")

    def describe(self, tta: bool = False, organs: Iterable[str] | None = None) -> dict[str, Any]:
        """The model's name, versions, members and rule, for reports."""
        model = self.model
        wanted = model.resolve_organs(organs)
        return {"name": model.name, "autocontour_version": __version__,
                "trained_with": model.info.get("autocontour_version"),
                "members": {n: {"network": type(m.net).__name__,
                                "patch_size": list(m.patch_size),
                                "roi": m.roi.to_dict() if m.roi else None}
                            for n, m in model.members.items()},
                "rule": {o: model.member_for(o) for o in wanted},
                "largest_component": {o: bool(model.largest_component.get(o, False))
                                      for o in wanted},
                "recipe": model.recipe.name, "inputs": self.inputs,
                "tta": tta, "device": str(self.device)}

    @property
    def inputs(self) -> list[str]:
        """The image channels the networks take, e.g. ["CT"] or ["CT", "pseudo-MRI"]."""
        return self.model.recipe.inputs(self.model.expect.modality)
