"""The pseudo-MRI jobs behind ``autocontour pseudo-mri train`` and ``pseudo-mri convert``.

* :func:`train_pseudo_mri`: train (or resume) the CT ↔ MR CycleGAN of a config (spec D1-D4);
  progress after every step (fraction of the run's steps, the cycle and generator losses); a
  cancellation stops after the step it is noticed in and leaves a checkpoint that ``resume``
  continues.
* :func:`convert_pseudo_mri`: a CT (DICOM series, NIfTI, NRRD, HDF5) → its pseudo-MRI on the same
  grid, written as ``pseudo_mri.nii.gz`` and as a DICOM MR series (``dicom/``) in one output
  folder. When the CT is a DICOM series the MR series joins its study and Frame of Reference and
  has the same slice positions, so it stays registered to the CT in a planning system. The folder
  is built under a temporary name and renamed at the end: a failure leaves nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from autocontour.errors import JobCancelled
from autocontour.inference.pipeline import resolve_device
from autocontour.io.dicom_write import write_dicom_series
from autocontour.io.formats import read_volume, write_volume
from autocontour.io.volume import DicomSeriesRef, Volume
from autocontour.jobs.base import CancelCheck, ProgressCallback, Reporter
from autocontour.jobs.checks import check_file, check_input, check_output_folder
from autocontour.synthesis.pseudo_mri import (
    PseudoMRIConfig,
    TrainOutcome,
    check_is_ct,
    ct_to_pseudo_mri,
    load_pseudo_mri_model,
)

NIFTI_NAME = "pseudo_mri.nii.gz"
DICOM_NAME = "dicom"
REPORT_NAME = "pseudo_mri.json"


@dataclass(frozen=True)
class PseudoMRITrainRequest:
    """A pseudo-MRI training run.

    Attributes:
        config: a YAML/JSON config file, or the config itself (:class:`PseudoMRIConfig`).
        resume: continue from the run folder's checkpoint.
        device: "cpu" or "cuda" to override the config's device; None: the config's.
        steps: override the config's number of steps (e.g. to extend a resumed run).
    """

    config: str | Path | PseudoMRIConfig
    resume: bool = False
    device: str | None = None
    steps: int | None = None


@dataclass
class PseudoMRITrainResult:
    """The config that ran and how the run ended (:class:`TrainOutcome`: step, checkpoint,
    model file, sample grids, loss history)."""

    config: PseudoMRIConfig
    outcome: TrainOutcome


def train_pseudo_mri(request: PseudoMRITrainRequest, progress: ProgressCallback | None = None,
                     cancel: CancelCheck | None = None) -> PseudoMRITrainResult:
    """Train the pseudo-MRI CycleGAN the request asks for.

    Raises:
        InvalidInputError: an unreadable or invalid config, missing images, nothing to resume,
            a resumed config that differs from the checkpoint's.
        UnknownOptionError: an unknown option in the config (with the closest one).
        OutputExistsError: the run folder holds a checkpoint and ``resume`` is False.
        JobCancelled: ``cancel`` said stop (the checkpoint stays; resume continues from it).
    """
    from autocontour.synthesis.pseudo_mri import train_cyclegan

    config = (request.config if isinstance(request.config, PseudoMRIConfig)
              else PseudoMRIConfig.from_file(request.config))
    changes: dict[str, Any] = {k: v for k, v in (("device", request.device), ("steps", request.steps))
               if v is not None}
    if changes:
        config = replace(config, **changes)
    reporter = Reporter([], progress, cancel, job=f"pseudo-MRI training {config.out}",
                        kept="the checkpoint stays; resume continues from it")
    reporter.check()

    def on_step(step: int, losses: dict[str, float]) -> None:
        reporter.note("train", f"step {step}/{config.steps} cycle {losses['cycle']:.3f} "
                               f"G {losses['g_total']:.3f}", step / config.steps)

    stop = (lambda: bool(cancel())) if cancel is not None else None
    outcome = train_cyclegan(config, resume=request.resume, on_step=on_step, should_stop=stop)
    if outcome.stopped == "cancelled":
        raise JobCancelled(f"pseudo-MRI training {config.out} cancelled at step {outcome.step}; "
                           f"the checkpoint {outcome.checkpoint} stays; resume continues from it")
    reporter.note("done", f"{outcome.step} steps", 1.0)
    return PseudoMRITrainResult(config, outcome)


@dataclass(frozen=True)
class PseudoMRIConvertRequest:
    """A CT to turn into a pseudo-MRI.

    Attributes:
        input: the CT: DICOM folder/zip, .nii/.nii.gz, .nrrd, .h5.
        output: the output folder (new or empty; ``overwrite`` replaces one).
        model: a pseudo-MRI ``model.pt`` or ``checkpoint.pt``.
        series: SeriesInstanceUID or SeriesNumber when the input holds several series.
        overwrite: replace an existing output folder.
        device: "cpu", "cuda" or "auto".
        batch_slices: slices per generator call (memory vs speed).
    """

    input: str | Path
    output: str | Path
    model: str | Path
    series: str | None = None
    overwrite: bool = False
    device: str = "cpu"
    batch_slices: int = 4


@dataclass
class PseudoMRIConvertResult:
    """Where the pseudo-MRI went, the CT as read and the pseudo-MRI (same grid)."""

    output: Path
    nifti: Path
    dicom: Path
    ct: Volume
    pseudo_mri: Volume
    dicom_series: DicomSeriesRef
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def dicom_series_kwargs(ct: Volume) -> dict[str, Any]:
    """Patient, study and position of a DICOM CT, for the MR series that joins its study."""
    ref, header = ct.dicom, getattr(ct.dicom, "header", None)
    if ref is None or header is None:
        return {"series_description": "pseudo-MRI from CT (autocontour)", "series_number": 2}
    number = header.get("SeriesNumber")
    position = str(header.get("PatientPosition", "") or "HFS")
    sex = str(header.get("PatientSex", "") or "")
    return {"patient_id": str(header.get("PatientID", "") or "ANONYMOUS"),
            "patient_name": str(header.get("PatientName", "") or "Anonymous^Patient"),
            "study_instance_uid": ref.study_instance_uid or None,
            "series_description": "pseudo-MRI from CT (autocontour)",
            "series_number": (int(number) if number not in (None, "") else 1) + 1000,
            "patient_position": position if position in ("HFS", "FFS", "HFP", "FFP", "HFDL",
                                                          "HFDR", "FFDL", "FFDR") else "HFS",
            "patient_sex": sex if sex in ("M", "F", "O") else ""}


def convert_pseudo_mri(request: PseudoMRIConvertRequest,
                       progress: ProgressCallback | None = None,
                       cancel: CancelCheck | None = None) -> PseudoMRIConvertResult:
    """Convert a CT into a pseudo-MRI on its grid: NIfTI + DICOM MR series + a small report.

    Raises:
        InvalidInputError: a missing or unreadable CT or model, an image that is not a CT, a
            file that is not a pseudo-MRI model.
        OutputExistsError: the output folder holds files and ``overwrite`` is False.
        JobCancelled: ``cancel`` said stop (nothing is written).
    """
    out = check_output_folder(request.output, request.overwrite)
    check_input(request.input)
    check_file(request.model, "pseudo-MRI model")
    reporter = Reporter(["model", "read", "convert", "write"], progress, cancel,
                        job=f"pseudo-MRI of {request.input}")
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    device = resolve_device(request.device)
    model = load_pseudo_mri_model(request.model, device)
    seconds["model"] = time.perf_counter() - t
    reporter.finished("model", f"step {model.step}")
    t = time.perf_counter()
    warnings: list[str] = []
    ct = read_volume(request.input, series=request.series, warnings=warnings)
    check_is_ct(ct, request.input)
    seconds["read"] = time.perf_counter() - t
    reporter.finished("read", "x".join(str(s) for s in ct.shape[::-1]))
    t = time.perf_counter()

    def on_batch(done: int, total: int) -> None:
        reporter.note("convert", f"slice {done}/{total}",
                      reporter.fraction() + 0.25 * done / total)
        reporter.check()

    mr = ct_to_pseudo_mri(ct, model, max(1, request.batch_slices), device, on_batch)
    seconds["convert"] = time.perf_counter() - t
    reporter.finished("convert")
    t = time.perf_counter()
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        write_volume(mr, tmp / NIFTI_NAME)
        ref = write_dicom_series(mr, tmp / DICOM_NAME, modality="MR", **dicom_series_kwargs(ct))
        seconds["write"] = time.perf_counter() - t
        report = {"input": str(request.input), "model": str(request.model),
                  "model_step": model.step, "shape_xyz": list(ct.shape[::-1]),
                  "spacing_mm": list(ct.spacing), "frame_of_reference_uid": ref.frame_of_reference_uid,
                  "ct_series_instance_uid": ct.dicom.series_instance_uid if ct.dicom else None,
                  "mr_series_instance_uid": ref.series_instance_uid,
                  "normalisation": model.normalisation.to_dict(),
                  "improved_generator": model.config.get("improved_generator"),
                  "seconds": {k: round(v, 3) for k, v in seconds.items()},
                  "warnings": warnings}
        (tmp / REPORT_NAME).write_text(json.dumps(report, indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    files = tuple(str(out / DICOM_NAME / Path(f).name) for f in ref.files)
    ref = replace(ref, files=files)
    reporter.finished("write", str(out), last=True)
    return PseudoMRIConvertResult(out, out / NIFTI_NAME, out / DICOM_NAME, ct, mr, ref, seconds,
                                  warnings)
