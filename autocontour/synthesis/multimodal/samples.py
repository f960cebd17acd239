"""Training tuples of the synthesis from a multi-modal case: (image, structure map, mask, lesion).

For each modality i of a :class:`autocontour.data.multimodal.MultiModalCase`, the image x_i in
0..1, its structure map s_i (Algorithm 1, the lesion's structure removed), its background mask
m_i (Algorithm 2) and the binary lesion label l_i: what the structure-map generator (E_s, G_s,
G_m), the self-supervised pre-training (18) and the lesion losses train on. The parameters are a
frozen :class:`StructureParams`, to be saved with whatever is trained on the tuples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from autocontour.data.multimodal import MultiModalCase
from autocontour.errors import InvalidInputError
from autocontour.synthesis.multimodal import structure as st


@dataclass(frozen=True)
class StructureParams:
    """Parameters of Algorithms 1 and 2 (defaults and reasons: :mod:`.structure`).

    Attributes:
        alpha, beta, gamma, sigma1, sigma2: Algorithm 1.
        lesion_margin_px: dilation of the lesion label before its structure is removed.
        mask_alpha, enlarge_px: Algorithm 2 (threshold, p).
    """

    alpha: float = st.ALPHA
    beta: float = st.BETA
    gamma: float = st.GAMMA
    sigma1: float = st.SIGMA1
    sigma2: float = st.SIGMA2
    lesion_margin_px: int = 2
    mask_alpha: float = st.MASK_ALPHA
    enlarge_px: int = st.MASK_ENLARGE_PX

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StructureSample:
    """One modality of one case, as the synthesis uses it; arrays are float32 (H, W).

    Attributes:
        case_id: the case.
        modality: the modality's name; ``index`` its position i (the one-hot condition).
        image: x_i in 0..1.
        structure: s_i, 0/1, the lesion's structure removed.
        mask: m_i, 0/1, 1 outside the organ.
        lesion: l_i, 0/1 (any lesion label > 0); all 0 when the case has no lesion label.
    """

    case_id: str
    modality: str
    index: int
    image: np.ndarray
    structure: np.ndarray
    mask: np.ndarray
    lesion: np.ndarray


def structure_samples(
    case: MultiModalCase,
    modalities: Sequence[str] | None = None,
    params: StructureParams | None = None,
    slice_index: int = 0,
) -> list[StructureSample]:
    """The :class:`StructureSample` of each modality of one slice of ``case``.

    Args:
        case: a loaded multi-modal case.
        modalities: which, in condition order; None: the case's, in its order.
        params: the algorithms' parameters; None: the defaults.
        slice_index: the slice (z) of the case's volumes.

    Raises:
        InvalidInputError: a modality the case lacks, or a slice outside the volume.
    """
    params = params or StructureParams()
    mods = tuple(case.images) if modalities is None else tuple(modalities)
    if not mods:
        raise InvalidInputError("at least one modality is needed")
    images = [case.unit(m, slice_index) for m in mods]  # raises for a bad modality or slice
    if case.lesion is not None:
        lesion = (case.lesion.array[slice_index] > 0).astype(np.float32)
    else:
        lesion = np.zeros_like(images[0])
    out = []
    for i, (modality, x) in enumerate(zip(mods, images, strict=True)):
        s = st.structure_map(x, lesion, params.alpha, params.beta, params.gamma, params.sigma1,
                             params.sigma2, params.lesion_margin_px)
        m = st.extract_mask(x, params.mask_alpha, params.enlarge_px)
        out.append(StructureSample(case.case_id, modality, i, x, s, m, lesion))
    return out
