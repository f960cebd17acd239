"""The training configuration: one frozen dataclass, loaded from YAML and saved in every checkpoint.

Defaults come from the sources (spec B2, B5): Adam with lr 1e-4 (seed 002's 3-D U-Net; the
nnU-Net recipe of seed 004 uses 3e-4), the learning rate halved when the validation Dice stops
improving, training stopped once it falls below 1e-6. Paths are taken as written (relative to the
working directory), never from environment variables.

Example (``configs/pelvis_ctv_unet3d.yaml``)::

    dataset: data/pelvis-ds
    out: runs/pelvis-unet3d
    network: {name: UNet3D, kwargs: {channels: [16, 32, 64, 96, 128], strides: [2, 2, 2, 2]}}
    patch_size: [16, 256, 256]
    loss: dicece
    lr: 1.0e-4

``network.kwargs`` may leave out ``in_channels`` and ``out_channels``: the trainer fills them in
from the data (1 image channel; the organ set's largest label + 1 classes).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Self

import yaml

from autocontour.config_files import read_config_mapping
from autocontour.data.augment import AugmentConfig
from autocontour.data.patches import ORGAN_SAMPLING_RULES
from autocontour.errors import InvalidInputError, UnknownOptionError, did_you_mean, look_up_option

LOSSES = ("ce", "bce", "dice", "dicece")
SAMPLE_WEIGHTINGS = ("qam",)
CYCLE_REDUCTIONS = ("mean", "sum")
DEVICES = ("auto", "cpu", "cuda")


def check_option(what: str, value: Any, choices: tuple[str, ...]) -> str:
    return look_up_option(what, value, choices, normalise=lambda s: s.strip().lower())


def config_from_yaml(cls: Any, path: str | Path) -> Any:
    """``cls.from_dict`` of a YAML (or JSON) file; every message names the file.

    The one reader of the project's config files (training, pseudo-MRI, synthesis).

    Raises:
        InvalidInputError: the file is missing, unreadable or not YAML, or holds a bad option.
        UnknownOptionError: an unknown option (with the closest one).
    """
    path = Path(path)
    data = read_config_mapping(path)
    try:
        return cls.from_dict(data)
    except UnknownOptionError as exc:
        raise UnknownOptionError(f"{path}: {exc}") from None
    except InvalidInputError as exc:
        raise InvalidInputError(f"{path}: {exc}") from None


def _number(what: str, value: Any, kind: type, low: float | None = None,
            high: float | None = None, low_open: bool = False) -> int | float:
    """``value`` as ``kind`` (int or float) inside [low, high] (or (low, high] when low_open)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{what} must be a number, got {value!r}")
    if kind is int and float(value) != int(value):
        raise InvalidInputError(f"{what} must be a whole number, got {value!r}")
    number = kind(value)
    if not math.isfinite(number):
        raise InvalidInputError(f"{what} must be finite, got {value!r}")
    below = low is not None and (number <= low if low_open else number < low)
    if below or (high is not None and number > high):
        lo = "-inf" if low is None else low
        bracket = "(" if low_open else "["
        hi = "inf" if high is None else high
        raise InvalidInputError(f"{what} must lie in {bracket}{lo}, {hi}], got {value!r}")
    return number


def _from_mapping(cls: type, data: Any, where: str) -> dict[str, Any]:
    """Check that ``data`` is a mapping whose keys are fields of ``cls``; returns a copy."""
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"{where} must be a mapping, got {data!r}")
    known = [f.name for f in fields(cls)]
    for key in data:
        if key not in known:
            prefix = f"{where}." if where != "config" else ""
            raise UnknownOptionError(did_you_mean(f"unknown option {prefix}{key}", str(key),
                                                  known))
    return copy.deepcopy(dict(data))


