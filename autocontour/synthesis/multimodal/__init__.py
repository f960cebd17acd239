"""Multi-modal lesion-guided synthesis (seed 003, spec E).

* :mod:`.structure`: Algorithm 1 (:func:`structure_map`), Algorithm 2 (:func:`extract_mask`,
  :func:`enlarge`) and the noise fusion of eq. (12) (:func:`fuse_noise`, :func:`fusion_noise`),
  with the thresholds chosen on the brain-lesion phantoms.
* :mod:`.lesions`: random lesion labels from real ones (:func:`random_lesion`) and the organ-mask
  filter (:func:`lesion_inside`, :func:`draw_lesion`).
* :mod:`.samples`: per case and modality, the tuple (image, structure map, mask, lesion) the
  networks train on (:func:`structure_samples`, parameters in :class:`StructureParams`).
* :mod:`.losses`: the loss terms (6)-(11), (13)-(19) and (22) (PyTorch; import it directly).
* :mod:`.config`: :class:`~.config.SynthesisConfig`, a training run with the ablation's
  switches (models A-F of the source's table 1) as values.
* :mod:`.train`: the trainer (structure-map generator, lesion segmenters, modality converter,
  pre-training, adversarial training of G), checkpoints and resume (PyTorch; import directly).
* :mod:`.generate`: new tuples (structure map, organ mask, lesion label, each modality) from a
  trained model (PyTorch; import directly); ``autocontour synthesize`` writes them as a data set.

The networks (E_s, G_s, D_z, D_s, G_m, G, D) are in :mod:`autocontour.models.synthesis`.
"""

from __future__ import annotations

from autocontour.synthesis.multimodal.lesions import (
    LesionTransform,
    draw_lesion,
    lesion_inside,
    random_lesion,
    transform_lesion,
)
from autocontour.synthesis.multimodal.structure import (
    enlarge,
    extract_mask,
    fuse_noise,
    fusion_noise,
    remove_lesion,
    sobel_edges,
    structure_map,
)

__all__ = [
    "LesionTransform",
    "draw_lesion",
    "enlarge",
    "extract_mask",
    "fuse_noise",
    "fusion_noise",
    "lesion_inside",
    "random_lesion",
    "remove_lesion",
    "sobel_edges",
    "structure_map",
    "transform_lesion",
]
