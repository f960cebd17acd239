"""The configuration of a multi-modal synthesis training run (seed 003 §4.2-4.5, spec E3-E7).

One frozen :class:`SynthesisConfig` describes a whole run: the data, the networks' sizes, the
length of each training stage, and the five switches of the source's ablation (its table 1):

=====  ==================  ============  ============  ====================  ===================
model  ``structure_input``  ``mask_filter``  ``noise_fusion``  ``registration_loss``  ``lesion_loss``
=====  ==================  ============  ============  ====================  ===================
A      no (noise)          no            no            no                    no
B      yes                 no            no            no                    yes
C      yes                 yes           no            no                    no
D      yes                 yes           yes           no                    no
E      yes                 yes           yes           yes                   no
F      yes                 yes           yes           yes                   yes
=====  ==================  ============  ============  ====================  ===================

(the rows as the source's table 1 sets them; its prose calls E "without the lesion loss" and D
"without the registration loss"). ``ablation: B`` in a YAML config sets the five switches of
model B (:data:`ABLATION_MODELS`); giving a switch as well is refused.

The config is YAML/JSON-readable (:meth:`SynthesisConfig.from_file`), saved in every checkpoint
and model file, and compared on resume.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Self

from autocontour.errors import InvalidInputError, UnknownOptionError, did_you_mean, look_up_option
from autocontour.synthesis.multimodal.samples import StructureParams

#: The switches of the ablation, in the order of the source's table 1.
SWITCHES = ("structure_input", "mask_filter", "noise_fusion", "registration_loss", "lesion_loss")
#: Models A-F of the source's table 1: the switches each turns off (the rest stay on).
ABLATION_MODELS: dict[str, dict[str, bool]] = {
    "A": dict.fromkeys(SWITCHES, False),
    "B": {"mask_filter": False, "noise_fusion": False, "registration_loss": False},
    "C": {"noise_fusion": False, "registration_loss": False, "lesion_loss": False},
    "D": {"registration_loss": False, "lesion_loss": False},
    "E": {"lesion_loss": False},
    "F": {},
}
#: The training stages, in the order they run (each of ``<stage>_steps`` optimiser steps).
STAGES = ("structure", "lesion", "converter", "pretrain", "adversarial")
DEVICES = ("auto", "cpu", "cuda")
#: Config keys that may change when a run is resumed (the rest must match the checkpoint's).
RESUMABLE_CHANGES = ("checkpoint_every", "device")


def _whole(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInputError(f"{name} must be a whole number of at least {low}, got {value!r}")


@dataclass(frozen=True)
class SynthesisConfig:
    """How to train the multi-modal lesion-guided synthesis. Saved in every checkpoint.

    Data:
        data: a folder of co-registered modalities with lesion labels
            (:func:`autocontour.data.multimodal.load_multimodal_folder`; e.g. ``autocontour
            phantom --site brain-lesion``). Every slice of every case is a training tuple; H and
            W must be multiples of ``2 ** max(depth, structure_pools, disc_pools)``.
        modalities: which, in condition order (the index i of the one-hot condition); empty:
            the folder manifest's list.
        out: run folder (``config.json``, ``metrics.jsonl``, ``checkpoint.pt``, ``model.pt``,
            ``samples.png``).

    Switches (the ablation, see the module docstring):
        structure_input: G's input is the (noise-fused) structure map; False: uniform noise of
            the same size instead (model A).
        mask_filter: lesion labels are kept only inside the organ mask ``1 - G_m(s_g)`` and
            re-drawn otherwise; False: placed anywhere in the image.
        noise_fusion: eq. (12) fuses U(fusion_low, fusion_high) noise into the map.
        registration_loss: train the modality converter G_t (with D_t, losses (19)-(21)) and
            add the registration loss (16) to G's loss.
        lesion_loss: pre-train one lesion segmenter G_l,i per modality (22) and add the lesion
            loss (15) to G's loss.

    Stages (optimiser steps each, run in this order; 0 skips a stage; a stage whose switch is
    off is skipped whatever its steps):
        structure_steps: the structure-map generator: G_m (6), E_s and G_s (7), (9), (11), the
            critics D_z (8) and D_s (10).
        lesion_steps: the lesion segmenters (22) on real images (with ``lesion_loss``).
        converter_steps: the modality converter G_t and D_t (19)-(21) on real images (with
            ``registration_loss``).
        pretrain_steps: self-supervised pre-training of G on real structure maps (18).
        adversarial_steps: G and the ACGAN critic D (13), (14) on generated structure maps,
            with (15) and (16) as switched: the total (17).

    Networks:
        width, depth: G (and the segmenters, the converter, G_m): first-stage channels and the
            number of 2x down-samplings.
        structure_width, structure_pools, latent_channels: E_s (VGG11 trunk of
            ``structure_pools`` stages), G_s (as many up-samplings) and the latent map's
            channels; the latent map is ``(latent_channels, H / 2^pools, W / 2^pools)``.
        disc_width, disc_pools: D_s, D and D_t (VGG11 trunks).
        latent_disc_pools: D_z's stages (on the latent map).
        segmenter_width, converter_width: G_l,i and G_t (0: ``width``).

    Optimisation:
        lr, beta1: Adam (the source: 1e-5, 0.5; 1e-4 trains in the short schedules here).
        batch_size: tuples per step (the source: 1).
        fusion_low, fusion_high: the range of z' in eq. (12) (the source: 0.5, 0.6).
        lesion_tries: draws of a lesion label before a sample goes without one.
        structure: Algorithm 1/2 parameters (:class:`StructureParams`) as a mapping.
        checkpoint_every: steps between checkpoints (0: only at the end and on a stop).
        seed: seeds the initial weights and every step's sampling.
        device: "auto" (CUDA if there is one), "cpu" or "cuda".
    """

    data: str
    out: str
    modalities: tuple[str, ...] = ()
    structure_input: bool = True
    mask_filter: bool = True
    noise_fusion: bool = True
    registration_loss: bool = True
    lesion_loss: bool = True
    structure_steps: int = 2000
    lesion_steps: int = 1000
    converter_steps: int = 2000
    pretrain_steps: int = 0
    adversarial_steps: int = 4000
    width: int = 32
    depth: int = 4
    structure_width: int = 16
    structure_pools: int = 3
    latent_channels: int = 8
    disc_width: int = 16
    disc_pools: int = 4
    latent_disc_pools: int = 1
    segmenter_width: int = 0
    converter_width: int = 0
    lr: float = 1e-4
    beta1: float = 0.5
    batch_size: int = 1
    fusion_low: float = 0.5
    fusion_high: float = 0.6
    lesion_tries: int = 20
    structure: dict[str, Any] = field(default_factory=dict)
    checkpoint_every: int = 500
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        put = lambda name, value: object.__setattr__(self, name, value)
        put("data", str(self.data))
        put("out", str(self.out))
        mods = (self.modalities,) if isinstance(self.modalities, str) else self.modalities
        put("modalities", tuple(str(m) for m in mods))
        if len(set(self.modalities)) != len(self.modalities):
            raise InvalidInputError(f"modalities must be distinct, got {list(self.modalities)}")
        for name in SWITCHES:
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(f"{name} must be true or false, got "
                                        f"{getattr(self, name)!r}")
        for stage in STAGES:
            _whole(f"{stage}_steps", getattr(self, f"{stage}_steps"), 0)
        for name in ("width", "depth", "structure_width", "structure_pools", "latent_channels",
                     "disc_width", "disc_pools", "latent_disc_pools", "batch_size",
                     "lesion_tries"):
            _whole(name, getattr(self, name), 1)
        for name in ("segmenter_width", "converter_width", "checkpoint_every"):
            _whole(name, getattr(self, name), 0)
        _whole("seed", self.seed, -2**31)
        for name in ("structure_pools", "disc_pools", "latent_disc_pools"):
            if getattr(self, name) > 5:
                raise InvalidInputError(f"{name} must be 1..5 (VGG11 has 5 stages), got "
                                        f"{getattr(self, name)}")
        for name in ("lr", "beta1", "fusion_low", "fusion_high"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or \
                    not math.isfinite(value) or value < 0:
                raise InvalidInputError(f"{name} must be a number >= 0, got {value!r}")
        if self.lr <= 0 or self.beta1 >= 1:
            raise InvalidInputError(f"lr must be > 0 and beta1 < 1, got {self.lr}, {self.beta1}")
        if self.fusion_low > self.fusion_high or self.fusion_high > 1:
            raise InvalidInputError(f"the fusion noise range must have 0 <= low <= high <= 1, "
                                    f"got ({self.fusion_low}, {self.fusion_high})")
        put("device", look_up_option("device", self.device, DEVICES, normalise=str.lower))
        if not isinstance(self.structure, Mapping):
            raise InvalidInputError(f"structure must be a mapping of Algorithm 1/2 parameters, "
                                    f"got {self.structure!r}")
        known = [f.name for f in fields(StructureParams)]
        for key in self.structure:
            if key not in known:
                raise UnknownOptionError(did_you_mean(f"unknown structure parameter {key}",
                                                      str(key), known))
        put("structure", dict(self.structure))
        if self.total_steps() == 0:
            raise InvalidInputError("every training stage has 0 steps: nothing to train")

    # --- derived values ---------------------------------------------------------------------

    @property
    def structure_params(self) -> StructureParams:
        return StructureParams(**self.structure)

    @property
    def size_multiple(self) -> int:
        """H and W of the training images must be multiples of this."""
        return 2 ** max(self.depth, self.structure_pools, self.disc_pools)

    def stage_steps(self, stage: str) -> int:
        """The steps ``stage`` runs: its ``<stage>_steps``, or 0 when its switch is off."""
        if stage == "lesion" and not self.lesion_loss:
            return 0
        if stage == "converter" and not self.registration_loss:
            return 0
        return int(getattr(self, f"{stage}_steps"))

    def total_steps(self) -> int:
        return sum(self.stage_steps(s) for s in STAGES)

    def stage_at(self, step: int) -> tuple[str, int]:
        """The stage of global step ``step`` (0-based) and the step within that stage."""
        start = 0
        for stage in STAGES:
            n = self.stage_steps(stage)
            if step < start + n:
                return stage, step - start
            start += n
        raise IndexError(f"step {step} is past the run's {self.total_steps()} steps")

    @property
    def ablation_model(self) -> str | None:
        """The letter A-F whose switches this config has, or None."""
        for letter, off in ABLATION_MODELS.items():
            if all(getattr(self, s) == (s not in off) for s in SWITCHES):
                return letter
        return None

    # --- (de)serialisation ------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Build from plain values (parsed YAML/JSON, or :meth:`to_dict`).

        ``ablation: A..F`` sets the five switches of that model (:data:`ABLATION_MODELS`).

        Raises:
            InvalidInputError: not a mapping, no ``data`` or ``out``, a bad value, an ablation
                letter given with a switch.
            UnknownOptionError: an unknown option or ablation model (with the closest one).
        """
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"config must be a mapping, got {data!r}")
        values = dict(data)
        letter = values.pop("ablation", None)
        known = [f.name for f in fields(cls)]
        for key in values:
            if key not in known:
                raise UnknownOptionError(did_you_mean(f"unknown option {key}", str(key),
                                                      [*known, "ablation"]))
        for key in ("data", "out"):
            if key not in values:
                raise InvalidInputError(f"the config needs '{key}'")
        if letter is not None:
            letter = look_up_option("ablation model", letter, ABLATION_MODELS,
                                    normalise=lambda t: t.strip().upper())
            given = [s for s in SWITCHES if s in values]
            if given:
                raise InvalidInputError(f"ablation {letter} sets the switches; do not give "
                                        f"{', '.join(given)} as well")
            values.update({s: s not in ABLATION_MODELS[letter] for s in SWITCHES})
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path) -> Self:
        """Read a YAML (or JSON) config; messages name the file.

        Raises:
            InvalidInputError: unreadable, not YAML, a bad value.
            UnknownOptionError: an unknown option.
        """
        from autocontour.artifacts.config import config_from_yaml

        return config_from_yaml(cls, path)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values; ``from_dict(to_dict())`` gives an equal config."""
        out = asdict(self)
        out["modalities"] = list(self.modalities)
        return out
