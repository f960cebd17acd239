"""Model files: one ``.pt`` that is everything needed to contour a CT.

A model file (the one format of :mod:`autocontour.artifacts.files`: ``torch.save`` of plain
values and tensors, read with ``weights_only=True`` so that
loading never runs code from the file) holds:

==================== ==========================================================================
key                  value
==================== ==========================================================================
format, version      "autocontour-model", :data:`MODEL_FORMAT_VERSION`
autocontour_version  the package version that wrote it
name                 the model's name
organs, recipe       ``OrganSet.to_dict()``, ``Recipe.to_dict()``
expect               ``InputExpectations.to_dict()`` (modality, spacing, orientation, and the
                     training record of the anatomy checks; version 1 files have no record)
members              {name: {"network": spec, "state_dict", "patch_size", "roi": spec or None,
                     "dtype": "float16" or "float32" (how the weights are stored),
                     "recipe": the member's own recipe (a finer grid), only when it has one}}
rule, fallback       {organ: member}
largest_component    {organ: bool}
info                 JSON provenance: training command, seed, time, validation Dice, ...
generators           (version 4, optional) {SHA-256: generator} of the pseudo-MRI generators
                     the recipes need (a model whose networks take CT + pseudo-MRI)
==================== ==========================================================================

:func:`load_model` also takes a training checkpoint (``best.pt``/``last.pt`` of
``autocontour train``): a model with one member, no post-processing, expectations from its
recipe and config.
"""

from __future__ import annotations

from pathlib import Path

import torch

from autocontour.artifacts.files import (
    CHECKPOINT,
    MODEL,
    VERSIONS,
    bound_recipe,
    build_network,
    generators_payload,
    read_file,
    trained_network,
    write_file,
)
from autocontour.data.recipes import Recipe
from autocontour.errors import InvalidInputError
from autocontour.inference.checks import InputExpectations
from autocontour.inference.combined import ContourModel, Member, RoiSpec
from autocontour.models.inferer import spatial_dims
from autocontour.models.registry import network_spec
from autocontour.organs import OrganSet

#: The model file format version written and read (see :mod:`autocontour.artifacts.files`).
MODEL_FORMAT_VERSION = VERSIONS[MODEL]


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
    members = {}
    for name, m in model.members.items():
        state = {k: (v.detach().cpu().half() if half and v.is_floating_point() else
                     v.detach().cpu()) for k, v in m.net.state_dict().items()}
        members[name] = {"network": network_spec(m.net), "state_dict": state,
                         "patch_size": list(m.patch_size),
                         "roi": m.roi.to_dict() if m.roi else None,
                         "dtype": "float16" if half else "float32"}
        if m.recipe is not None:
            members[name]["recipe"] = m.recipe.to_dict()
    payload = {"name": model.name, "organs": model.organs.to_dict(),
               "recipe": model.recipe.to_dict(), "expect": model.expect.to_dict(),
               "members": members, "rule": dict(model.rule), "fallback": dict(model.fallback),
               "largest_component": dict(model.largest_component), "info": model.info}
    generators: dict = {}
    for recipe in (model.recipe, *(m.recipe for m in model.members.values() if m.recipe)):
        generators.update(generators_payload(recipe))
    if generators:
        payload["generators"] = generators
    return write_file(path, MODEL, payload, overwrite=overwrite)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> ContourModel:
    """Read a model file or a training checkpoint.

    Raises:
        InvalidInputError: a missing or unreadable file, not an autocontour model or
            checkpoint, a format version this autocontour cannot read (the message says which
            version wrote it), missing or unknown keys, or weights that do not fit their
            network (see :func:`~autocontour.artifacts.files.read_file`).
    """
    path = Path(path)
    data = read_file(path, (MODEL, CHECKPOINT))
    if data["format"] == CHECKPOINT:
        return _from_checkpoint(path, data, device)
    try:
        organs = OrganSet.from_dict(data["organs"])
        recipe = bound_recipe(path, Recipe.from_dict(data["recipe"]), data)
        saved = dict(data["expect"])
        if data["version"] == 1:  # written before the training record existed
            saved.setdefault("record", None)
        expect = InputExpectations.from_dict(saved)
        members = {name: _member(path, name, m, data) for name, m in data["members"].items()}
        model = ContourModel(str(data["name"]), organs, recipe, expect, members,
                             dict(data["rule"]), dict(data["fallback"]),
                             dict(data["largest_component"]), dict(data["info"]))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, InvalidInputError) and str(exc).startswith(f"{path}:"):
            raise
        raise InvalidInputError(f"{path}: malformed model file ({exc})") from None
    return model.to(device)


def _member(path: Path, name: str, data: dict, file: dict) -> Member:
    net = build_network(path, data["network"], data["state_dict"], f"member {name!r}")
    roi = RoiSpec.from_dict(data["roi"]) if data["roi"] else None
    recipe = bound_recipe(path, Recipe.from_dict(data["recipe"]), file) \
        if data.get("recipe") else None
    return Member(name, net, tuple(int(s) for s in data["patch_size"]), roi, recipe)


def _from_checkpoint(path: Path, data: dict, device: str | torch.device) -> ContourModel:
    """A one-member model from a training checkpoint: no post-processing, its own patch size."""
    trained = trained_network(path, data, "cpu")
    name = "2d" if spatial_dims(trained.net) == 2 else "3d"
    modality = "MR" if trained.recipe.name in ("mr", "nnunet-mr") else "CT"
    organs = trained.organs
    model = ContourModel(f"{path.parent.name}/{path.stem}", organs, trained.recipe,
                         InputExpectations(modality=modality),
                         {name: Member(name, trained.net, trained.config.patch_size)},
                         {o: name for o in organs.names},
                         info={"source": str(path), "kind": "training checkpoint",
                               "config": trained.config.to_dict()})
    return model.to(device)
