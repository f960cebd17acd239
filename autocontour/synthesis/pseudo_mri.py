"""Pseudo-MRI from CT (spec D1-D4): a CycleGAN trained on unpaired 2-D slices, and its use.

Method
------
Two generators, G: CT → MR and F: MR → CT, and a PatchGAN discriminator per domain (D_MR, D_CT)
are trained on **unpaired** axial slices: the CT slices and the MR slices come from different
images (with :func:`phantom_split`, from alternating phantom cases), so no CT is ever seen with
its own MR. The generators minimise

    L_G = adv(D_MR(G(ct)), 1) + adv(D_CT(F(mr)), 1) [+ adv(D_N(G(ct)), 1)]
          + λ_cyc (|F(G(ct)) - ct|₁ + |G(F(mr)) - mr|₁)
          [+ λ_cyc λ_id (|G(mr) - mr|₁ + |F(ct) - ct|₁)]

and each discriminator D minimises ``½ adv(D(real), 1) + ½ adv(D(fake), 0)`` with fakes drawn
from a history pool of earlier generator outputs (the CycleGAN image pool). The source's three
improvements are switches of :class:`PseudoMRIConfig`:

(a) ``improved_generator``: :class:`~autocontour.models.cyclegan.ImprovedResnetGenerator`
    (resize-convolution up-sampling with one transposed convolution kept, 2 residual blocks)
    instead of the original :class:`~autocontour.models.cyclegan.ResnetGenerator` (9 blocks).
(b) ``denoising_discriminator``: an extra discriminator D_N whose "real" images are real MR
    slices plus Gaussian noise (σ = ``denoise_sigma`` in normalised units) and whose fakes are
    generated MR: a blurred output is told apart from noisy-but-sharp real texture, which pushes
    G away from blur.
(c) ``adversarial_loss``: ``"l1"`` (MAE, the source's eq. 2-12) or ``"mse"`` (the least-squares
    GAN objective of the original CycleGAN) for ``adv(score, target)``.

Intensity normalisation (stored in every checkpoint, so conversion uses exactly the same)
----------------------------------------------------------------------------------------
* CT: Hounsfield units clipped to ``ct_window`` (default [-1024, 1500] HU) and scaled linearly
  to [-1, 1].
* MR (training images): each volume scaled so that its ``mr_percentiles`` (default 0.5 and 99.5)
  go to -1 and 1, then clipped to [-1, 1] (MR has no absolute unit).
* Pseudo-MR output: the generator's [-1, 1] is mapped back linearly onto ``mr_range``, the mean
  of the training MR volumes' low and high percentile values, i.e. onto the typical scale of the
  training MRs.

Sizes: generators are fully convolutional; training uses random ``crop_size`` squares of the
slices (padded with the background value -1 where a slice is smaller); conversion runs on whole
slices padded to a multiple of ``2 ** n_down``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autocontour import __version__
from autocontour.artifacts.versioned import PSEUDO_MRI_FORMAT, PSEUDO_MRI_VERSION
from autocontour.data.steps_pseudo_mri import Normalisation
from autocontour.errors import (
    InvalidInputError,
    UnknownOptionError,
    did_you_mean,
    look_up_option,
)
from autocontour.inference.pipeline import resolve_device
from autocontour.io.formats import read_volume
from autocontour.io.volume import Volume
from autocontour.models.cyclegan import (
    ImprovedResnetGenerator,
    PatchDiscriminator,
    ResnetGenerator,
    gan_network_from_spec,
    gan_network_spec,
    translate_slices,
)
from autocontour.synthesis._files import read_versioned, resume_state

#: The ``format`` of a pseudo-MRI checkpoint or model file.
FORMAT = PSEUDO_MRI_FORMAT
VERSION = PSEUDO_MRI_VERSION
ADVERSARIAL_LOSSES = ("l1", "mse")
DEVICES = ("auto", "cpu", "cuda")
CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"
#: Config keys that may change when a run is resumed (the rest must match the checkpoint's).
RESUMABLE_CHANGES = ("steps", "sample_every", "checkpoint_every", "device")


# --- configuration --------------------------------------------------------------------------

@dataclass(frozen=True)
class PseudoMRIConfig:
    """How to train a CT → MR CycleGAN. Saved in every checkpoint.

    Data (one of the two ways):
        ct_images, mr_images: CT and MR images (any format :func:`read_volume` reads, or a
            phantom case folder holding ``ct.nii.gz``/``mr.nii.gz``); they should show different
            patients, since the method needs no pairs.
        phantoms: a folder written by ``autocontour phantom``: CTs from its cases 0, 2, 4, ...
            and MRs from cases 1, 3, 5, ... (:func:`phantom_split`), so no pair is ever seen.

    Attributes:
        out: run folder (checkpoint.pt, model.pt, samples/, metrics.jsonl, config.json).
        improved_generator: switch (a): the improved generator (else the original).
        denoising_discriminator: switch (b): the extra denoising discriminator.
        adversarial_loss: switch (c): "l1" (MAE) or "mse" (least squares).
        cycle_weight: λ_cyc (10 in CycleGAN).
        identity_weight: λ_id, the identity loss relative to λ_cyc (0: off; 0.5 in CycleGAN).
        denoise_sigma: σ of the noise added to real MR for the denoising discriminator
            (normalised units, where the image spans [-1, 1]).
        gen_channels, disc_channels: widths of the first layers (64 in the original).
        n_blocks: residual blocks; None: 9 (original) or 2 (improved).
        n_down: down-samplings of the generators.
        disc_layers: stride-2 layers of the PatchGAN (3: 70×70 patches).
        crop_size: side of the square training crops (a multiple of ``2 ** n_down``).
        batch_size: slices per step and domain.
        steps: optimiser steps in all (a resumed run continues up to this number).
        lr, beta1: Adam's learning rate and β₁ (2e-4 and 0.5 in CycleGAN).
        pool_size: history pool of generated images for the discriminators (0: off).
        checkpoint_every, sample_every: steps between checkpoints / sample grids (0: only at
            the end).
        seed: seeds the networks' initial weights and every step's sampling.
        device: "auto" (CUDA if there is one), "cpu" or "cuda".
        ct_window: HU range clipped and scaled to [-1, 1].
        mr_percentiles: percentiles of each MR volume scaled to -1 and 1.
    """

    out: str
    ct_images: tuple[str, ...] = ()
    mr_images: tuple[str, ...] = ()
    phantoms: str | None = None
    improved_generator: bool = True
    denoising_discriminator: bool = True
    adversarial_loss: str = "l1"
    cycle_weight: float = 10.0
    identity_weight: float = 0.0
    denoise_sigma: float = 0.1
    gen_channels: int = 64
    disc_channels: int = 64
    n_blocks: int | None = None
    n_down: int = 2
    disc_layers: int = 3
    crop_size: int = 128
    batch_size: int = 1
    steps: int = 2000
    lr: float = 2e-4
    beta1: float = 0.5
    pool_size: int = 50
    checkpoint_every: int = 200
    sample_every: int = 200
    seed: int = 0
    device: str = "auto"
    ct_window: tuple[float, float] = (-1024.0, 1500.0)
    mr_percentiles: tuple[float, float] = (0.5, 99.5)

    def __post_init__(self) -> None:
        put = lambda name, value: object.__setattr__(self, name, value)
        put("out", str(self.out))
        for name in ("ct_images", "mr_images"):
            value = getattr(self, name)
            if isinstance(value, str | Path):
                value = (value,)
            put(name, tuple(str(v) for v in value))
        if self.phantoms is not None:
            put("phantoms", str(self.phantoms))
        if not self.phantoms and not (self.ct_images and self.mr_images):
            raise InvalidInputError("the config needs training images: 'phantoms' (a phantom "
                                    "folder) or both 'ct_images' and 'mr_images'")
        if self.phantoms and (self.ct_images or self.mr_images):
            raise InvalidInputError("give either 'phantoms' or 'ct_images'/'mr_images', not both")
        put("adversarial_loss", look_up_option("adversarial_loss", self.adversarial_loss,
                                               ADVERSARIAL_LOSSES, normalise=str.lower))
        put("device", look_up_option("device", self.device, DEVICES, normalise=str.lower))
        for name in ("improved_generator", "denoising_discriminator"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(f"{name} must be true or false, got "
                                        f"{getattr(self, name)!r}")
        for name, low in (("gen_channels", 1), ("disc_channels", 1), ("n_down", 1),
                          ("disc_layers", 1), ("crop_size", 8), ("batch_size", 1), ("steps", 1),
                          ("pool_size", 0), ("checkpoint_every", 0), ("sample_every", 0),
                          ("seed", -2**31)):
            _whole(name, getattr(self, name), low)
        if self.n_blocks is not None:
            _whole("n_blocks", self.n_blocks, 0)
        for name in ("cycle_weight", "identity_weight", "denoise_sigma", "lr", "beta1"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or \
                    not math.isfinite(value) or value < 0:
                raise InvalidInputError(f"{name} must be a number >= 0, got {value!r}")
        if self.lr <= 0 or self.beta1 >= 1:
            raise InvalidInputError(f"lr must be > 0 and beta1 < 1, got {self.lr}, {self.beta1}")
        if self.crop_size % (2 ** self.n_down):
            raise InvalidInputError(f"crop_size must be a multiple of 2**n_down = "
                                    f"{2 ** self.n_down}, got {self.crop_size}")
        for name in ("ct_window", "mr_percentiles"):
            pair = getattr(self, name)
            try:
                lo, hi = (float(v) for v in pair)
            except (TypeError, ValueError):
                raise InvalidInputError(f"{name} must be two numbers [low, high], got "
                                        f"{pair!r}") from None
            if not lo < hi:
                raise InvalidInputError(f"{name} must have low < high, got {pair!r}")
            put(name, (lo, hi))
        if not 0 <= self.mr_percentiles[0] < self.mr_percentiles[1] <= 100:
            raise InvalidInputError(f"mr_percentiles must lie in [0, 100], got "
                                    f"{self.mr_percentiles}")

    @property
    def blocks(self) -> int:
        """The residual blocks the generators get (``n_blocks``, else 2 improved / 9 original)."""
        if self.n_blocks is not None:
            return self.n_blocks
        return 2 if self.improved_generator else 9

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Build from plain values (parsed YAML/JSON, or :meth:`to_dict`).

        Raises:
            InvalidInputError: not a mapping, a missing ``out``, a bad value.
            UnknownOptionError: an unknown option (with the closest one).
        """
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"config must be a mapping, got {data!r}")
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                raise UnknownOptionError(did_you_mean(f"unknown option {key}", str(key), known))
        if "out" not in data:
            raise InvalidInputError("the config needs 'out' (the run folder)")
        return cls(**dict(data))

    @classmethod
    def from_file(cls, path: str | Path) -> Self:
        """Read a YAML (or JSON, which is YAML too) config; messages name the file.

        Raises:
            InvalidInputError: unreadable, not YAML, a bad value.
            UnknownOptionError: an unknown option.
        """
        from autocontour.artifacts.config import config_from_yaml

        return config_from_yaml(cls, path)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values; ``from_dict(to_dict())`` gives an equal config."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in fields(self)}


