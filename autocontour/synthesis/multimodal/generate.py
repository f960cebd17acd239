"""New labelled multi-modal tuples from a trained synthesis model (seed 003 §4.6, fig. 11; E8).

Per tuple k (seeded by ``(seed, k)``, so tuple k is the same whatever the count):
``z`` ~ N(0, 1) → ``s_g = G_s(z) > 0.5`` (a structure map) → ``m_g = G_m(s_g) > 0.5`` (its
background mask) → a lesion label made from a real one by a random scaling, rotation, flip and
translation, kept only inside the organ ``1 − m_g`` and re-drawn otherwise (when the model was
trained with ``mask_filter``; anywhere without) → ``s'`` (the map with U(0.5, 0.6) noise fused
in, eq. 12, or as the model was trained) → one image per modality ``G(concat(s', l),
one_hot(i))``. A map whose organ holds no lesion in ``lesion_tries`` draws gives a tuple without
a lesion (its label all 0, ``lesion_source`` None).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from autocontour.errors import InvalidInputError
from autocontour.synthesis.multimodal.config import SynthesisConfig
from autocontour.synthesis.multimodal.lesions import LesionTransform, draw_lesion, random_lesion
from autocontour.synthesis.multimodal.structure import fuse_noise

BINARY_THRESHOLD = 0.5


@dataclass
class SynthesisModel:
    """The networks and facts a synthesis model file holds.

    Attributes:
        networks: ``G_s``, ``G_m``, ``G`` in eval mode.
        config: the training config.
        modalities: the condition order.
        size: (H, W) of the images.
        spacing: (x, y) pixel size in mm of the training data.
        latent_shape: (C, h, w) of G_s's input.
        lesion_bank: the real lesion labels (K, H, W) new ones are made from.
        step: training steps done.
        path: the file read.
    """

    networks: dict[str, nn.Module]
    config: SynthesisConfig
    modalities: tuple[str, ...]
    size: tuple[int, int]
    spacing: tuple[float, float]
    latent_shape: tuple[int, int, int]
    lesion_bank: np.ndarray
    step: int
    path: Path | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


def load_synthesis_model(path: str | Path, device: str | torch.device = "cpu"
                         ) -> SynthesisModel:
    """A synthesis ``model.pt`` (or ``checkpoint.pt``) ready to generate.

    Raises:
        InvalidInputError: missing, unreadable, not a synthesis file, damaged.
    """
    from autocontour.synthesis.multimodal.train import network_from_entry, read_synthesis_file

    data = read_synthesis_file(path)
    device = torch.device(device)
    try:
        nets = {k: network_from_entry(data["networks"][k]).to(device).eval()
                for k in ("G_s", "G_m", "G")}
        config = SynthesisConfig.from_dict(data["config"])
        bank = data["lesion_bank"].numpy()
        model = SynthesisModel(nets, config, tuple(data["modalities"]),
                               (int(data["size"][0]), int(data["size"][1])),
                               (float(data["spacing"][0]), float(data["spacing"][1])),
                               tuple(int(v) for v in data["latent_shape"]),  # type: ignore[arg-type]
                               bank, int(data.get("step", 0)), Path(path), device)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise InvalidInputError(f"{path}: damaged synthesis model ({str(exc)[:120]})") from None
    if not len(bank):
        raise InvalidInputError(f"{path}: the model holds no real lesion labels to draw from")
    return model


@dataclass(frozen=True)
class SyntheticTuple:
    """One generated tuple; arrays (H, W).

    Attributes:
        index: k, its number (with the seed, all it depends on).
        structure: s_g, float32 0/1.
        mask: the organ mask ``1 − m_g``, uint8 0/1 (1 inside the organ, as a data set's
            ``mask.nii.gz``).
        lesion: the lesion label (values of the real label it came from), uint8.
        images: modality -> float32 image in 0..1.
        lesion_source: index of the real label it was made from (None: no lesion fitted).
        transform: how that label was moved (None: no lesion).
    """

    index: int
    structure: np.ndarray
    mask: np.ndarray
    lesion: np.ndarray
    images: dict[str, np.ndarray]
    lesion_source: int | None
    transform: LesionTransform | None

    def meta(self) -> dict[str, Any]:
        t = self.transform
        return {"index": self.index, "lesion_source": self.lesion_source,
                "lesion_transform": None if t is None else {
                    "scale": t.scale, "rotation_deg": t.rotation_deg, "flip_y": t.flip_y,
                    "flip_x": t.flip_x, "centre": list(t.centre)},
                "lesion_pixels": int((self.lesion > 0).sum()),
                "organ_pixels": int(self.mask.sum())}


@torch.no_grad()
def generate_tuple(model: SynthesisModel, index: int, seed: int = 0) -> SyntheticTuple:
    """Tuple ``index`` of the stream ``seed`` (see the module docstring)."""
    c = model.config
    rng = np.random.default_rng([seed & 0xFFFFFFFF, int(index), 7])
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    dev = model.device
    n = model.networks
    z = torch.randn((1, *model.latent_shape), generator=gen).to(dev)
    s_g = (n["G_s"](z) > BINARY_THRESHOLD).float()
    m_g = (n["G_m"](s_g) > BINARY_THRESHOLD).float()
    organ = (1 - m_g[0, 0]).cpu().numpy().astype(np.uint8)
    bank = model.lesion_bank
    source: int | None
    transform: LesionTransform | None
    if c.mask_filter:
        try:
            label, transform, source = draw_lesion(list(bank), organ, rng,
                                                   max_tries=c.lesion_tries)
        except InvalidInputError:
            label, transform, source = np.zeros_like(bank[0]), None, None
    else:
        source = int(rng.integers(len(bank)))
        label, transform = random_lesion(bank[source], rng)
    lesion = torch.from_numpy((label > 0).astype(np.float32))[None, None].to(dev)
    noise = torch.rand(s_g.shape, generator=gen).to(dev)
    if not c.structure_input:
        fused = noise
    elif c.noise_fusion:
        fused = fuse_noise(s_g, m_g, c.fusion_low + (c.fusion_high - c.fusion_low) * noise)
    else:
        fused = s_g
    m = len(model.modalities)
    x_in = torch.cat([fused, lesion], dim=1).repeat(m, 1, 1, 1)
    cond = torch.eye(m, device=dev)
    images = n["G"](x_in, cond)[:, 0].float().cpu().numpy()
    return SyntheticTuple(int(index), s_g[0, 0].cpu().numpy().astype(np.float32), organ,
                          label.astype(np.uint8),
                          {mod: images[i].astype(np.float32)
                           for i, mod in enumerate(model.modalities)},
                          source, transform)


def tuple_strip(t: SyntheticTuple) -> np.ndarray:
    """One row for a PNG: structure map | organ mask | lesion label | each modality, in 0..1,
    with 2-pixel white gaps."""
    lesion = (t.lesion > 0).astype(np.float32)
    panels = [t.structure, t.mask.astype(np.float32), lesion, *t.images.values()]
    gap = np.ones((panels[0].shape[0], 2), np.float32)
    parts: list[np.ndarray] = []
    for p in panels:
        parts += [np.clip(p, 0, 1), gap]
    return np.concatenate(parts[:-1], axis=1)


def save_png(image: np.ndarray, path: Path) -> Path:
    """A grey PNG of ``image`` in 0..1, written atomically."""
    from matplotlib.image import imsave

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}.png")
    try:
        imsave(tmp, np.clip(image, 0, 1), cmap="gray", vmin=0, vmax=1)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def sample_sheet(model: SynthesisModel, path: Path, count: int = 4, seed: int = 0) -> Path:
    """A PNG of ``count`` generated tuples, one row each (:func:`tuple_strip`)."""
    rows = [tuple_strip(generate_tuple(model, k, seed)) for k in range(count)]
    sep = np.ones((2, rows[0].shape[1]), np.float32)
    sheet = np.concatenate([x for r in rows for x in (r, sep)][:-1], axis=0)
    return save_png(sheet, path)
