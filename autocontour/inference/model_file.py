"""Model files: one ``.pt`` that is everything needed to contour a CT.

A model file (``torch.save`` of plain values and tensors, read with ``weights_only=True`` so that
loading never runs code from the file) holds:

==================== ==========================================================================
key                  value
==================== ==========================================================================
format, version      "autocontour-model", :data:`MODEL_FORMAT_VERSION`
autocontour_version  the package version that wrote it
name                 the model's name
organs, recipe       ``OrganSet.to_dict()``, ``Recipe.to_dict()``
expect               ``InputExpectations.to_dict()`` (modality, spacing, orientation)
members              {name: {"network": spec, "state_dict", "patch_size", "roi": spec or None,
                     "dtype": "float16" or "float32" (how the weights are stored)}}
rule, fallback       {organ: member}
largest_component    {organ: bool}
info                 JSON provenance: training command, seed, time, validation Dice, ...
==================== ==========================================================================

:func:`load_model` also takes a training checkpoint (``best.pt``/``last.pt`` of
``autocontour train``): a model with one member, no post-processing, expectations from its
recipe and config.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from autocontour import __version__
from autocontour.data.recipes import Recipe
from autocontour.errors import InvalidInputError, OutputExistsError
from autocontour.inference.checks import InputExpectations
from autocontour.inference.combined import ContourModel, Member, RoiSpec
from autocontour.models.registry import network_from_spec, network_spec
from autocontour.organs import OrganSet

MODEL_FORMAT = "autocontour-model"
MODEL_FORMAT_VERSION = 1
_CHECKPOINT_FORMAT = "autocontour-checkpoint"  # autocontour.training.checkpoint.FORMAT
_MODEL_KEYS = ("name", "organs", "recipe", "expect", "members", "rule")


def save_model(model: ContourModel, path: str | Path, *, half: bool = True,
               overwrite: bool = False) -> Path:
    """Write ``model`` to ``path`` (temporary file, then rename).

    Args:
        model: the model to save.
        path: the ``.pt`` file.
        half: store floating-point weights as float16 (half the size; they are cast back to
            float32 on loading, which changes predictions by far less than a voxel's worth).
        overwrite: replace an existing file.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: a model file is already there")
    members = {}
    for name, m in model.members.items():
        state = {k: (v.detach().cpu().half() if half and v.is_floating_point() else
                     v.detach().cpu()) for k, v in m.net.state_dict().items()}
        members[name] = {"network": network_spec(m.net), "state_dict": state,
                         "patch_size": list(m.patch_size),
                         "roi": m.roi.to_dict() if m.roi else None,
                         "dtype": "float16" if half else "float32"}
    payload = {"format": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION,
               "autocontour_version": __version__, "name": model.name,
               "organs": model.organs.to_dict(), "recipe": model.recipe.to_dict(),
               "expect": model.expect.to_dict(), "members": members, "rule": dict(model.rule),
               "fallback": dict(model.fallback),
               "largest_component": dict(model.largest_component), "info": model.info}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_model(path: str | Path, device: str | torch.device = "cpu") -> ContourModel:
    """Read a model file or a training checkpoint.

    Raises:
        InvalidInputError: a missing or unreadable file, not an autocontour model or
            checkpoint, a format version this autocontour cannot read (the message says which
            version wrote it), missing keys, or weights that do not fit their network.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: no model file here")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(f"{path}: not a readable model file ({first})") from None
    kind = data.get("format") if isinstance(data, dict) else None
    if kind == _CHECKPOINT_FORMAT:
        return _from_checkpoint(path, device)
    if kind != MODEL_FORMAT:
        raise InvalidInputError(f"{path}: not an autocontour model file or training checkpoint")
    if data.get("version") != MODEL_FORMAT_VERSION:
        raise InvalidInputError(
            f"{path}: model format version {data.get('version')!r}, written by autocontour "
            f"{data.get('autocontour_version')}; this autocontour ({__version__}) reads version "
            f"{MODEL_FORMAT_VERSION}: use the autocontour version that wrote it, or retrain")
    missing = [k for k in _MODEL_KEYS if k not in data]
    if missing:
        raise InvalidInputError(f"{path}: incomplete model file, missing {', '.join(missing)}")
    try:
        organs = OrganSet.from_dict(data["organs"])
        recipe = Recipe.from_dict(data["recipe"])
        expect = InputExpectations.from_dict(data["expect"])
        members = {name: _member(path, name, m) for name, m in data["members"].items()}
        model = ContourModel(str(data["name"]), organs, recipe, expect, members,
                             dict(data["rule"]), dict(data.get("fallback", {})),
                             dict(data.get("largest_component", {})), dict(data.get("info", {})))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"{path}: malformed model file ({exc})") from None
    return model.to(device)


def _member(path: Path, name: str, data: dict[str, Any]) -> Member:
    try:
        net = network_from_spec(data["network"])
        net.load_state_dict({k: v.float() if v.is_floating_point() else v
                             for k, v in data["state_dict"].items()})
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise InvalidInputError(f"{path}: member {name!r}: the weights do not fit the network "
                                f"{data.get('network', {}).get('network_class_name')!r} "
                                f"({first})") from None
    roi = RoiSpec.from_dict(data["roi"]) if data.get("roi") else None
    return Member(name, net.eval(), tuple(int(s) for s in data["patch_size"]), roi)


def _from_checkpoint(path: Path, device: str | torch.device) -> ContourModel:
    """A one-member model from a training checkpoint."""
    from autocontour.training.checkpoint import load_for_inference

    net, recipe, organs, config = load_for_inference(path, "cpu")
    dims = getattr(net, "spatial_dims", 3)
    name = "2d" if dims == 2 else "3d"
    patch = tuple(int(s) for s in config.get("patch_size", (1, 128, 128) if dims == 2
                                              else (64, 128, 128)))
    modality = "MR" if recipe.name in ("mr", "nnunet-mr") else "CT"
    expect = InputExpectations(modality=modality)
    model = ContourModel(f"{path.parent.name}/{path.stem}", organs, recipe, expect,
                         {name: Member(name, net, patch)}, {o: name for o in organs.names},
                         info={"source": str(path), "kind": "training checkpoint",
                               "config": config})
    return model.to(device)