def _whole(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInputError(f"{name} must be a whole number of at least {low}, got {value!r}")


# --- intensity normalisation (:class:`Normalisation` lives with the recipe step that also uses
# it, :mod:`autocontour.data.steps_pseudo_mri`) -----------------------------------------------

def check_is_ct(volume: Volume, source: str | Path) -> None:
    """Refuse an image that is not a CT: another DICOM modality, or no air (nothing below
    -500 HU, as in an MR or an image already scaled to [0, 1]).

    Raises:
        InvalidInputError: naming ``source`` and what it seems to be.
    """
    if volume.modality not in (None, "", "CT"):
        raise InvalidInputError(f"{source}: not a CT (modality {volume.modality}); pseudo-MRI "
                                "is made from CT")
    lo, hi = float(np.min(volume.array)), float(np.max(volume.array))
    if lo > -500:
        raise InvalidInputError(f"{source}: does not look like a CT in HU (values {lo:g} to "
                                f"{hi:g}, no air below -500 HU); pseudo-MRI is made from CT")


# --- data -----------------------------------------------------------------------------------

def phantom_split(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """(CT files, MR files) of a phantom folder: CTs of cases 0, 2, 4, ..., MRs of 1, 3, 5, ...

    Raises:
        InvalidInputError: no ``phantoms.json``, fewer than 2 cases, or cases without an MR.
    """
    folder = Path(folder)
    manifest = folder / "phantoms.json"
    try:
        cases = json.loads(manifest.read_text())["cases"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InvalidInputError(f"{folder}: not a phantom folder (no readable phantoms.json; "
                                "write one with 'autocontour phantom')") from None
    if len(cases) < 2:
        raise InvalidInputError(f"{folder}: unpaired training needs at least 2 phantom cases "
                                f"(CTs from some, MRs from others), found {len(cases)}")
    if any("mr" not in c.get("files", {}) for c in cases):
        raise InvalidInputError(f"{folder}: its phantoms have no MR twin (mr.nii.gz); use a "
                                "head-neck, pelvis or thorax phantom set")
    ct = [folder / c["case_id"] / c["files"]["ct"] for c in cases[0::2]]
    mr = [folder / c["case_id"] / c["files"]["mr"] for c in cases[1::2]]
    return ct, mr


def _image_path(path: str | Path, name: str) -> Path:
    """``path``, or ``path/<name>.nii.gz`` when ``path`` is a phantom case folder."""
    path = Path(path)
    if path.is_dir() and (path / f"{name}.nii.gz").is_file():
        return path / f"{name}.nii.gz"
    return path


def _training_images(config: PseudoMRIConfig) -> tuple[list[Path], list[Path]]:
    if config.phantoms:
        return phantom_split(config.phantoms)
    return ([_image_path(p, "ct") for p in config.ct_images],
            [_image_path(p, "mr") for p in config.mr_images])


class SliceBank:
    """The axial slices of some normalised volumes that show enough of the body, for sampling.

    Args:
        volumes: normalised arrays (z, y, x) in [-1, 1] (background near -1).
        min_fraction: a slice is kept when at least this fraction of its pixels is above -0.9.
    """

    def __init__(self, volumes: Sequence[np.ndarray], min_fraction: float = 0.05) -> None:
        self.slices = [v[k] for v in volumes for k in range(v.shape[0])
                       if np.mean(v[k] > -0.9) >= min_fraction]
        if not self.slices:  # every slice nearly empty: keep them all rather than none
            self.slices = [v[k] for v in volumes for k in range(v.shape[0])]

    def sample(self, rng: np.random.Generator, batch: int, crop: int) -> torch.Tensor:
        """``batch`` random crops (crop × crop) of random slices, (B, 1, crop, crop)."""
        out = np.full((batch, 1, crop, crop), -1.0, np.float32)
        for b in range(batch):
            s = self.slices[int(rng.integers(len(self.slices)))]
            ny, nx = s.shape
            y0 = int(rng.integers(ny - crop + 1)) if ny > crop else 0
            x0 = int(rng.integers(nx - crop + 1)) if nx > crop else 0
            patch = s[y0:y0 + crop, x0:x0 + crop]
            oy, ox = (crop - patch.shape[0]) // 2, (crop - patch.shape[1]) // 2
            out[b, 0, oy:oy + patch.shape[0], ox:ox + patch.shape[1]] = patch
        return torch.from_numpy(out)


class ImagePool:
    """The CycleGAN history of generated images: a discriminator sees, half of the time, an
    earlier fake instead of the newest (it then stores the newest in its place)."""

    def __init__(self, size: int, images: torch.Tensor | None = None) -> None:
        self.size = size
        self.images: list[torch.Tensor] = list(images) if images is not None else []

    def query(self, fakes: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return fakes
        out = []
        for image in fakes.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(1, generator=gen).item() < 0.5:
                k = int(torch.randint(len(self.images), (1,), generator=gen).item())
                out.append(self.images[k].clone())
                self.images[k] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state(self) -> torch.Tensor | None:
        return torch.stack(self.images).cpu() if self.images else None


# --- networks and losses --------------------------------------------------------------------

def build_networks(config: PseudoMRIConfig) -> dict[str, nn.Module]:
    """The networks of a run: ``ct_to_mr`` (G), ``mr_to_ct`` (F), ``d_mr``, ``d_ct`` and, with
    switch (b), ``d_noise``; initial weights from ``config.seed`` (normal, σ 0.02, as CycleGAN)."""
    torch.manual_seed(config.seed)
    gen = ImprovedResnetGenerator if config.improved_generator else ResnetGenerator
    kwargs: dict[str, Any] = {"base_channels": config.gen_channels, "n_blocks": config.blocks,
              "n_down": config.n_down}
    disc: dict[str, Any] = {"base_channels": config.disc_channels, "n_layers": config.disc_layers}
    nets: dict[str, nn.Module] = {"ct_to_mr": gen(**kwargs), "mr_to_ct": gen(**kwargs),
                                  "d_mr": PatchDiscriminator(**disc),
                                  "d_ct": PatchDiscriminator(**disc)}
    if config.denoising_discriminator:
        nets["d_noise"] = PatchDiscriminator(**disc)
    for net in nets.values():
        for m in net.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
    return nets


def adversarial_loss(kind: str, scores: torch.Tensor, real: bool) -> torch.Tensor:
    """``adv(scores, target)`` of switch (c): mean |s - t| ("l1") or mean (s - t)² ("mse"),
    with target 1 for "real" and 0 for "fake"."""
    target = torch.ones_like(scores) if real else torch.zeros_like(scores)
    return F.l1_loss(scores, target) if kind == "l1" else F.mse_loss(scores, target)


class CycleGAN:
    """The networks, optimisers and pools of one run, and its training step."""

    def __init__(self, config: PseudoMRIConfig, device: torch.device) -> None:
        self.config = config
        self.device = device
        self.nets = {k: v.to(device) for k, v in build_networks(config).items()}
        betas = (config.beta1, 0.999)
        self.opt_g = torch.optim.Adam([*self.nets["ct_to_mr"].parameters(),
                                       *self.nets["mr_to_ct"].parameters()], config.lr,
                                      betas=betas)
        self.discriminators = [k for k in ("d_mr", "d_ct", "d_noise") if k in self.nets]
        self.opt_d = torch.optim.Adam([p for k in self.discriminators
                                       for p in self.nets[k].parameters()], config.lr,
                                      betas=betas)
        self.pools = {"mr": ImagePool(config.pool_size), "ct": ImagePool(config.pool_size)}

    def step(self, ct: torch.Tensor, mr: torch.Tensor, gen: torch.Generator) -> dict[str, float]:
        """One optimiser step of the generators, then of the discriminators; the losses."""
        c, n = self.config, self.nets
        ct, mr = ct.to(self.device), mr.to(self.device)
        g, f = n["ct_to_mr"], n["mr_to_ct"]
        for k in self.discriminators:
            n[k].requires_grad_(False)
        fake_mr, fake_ct = g(ct), f(mr)
        rec_ct, rec_mr = f(fake_mr), g(fake_ct)
        adv = (adversarial_loss(c.adversarial_loss, n["d_mr"](fake_mr), True)
               + adversarial_loss(c.adversarial_loss, n["d_ct"](fake_ct), True))
        if "d_noise" in n:
            adv = adv + adversarial_loss(c.adversarial_loss, n["d_noise"](fake_mr), True)
        cycle = F.l1_loss(rec_ct, ct) + F.l1_loss(rec_mr, mr)
        loss_g = adv + c.cycle_weight * cycle
        identity = torch.zeros((), device=self.device)
        if c.identity_weight > 0:
            identity = F.l1_loss(g(mr), mr) + F.l1_loss(f(ct), ct)
            loss_g = loss_g + c.cycle_weight * c.identity_weight * identity
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()

        for k in self.discriminators:
            n[k].requires_grad_(True)
        old_mr = self.pools["mr"].query(fake_mr.detach(), gen)
        old_ct = self.pools["ct"].query(fake_ct.detach(), gen)

        def d_loss(name: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
            return 0.5 * (adversarial_loss(c.adversarial_loss, n[name](real), True)
                          + adversarial_loss(c.adversarial_loss, n[name](fake), False))
        losses = {"d_mr": d_loss("d_mr", mr, old_mr), "d_ct": d_loss("d_ct", ct, old_ct)}
        if "d_noise" in n:
            noise = torch.randn(mr.shape, generator=gen).to(self.device) * c.denoise_sigma
            losses["d_noise"] = d_loss("d_noise", mr + noise, old_mr)
        self.opt_d.zero_grad(set_to_none=True)
        torch.stack(list(losses.values())).sum().backward()
        self.opt_d.step()
        return {"g_total": loss_g.item(), "g_adversarial": adv.item(), "cycle": cycle.item(),
                "identity": identity.item(), **{k: v.item() for k, v in losses.items()}}

    # checkpoints
    def state(self) -> dict[str, Any]:
        return {"networks": {k: {"spec": gan_network_spec(v), "state": v.state_dict()}
                             for k, v in self.nets.items()},
                "optimizers": {"g": self.opt_g.state_dict(), "d": self.opt_d.state_dict()},
                "pools": {k: p.state() for k, p in self.pools.items()}}

    def load(self, data: Mapping[str, Any]) -> None:
        for k, net in self.nets.items():
            net.load_state_dict(data["networks"][k]["state"])
        self.opt_g.load_state_dict(data["optimizers"]["g"])
        self.opt_d.load_state_dict(data["optimizers"]["d"])
        for k, pool in self.pools.items():
            saved = data["pools"].get(k)
            pool.images = [] if saved is None else [t.to(self.device) for t in saved]


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


def read_pseudo_mri_file(path: str | Path, map_location: str | torch.device = "cpu"
                         ) -> dict[str, Any]:
    """Read a pseudo-MRI checkpoint or model file (``weights_only``: never runs code from it).

    Raises:
        InvalidInputError: missing, unreadable, not a pseudo-MRI file (saying what it is when it
            is another autocontour file), or a version this autocontour cannot read.
    """
    return read_versioned(path, FORMAT, VERSION, "pseudo-MRI model", map_location)


@dataclass
class PseudoMRIModel:
    """A trained CT → MR generator with the normalisation it was trained with."""

    generator: nn.Module
    normalisation: Normalisation
    config: dict[str, Any]
    step: int
    path: Path | None = None


def load_pseudo_mri_model(path: str | Path, device: str | torch.device = "cpu"
                          ) -> PseudoMRIModel:
    """The CT → MR generator of a pseudo-MRI checkpoint or model file, in eval mode.

    Raises:
        InvalidInputError: see :func:`read_pseudo_mri_file`; a file whose generator cannot be
            rebuilt.
    """
    data = read_pseudo_mri_file(path)
    try:
        entry = data["networks"]["ct_to_mr"]
        net = gan_network_from_spec(entry["spec"])
        net.load_state_dict(entry["state"])
        norm = Normalisation.from_dict(data["normalisation"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(f"{path}: damaged pseudo-MRI model ({str(exc)[:120]})") from None
    net.eval().to(device)
    return PseudoMRIModel(net, norm, dict(data.get("config") or {}), int(data.get("step", 0)),
                          Path(path))


# --- conversion -----------------------------------------------------------------------------

def ct_to_pseudo_mri(ct: Volume, model: PseudoMRIModel, batch_slices: int = 4,
                     device: str | torch.device = "cpu",
                     on_batch: Callable[[int, int], None] | None = None) -> Volume:
    """The pseudo-MRI of a CT volume: same grid (shape, spacing, origin, direction, Frame of
    Reference), float32 values on the training MRs' scale, modality "MR", no DICOM reference."""
    unit = model.normalisation.ct_to_unit(ct.array)
    fake = translate_slices(unit, model.generator, batch_slices, device, on_batch)
    return ct.with_array(model.normalisation.unit_to_mr(fake), modality="MR", dicom=None)


# --- training -------------------------------------------------------------------------------

@dataclass
class TrainOutcome:
    """How a training run ended."""

    out: Path
    step: int
    checkpoint: Path
    model: Path | None
    samples: list[Path] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    stopped: str = "finished"  # or "cancelled"
    seconds: float = 0.0


def _load_images(paths: Sequence[Path], what: str) -> list[np.ndarray]:
    arrays = []
    for p in paths:
        if not Path(p).exists():
            raise InvalidInputError(f"{p}: no such {what} image")
        arrays.append(read_volume(p).array)
    return arrays


def _sample_grid(nets: Mapping[str, nn.Module], ct_slices: np.ndarray, path: Path) -> Path:
    """A PNG with one row per CT slice: CT | pseudo-MR | cycle-CT (all shown on [-1, 1])."""
    from matplotlib.image import imsave

    g, f = nets["ct_to_mr"], nets["mr_to_ct"]
    device = next(g.parameters()).device
    with torch.inference_mode():
        fake = translate_slices(ct_slices, g, device=device)
        rec = translate_slices(fake, f, device=device)
    rows = [np.concatenate([a, np.ones((a.shape[0], 2), np.float32), b,
                            np.ones((a.shape[0], 2), np.float32), c], axis=1)
            for a, b, c in zip(ct_slices, fake, rec, strict=True)]
    sep = np.ones((2, rows[0].shape[1]), np.float32)
    grid = np.concatenate([x for r in rows for x in (r, sep)][:-1], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}.png")
    try:
        imsave(tmp, grid, cmap="gray", vmin=-1, vmax=1)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def train_cyclegan(config: PseudoMRIConfig, resume: bool = False,
                   on_step: Callable[[int, dict[str, float]], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> TrainOutcome:
    """Train (or resume) the CycleGAN of ``config``; see the module docstring for the method.

    Writes in ``config.out``: ``config.json``, ``metrics.jsonl`` (the losses of every step),
    ``checkpoint.pt`` (everything needed to resume; every ``checkpoint_every`` steps and at the
    end), ``samples/step_NNNNNN.png`` (CT | pseudo-MR | cycle-CT of fixed CT slices; every
    ``sample_every`` steps and at the end) and, when finished, ``model.pt`` (the CT → MR
    generator and the normalisation: what ``convert`` needs). Every step's sampling is seeded by
    ``(seed, step)``, so a resumed run continues exactly as an uninterrupted one.

    Args:
        resume: continue from ``out/checkpoint.pt``.
        on_step: called after each step with (step, losses).
        should_stop: asked after each step; True saves a checkpoint and returns (``stopped``
            "cancelled").

    Raises:
        OutputExistsError: ``out`` holds a checkpoint and ``resume`` is False.
        InvalidInputError: nothing to resume, a config that differs from the checkpoint's, a
            missing or unreadable image, an image that is not a CT.
    """
    started = time.perf_counter()
    out = Path(config.out)
    ckpt_path = out / CHECKPOINT_NAME
    saved = resume_state(out, CHECKPOINT_NAME, resume, "pseudo-MRI", read_pseudo_mri_file, config.to_dict(),
                         RESUMABLE_CHANGES)
    device = resolve_device(config.device)
    ct_paths, mr_paths = _training_images(config)
    cts = _load_images(ct_paths, "CT")
    for p, a in zip(ct_paths, cts, strict=True):
        if float(a.min()) > -500:
            raise InvalidInputError(f"{p}: does not look like a CT in HU (no air below -500 HU)")
    mrs = _load_images(mr_paths, "MR")
    if saved is not None:
        norm = Normalisation.from_dict(saved["normalisation"])
    else:
        norm = Normalisation(config.ct_window, config.mr_percentiles)
        bounds = np.array([norm.mr_bounds(a) for a in mrs])
        norm = replace(norm, mr_range=(float(bounds[:, 0].mean()), float(bounds[:, 1].mean())))
    ct_units = [norm.ct_to_unit(a) for a in cts]
    ct_bank, mr_bank = SliceBank(ct_units), SliceBank([norm.mr_to_unit(a) for a in mrs])
    # fixed sample slices: the middle slice of up to 2 CTs, cut to one common size
    picks = [u[u.shape[0] // 2] for u in ct_units[:2]]
    ny, nx = min(p.shape[0] for p in picks), min(p.shape[1] for p in picks)
    sample_slices = np.stack([p[:ny, :nx] for p in picks])

    gan = CycleGAN(config, device)
    step = 0
    history: list[dict[str, float]] = []
    log = out / "metrics.jsonl"
    if saved is not None:
        gan.load(saved)
        step = int(saved["step"])
        if log.exists():
            rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            history = [r for r in rows if r["step"] <= step]
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    log.write_text("".join(json.dumps(r) + "\n" for r in history))
    samples: list[Path] = []

    def save_checkpoint() -> Path:
        return _save(ckpt_path, {"step": step, "config": config.to_dict(),
                                 "normalisation": norm.to_dict(), **gan.state()})

    def save_samples() -> None:
        samples.append(_sample_grid(gan.nets, sample_slices, out / "samples" /
                                    f"step_{step:06d}.png"))

    stopped = "finished"
    with log.open("a") as log_file:
        while step < config.steps:
            rng = np.random.default_rng([config.seed & 0xFFFFFFFF, step])
            gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
            ct = ct_bank.sample(rng, config.batch_size, config.crop_size)
            mr = mr_bank.sample(rng, config.batch_size, config.crop_size)
            losses = gan.step(ct, mr, gen)
            step += 1
            row = {"step": step, **losses}
            history.append(row)
            log_file.write(json.dumps(row) + "\n")
            log_file.flush()
            if on_step is not None:
                on_step(step, losses)
            last = step == config.steps
            if config.sample_every and step % config.sample_every == 0 and not last:
                save_samples()
            if config.checkpoint_every and step % config.checkpoint_every == 0 and not last:
                save_checkpoint()
            if not last and should_stop is not None and should_stop():
                stopped = "cancelled"
                break
    save_checkpoint()
    model = None
    if stopped == "finished":
        save_samples()
        g = gan.nets["ct_to_mr"]
        model = _save(out / MODEL_NAME, {
            "step": step, "config": config.to_dict(), "normalisation": norm.to_dict(),
            "networks": {"ct_to_mr": {"spec": gan_network_spec(g), "state": g.state_dict()}}})
    return TrainOutcome(out, step, ckpt_path, model, samples, history, stopped,
                        time.perf_counter() - started)
