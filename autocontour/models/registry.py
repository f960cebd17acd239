"""The explicit registry of networks, and their JSON-safe specs for checkpoints.

A checkpoint stores :func:`network_spec` (``{"network_class_name", "arch_kwargs"}``) next to the
weights; :func:`network_from_spec` rebuilds exactly that network, whose ``load_state_dict`` then
takes the weights. Every registered network carries ``arch_kwargs`` (its resolved constructor
arguments), ``spatial_dims`` (2 or 3) and ``size_multiple`` (per spatial axis, the number each
input size must be a multiple of):

============  ============  =============================================================
name          spatial_dims  built by
============  ============  =============================================================
UNet3D        3             :class:`~autocontour.models.unet3d.UNet3D`
ResUNet2D     2             :class:`~autocontour.models.unet2d.ResUNet2D`
DynUNet       2 or 3        :func:`~autocontour.models.dynunet.nnunet_dynunet` (MONAI)
============  ============  =============================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from autocontour.errors import closest_choice
from autocontour.models.dynunet import nnunet_dynunet
from autocontour.models.unet2d import ResUNet2D
from autocontour.models.unet3d import UNet3D

#: Network name → the callable that builds it from keyword arguments. The name is also the
#: class name of what it builds, so :func:`network_spec` can find it from a module.
NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "UNet3D": UNet3D,
    "ResUNet2D": ResUNet2D,
    "DynUNet": nnunet_dynunet,
}


class UnknownNetworkError(ValueError):
    """A network name that is not in :data:`NETWORKS`; the message lists the choices."""

    def __init__(self, name: str) -> None:
        close = closest_choice(name, NETWORKS)
        hint = f" Did you mean {close!r}?" if close is not None else ""
        super().__init__(f"unknown network {name!r}.{hint} Choices: {', '.join(NETWORKS)}")


def build_network(name: str, **arch_kwargs: Any) -> nn.Module:
    """Build the registered network ``name`` from its keyword arguments.

    Raises:
        UnknownNetworkError: ``name`` is not registered (a ``ValueError``).
        ValueError, TypeError: invalid or unknown arguments, from the network itself.
    """
    if name not in NETWORKS:
        raise UnknownNetworkError(name)
    return NETWORKS[name](**arch_kwargs)


def network_spec(net: nn.Module) -> dict[str, Any]:
    """``{"network_class_name": str, "arch_kwargs": dict}`` of a registry-built network.

    The result is a fresh, JSON-serialisable dict.

    Raises:
        ValueError: ``net`` is not of a registered class or was not built with its
            ``arch_kwargs`` recorded (e.g. a MONAI DynUNet built directly).
    """
    name = type(net).__name__
    kwargs = getattr(net, "arch_kwargs", None)
    if name not in NETWORKS or not isinstance(kwargs, Mapping):
        raise ValueError(f"{name} has no registry spec: build it with build_network() "
                         f"(one of {', '.join(NETWORKS)})")
    return {"network_class_name": name, "arch_kwargs": json.loads(json.dumps(kwargs))}


def network_from_spec(spec: Mapping[str, Any]) -> nn.Module:
    """Rebuild the network a :func:`network_spec` describes (weights not included).

    Raises:
        ValueError: ``spec`` lacks ``network_class_name`` or ``arch_kwargs``.
        UnknownNetworkError: the name is not registered.
    """
    missing = {"network_class_name", "arch_kwargs"} - set(spec)
    if missing:
        raise ValueError(f"network spec lacks {sorted(missing)}: got keys {sorted(spec)}")
    return build_network(spec["network_class_name"], **spec["arch_kwargs"])