@dataclass(frozen=True)
class NetworkConfig:
    """Which network to build: a registry name and its keyword arguments.

    Attributes:
        name: a name of ``autocontour.models.registry`` ("UNet3D", "ResUNet2D", "DynUNet").
        kwargs: the network's constructor arguments (JSON/YAML values).
    """

    name: str = "UNet3D"
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidInputError(f"network.name must be a network name, got {self.name!r}")
        if not isinstance(self.kwargs, Mapping):
            raise InvalidInputError(f"network.kwargs must be a mapping, got {self.kwargs!r}")
        object.__setattr__(self, "kwargs", copy.deepcopy(dict(self.kwargs)))


@dataclass(frozen=True)
class LossConfig:
    """The segmentation loss (see ``autocontour.training.losses``).

    Attributes:
        name: "ce", "bce" (sigmoid per class on one-hot targets, seed 002), "dice" (softmax) or
            "dicece" (Dice + CE, nnU-Net and seed 002's best).
        cycle_reduction: how the losses of a recurrent U-Net's passes combine: "mean" or "sum".
        include_background: whether the Dice term scores the background class (nnU-Net: no).
        batch_dice: score each organ's Dice over the whole batch instead of per sample and
            average (nnU-Net's ``batch_dice``, its 2-D setting): an organ absent from most
            patches still gets a full-weight Dice term whenever one patch of the batch holds it,
            which small organs need. Incompatible with per-sample loss weighting (QAM).
    """

    name: str = "dicece"
    cycle_reduction: str = "mean"
    include_background: bool = False
    batch_dice: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", check_option("loss", self.name, LOSSES))
        object.__setattr__(self, "cycle_reduction", check_option(
            "loss.cycle_reduction", self.cycle_reduction, CYCLE_REDUCTIONS))
        if not isinstance(self.include_background, bool):
            raise InvalidInputError(
                f"loss.include_background must be true or false, got {self.include_background!r}")
        if not isinstance(self.batch_dice, bool):
            raise InvalidInputError(
                f"loss.batch_dice must be true or false, got {self.batch_dice!r}")


@dataclass(frozen=True)
class PlateauConfig:
    """ReduceLROnPlateau on the mean validation Dice.

    Attributes:
        factor: the learning rate is multiplied by this when the Dice stops improving.
        patience: validations without improvement before it is reduced (the sources give none).
    """

    factor: float = 0.5
    patience: int = 10

    def __post_init__(self) -> None:
        factor = _number("plateau.factor", self.factor, float, 0.0, 1.0, low_open=True)
        if factor >= 1.0:
            raise InvalidInputError(f"plateau.factor must be below 1, got {self.factor!r}")
        object.__setattr__(self, "factor", factor)
        object.__setattr__(self, "patience", _number("plateau.patience", self.patience, int, 0))


@dataclass(frozen=True)
class SamplingConfig:
    """Patch sampling (see ``autocontour.data.patches.PatchDataset``).

    Attributes:
        foreground_fraction: share of patches centred on an organ voxel [0.33, nnU-Net].
        organ_sampling: "inverse_sqrt_volume", "uniform" or {organ name: weight}.
    """

    foreground_fraction: float = 0.33
    organ_sampling: str | dict[str, float] = "inverse_sqrt_volume"

    def __post_init__(self) -> None:
        object.__setattr__(self, "foreground_fraction", _number(
            "sampling.foreground_fraction", self.foreground_fraction, float, 0.0, 1.0))
        rule = self.organ_sampling
        if isinstance(rule, Mapping):
            weights = {str(k): _number(f"sampling.organ_sampling.{k}", v, float, 0.0)
                       for k, v in rule.items()}
            object.__setattr__(self, "organ_sampling", weights)
        else:
            object.__setattr__(self, "organ_sampling",
                               check_option("sampling.organ_sampling", rule, ORGAN_SAMPLING_RULES))


