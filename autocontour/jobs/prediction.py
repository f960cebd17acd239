"""The main job: contour a CT and write what the planning system imports.

The CLI's ``autocontour predict``, the demo, and (later) the service and the DICOM node call
:func:`predict`. A service keeps a :class:`~autocontour.inference.Contourer` warm and passes it
in, so the model is loaded once::

    from autocontour.jobs import PredictRequest, predict

    def show(p):  # a Progress report: stage, fraction of the job done, message
        print(f"{p.fraction:4.0%} {p.stage} {p.message}")

    result = predict(PredictRequest("ct_folder/", "contours/"), progress=show)
    print(result.report["organs"])

Outputs (``rtstruct.dcm``, ``seg.dcm``, ``labels.nii.gz``, ``overview.png``, ``report.json``;
with ``pseudo_mri`` also ``pseudo_mri.nii.gz`` and ``pseudo_mri/``) are
written into a temporary folder that is renamed when complete
(:func:`~autocontour.inference.outputs.write_outputs`); an existing result is replaced only with
``overwrite``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autocontour.errors import InvalidInputError
from autocontour.inference.catalogue import choose_model, resolve_model
from autocontour.inference.outputs import write_outputs
from autocontour.inference.pipeline import Contourer, Prediction, check_precision
from autocontour.io.formats import read_volume, write_volume
from autocontour.io.volume import LabelMap, Volume
from autocontour.jobs.base import CancelCheck, ProgressCallback, Reporter, use_threads
from autocontour.jobs.checks import check_input, check_output_folder


@dataclass(frozen=True)
class PredictRequest:
    """What to contour, with what, and where the result goes.

    Attributes:
        input: a CT as a DICOM series folder or zip, NIfTI, NRRD or HDF5.
        output: the output folder (must be new or empty unless ``overwrite``).
        model: a shipped model's name ("head-neck", "pelvis"; ``autocontour model list``), a
            model file or a training checkpoint; None: the shipped model that fits the CT
            (:func:`~autocontour.inference.catalogue.choose_model`; a CT no model fits is
            refused).
        device: "cpu", "cuda", "cuda:N" or "auto".
        tta: average with the left-right mirrored CT (about twice the network time).
        organs: only these organs (names of the model's organ set); None: all.
        series: SeriesInstanceUID or SeriesNumber when the input holds several series.
        overwrite: replace an existing output folder.
        name: how the report and messages name the input (default: the input path).
        force: contour a CT the anatomy check refuses (wrong body site, too little of it);
            the report and the RTSTRUCT's series description say it was forced.
        threads: PyTorch CPU threads; None leaves the process's setting alone (the CLI passes
            the CPUs the process may use, :func:`~autocontour.jobs.base.default_threads`).
        precision: "auto" (the networks in the reduced precision the device computes natively:
            float16 on CUDA, bfloat16 on a CPU with AVX512-BF16 or AMX) or "fp32".
        pseudo_mri: also write the pseudo-MRI a CT + pseudo-MRI model's networks saw, on the
            CT's grid: ``pseudo_mri.nii.gz`` and, for a DICOM CT, the DICOM MR series
            ``pseudo_mri/`` in the CT's study and Frame of Reference. A model that takes the CT
            alone is refused (nothing is written). The values are the generator's scale, [-1, 1]
            (the training MRs' 0.5/99.5 percentiles at -1 and 1).
    """

    input: str | Path
    output: str | Path
    model: str | Path | None = None
    device: str = "auto"
    tta: bool = False
    organs: tuple[str, ...] | None = None
    series: str | None = None
    overwrite: bool = False
    name: str | None = None
    force: bool = False
    threads: int | None = None
    precision: str = "auto"
    pseudo_mri: bool = False


PSEUDO_MRI = "pseudo-MRI"
PSEUDO_MRI_FILES = {"pseudo_mri": "pseudo_mri.nii.gz", "pseudo_mri_dicom": "pseudo_mri/"}


def check_pseudo_mri(contourer: Contourer, request: PredictRequest) -> None:
    """Refuse ``pseudo_mri`` for a model whose networks do not take a pseudo-MRI.

    Raises:
        InvalidInputError: naming the model and what it takes.
    """
    if request.pseudo_mri and PSEUDO_MRI not in contourer.inputs:
        raise InvalidInputError(
            f"--pseudo-mri: model {contourer.model.name!r} takes "
            f"{' + '.join(contourer.inputs)} only, no pseudo-MRI; use a model trained with "
            "'pseudo_mri:' in its training config")


def _pseudo_mri_writer(prediction: Prediction, ct: Volume) -> Callable[[Path], dict[str, str]]:
    """The ``also`` hook of :func:`write_outputs` that writes the pseudo-MRI files."""
    from autocontour.io.dicom_write import write_dicom_series
    from autocontour.jobs.pseudo_mri import dicom_series_kwargs

    def write(folder: Path) -> dict[str, str]:
        mr = prediction.derived[PSEUDO_MRI]
        write_volume(mr, folder / PSEUDO_MRI_FILES["pseudo_mri"])
        files = {"pseudo_mri": PSEUDO_MRI_FILES["pseudo_mri"]}
        if ct.dicom is not None:
            write_dicom_series(mr, folder / PSEUDO_MRI_FILES["pseudo_mri_dicom"].rstrip("/"),
                               modality="MR", **dicom_series_kwargs(ct))
            files["pseudo_mri_dicom"] = PSEUDO_MRI_FILES["pseudo_mri_dicom"]
        return files
    return write


@dataclass
class PredictResult:
    """What a contouring run wrote.

    Attributes:
        output: the output folder.
        report: the content of ``report.json`` (organs and volumes, organs not found, seconds
            per stage, warnings, the model, the files written).
        model: the model's name.
        labels: the label map on the input CT's grid (what ``labels.nii.gz`` holds).
        warnings: what was noticed about the input and done about it.
        choice: why this model: the automatic choice's reason and candidates, or that it was
            named.
        body: the body outline on the input CT's grid (boolean), None when none was found.
        model_file: the file the model was loaded from (None: a model built in memory).
    """

    output: Path
    report: dict[str, Any]
    model: str
    labels: LabelMap
    warnings: list[str] = field(default_factory=list)
    choice: dict[str, Any] = field(default_factory=dict)
    body: np.ndarray | None = None
    model_file: Path | None = None


def load_contourer(model: str | Path | None = None, device: str = "auto") -> Contourer:
    """The contourer of a shipped model's name, a model file or a checkpoint on ``device``
    (None: the default shipped model, head and neck).

    Raises:
        InvalidInputError: an unreadable model file, or a device that is not there.
        UnknownOptionError: an unknown shipped model name.
    """
    return Contourer.from_checkpoint(resolve_model(model), device)


class WarmModels:
    """Models loaded once and kept, for a process that contours many CTs (a service's worker).

    Keyed by the model file (its resolved path, size and modification time: a file replaced in
    place is loaded again) and the device. Thread-safe; a model is loaded once even when two
    threads ask for it together.
    """

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, int, int, str], Contourer] = {}
        self._lock = threading.Lock()

    def get(self, model: str | Path | None, device: str = "auto") -> Contourer:
        """The contourer of ``model`` (as :func:`load_contourer`), loaded on first use."""
        path = resolve_model(model)
        try:
            stat = path.stat()
        except OSError:
            return load_contourer(path, device)  # let the loader say what is wrong
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, device)
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = load_contourer(path, device)
            return self._loaded[key]

    def __len__(self) -> int:
        return len(self._loaded)


def predict(request: PredictRequest, progress: ProgressCallback | None = None,
            cancel: CancelCheck | None = None, contourer: Contourer | None = None,
            models: WarmModels | None = None) -> PredictResult:
    """Contour the request's CT and write the outputs.

    Args:
        request: the request.
        progress: called with a :class:`~autocontour.jobs.base.Progress` after each stage
            (load model, read, the pipeline's stages, write).
        cancel: asked between stages; True stops the job (nothing is written).
        contourer: a model already loaded (e.g. kept warm by a service); None: load
            ``request.model``, or with no model named, read the CT first and load the shipped
            model that fits it.
        models: where loaded models are kept (a worker's :class:`WarmModels`); None: load the
            model for this call only.

    Raises:
        OutputExistsError: the output holds files and ``overwrite`` is False (checked before
            anything is read).
        InvalidInputError: an unreadable or refused input, an unknown organ, a bad model file,
            ``pseudo_mri`` with a model that takes no pseudo-MRI (before the CT is
            contoured).
        AnatomyError: no model named and no shipped model fits the CT (nothing written).
        JobCancelled: ``cancel`` said stop.
    """
    out = Path(request.output)
    check_output_folder(out, request.overwrite)  # refused before the model is loaded
    check_input(request.input)
    check_precision(request.precision)
    source = request.name or str(request.input)
    choose = contourer is None and request.model is None
    # With the model chosen after reading, its stages are not known yet: the first three count
    # as a fifth of the job until they are (reading and loading take about that share).
    first = ["read", "choose model", "load model", *["model"] * 12] if choose \
        else ["load model", "read"]
    reporter = Reporter(first, progress, cancel, job=f"contouring {source}")
    reporter.check()
    use_threads(request.threads)
    warnings: list[str] = []
    choice: dict[str, Any] = {}
    load = models.get if models is not None else load_contourer

    def read() -> Volume:
        ct = read_volume(request.input, series=request.series, warnings=warnings)
        reporter.finished("read", f"{source}: {'x'.join(map(str, ct.shape[::-1]))} voxels")
        return ct

    if choose:
        ct = read()
        chosen = choose_model(ct, source)
        choice = chosen.to_dict()
        reporter.finished("choose model", f"{chosen.model.name}: {chosen.reason}")
        contourer = load(chosen.model.path, request.device)
    elif contourer is None:
        contourer = load(request.model, request.device)
        choice = {"model": str(request.model), "reason": "named (--model)"}
    else:
        choice = {"model": contourer.model.name, "reason": "given by the caller"}
    check_pseudo_mri(contourer, request)
    if choose:
        reporter.extend(["load model", *contourer.stages(request.organs), "write"], keep=2)
    else:
        reporter.stages += contourer.stages(request.organs) + ["write"]
    reporter.finished("load model", contourer.model.name)
    if not choose:
        ct = read()
    prediction = contourer.run(ct, tta=request.tta, organs=request.organs, name=source,
                               on_stage=reporter.finished, force=request.force,
                               precision=request.precision, derived=request.pseudo_mri)
    prediction.warnings[:0] = warnings
    also = _pseudo_mri_writer(prediction, ct) if request.pseudo_mri else None
    report = write_outputs(prediction, ct, out, source=source, overwrite=request.overwrite,
                           extra={"model_choice": choice,
                                  "inputs": prediction.model.get("inputs", ["CT"])},
                           also=also)
    reporter.finished("write", str(out), last=True)
    return PredictResult(out, report, contourer.model.name, prediction.labels,
                         list(report["warnings"]), choice, prediction.body, contourer.source)
