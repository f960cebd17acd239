"""Inference: sliding windows, TTA, the combined model, post-processing, the CT -> RTSTRUCT pipeline.

``Contourer`` is the one code path of ``autocontour predict``, the demo and the web service::

    from autocontour.inference import Contourer
    labels = Contourer.from_checkpoint("model.pt").predict(volume)   # LabelMap on volume's grid

Names are imported on first use, so importing one module (e.g. ``windows``) stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    **dict.fromkeys(("Contourer", "Prediction", "DEFAULT_MODEL"), "autocontour.inference.pipeline"),
    **dict.fromkeys(("ContourModel", "Member", "RoiSpec", "choose_rule"),
                    "autocontour.inference.combined"),
    **dict.fromkeys(("load_model", "save_model"), "autocontour.inference.model_file"),
    "write_outputs": "autocontour.inference.outputs",
    **dict.fromkeys(("InputExpectations", "check_input", "canonical"),
                    "autocontour.inference.checks"),
    "predict_probabilities": "autocontour.inference.windows",
    **dict.fromkeys(("keep_largest_component", "choose_largest_component"),
                    "autocontour.inference.postprocess"),
    "labels_on_grid": "autocontour.inference.regrid",
    "write_overview": "autocontour.inference.overview",
}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autocontour.inference' has no attribute {name!r}")
