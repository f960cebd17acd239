"""Training of the multi-modal lesion-guided synthesis (seed 003 §4.2-4.5, spec E3-E7).

One trainer, five stages run in order (:data:`~.config.STAGES`), each a number of optimiser
steps of :class:`~.config.SynthesisConfig`; the ablation's switches decide which stages run and
which terms G's loss has. Per step (B tuples; ``x_i`` real image of modality i, ``s`` its
structure map, ``m`` its background mask, ``l`` its binary lesion label, ``z`` ~ N(0, 1)):

1. ``structure`` (§4.2.2, fig. 7): G_m by (6) on ``(s, m)``; E_s and G_s by
   ``(7) + (9) + (11)`` with ``f = f_mean + exp(0.5 f_logvar) z``, ``s_r = G_s(f)``,
   ``m_r = G_m(s)`` (fixed), ``s_g = G_s(z)``, ``m_g = G_m(s_g)`` (G_m's weights fixed, its
   gradient reaching G_s); then D_z by (8) (``z`` real, ``f`` fake) and D_s by (10) (``s`` real,
   ``s_g`` fake). The maps of every modality are pooled (a structure map of any modality is a
   training map).
2. ``lesion`` (§4.5, fig. 10; with ``lesion_loss``): one U-Net segmenter G_l,i per modality,
   trained on the real images by (22) (squared error against the binary lesion label).
3. ``converter`` (§4.4, fig. 10; with ``registration_loss``): the conditional U-Net G_t and its
   ACGAN critic D_t on real images: every ordered pair (i, j), i ≠ j, ``x_t,i,j = G_t(x_i,
   one_hot(j))``, ``x_cr,j,i = G_t(x_t,i,j, one_hot(i))``; G_t by (19) + (21), D_t by (20). The
   modality target of a converted image is j, the modality it was converted *to* (the source's
   (20)-(21) write ``c(x_t,i,j) − i``, which would ask D_t to call a T2 made from a T1 a T1; we
   read it as a slip of the index).
4. ``pretrain`` (§4.3, eq. 18): G on real structure maps: ``x_g,i = G(concat(s'_i, l_i),
   one_hot(i))``, ``s'_i`` the map of x_i with noise fused in (eq. 12, when ``noise_fusion``).
5. ``adversarial`` (§4.3, fig. 9): ``s_g = G_s(z)`` and ``m_g = G_m(s_g)``, both thresholded at
   0.5 (the real maps and masks are binary); a lesion label drawn from the real ones
   (:func:`~.lesions.draw_lesion` inside ``1 − m_g`` with ``mask_filter``, anywhere without;
   a sample whose organ holds none in ``lesion_tries`` draws goes without a lesion, counted in
   ``lesion_misses``); ``s' = s_g + z'(1 − m_g)(1 − s_g)`` (``noise_fusion``) or ``s_g``, or
   U(0, 1) noise (model A, no ``structure_input``); ``x_g,i = G(concat(s', l), one_hot(i))``
   for every modality; G by (17) = (14) [+ (15) through the frozen segmenters] [+ (16) through
   the frozen converter], then D by (13) against a batch of real images.

Every step's sampling is seeded by ``(seed, step)``, so a stopped run resumed from its
checkpoint ends with the same weights as one that never stopped (on the same device).
Networks: :mod:`autocontour.models.synthesis`; loss terms: :mod:`.losses`.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from autocontour import __version__
from autocontour.data.multimodal import load_multimodal_folder
from autocontour.errors import InvalidInputError
from autocontour.inference.pipeline import resolve_device
from autocontour.models.synthesis import (
    ACGANDiscriminator,
    StructureDecoder,
    StructureEncoder,
    UNetGenerator2D,
    VGG11Discriminator,
    reparameterise,
    synthesis_network,
)
from autocontour.synthesis._files import read_versioned, resume_state
from autocontour.synthesis.multimodal import losses as L
from autocontour.synthesis.multimodal.config import (
    RESUMABLE_CHANGES,
    SynthesisConfig,
)
from autocontour.synthesis.multimodal.lesions import draw_lesion, random_lesion
from autocontour.synthesis.multimodal.samples import structure_samples
from autocontour.synthesis.multimodal.structure import fuse_noise

#: The ``format`` of a synthesis checkpoint or model file.
FORMAT = "autocontour-synthesis"
VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"
#: The networks a model file keeps: what ``autocontour synthesize`` needs.
MODEL_NETWORKS = ("G_s", "G_m", "G")
#: Generated structure maps and masks are thresholded here (the real ones are binary).
BINARY_THRESHOLD = 0.5


# --- data -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainingData:
    """Every training tuple of a run, as arrays (N tuples = the slices of every case).

    Attributes:
        modalities: the condition order.
        images: x, float32 (N, M, H, W) in 0..1.
        structures: s (Algorithm 1, the lesion's structure removed), float32 (N, M, H, W) 0/1.
        masks: m (Algorithm 2, 1 outside the organ), float32 (N, M, H, W) 0/1.
        lesions: the lesion labels as stored (0 background), uint8 (N, H, W).
        spacing: (x, y) pixel size in mm of the first case.
    """

    modalities: tuple[str, ...]
    images: np.ndarray
    structures: np.ndarray
    masks: np.ndarray
    lesions: np.ndarray
    spacing: tuple[float, float]

    @property
    def binary_lesions(self) -> np.ndarray:
        return (self.lesions > 0).astype(np.float32)

    def lesion_bank(self) -> np.ndarray:
        """The non-empty lesion labels (K, H, W) new labels are drawn from."""
        return self.lesions[self.lesions.reshape(len(self.lesions), -1).max(axis=1) > 0]


def load_training_data(config: SynthesisConfig) -> TrainingData:
    """The tuples of every slice of every case of ``config.data``.

    Raises:
        InvalidInputError: see :func:`load_multimodal_folder`; cases of different sizes; a size
            that is not a multiple of ``config.size_multiple``; no lesion label in any case.
    """
    cases = load_multimodal_folder(config.data, config.modalities or None)
    mods = tuple(config.modalities or cases[0].images)
    params = config.structure_params
    images, structures, masks, lesions = [], [], [], []
    shape = None
    for case in cases:
        vol = case.images[mods[0]]
        if shape is None:
            shape = vol.shape[1:]
        if vol.shape[1:] != shape:
            raise InvalidInputError(f"{config.data}: case {case.case_id} has slices of "
                                    f"{vol.shape[1:]}, the first case {shape}; resample them "
                                    "to one size")
        for z in range(vol.shape[0]):
            samples = structure_samples(case, mods, params, z)
            images.append([s.image for s in samples])
            structures.append([s.structure for s in samples])
            masks.append([s.mask for s in samples])
            label = (case.lesion.array[z] if case.lesion is not None
                     else np.zeros(shape, np.uint8))
            lesions.append(np.clip(label, 0, 255).astype(np.uint8))
    assert shape is not None
    k = config.size_multiple
    if shape[0] % k or shape[1] % k:
        raise InvalidInputError(f"{config.data}: slices of {shape[1]}x{shape[0]} pixels; the "
                                f"networks need multiples of {k} (2 ** the deepest "
                                "down-sampling): resample the data or lower depth/pools")
    lesion_arr = np.stack(lesions)
    if not lesion_arr.any():
        raise InvalidInputError(f"{config.data}: no case has a lesion label (lesion.nii.gz); "
                                "the synthesis draws its lesions from real ones")
    spacing = cases[0].images[mods[0]].spacing
    return TrainingData(mods, np.asarray(images, np.float32), np.asarray(structures, np.float32),
                        np.asarray(masks, np.float32), lesion_arr,
                        (float(spacing[0]), float(spacing[1])))


# --- networks -------------------------------------------------------------------------------

def build_networks(config: SynthesisConfig, n_modalities: int) -> dict[str, nn.Module]:
    """The networks of a run, initial weights from ``config.seed`` and each network's name
    (convolutions normal, σ 0.02; biases 0; batch norms 1 and 0).

    Always: ``G_m``, ``E_s``, ``G_s``, ``D_z``, ``D_s``, ``G``, ``D``; with ``lesion_loss``
    ``G_l0`` .. ``G_l{M-1}``; with ``registration_loss`` ``G_t`` and ``D_t``.
    """
    c = config
    seg_w = c.segmenter_width or c.width
    conv_w = c.converter_width or c.width
    nets: dict[str, nn.Module] = {
        "G_m": UNetGenerator2D(1, 1, c.structure_width, c.depth),
        "E_s": StructureEncoder(1, c.latent_channels, c.structure_width, c.structure_pools),
        "G_s": StructureDecoder(c.latent_channels, 1, c.structure_width, c.structure_pools),
        "D_z": VGG11Discriminator(c.latent_channels, c.disc_width, c.latent_disc_pools),
        "D_s": VGG11Discriminator(1, c.disc_width, c.disc_pools),
        "G": UNetGenerator2D(2, 1, c.width, c.depth, n_modalities),
        "D": ACGANDiscriminator(1, c.disc_width, c.disc_pools),
    }
    if c.lesion_loss:
        for i in range(n_modalities):
            nets[f"G_l{i}"] = UNetGenerator2D(1, 1, seg_w, c.depth)
    if c.registration_loss:
        nets["G_t"] = UNetGenerator2D(1, 1, conv_w, c.depth, n_modalities)
        nets["D_t"] = ACGANDiscriminator(1, c.disc_width, c.disc_pools)
    for name, net in nets.items():
        # each network's own stream: its start does not depend on which others the switches
        # add, so models A-F start G and D from the same weights
        gen = torch.Generator().manual_seed((c.seed & 0xFFFFFFFF) * 7919 + zlib.crc32(name.encode()))
        for m in net.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.normal_(m.weight, 0.0, 0.02, generator=gen)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
    return nets


#: Which networks each optimiser updates (those present in the run).
OPTIMISED = {
    "G_m": ("G_m",), "vae": ("E_s", "G_s"), "structure_critics": ("D_z", "D_s"),
    "segmenters": ("G_l",), "converter": ("G_t",), "converter_critic": ("D_t",),
    "G": ("G",), "D": ("D",),
}


def _params(nets: Mapping[str, nn.Module], prefixes: Sequence[str]) -> list[nn.Parameter]:
    return [p for name, net in nets.items()
            if any(name == q or (q == "G_l" and name.startswith("G_l")) for q in prefixes)
            for p in net.parameters()]


@contextmanager
def _frozen(*nets: nn.Module) -> Iterator[None]:
    """Networks whose weights get no gradient inside the block (gradients still pass through)."""
    for n in nets:
        n.requires_grad_(False)
    try:
        yield
    finally:
        for n in nets:
            n.requires_grad_(True)


def one_hot(indices: Sequence[int], n: int, device: torch.device) -> torch.Tensor:
    """The one-hot condition ``(len(indices), n)``."""
    out = torch.zeros(len(indices), n, device=device)
    out[torch.arange(len(indices)), torch.as_tensor(list(indices), dtype=torch.long)] = 1.0
    return out


class SynthesisTrainer:
    """The networks and optimisers of one run and the step of each stage.

    Args:
        config: the run.
        n_modalities: M, the number of modalities (the conditions 0..M-1).
        device: where the networks live.
    """

    def __init__(self, config: SynthesisConfig, n_modalities: int, device: torch.device) -> None:
        self.config = config
        self.n = n_modalities
        self.device = device
        self.nets = {k: v.to(device) for k, v in build_networks(config, n_modalities).items()}
        betas = (config.beta1, 0.999)
        self.opts: dict[str, torch.optim.Optimizer] = {}
        for name, prefixes in OPTIMISED.items():
            params = _params(self.nets, prefixes)
            if params:
                self.opts[name] = torch.optim.Adam(params, config.lr, betas=betas)
        self.segmenters = [self.nets[f"G_l{i}"] for i in range(self.n)
                           if f"G_l{i}" in self.nets]

    # helpers
    def _t(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(self.device)

    def _randn(self, shape: Sequence[int], gen: torch.Generator) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=gen).to(self.device)

    def _rand(self, shape: Sequence[int], gen: torch.Generator, low: float = 0.0,
              high: float = 1.0) -> torch.Tensor:
        return (low + (high - low) * torch.rand(tuple(shape), generator=gen)).to(self.device)

    def _update(self, opt: str, loss: torch.Tensor) -> None:
        self.opts[opt].zero_grad(set_to_none=True)
        loss.backward()
        self.opts[opt].step()

    def _stack_modalities(self, inp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``inp (B, C, H, W)`` repeated for each modality (modality-major: row i*B + b) and the
        matching one-hot conditions ``(M*B, M)``."""
        b = inp.shape[0]
        cond = one_hot([i for i in range(self.n) for _ in range(b)], self.n, self.device)
        return inp.repeat(self.n, 1, 1, 1), cond

    def _by_modality(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Modality-major ``(M*B, ...)`` -> M tensors of ``(B, ...)``."""
        return list(x.chunk(self.n, dim=0))

    def _real_by_modality(self, images: torch.Tensor) -> list[torch.Tensor]:
        """``(B, M, H, W)`` -> M tensors ``(B, 1, H, W)``."""
        return [images[:, i:i + 1] for i in range(self.n)]

    def _pairs(self) -> list[tuple[int, int]]:
        return [(i, j) for i in range(self.n) for j in range(self.n) if i != j]

    # 1. structure-map generator
    def structure_step(self, s: torch.Tensor, m: torch.Tensor,
                       gen: torch.Generator) -> dict[str, float]:
        """One step of G_m (6), E_s/G_s (7)+(9)+(11), D_z (8) and D_s (10); s, m ``(B,1,H,W)``."""
        n = self.nets
        m_r = n["G_m"](s)
        l_m = L.mask_loss(m, m_r)
        self._update("G_m", l_m)

        with _frozen(n["D_z"], n["D_s"], n["G_m"]):
            f_mean, f_logvar = n["E_s"](s)
            z = self._randn(f_mean.shape, gen)
            # clamp only guards exp() against overflow early in training; unchanged otherwise
            f = reparameterise(f_mean, f_logvar.clamp(-30.0, 20.0), z)
            s_r = n["G_s"](f)
            with torch.no_grad():
                m_r = n["G_m"](s)
            l_r = L.reconstruction_loss(s, s_r, m_r)
            l_g1 = L.latent_encoder_loss(n["D_z"](f))
            z_g = self._randn(f_mean.shape, gen)
            s_g = n["G_s"](z_g)
            m_g = n["G_m"](s_g)
            l_g2 = L.map_generator_loss(n["D_s"](s_g), s_g, m_g)
            self._update("vae", l_r + l_g1 + l_g2)

        l_d1 = L.latent_critic_loss(n["D_z"](z_g), n["D_z"](f.detach()))
        l_d2 = L.map_critic_loss(n["D_s"](s), n["D_s"](s_g.detach()))
        self._update("structure_critics", l_d1 + l_d2)
        return {"mask": l_m.item(), "reconstruction": l_r.item(), "latent_encoder": l_g1.item(),
                "map_generator": l_g2.item(), "latent_critic": l_d1.item(),
                "map_critic": l_d2.item()}

    # 2. lesion segmenters
    def lesion_step(self, images: torch.Tensor, lesion: torch.Tensor) -> dict[str, float]:
        """One step of every segmenter G_l,i by (22); images ``(B,M,H,W)``, lesion ``(B,1,H,W)``."""
        total = torch.zeros((), device=self.device)
        out = {}
        for i, seg in enumerate(self.segmenters):
            loss = L.segmenter_loss(lesion, seg(images[:, i:i + 1]))
            out[f"segmenter_{i}"] = loss.item()
            total = total + loss
        self._update("segmenters", total)
        return {"segmenters": total.item(), **out}

    # 3. modality converter
    def _convert_pairs(self, sources: Sequence[torch.Tensor]
                       ) -> tuple[list[tuple[int, int]], torch.Tensor]:
        """Every pair (i, j), i != j: ``G_t(sources[i], one_hot(j))``, pair-major ``(P*B,1,H,W)``."""
        pairs = self._pairs()
        b = sources[0].shape[0]
        x = torch.cat([sources[i] for i, _ in pairs])
        cond = one_hot([j for _, j in pairs for _ in range(b)], self.n, self.device)
        return pairs, self.nets["G_t"](x, cond)

    def converter_step(self, images: torch.Tensor) -> dict[str, float]:
        """One step of G_t by (19)+(21) and of D_t by (20); images ``(B,M,H,W)``."""
        n = self.nets
        real = self._real_by_modality(images)
        b = images.shape[0]
        with _frozen(n["D_t"]):
            pairs, x_t = self._convert_pairs(real)
            back = one_hot([i for i, _ in pairs for _ in range(b)], self.n, self.device)
            x_cr = n["G_t"](x_t, back)
            chunks, cyc = x_cr.split(b), x_t.split(b)
            cycled: list[list[torch.Tensor | None]] = [[None] * self.n for _ in range(self.n)]
            for (i, j), c in zip(pairs, chunks, strict=True):
                cycled[j][i] = c
            l_cycle = L.cycle_loss(real, cycled)
            d_f, c_f = n["D_t"](x_t)
            d_fake, c_fake = self._group_by_target(pairs, d_f.split(b), c_f.split(b))
            l_g3 = L.acgan_generator_loss(d_fake, c_fake)
            self._update("converter", l_cycle + l_g3)
        d_r, c_r = n["D_t"](torch.cat(real))
        d_f, c_f = n["D_t"](torch.cat(cyc).detach())
        d_fake, c_fake = self._group_by_target(pairs, d_f.split(b), c_f.split(b))
        l_d3 = L.acgan_critic_loss(self._by_modality(d_r), self._by_modality(c_r), d_fake,
                                   c_fake)
        self._update("converter_critic", l_d3)
        return {"cycle": l_cycle.item(), "converter_generator": l_g3.item(),
                "converter_critic": l_d3.item()}

    def _group_by_target(self, pairs: Sequence[tuple[int, int]], d: Sequence[torch.Tensor],
                         c: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor],
                                                             list[torch.Tensor]]:
        """Critic outputs per pair -> per target modality j (the pairs converted to j)."""
        d_by = [torch.cat([d[k] for k, (_, j) in enumerate(pairs) if j == t])
                for t in range(self.n)]
        c_by = [torch.cat([c[k] for k, (_, j) in enumerate(pairs) if j == t])
                for t in range(self.n)]
        return d_by, c_by

    # 4. self-supervised pre-training
    def generator_input(self, s: torch.Tensor, m: torch.Tensor, lesion: torch.Tensor,
                        gen: torch.Generator) -> torch.Tensor:
        """G's input ``concat(s', l)`` ``(B, 2, H, W)`` under the switches: ``s'`` the map with
        noise fused in (eq. 12), the bare map, or U(0, 1) noise (no structure input)."""
        c = self.config
        if not c.structure_input:
            fused = self._rand(s.shape, gen)
        elif c.noise_fusion:
            fused = fuse_noise(s, m, self._rand(s.shape, gen, c.fusion_low, c.fusion_high))
        else:
            fused = s
        return torch.cat([fused, lesion], dim=1)

    def pretrain_step(self, images: torch.Tensor, structures: torch.Tensor, masks: torch.Tensor,
                      lesion: torch.Tensor, gen: torch.Generator) -> dict[str, float]:
        """One step of G by (18) on real maps; ``(B,M,H,W)`` arrays, lesion ``(B,1,H,W)``."""
        b = images.shape[0]
        inputs = torch.cat([self.generator_input(structures[:, i:i + 1], masks[:, i:i + 1],
                                                 lesion, gen) for i in range(self.n)])
        cond = one_hot([i for i in range(self.n) for _ in range(b)], self.n, self.device)
        x_g = self.nets["G"](inputs, cond)
        loss = L.pretrain_loss(self._by_modality(x_g), self._real_by_modality(images),
                               self._real_by_modality(masks))
        self._update("G", loss)
        return {"pretrain": loss.item()}

    # 5. adversarial training on generated maps
    @torch.no_grad()
    def generated_maps(self, batch: int, size: tuple[int, int], gen: torch.Generator
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s_g, m_g)``, each ``(batch, 1, H, W)`` of 0/1: G_s on N(0, 1) noise, G_m on it."""
        p = self.config.structure_pools
        z = self._randn((batch, self.config.latent_channels, size[0] // 2 ** p,
                         size[1] // 2 ** p), gen)
        was = [self.nets[k].training for k in ("G_s", "G_m")]
        self.nets["G_s"].eval()
        self.nets["G_m"].eval()
        try:
            s_g = (self.nets["G_s"](z) > BINARY_THRESHOLD).float()
            m_g = (self.nets["G_m"](s_g) > BINARY_THRESHOLD).float()
        finally:
            for k, w in zip(("G_s", "G_m"), was, strict=True):
                self.nets[k].train(w)
        return s_g, m_g

    def adversarial_step(self, images: torch.Tensor, s_g: torch.Tensor, m_g: torch.Tensor,
                         lesion: torch.Tensor, gen: torch.Generator) -> dict[str, float]:
        """One step of G by (17) and of D by (13); real images ``(B,M,H,W)``, generated maps,
        masks and binary lesions ``(B,1,H,W)``."""
        n, c = self.nets, self.config
        b = s_g.shape[0]
        x_in, cond = self._stack_modalities(self.generator_input(s_g, m_g, lesion, gen))
        frozen = [n["D"], *self.segmenters, *([n["G_t"]] if "G_t" in n else [])]
        for net in frozen[1:]:
            net.eval()
        with _frozen(*frozen):
            x_g = n["G"](x_in, cond)
            synthetic = self._by_modality(x_g)
            d_f, c_f = n["D"](x_g)
            l_g = L.acgan_generator_loss(self._by_modality(d_f), self._by_modality(c_f))
            l_les = l_reg = None
            if c.lesion_loss:
                l_les = L.lesion_loss(lesion, [seg(synthetic[i])
                                               for i, seg in enumerate(self.segmenters)])
            if c.registration_loss:
                pairs, x_gt = self._convert_pairs(synthetic)
                converted: list[list[torch.Tensor | None]] = [[None] * self.n
                                                              for _ in range(self.n)]
                for (j, i), chunk in zip(pairs, x_gt.split(b), strict=True):
                    converted[j][i] = chunk  # x_gt,j,i = G_t(x_g,j, one_hot(i))
                l_reg = L.registration_loss(synthetic, converted)
            total = L.generator_total_loss(l_g, l_les, l_reg)
            self._update("G", total)
        d_r, c_r = n["D"](torch.cat(self._real_by_modality(images)))
        d_f, c_f = n["D"](x_g.detach())
        l_d = L.acgan_critic_loss(self._by_modality(d_r), self._by_modality(c_r),
                                  self._by_modality(d_f), self._by_modality(c_f))
        self._update("D", l_d)
        out = {"generator": l_g.item(), "critic": l_d.item(), "total": total.item()}
        if l_les is not None:
            out["lesion"] = l_les.item()
        if l_reg is not None:
            out["registration"] = l_reg.item()
        return out

    # checkpoints
    def state(self) -> dict[str, Any]:
        return {"networks": {k: network_entry(v) for k, v in self.nets.items()},
                "optimizers": {k: o.state_dict() for k, o in self.opts.items()}}

    def load(self, data: Mapping[str, Any]) -> None:
        for k, net in self.nets.items():
            net.load_state_dict(data["networks"][k]["state"])
        for k, opt in self.opts.items():
            opt.load_state_dict(data["optimizers"][k])


def network_entry(net: nn.Module) -> dict[str, Any]:
    """``{class, arch_kwargs, state}``: what rebuilds a network (:func:`synthesis_network`)."""
    arch: dict[str, Any] = getattr(net, "arch_kwargs")  # noqa: B009 (every synthesis network has it)
    return {"class": type(net).__name__, "arch_kwargs": dict(arch), "state": net.state_dict()}


def network_from_entry(entry: Mapping[str, Any]) -> nn.Module:
    net = synthesis_network(entry["class"], dict(entry["arch_kwargs"]))
    net.load_state_dict(entry["state"])
    return net


# --- files ----------------------------------------------------------------------------------

def _save(path: Path, payload: Mapping[str, Any]) -> Path:
    """``torch.save`` of ``{format, version, autocontour_version, **payload}``, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        torch.save({"format": FORMAT, "version": VERSION, "autocontour_version": __version__,
                    **payload}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_synthesis_file(path: str | Path) -> dict[str, Any]:
    """Read a synthesis checkpoint or model file (``weights_only``: never runs code from it).

    Raises:
        InvalidInputError: missing, unreadable, not a synthesis file (saying what it is when it
            is another autocontour file), a version this autocontour cannot read.
    """
    return read_versioned(path, FORMAT, VERSION, "synthesis model")


# --- training -------------------------------------------------------------------------------

@dataclass
class SynthesisOutcome:
    """How a training run ended.

    Attributes:
        out: the run folder.
        step: global steps done (all stages).
        checkpoint: ``checkpoint.pt``.
        model: ``model.pt`` (None when stopped early).
        samples: ``samples.png`` of generated tuples (None when stopped early).
        history: one row per step: ``step``, ``stage`` and that stage's losses.
        stopped: "finished" or "cancelled".
        seconds: wall time of this call.
    """

    out: Path
    step: int
    checkpoint: Path
    model: Path | None
    samples: Path | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = "finished"
    seconds: float = 0.0


def _draw_lesions(bank: np.ndarray, organs: np.ndarray | None, rng: np.random.Generator,
                  tries: int) -> tuple[np.ndarray, int]:
    """One label per sample from the real ones: inside ``organs[b]`` (``mask_filter``) or
    anywhere (``organs`` None). Returns ``(B, H, W)`` labels and the samples left without one."""
    count = 1 if organs is None else len(organs)
    labels, misses = [], 0
    for b in range(count):
        if organs is None:
            k = int(rng.integers(len(bank)))
            label, _ = random_lesion(bank[k], rng)
        else:
            try:
                label, _, _ = draw_lesion(list(bank), organs[b], rng, max_tries=tries)
            except InvalidInputError:
                label = np.zeros_like(bank[0])
                misses += 1
        labels.append(label)
    return np.stack(labels), misses


def draw_lesion_batch(config: SynthesisConfig, bank: np.ndarray, m_g: np.ndarray,
                      rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """The lesion labels of a batch of generated background masks ``m_g (B, H, W)``, under the
    ``mask_filter`` switch; returns ``(B, H, W)`` labels and how many samples got none."""
    if config.mask_filter:
        return _draw_lesions(bank, 1.0 - m_g, rng, config.lesion_tries)
    labels = [_draw_lesions(bank, None, rng, config.lesion_tries)[0][0] for _ in range(len(m_g))]
    return np.stack(labels), 0


def _run_step(trainer: SynthesisTrainer, data: TrainingData, bank: np.ndarray, stage: str,
              rng: np.random.Generator, gen: torch.Generator) -> dict[str, float]:
    c = trainer.config
    n_tuples = len(data.images)
    idx = rng.integers(n_tuples, size=c.batch_size)
    t = trainer._t
    if stage == "structure":
        mod = rng.integers(len(data.modalities), size=c.batch_size)
        s = t(data.structures[idx, mod][:, None])
        m = t(data.masks[idx, mod][:, None])
        return trainer.structure_step(s, m, gen)
    images = t(data.images[idx])
    lesion = t(data.binary_lesions[idx][:, None])
    if stage == "lesion":
        return trainer.lesion_step(images, lesion)
    if stage == "converter":
        return trainer.converter_step(images)
    if stage == "pretrain":
        return trainer.pretrain_step(images, t(data.structures[idx]), t(data.masks[idx]),
                                     lesion, gen)
    s_g, m_g = trainer.generated_maps(c.batch_size, data.images.shape[2:], gen)
    labels, misses = draw_lesion_batch(c, bank, m_g[:, 0].cpu().numpy(), rng)
    losses = trainer.adversarial_step(images, s_g, m_g, t((labels > 0)[:, None]), gen)
    losses["lesion_misses"] = float(misses)
    return losses


def step_random(config: SynthesisConfig, step: int) -> tuple[np.random.Generator,
                                                              torch.Generator]:
    """The NumPy and torch generators of global step ``step`` (the same on resume)."""
    rng = np.random.default_rng([config.seed & 0xFFFFFFFF, step])
    return rng, torch.Generator().manual_seed(int(rng.integers(2**62)))


def train_synthesis(config: SynthesisConfig, resume: bool = False,
                    on_step: Callable[[int, str, dict[str, float]], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> SynthesisOutcome:
    """Train (or resume) the synthesis of ``config``; the stages are in the module docstring.

    Writes in ``config.out``: ``config.json``, ``metrics.jsonl`` (every step's stage and
    losses), ``checkpoint.pt`` (every network and optimiser: everything a resume needs; every
    ``checkpoint_every`` steps, on a stop and at the end) and, when finished, ``model.pt`` (G_s,
    G_m, G, the real lesion labels and what ``autocontour synthesize`` needs) and
    ``samples.png`` (generated tuples: map, mask, lesion, each modality).

    Args:
        resume: continue from ``out/checkpoint.pt``.
        on_step: called after each step with (global step, stage, losses).
        should_stop: asked after each step; True saves a checkpoint and returns (``stopped``
            "cancelled").

    Raises:
        OutputExistsError: ``out`` holds a checkpoint and ``resume`` is False.
        InvalidInputError: nothing to resume, a config that differs from the checkpoint's,
            unusable data (:func:`load_training_data`), no CUDA when asked for.
    """
    started = time.perf_counter()
    out = Path(config.out)
    ckpt_path = out / CHECKPOINT_NAME
    saved = resume_state(out, CHECKPOINT_NAME, resume, "synthesis", read_synthesis_file, config.to_dict(),
                         RESUMABLE_CHANGES)
    device = resolve_device(config.device)
    data = load_training_data(config)
    bank = data.lesion_bank()
    trainer = SynthesisTrainer(config, len(data.modalities), device)
    step = 0
    history: list[dict[str, Any]] = []
    log = out / "metrics.jsonl"
    if saved is not None:
        trainer.load(saved)
        step = int(saved["step"])
        if log.exists():
            rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            history = [r for r in rows if r["step"] <= step]
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    log.write_text("".join(json.dumps(r) + "\n" for r in history))

    def payload() -> dict[str, Any]:
        return {"step": step, "config": config.to_dict(), **_model_meta(config, data, bank)}

    def save_checkpoint() -> Path:
        return _save(ckpt_path, {"kind": "checkpoint", **payload(), **trainer.state()})

    total = config.total_steps()
    stopped = "finished"
    for net in trainer.nets.values():
        net.train()
    with log.open("a") as log_file:
        while step < total:
            stage, _ = config.stage_at(step)
            rng, gen = step_random(config, step)
            losses = _run_step(trainer, data, bank, stage, rng, gen)
            step += 1
            row = {"step": step, "stage": stage, **losses}
            history.append(row)
            log_file.write(json.dumps(row) + "\n")
            log_file.flush()
            if on_step is not None:
                on_step(step, stage, losses)
            last = step == total
            if config.checkpoint_every and step % config.checkpoint_every == 0 and not last:
                save_checkpoint()
            if not last and should_stop is not None and should_stop():
                stopped = "cancelled"
                break
    save_checkpoint()
    model = samples = None
    if stopped == "finished":
        model = _save(out / MODEL_NAME, {
            "kind": "model", **payload(),
            "networks": {k: network_entry(trainer.nets[k]) for k in MODEL_NETWORKS}})
        from autocontour.synthesis.multimodal.generate import load_synthesis_model, sample_sheet
        samples = sample_sheet(load_synthesis_model(model, device), out / "samples.png",
                               count=4, seed=config.seed)
    return SynthesisOutcome(out, step, ckpt_path, model, samples, history, stopped,
                            time.perf_counter() - started)


def _model_meta(config: SynthesisConfig, data: TrainingData, bank: np.ndarray
                ) -> dict[str, Any]:
    """What generation needs besides the networks (saved in checkpoints and model files)."""
    h, w = data.images.shape[2:]
    p = config.structure_pools
    return {"modalities": list(data.modalities), "size": [int(h), int(w)],
            "spacing": list(data.spacing),
            "latent_shape": [config.latent_channels, int(h) // 2 ** p, int(w) // 2 ** p],
            "lesion_bank": torch.from_numpy(np.ascontiguousarray(bank, np.uint8)),
            "structure_params": config.structure_params.to_dict()}
