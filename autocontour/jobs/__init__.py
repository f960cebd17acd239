"""User-level jobs: one function per thing a user asks for, called by every front end.

The CLI runs its work through these functions, and the planned web service and DICOM node will
call the same ones, so every front end gets the same result from the same code. Each job takes one typed request (a frozen dataclass),
returns a typed result, reports progress through a callback (:class:`Progress`: stage, fraction
of the job done, message), checks a cancellation callable between stages (raising
:class:`~autocontour.errors.JobCancelled`), never prints, and writes its outputs atomically
(temporary name, then rename), never over an existing result unless asked.

============================== ============================== ===============================
job                            request                        result
============================== ============================== ===============================
:func:`predict`                :class:`PredictRequest`        :class:`PredictResult`
:func:`run_demo`               :class:`DemoRequest`           :class:`DemoResult`
:func:`evaluate`               :class:`EvaluateRequest`       ``EvaluationReport``
:func:`train`                  :class:`TrainRequest`          :class:`TrainResult`
:func:`build_model`            :class:`BuildModelRequest`     :class:`BuildResult`
:func:`import_dataset`         :class:`ImportRequest`         :class:`ImportResult`
:func:`split_dataset`          :class:`SplitRequest`          ``SplitResult``
:func:`export_dataset`         :class:`ExportRequest`         ``ExportResult``
:func:`write_phantoms`         :class:`PhantomRequest`        :class:`PhantomResult`
:func:`convert`                :class:`ConvertRequest`        :class:`ConvertResult`
:func:`describe_file`          a path                         a JSON-ready ``dict``
:func:`describe_model`         a model path (None: shipped)   :class:`ModelDescription`
:func:`list_models`            nothing                        a ``dict`` per shipped model
:func:`add_user`               :class:`AddUserRequest`        :class:`AddUserResult`
:func:`contour_case`           :class:`ContourCaseRequest`    :class:`ContourCaseResult`
:func:`fingerprint_dataset`    a data set path                ``FingerprintResult``
:func:`train_pseudo_mri`       :class:`PseudoMRITrainRequest` :class:`PseudoMRITrainResult`
:func:`convert_pseudo_mri`     ``PseudoMRIConvertRequest``    ``PseudoMRIConvertResult``
:func:`train_synthesis_model`  ``SynthesisTrainRequest``      ``SynthesisTrainResult``
:func:`synthesize`             :class:`SynthesizeRequest`     :class:`SynthesizeResult`
============================== ============================== ===============================

Example::

    from autocontour.jobs import PredictRequest, predict

    result = predict(PredictRequest("ct_folder/", "out/"),
                     progress=lambda p: print(f"{p.fraction:4.0%} {p.stage}"))

Names are imported on first use, so ``import autocontour.jobs`` stays light (the CLI refuses a
bad path before PyTorch is imported).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from autocontour.jobs.base import CancelCheck, Progress, ProgressCallback, Reporter

_LAZY = {
    **dict.fromkeys(("PredictRequest", "PredictResult", "WarmModels", "predict",
                     "load_contourer"),
                    "autocontour.jobs.prediction"),
    **dict.fromkeys(("DemoRequest", "DemoResult", "run_demo"), "autocontour.jobs.demo"),
    **dict.fromkeys(("EvaluateRequest", "EvaluationReport", "evaluate"),
                    "autocontour.jobs.evaluation"),
    **dict.fromkeys(("TrainRequest", "TrainResult", "train"), "autocontour.jobs.training"),
    **dict.fromkeys(("BuildModelRequest", "BuildResult", "MemberPlan", "build_model"),
                    "autocontour.jobs.model_building"),
    **dict.fromkeys(("ImportRequest", "ImportResult", "import_dataset", "fingerprint_dataset",
                     "SplitRequest", "split_dataset", "ExportRequest", "export_dataset"),
                    "autocontour.jobs.dataset"),
    **dict.fromkeys(("AddUserRequest", "AddUserResult", "add_user", "AddTokenRequest",
                     "add_token"), "autocontour.jobs.accounts"),
    **dict.fromkeys(("ContourCaseRequest", "ContourCaseResult", "RunJobRequest", "RunJobResult",
                     "contour_case", "run_contour_job"),
                    "autocontour.jobs.cases"),
    **dict.fromkeys(("PhantomRequest", "PhantomResult", "write_phantoms"),
                    "autocontour.jobs.phantoms"),
    **dict.fromkeys(("ConvertRequest", "ConvertResult", "ModelDescription", "convert",
                     "describe_file", "describe_model", "list_models"), "autocontour.jobs.files"),
    **dict.fromkeys(("PseudoMRITrainRequest", "PseudoMRITrainResult", "train_pseudo_mri",
                     "PseudoMRIConvertRequest", "PseudoMRIConvertResult", "convert_pseudo_mri"),
                    "autocontour.jobs.pseudo_mri"),
    **dict.fromkeys(("SynthesisTrainRequest", "SynthesisTrainResult", "train_synthesis_model",
                     "SynthesizeRequest", "SynthesizeResult", "synthesize"),
                    "autocontour.jobs.synthesis"),
}

if TYPE_CHECKING:  # _LAZY spelled out for IDEs and type checkers (tests/test_exports.py)
    from autocontour.jobs.accounts import (
        AddTokenRequest,
        AddUserRequest,
        AddUserResult,
        add_token,
        add_user,
    )
    from autocontour.jobs.cases import (
        ContourCaseRequest,
        ContourCaseResult,
        RunJobRequest,
        RunJobResult,
        contour_case,
        run_contour_job,
    )
    from autocontour.jobs.dataset import (
        ExportRequest,
        ImportRequest,
        ImportResult,
        SplitRequest,
        export_dataset,
        fingerprint_dataset,
        import_dataset,
        split_dataset,
    )
    from autocontour.jobs.demo import DemoRequest, DemoResult, run_demo
    from autocontour.jobs.evaluation import EvaluateRequest, EvaluationReport, evaluate
    from autocontour.jobs.files import (
        ConvertRequest,
        ConvertResult,
        ModelDescription,
        convert,
        describe_file,
        describe_model,
        list_models,
    )
    from autocontour.jobs.model_building import (
        BuildModelRequest,
        BuildResult,
        MemberPlan,
        build_model,
    )
    from autocontour.jobs.phantoms import PhantomRequest, PhantomResult, write_phantoms
    from autocontour.jobs.prediction import (
        PredictRequest,
        PredictResult,
        WarmModels,
        load_contourer,
        predict,
    )
    from autocontour.jobs.pseudo_mri import (
        PseudoMRIConvertRequest,
        PseudoMRIConvertResult,
        PseudoMRITrainRequest,
        PseudoMRITrainResult,
        convert_pseudo_mri,
        train_pseudo_mri,
    )
    from autocontour.jobs.synthesis import (
        SynthesisTrainRequest,
        SynthesisTrainResult,
        SynthesizeRequest,
        SynthesizeResult,
        synthesize,
        train_synthesis_model,
    )
    from autocontour.jobs.training import TrainRequest, TrainResult, train

__all__ = [
    "AddTokenRequest",
    "AddUserRequest",
    "AddUserResult",
    "BuildModelRequest",
    "BuildResult",
    "CancelCheck",
    "ContourCaseRequest",
    "ContourCaseResult",
    "ConvertRequest",
    "ConvertResult",
    "DemoRequest",
    "DemoResult",
    "EvaluateRequest",
    "EvaluationReport",
    "ExportRequest",
    "ImportRequest",
    "ImportResult",
    "MemberPlan",
    "ModelDescription",
    "PhantomRequest",
    "PhantomResult",
    "PredictRequest",
    "PredictResult",
    "Progress",
    "ProgressCallback",
    "PseudoMRIConvertRequest",
    "PseudoMRIConvertResult",
    "PseudoMRITrainRequest",
    "PseudoMRITrainResult",
    "Reporter",
    "RunJobRequest",
    "RunJobResult",
    "SplitRequest",
    "SynthesisTrainRequest",
    "SynthesisTrainResult",
    "SynthesizeRequest",
    "SynthesizeResult",
    "TrainRequest",
    "TrainResult",
    "WarmModels",
    "add_token",
    "add_user",
    "build_model",
    "contour_case",
    "convert",
    "convert_pseudo_mri",
    "describe_file",
    "describe_model",
    "evaluate",
    "export_dataset",
    "fingerprint_dataset",
    "import_dataset",
    "list_models",
    "load_contourer",
    "predict",
    "run_contour_job",
    "run_demo",
    "split_dataset",
    "synthesize",
    "train",
    "train_pseudo_mri",
    "train_synthesis_model",
    "write_phantoms",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autocontour.jobs' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
