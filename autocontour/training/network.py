"""Build the configured network for a data set, filling in what the data decides.

``network.kwargs`` may leave out what follows from the data: ``in_channels`` (the recipe's image
channels: 1, or 2 with the CT's pseudo-MRI),
``out_channels`` (the organ set's largest label value + 1, so output channel c is label c) and,
for networks planned from the patch (``DynUNet``), ``patch_size`` (the config's, ``(y, x)`` when
its z is 1) and ``spacing`` (the median voxel spacing of the training cases, same axis order).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from torch import nn

from autocontour.artifacts.config import TrainConfig
from autocontour.errors import InvalidInputError
from autocontour.models.inferer import spatial_dims
from autocontour.models.registry import NETWORKS, build_network
from autocontour.training.data import TrainingData


def network_kwargs(config: TrainConfig, data: TrainingData) -> dict[str, Any]:
    """The network's keyword arguments: the config's, completed from the data.

    Raises:
        InvalidInputError: ``out_channels`` or ``in_channels`` given and different from what
            the organ set and the recipe need.
    """
    kwargs = dict(config.network.kwargs)
    classes = max(data.organs.labels) + 1
    channels = data.recipe.channels
    kwargs.setdefault("in_channels", channels)
    if kwargs["in_channels"] != channels:
        raise InvalidInputError(
            f"network.kwargs.in_channels is {kwargs['in_channels']}, but recipe "
            f"{data.recipe.name!r} gives {channels} image channel(s) "
            f"({', '.join(data.recipe.inputs())}; leave it out)")
    kwargs.setdefault("out_channels", classes)
    if kwargs["out_channels"] != classes:
        raise InvalidInputError(
            f"network.kwargs.out_channels is {kwargs['out_channels']}, but organ set "
            f"{data.organs.name!r} needs {classes} classes (largest label + 1; leave it out)")
    builder = NETWORKS.get(config.network.name)
    params = inspect.signature(builder).parameters if builder is not None else {}
    axes = slice(1, 3) if config.patch_size[0] == 1 else slice(0, 3)
    if "patch_size" in params:
        kwargs.setdefault("patch_size", list(config.patch_size[axes]))
    if "spacing" in params and "spacing" not in kwargs:
        spacing = np.median([data.cache.geometry(c).spacing[::-1] for c in data.train_ids], 0)
        kwargs["spacing"] = [float(s) for s in spacing[axes]]
    return kwargs


def build_training_network(config: TrainConfig, data: TrainingData) -> nn.Module:
    """The configured network, checked against the patch size.

    Raises:
        InvalidInputError: an unknown network or bad arguments (the network's own message), a
            2-D network with a patch whose z is not 1, or a patch size that is not a multiple of
            the network's ``size_multiple``.
    """
    name = config.network.name
    try:
        net = build_network(name, **network_kwargs(config, data))
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"network {name}: {exc}") from None
    dims = spatial_dims(net)
    patch = config.patch_size
    if dims == 2 and patch[0] != 1:
        raise InvalidInputError(f"network {name} is 2-D: patch_size must be (1, y, x), got "
                                f"{list(patch)}")
    sizes = patch[1:] if dims == 2 else patch
    multiple = tuple(getattr(net, "size_multiple", (1,) * len(sizes)))
    if any(s % m for s, m in zip(sizes, multiple, strict=True)):
        raise InvalidInputError(f"patch_size {list(patch)} does not fit network {name}: each "
                                f"size must be a multiple of {list(multiple)}")
    return net
