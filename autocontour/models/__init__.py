"""Segmentation networks (``nn.Module`` only: no training loops, no file access).

* :class:`UNet3D`: seed 002's 3-D U-Net with the residual / SE / recurrent switches of its
  ablation (spec B2, B3); with :func:`strides_for` also the thin-slab and 3-D-small U-Nets (B4).
* :class:`ResUNet2D`: seed 000's 2-D residual U-Net for axial slices (B1).
* :func:`nnunet_dynunet`: MONAI's DynUNet planned by nnU-Net's rules (B5).
* :class:`QualityNet`: Φ, the scoring network of the QAM (C2); used in training only, so not
  in the registry.
* :mod:`autocontour.models.synthesis` (import it directly): seed 003's synthesis networks, the
  VAE encoder/decoder E_s/G_s, the U-Net generators G_m and G (one-hot modality condition at the
  bottleneck), the VGG11 critics D_z/D_s and the ACGAN critic D (spec E3, E5).
* :func:`build_network`, :func:`network_spec`, :func:`network_from_spec`: the registry
  :data:`NETWORKS` and the ``{network_class_name, arch_kwargs}`` spec saved in checkpoints.

Tensors are channel-first, spatial axes ``(Z, Y, X)`` (3-D) or ``(Y, X)`` (2-D); networks return
logits.
"""

from autocontour.models.dynunet import nnunet_dynunet, nnunet_kernels_strides
from autocontour.models.qam import QualityNet
from autocontour.models.registry import (
    NETWORKS,
    UnknownNetworkError,
    build_network,
    network_from_spec,
    network_spec,
)
from autocontour.models.unet2d import ResUNet2D
from autocontour.models.unet3d import UNet3D, strides_for

__all__ = [
    "NETWORKS",
    "QualityNet",
    "ResUNet2D",
    "UNet3D",
    "UnknownNetworkError",
    "build_network",
    "network_from_spec",
    "network_spec",
    "nnunet_dynunet",
    "nnunet_kernels_strides",
    "strides_for",
]
