"""Image synthesis: pseudo-MRI from CT (spec D), with the CycleGAN of :mod:`.pseudo_mri`.

* :class:`PseudoMRIConfig`: the training configuration (the source's three improvements as
  switches, spec D2-D4), read from YAML/JSON and saved in every checkpoint.
* :func:`train_cyclegan`: trains CT ↔ MR on unpaired 2-D slices; checkpoints, resume, sample grids.
* :func:`load_pseudo_mri_model`, :func:`ct_to_pseudo_mri`: a trained CT→MR generator applied to a
  whole CT, slice by slice, keeping its geometry.

Multi-modal lesion-guided synthesis (spec E) is in :mod:`autocontour.synthesis.multimodal`
(structure maps, masks, noise fusion, lesion labels, losses; its networks in
:mod:`autocontour.models.synthesis`).

Heavy modules (PyTorch) load on first use, so ``import autocontour.synthesis`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = dict.fromkeys(
    ("Normalisation", "PseudoMRIConfig", "PseudoMRIModel", "TrainOutcome", "check_is_ct",
     "ct_to_pseudo_mri", "load_pseudo_mri_model", "phantom_split", "train_cyclegan",
     "translate_slices"),
    "autocontour.synthesis.pseudo_mri")

if TYPE_CHECKING:  # _LAZY spelled out for IDEs and type checkers
    from autocontour.synthesis.pseudo_mri import (
        Normalisation,
        PseudoMRIConfig,
        PseudoMRIModel,
        TrainOutcome,
        check_is_ct,
        ct_to_pseudo_mri,
        load_pseudo_mri_model,
        phantom_split,
        train_cyclegan,
        translate_slices,
    )

__all__ = ["Normalisation", "PseudoMRIConfig", "PseudoMRIModel", "TrainOutcome", "check_is_ct",
           "ct_to_pseudo_mri", "load_pseudo_mri_model", "phantom_split", "train_cyclegan",
           "translate_slices"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autocontour.synthesis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
