"""The one file format of trained networks: training checkpoints and model files, one reader.

Both kinds are a ``torch.save`` of a dict of plain values and tensors, read back with
``weights_only=True`` so that loading never runs code from the file, inside one envelope:

==================== ==========================================================================
key                  value
==================== ==========================================================================
format               :data:`CHECKPOINT` ("autocontour-checkpoint") or :data:`MODEL`
                     ("autocontour-model")
version              the format version of that kind (:data:`VERSIONS`)
autocontour_version  the package version that wrote the file
...                  the kind's own keys, :data:`KEYS` (every one required, no other allowed
                     but :data:`OPTIONAL_KEYS`)
generators           only when the recipe derives a pseudo-MRI channel: {SHA-256: the CT -> MR
                     generator's spec, weights and normalisation}
                     (:class:`~autocontour.data.steps_pseudo_mri.PseudoMRIGenerator`), so the
                     file alone runs its recipe; read back and bound to the recipe by
                     :func:`bound_recipe`
==================== ==========================================================================

A **checkpoint** (``last.pt``/``best.pt`` of ``autocontour train``) is enough to resume a run
exactly or to contour a CT: the network spec and weights, every optimiser's state, the typed
training config (:class:`~autocontour.artifacts.config.TrainConfig`), the recipe and the organ
set. A **model file** (``autocontour model``, the shipped model) holds the members of a combined
model with their specs and weights, the rule and what a CT must look like for it.

:func:`read_file` is the only code that opens these files: it checks the envelope, the version
and the keys (a missing or an unknown key is an error naming the file, never a silent default).
:func:`build_network` turns a saved ``{network_class_name, arch_kwargs}`` spec and weights into a
network; :func:`load_trained_network` gives a checkpoint's network with its typed config.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autocontour import __version__
from autocontour.artifacts.config import TrainConfig
from autocontour.data.recipes import Recipe
from autocontour.data.steps_pseudo_mri import PseudoMRIGenerator, generators_by_digest
from autocontour.errors import InvalidInputError, OutputExistsError
from autocontour.models.registry import network_from_spec
from autocontour.organs import OrganSet

CHECKPOINT = "autocontour-checkpoint"
MODEL = "autocontour-model"
#: The format version each kind is written in.
VERSIONS = {CHECKPOINT: 2, MODEL: 4}
#: The versions each kind can be read in. Model files of version 1 (before the training record
#: of the anatomy checks, kept in ``expect["record"]`` since version 2) still load: the reader of
#: the model gives them no record. Version 3 added a member's own recipe (a member on a finer
#: grid, optional key ``recipe``); files of version 2 read as they are. Checkpoint version 2 and
#: model version 4 added the optional key ``generators`` (the pseudo-MRI generators a recipe
#: needs); older files, which have none, read as they are.
READABLE = {CHECKPOINT: (1, 2), MODEL: (1, 2, 3, 4)}
ENVELOPE = ("format", "version", "autocontour_version")
#: Every key of each kind besides the envelope.
KEYS: dict[str, tuple[str, ...]] = {
    CHECKPOINT: ("network", "state_dict", "extra_modules", "optimizers", "scheduler", "scaler",
                 "epoch", "step", "seconds", "stopped", "rng", "sampler", "config", "recipe",
                 "organs", "fold", "best_metric", "best_epoch", "best_row"),
    MODEL: ("name", "organs", "recipe", "expect", "members", "rule", "fallback",
            "largest_component", "info"),
}
#: Keys a file of either kind may have (checkpoint version 2, model version 4): the weights the
#: recipe's channel steps need, {SHA-256: generator payload}.
OPTIONAL_KEYS = ("generators",)
#: Every key of one member of a model file.
MEMBER_KEYS = ("network", "state_dict", "patch_size", "roi", "dtype")
#: Keys a member may have (version 3): its own preprocessing recipe.
OPTIONAL_MEMBER_KEYS = ("recipe",)
_NAMES = {CHECKPOINT: "training checkpoint", MODEL: "model file"}


def write_file(path: str | Path, kind: str, payload: Mapping[str, Any], *,
               overwrite: bool = True) -> Path:
    """Write a checkpoint or model file atomically (temporary file, then rename).

    Args:
        path: the ``.pt`` file.
        kind: :data:`CHECKPOINT` or :data:`MODEL`.
        payload: exactly the kind's :data:`KEYS`, and :data:`OPTIONAL_KEYS` if wanted.
        overwrite: replace an existing file.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        ValueError: an unknown kind, or a payload with missing or unknown keys (a programming
            error, not a user's).
    """
    if kind not in KEYS:
        raise ValueError(f"unknown file kind {kind!r}")
    wrong = sorted((set(payload) - set(OPTIONAL_KEYS)) ^ set(KEYS[kind]))
    if wrong:
        raise ValueError(f"{_NAMES[kind]} payload: missing or unknown keys {wrong}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: a {_NAMES[kind]} is already there")
    data = {"format": kind, "version": VERSIONS[kind], "autocontour_version": __version__,
            **payload}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        torch.save(data, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_file(path: str | Path, kinds: tuple[str, ...] = (CHECKPOINT, MODEL),
              map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint or model file.

    Args:
        path: the file.
        kinds: the kinds the caller accepts.
        map_location: where tensors are loaded.

    Returns:
        The file's dict (envelope included); its ``"format"`` says the kind.

    Raises:
        InvalidInputError: a missing or unreadable file, not an autocontour file of an accepted
            kind, a format version this autocontour cannot read (the message says which version
            wrote it), or missing or unknown keys (the message names the file and the keys).
    """
    path = Path(path)
    wanted = " or ".join(_NAMES[k] for k in kinds)
    if not path.is_file():
        raise InvalidInputError(f"{path}: no {wanted} here")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(f"{path}: not a readable {wanted} ({first})") from None
    kind = data.get("format") if isinstance(data, dict) else None
    if kind not in kinds:
        found = f" (it is a {_NAMES[kind]})" if kind in _NAMES else ""
        raise InvalidInputError(f"{path}: not an autocontour {wanted}{found}")
    if data.get("version") not in READABLE[kind]:
        *most, last = (str(v) for v in READABLE[kind])
        versions = f"{', '.join(most)} and {last}" if most else last
        raise InvalidInputError(
            f"{path}: {_NAMES[kind]} format version {data.get('version')!r}, written by "
            f"autocontour {data.get('autocontour_version')}; this autocontour ({__version__}) "
            f"reads version {versions}: use the autocontour version that wrote it, or "
            "retrain")
    _check_keys(path, _NAMES[kind], data, (*ENVELOPE, *KEYS[kind]), OPTIONAL_KEYS)
    if kind == MODEL:
        if not isinstance(data["members"], dict) or not data["members"]:
            raise InvalidInputError(f"{path}: model file without members")
        for name, member in data["members"].items():
            _check_keys(path, f"model file member {name!r}", member, MEMBER_KEYS,
                        OPTIONAL_MEMBER_KEYS)
    return data


def _check_keys(path: Path, what: str, data: Any, keys: tuple[str, ...],
                optional: tuple[str, ...] = ()) -> None:
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: malformed {what} (not a mapping)")
    missing = [k for k in keys if k not in data]
    unknown = sorted(str(k) for k in data if k not in keys and k not in optional)
    if missing:
        raise InvalidInputError(f"{path}: incomplete {what}, missing {', '.join(missing)}")
    if unknown:
        raise InvalidInputError(f"{path}: {what} has keys this autocontour does not know "
                                f"({', '.join(unknown)}); it was written by autocontour "
                                f"{data.get('autocontour_version', 'of another version')}")


def build_network(path: str | Path, spec: Mapping[str, Any], state: Mapping[str, Any],
                  what: str | None = None) -> nn.Module:
    """The network of a saved spec with its weights (float16 weights are cast back to float32).

    Raises:
        InvalidInputError: an unknown network, or weights that do not fit it (naming the file).
    """
    try:
        net = network_from_spec(dict(spec))
        net.load_state_dict({k: v.float() if v.is_floating_point() else v
                             for k, v in state.items()})
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        name = spec.get("network_class_name") if isinstance(spec, Mapping) else None
        where = f"{path}: {what}:" if what else f"{path}:"
        raise InvalidInputError(f"{where} the weights do not fit the network "
                                f"{name!r} ({first})") from None
    return net.eval()


def generators_payload(recipe: Recipe) -> dict[str, Any]:
    """The ``generators`` entry of a file whose recipe is ``recipe`` (bound), or {} when the
    recipe needs none."""
    return {key: g.to_payload() for key, g in recipe.bound_resources().items()
            if isinstance(g, PseudoMRIGenerator)}


def bound_recipe(path: str | Path, recipe: Recipe, data: Mapping[str, Any],
                 device: str | torch.device = "cpu") -> Recipe:
    """``recipe`` with its channel steps given the generators the file embeds.

    Raises:
        InvalidInputError: a damaged generator, or one the recipe needs that the file does not
            hold or whose content hashes otherwise (naming the file).
    """
    if not recipe.resources():
        return recipe
    saved = data.get("generators") or {}
    if not isinstance(saved, Mapping):
        raise InvalidInputError(f"{path}: malformed generators entry")
    generators = [PseudoMRIGenerator.from_payload(p, f"{path}: generator {str(k)[:12]}")
                  for k, p in saved.items()]
    return recipe.bind(generators_by_digest(generators), str(torch.device(device)), str(path))


@dataclass
class TrainedNetwork:
    """A checkpoint's network, ready to predict, with what it needs to prepare a CT.

    Attributes:
        net: the network in eval mode; output channel c is label value c.
        config: the typed training config it was trained with.
        recipe: the preprocessing recipe it was trained with.
        organs: its organ set.
        path: the checkpoint it came from.
    """

    net: nn.Module
    config: TrainConfig
    recipe: Recipe
    organs: OrganSet
    path: Path


def trained_network(path: str | Path, data: Mapping[str, Any],
                    device: str | torch.device = "cpu") -> TrainedNetwork:
    """The :class:`TrainedNetwork` of a checkpoint already read by :func:`read_file`.

    Raises:
        InvalidInputError: a config, recipe or organ set that does not parse, or weights that do
            not fit (the message names the file).
    """
    path = Path(path)
    config = typed_config(path, data["config"])
    try:
        recipe, organs = Recipe.from_dict(data["recipe"]), OrganSet.from_dict(data["organs"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"{path}: malformed recipe or organ set ({exc})") from None
    recipe = bound_recipe(path, recipe, data)
    net = build_network(path, data["network"], data["state_dict"])
    return TrainedNetwork(net.to(device), config, recipe, organs, path)


def load_trained_network(path: str | Path, device: str | torch.device = "cpu"
                         ) -> TrainedNetwork:
    """Read a training checkpoint and give its network with its typed config.

    Raises:
        InvalidInputError: see :func:`read_file` and :func:`trained_network`.
    """
    return trained_network(path, read_file(path, (CHECKPOINT,)), device)


def typed_config(path: Path, data: Any) -> TrainConfig:
    """The :class:`TrainConfig` saved in a file: every option present, none unknown.

    Raises:
        InvalidInputError: a missing, unknown or invalid option (naming the file); a config
            written by an older autocontour that lacked an option is refused rather than
            completed with today's default.
    """
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"{path}: the saved training config is not a mapping")
    try:
        config = TrainConfig.from_dict(data)
    except (InvalidInputError, ValueError) as exc:
        raise InvalidInputError(f"{path}: the saved training config is invalid ({exc})") from None
    missing = _missing_keys(config.to_dict(), data)
    if missing:
        raise InvalidInputError(f"{path}: the saved training config lacks {', '.join(missing)} "
                                "(written by another autocontour version; retrain, or use the "
                                "version that wrote it)")
    return config


def _missing_keys(expected: Mapping[str, Any], given: Mapping[str, Any],
                  prefix: str = "") -> list[str]:
    """Keys of ``expected`` (nested mappings included) that ``given`` lacks, as dotted names."""
    missing = []
    for key, value in expected.items():
        if key not in given:
            missing.append(prefix + key)
        elif isinstance(value, Mapping) and isinstance(given[key], Mapping):
            missing += _missing_keys(value, given[key], f"{prefix}{key}.")
    return missing
