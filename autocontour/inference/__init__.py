"""Inference: the combined model, TTA, regrid, post-processing, the CT -> labels pipeline and outputs.

``Contourer`` is the one code path of the predict job (``autocontour predict`` and the demo;
sliding windows are :mod:`autocontour.models.inferer`'s)::

    from autocontour.inference import Contourer
    labels = Contourer.from_checkpoint("model.pt").predict(volume)   # LabelMap on volume's grid

Names are imported on first use, so importing one module (e.g. ``regrid``) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    **dict.fromkeys(("Contourer", "Prediction", "DEFAULT_MODEL"), "autocontour.inference.pipeline"),
    **dict.fromkeys(("ContourModel", "Member", "RoiSpec", "choose_rule"),
                    "autocontour.inference.combined"),
    **dict.fromkeys(("load_model", "save_model"), "autocontour.inference.model_file"),
    "write_outputs": "autocontour.inference.outputs",
    **dict.fromkeys(("InputExpectations", "check_input"), "autocontour.inference.checks"),
    **dict.fromkeys(("keep_largest_component", "choose_largest_component"),
                    "autocontour.inference.postprocess"),
    "labels_on_grid": "autocontour.inference.regrid",
    "write_overview": "autocontour.inference.overview",
}

if TYPE_CHECKING:  # _LAZY spelled out for IDEs and type checkers (tests/test_exports.py)
    from autocontour.inference.checks import InputExpectations, check_input
    from autocontour.inference.combined import ContourModel, Member, RoiSpec, choose_rule
    from autocontour.inference.model_file import load_model, save_model
    from autocontour.inference.outputs import write_outputs
    from autocontour.inference.overview import write_overview
    from autocontour.inference.pipeline import DEFAULT_MODEL, Contourer, Prediction
    from autocontour.inference.postprocess import (
        choose_largest_component,
        keep_largest_component,
    )
    from autocontour.inference.regrid import labels_on_grid

__all__ = [
    "DEFAULT_MODEL", "ContourModel", "Contourer", "InputExpectations", "Member", "Prediction",
    "RoiSpec", "check_input", "choose_largest_component", "choose_rule", "keep_largest_component",
    "labels_on_grid", "load_model", "save_model", "write_outputs", "write_overview",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autocontour.inference' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