@dataclass(frozen=True)
class SampleWeightingConfig:
    """Per-sample loss weights learned during training: the QAM, with or without the OCM.

    Seed 002 chapter 3 (spec C2, C3; ``autocontour.training.qam``): a small VGG-like network
    scores each sample of a batch from its image and its one-hot label, a softmax over the batch
    turns the scores into weights, and the loss is the weighted sum of the per-sample losses.

    Attributes:
        name: "qam" (the only method so far).
        lr: Adam learning rate of the scoring network [1e-4, seed 002].
        ocm: the Overfitting Control Module, Γ(t) = λ·tanh(t) between the scores and the
            softmax, so that no two weights of a batch differ by more than a factor e^(2λ).
        ocm_lambda: λ [2, seed 002]; used only with ``ocm``.
        channels: the scoring network's channels per level (each level halves the grid).
    """

    name: str = "qam"
    lr: float = 1e-4
    ocm: bool = True
    ocm_lambda: float = 2.0
    channels: tuple[int, ...] = (8, 16, 32, 32)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", check_option("sample_weighting.name", self.name,
                                                      SAMPLE_WEIGHTINGS))
        object.__setattr__(self, "lr", _number("sample_weighting.lr", self.lr, float, 0.0,
                                               low_open=True))
        if not isinstance(self.ocm, bool):
            raise InvalidInputError(f"sample_weighting.ocm must be true or false, got "
                                    f"{self.ocm!r}")
        object.__setattr__(self, "ocm_lambda", _number(
            "sample_weighting.ocm_lambda", self.ocm_lambda, float, 0.0, low_open=True))
        chans = self.channels
        if isinstance(chans, str | bytes) or not hasattr(chans, "__len__") or not chans:
            raise InvalidInputError(f"sample_weighting.channels must be a non-empty list of "
                                    f"channel counts, got {chans!r}")
        object.__setattr__(self, "channels", tuple(
            _number("sample_weighting.channels", c, int, 1) for c in chans))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "lr": self.lr, "ocm": self.ocm,
                "ocm_lambda": self.ocm_lambda, "channels": list(self.channels)}


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; frozen, validated, and saved in its checkpoints.

    Attributes:
        dataset: a data set folder (``autocontour dataset import``: cache.h5, recipe.json, ...).
        out: the run folder (checkpoints, metrics); k-fold runs use ``out/fold_<k>/``.
        network: the network to train.
        recipe: a preprocessing recipe name, or "fingerprint" for the data set's recipe.json.
        pseudo_mri: a pseudo-MRI model file (``autocontour pseudo-mri train``'s ``model.pt``):
            the network then takes two channels, the CT and its pseudo-MRI, which the recipe
            derives from the CT with this generator (a ``pseudo_mri`` step after the recipe's
            grid steps, :func:`~autocontour.data.recipes.with_channel`); the generator's weights
            are embedded in every checkpoint. None (left out): the CT alone.
        patch_size: (z, y, x) training patch and sliding-window size; z = 1 for 2-D networks.
        batch_size: patches per step and process.
        loss: the loss; a plain string in YAML sets ``loss.name``.
        lr: Adam learning rate [1e-4 seed 002; 3e-4 nnU-Net recipe, seed 004].
        weight_decay: Adam weight decay.
        epochs: the most epochs to train.
        steps_per_epoch: optimiser steps per epoch.
        val_every: validate every this many epochs (and after the last one).
        plateau: learning-rate reduction on a validation-Dice plateau.
        min_lr: training stops once the learning rate falls below this [1e-6, seed 004].
        augmentation: on-the-fly augmentation; None (YAML ``null``) for none.
        sampling: patch sampling.
        organs: train on these organs only (a region member such as 3-D-small, spec B4): the
            other organs' voxels count as background, and the Dice term and validation score
            just these. The network keeps one output channel per label value of the data set,
            so its channels mean what every other member's mean. None: every organ.
        folds: k of the k-fold split (``DS/splits_<k>fold.json``, created when absent); 1
            trains on every case with no validation (no splits file; e.g. the dataset audit).
        fold: the fold trained when one fold is run.
        test_fold: a fold of the same split whose validation cases are kept out of this run
            altogether (nested cross-validation: they are the test cases of an outer fold, and
            ``fold``'s validation cases, which choose the best checkpoint and drive the
            learning-rate schedule, come from the other folds). None (left out): every case
            outside ``fold``'s validation cases trains.
        amp: mixed precision on CUDA (ignored on CPU).
        seed: seed of the splits (when created), sampling, augmentation and initial weights.
        device: "auto" (CUDA when available), "cpu" or "cuda".
        num_workers: DataLoader worker processes per training process.
        sample_weighting: learned per-sample loss weights (the QAM of seed 002, spec C2/C3);
            None (YAML ``null`` or left out) for the plain mean over the batch. Needs
            ``batch_size`` of at least 2 and per-sample losses (not ``loss.batch_dice``).

    Raises:
        InvalidInputError: a value of the wrong type or outside its range.
        UnknownOptionError: an unknown option or choice (with the closest one).
    """

    dataset: str
    out: str
    network: NetworkConfig = field(default_factory=NetworkConfig)
    recipe: str = "fingerprint"
    pseudo_mri: str | None = None
    patch_size: tuple[int, int, int] = (64, 128, 128)
    batch_size: int = 2
    loss: LossConfig = field(default_factory=LossConfig)
    lr: float = 1e-4
    weight_decay: float = 0.0
    epochs: int = 100
    steps_per_epoch: int = 250
    val_every: int = 1
    plateau: PlateauConfig = field(default_factory=PlateauConfig)
    min_lr: float = 1e-6
    augmentation: AugmentConfig | None = field(default_factory=AugmentConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    organs: tuple[str, ...] | None = None
    folds: int = 5
    fold: int = 0
    test_fold: int | None = None
    amp: bool = True
    seed: int = 0
    device: str = "auto"
    num_workers: int = 2
    sample_weighting: SampleWeightingConfig | None = None

    def __post_init__(self) -> None:
        for name in ("dataset", "out", "recipe"):
            value = getattr(self, name)
            if not isinstance(value, str | Path) or not str(value).strip():
                raise InvalidInputError(f"{name} must be a non-empty string, got {value!r}")
            object.__setattr__(self, name, str(value))
        if self.pseudo_mri is not None:
            if not isinstance(self.pseudo_mri, str | Path) or not str(self.pseudo_mri).strip():
                raise InvalidInputError(f"pseudo_mri must be a pseudo-MRI model file or null, "
                                        f"got {self.pseudo_mri!r}")
            object.__setattr__(self, "pseudo_mri", str(self.pseudo_mri))
        size = self.patch_size
        if (isinstance(size, str | bytes) or not hasattr(size, "__len__") or len(size) != 3):
            raise InvalidInputError(f"patch_size must be 3 sizes (z, y, x), got {size!r}")
        object.__setattr__(self, "patch_size", tuple(
            _number("patch_size", s, int, 1) for s in size))
        for name, low in (("batch_size", 1), ("epochs", 1), ("steps_per_epoch", 1),
                          ("val_every", 1), ("folds", 1), ("seed", 0), ("num_workers", 0)):
            object.__setattr__(self, name, _number(name, getattr(self, name), int, low))
        object.__setattr__(self, "fold", _number("fold", self.fold, int, 0, self.folds - 1))
        if self.test_fold is not None:
            object.__setattr__(self, "test_fold", _number("test_fold", self.test_fold, int, 0,
                                                          self.folds - 1))
            if self.test_fold == self.fold:
                raise InvalidInputError(f"test_fold ({self.test_fold}) must be another fold than "
                                        f"fold ({self.fold}): its cases would validate the run")
        object.__setattr__(self, "lr", _number("lr", self.lr, float, 0.0, low_open=True))
        object.__setattr__(self, "min_lr", _number("min_lr", self.min_lr, float, 0.0))
        object.__setattr__(self, "weight_decay",
                           _number("weight_decay", self.weight_decay, float, 0.0))
        if self.min_lr >= self.lr:
            raise InvalidInputError(f"min_lr ({self.min_lr:g}) must be below lr ({self.lr:g})")
        if self.organs is not None:
            names = self.organs
            if (isinstance(names, str | bytes) or not hasattr(names, "__iter__")
                    or not names or not all(isinstance(n, str) and n.strip() for n in names)):
                raise InvalidInputError(f"organs must be a non-empty list of organ names or "
                                        f"null, got {names!r}")
            if len(set(names)) != len(names):
                raise InvalidInputError(f"organs names an organ twice: {list(names)}")
            object.__setattr__(self, "organs", tuple(str(n) for n in names))
        if not isinstance(self.amp, bool):
            raise InvalidInputError(f"amp must be true or false, got {self.amp!r}")
        object.__setattr__(self, "device", check_option("device", self.device, DEVICES))
        for name, cls in (("network", NetworkConfig), ("loss", LossConfig),
                          ("plateau", PlateauConfig), ("sampling", SamplingConfig)):
            if not isinstance(getattr(self, name), cls):
                raise InvalidInputError(f"{name} must be a {cls.__name__}, got "
                                        f"{getattr(self, name)!r}")
        if self.augmentation is not None and not isinstance(self.augmentation, AugmentConfig):
            raise InvalidInputError(f"augmentation must be an AugmentConfig or None, got "
                                    f"{self.augmentation!r}")
        if self.sample_weighting is not None:
            if not isinstance(self.sample_weighting, SampleWeightingConfig):
                raise InvalidInputError(f"sample_weighting must be a SampleWeightingConfig or "
                                        f"None, got {self.sample_weighting!r}")
            if self.loss.batch_dice:
                raise InvalidInputError("sample_weighting (QAM) weighs per-sample losses, but "
                                        "loss.batch_dice scores the batch as a whole; turn one "
                                        "off")
            if self.batch_size < 2:
                raise InvalidInputError("sample_weighting (QAM) needs batch_size of at least 2 "
                                        "(a softmax over one sample is always 1)")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from plain values (the output of :meth:`to_dict`, or parsed YAML).

        Raises:
            InvalidInputError: a missing required option, or a bad value.
            UnknownOptionError: an unknown option (with the closest one).
        """
        values = _from_mapping(cls, data, "config")
        for required in ("dataset", "out"):
            if required not in values:
                raise InvalidInputError(f"the config needs {required!r}")
        if isinstance(values.get("loss"), str):
            values["loss"] = {"name": values["loss"]}
        for name, sub in (("network", NetworkConfig), ("loss", LossConfig),
                          ("plateau", PlateauConfig), ("sampling", SamplingConfig)):
            if name in values:
                values[name] = sub(**_from_mapping(sub, values[name], name))
        if values.get("augmentation") is not None:
            aug = values["augmentation"]
            if not isinstance(aug, Mapping):
                raise InvalidInputError(f"augmentation must be a mapping or null, got {aug!r}")
            values["augmentation"] = AugmentConfig.from_dict(dict(aug))
        weighting = values.get("sample_weighting")
        if isinstance(weighting, str):
            weighting = {"name": weighting}
        if weighting is not None:
            values["sample_weighting"] = SampleWeightingConfig(**_from_mapping(
                SampleWeightingConfig, weighting, "sample_weighting"))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML values; ``from_dict(to_dict())`` gives an equal config.

        ``sample_weighting``, ``pseudo_mri`` and ``test_fold`` are left out when off (None), so
        the config of a run without them reads exactly as before the options existed, and
        checkpoints written then still load.
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("pseudo_mri", "test_fold"):
                if value is not None:
                    out[f.name] = value
                continue
            if f.name == "sample_weighting":
                if value is not None:
                    out[f.name] = value.to_dict()
                continue
            if isinstance(value, AugmentConfig):
                value = value.to_dict()
            elif hasattr(value, "__dataclass_fields__"):
                value = {g.name: copy.deepcopy(getattr(value, g.name)) for g in fields(value)}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_yaml(cls, path: str | Path) -> Self:
        """Read a YAML config file.

        Raises:
            InvalidInputError: the file is missing, not YAML, or holds a bad option (the message
                names the file).
            UnknownOptionError: an unknown option (with the closest one), naming the file.
        """
        return config_from_yaml(cls, path)

    def to_yaml(self, path: str | Path) -> Path:
        """Write the config as YAML (readable by :meth:`from_yaml`)."""
        path = Path(path)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path
