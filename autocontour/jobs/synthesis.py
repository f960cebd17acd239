"""The multi-modal synthesis jobs behind ``autocontour synthesize`` (spec E, seed 003).

* :func:`train_synthesis_model`: train (or resume) the structure-map generator, the lesion
  segmenters, the modality converter and the conditional generator of a config
  (:class:`~autocontour.synthesis.multimodal.config.SynthesisConfig`; the ablation's switches
  and models A-F are config values); progress after every step; a cancellation stops after the
  step it is noticed in and leaves a checkpoint that ``resume`` continues.
* :func:`synthesize`: any number of new tuples (structure map, organ mask, lesion label, one
  image per modality) from a trained model, written as NIfTI and PNG with a ``dataset.json``
  in the layout :func:`autocontour.data.multimodal.load_multimodal_folder` reads, so the output
  can be used as a training data set. The folder is built under a temporary name and renamed
  at the end: a failure or a cancellation leaves nothing.

Output of :func:`synthesize`::

    <out>/dataset.json                   manifest: modalities, display ranges, model, seed, cases
    <out>/synth_00000/<MODALITY>.nii.gz  one image per modality, float32 in 0..1
    <out>/synth_00000/structure.nii.gz   the generated structure map s_g (0/1)
    <out>/synth_00000/mask.nii.gz        the organ mask 1 - G_m(s_g) (1 inside: where lesions lie)
    <out>/synth_00000/lesion.nii.gz      the lesion label (the real label's values, 0 background)
    <out>/synth_00000/synth_00000.png    structure | mask | lesion | each modality
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from autocontour.errors import InvalidInputError, JobCancelled
from autocontour.jobs.base import CancelCheck, ProgressCallback, Reporter
from autocontour.jobs.checks import check_file, check_output_folder
from autocontour.synthesis.multimodal.config import SynthesisConfig

MANIFEST = "dataset.json"
LAYOUT = "autocontour-multimodal-1"


@dataclass(frozen=True)
class SynthesisTrainRequest:
    """A synthesis training run.

    Attributes:
        config: a YAML/JSON config file, or the config itself.
        resume: continue from the run folder's checkpoint.
        device: "cpu", "cuda" or "auto" to override the config's; None: the config's.
    """

    config: str | Path | SynthesisConfig
    resume: bool = False
    device: str | None = None


@dataclass
class SynthesisTrainResult:
    """The config that ran and how the run ended (steps, checkpoint, model, samples, losses)."""

    config: SynthesisConfig
    outcome: Any  # autocontour.synthesis.multimodal.train.SynthesisOutcome


def train_synthesis_model(request: SynthesisTrainRequest,
                          progress: ProgressCallback | None = None,
                          cancel: CancelCheck | None = None) -> SynthesisTrainResult:
    """Train the synthesis the request asks for.

    Raises:
        InvalidInputError: an unreadable or invalid config, unusable data, nothing to resume, a
            resumed config that differs from the checkpoint's.
        UnknownOptionError: an unknown option in the config (with the closest one).
        OutputExistsError: the run folder holds a checkpoint and ``resume`` is False.
        JobCancelled: ``cancel`` said stop (the checkpoint stays; resume continues from it).
    """
    config = (request.config if isinstance(request.config, SynthesisConfig)
              else SynthesisConfig.from_file(check_file(request.config, "synthesis config")))
    if request.device is not None:
        config = replace(config, device=request.device)
    reporter = Reporter([], progress, cancel, job=f"synthesis training {config.out}",
                        kept="the checkpoint stays; resume continues from it")
    reporter.check()
    from autocontour.synthesis.multimodal.train import train_synthesis

    total = config.total_steps()

    def on_step(step: int, stage: str, losses: dict[str, float]) -> None:
        main = next(iter(losses.items()))
        reporter.note(stage, f"step {step}/{total} {main[0]} {main[1]:.3f}", step / total)

    stop = (lambda: bool(cancel())) if cancel is not None else None
    outcome = train_synthesis(config, resume=request.resume, on_step=on_step, should_stop=stop)
    if outcome.stopped == "cancelled":
        raise JobCancelled(f"synthesis training {config.out} cancelled at step {outcome.step}; "
                           f"the checkpoint {outcome.checkpoint} stays; resume continues from it")
    reporter.note("done", f"{outcome.step} steps", 1.0)
    return SynthesisTrainResult(config, outcome)


@dataclass(frozen=True)
class SynthesizeRequest:
    """New tuples from a trained model.

    Attributes:
        model: a synthesis ``model.pt`` (or ``checkpoint.pt``).
        out: the output folder (new or empty; ``overwrite`` replaces one).
        count: how many tuples (at least 1).
        seed: the stream of tuples (tuple k depends only on the model, the seed and k).
        device: "cpu", "cuda" or "auto".
        png: also write a PNG per tuple.
        overwrite: replace an existing output folder.
    """

    model: str | Path
    out: str | Path
    count: int
    seed: int = 0
    device: str = "cpu"
    png: bool = True
    overwrite: bool = False


@dataclass
class SynthesizeResult:
    """Where the tuples went, the manifest written and how long it took."""

    out: Path
    manifest: dict[str, Any]
    cases: list[str] = field(default_factory=list)
    without_lesion: int = 0
    seconds: float = 0.0


def synthesize(request: SynthesizeRequest, progress: ProgressCallback | None = None,
               cancel: CancelCheck | None = None) -> SynthesizeResult:
    """Generate ``request.count`` tuples and write them as a multi-modal data set folder.

    Raises:
        InvalidInputError: count below 1, a missing, unreadable or wrong model file, an output
            that is a file or cannot be written.
        OutputExistsError: the output folder holds files and ``overwrite`` is False.
        JobCancelled: ``cancel`` said stop (nothing is written).
    """
    started = time.perf_counter()
    if isinstance(request.count, bool) or not isinstance(request.count, int) or \
            request.count < 1:
        raise InvalidInputError(f"the number of tuples must be at least 1, got {request.count!r}")
    out = check_output_folder(request.out, request.overwrite)
    check_file(request.model, "synthesis model")
    from autocontour.inference.pipeline import resolve_device
    from autocontour.io import write_volume
    from autocontour.io.volume import Geometry, Volume
    from autocontour.paths import atomic_folder
    from autocontour.synthesis.multimodal.generate import (
        generate_tuple,
        load_synthesis_model,
        save_png,
        tuple_strip,
    )

    reporter = Reporter(["model", "generate"], progress, cancel,
                        job=f"synthesis of {request.count} tuple(s)")
    model = load_synthesis_model(request.model, resolve_device(request.device))
    reporter.finished("model", f"step {model.step}, modalities {', '.join(model.modalities)}")
    h, w = model.size
    sx, sy = model.spacing
    geometry = Geometry((1, h, w), (sx, sy, sx), (0.0, 0.0, 0.0))
    cases, entries, without = [], [], 0
    with atomic_folder(out, request.overwrite) as tmp:
        for k in range(request.count):
            t = generate_tuple(model, k, request.seed)
            case_id = f"synth_{k:05d}"
            folder = tmp / case_id
            files: dict[str, str] = {}
            for mod, image in t.images.items():
                files[mod] = write_volume(Volume(image[None], geometry, modality="MR"),
                                          folder / f"{mod}.nii.gz").name
            files["structure"] = write_volume(
                Volume(t.structure.astype(np.uint8)[None], geometry, modality="SEG"),
                folder / "structure.nii.gz").name
            files["mask"] = write_volume(Volume(t.mask[None], geometry, modality="SEG"),
                                         folder / "mask.nii.gz").name
            files["lesion"] = write_volume(Volume(t.lesion[None], geometry, modality="SEG"),
                                           folder / "lesion.nii.gz").name
            if request.png:
                files["png"] = save_png(tuple_strip(t), folder / f"{case_id}.png").name
            without += t.lesion_source is None
            entries.append({"case_id": case_id, "files": files, "meta": t.meta()})
            cases.append(case_id)
            reporter.note("generate", f"tuple {k + 1}/{request.count}",
                          0.5 + 0.5 * (k + 1) / request.count)
            reporter.check()
        manifest = {
            "layout": LAYOUT,
            "source": "synthetic (autocontour synthesize): generated by a multi-modal "
                      "lesion-guided synthesis model, not real images",
            "model": str(request.model),
            "model_step": model.step,
            "ablation_model": model.config.ablation_model,
            "switches": {s: getattr(model.config, s) for s in (
                "structure_input", "mask_filter", "noise_fusion", "registration_loss",
                "lesion_loss")},
            "generator_input": ("uniform noise (model A: the structure map is written but G "
                                "did not see it)" if not model.config.structure_input else
                                "structure map" + (" with noise fused in (eq. 12)"
                                                   if model.config.noise_fusion else "")),
            "seed": int(request.seed),
            "modalities": list(model.modalities),
            "display_range": {m: [0.0, 1.0] for m in model.modalities},
            "mask": "organ mask 1 - G_m(s_g) (1 inside the organ: where lesions lie)",
            "extra_files": {"structure": "the generated structure map s_g (0/1)",
                            "png": "structure | mask | lesion | each modality"},
            "without_lesion": without,
            "cases": entries,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    reporter.finished("generate", f"{request.count} tuple(s) in {out}", last=True)
    return SynthesizeResult(out, manifest, cases, without, time.perf_counter() - started)
