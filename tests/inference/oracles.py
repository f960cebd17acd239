"""Oracle networks and synthetic CTs whose right answer is known, and tiny real models.

Imported explicitly by the tests (``from oracles import ...``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from autocontour.data.recipes import Recipe
from autocontour.data.steps_body import CropBody
from autocontour.data.steps_grid import Resample
from autocontour.data.steps_intensity import ClipIntensity, ZScore
from autocontour.inference.checks import InputExpectations
from autocontour.inference.combined import ContourModel, Member
from autocontour.io.volume import Geometry, LabelMap, Volume
from autocontour.models.registry import build_network
from autocontour.organs import HEAD_NECK

PAROTID_L = HEAD_NECK.by_name("Parotid_L").label
PAROTID_R = HEAD_NECK.by_name("Parotid_R").label
CLASSES = max(HEAD_NECK.labels) + 1


class BandNet(nn.Module):
    """An 'oracle' network that reads HU: 250..450 HU is Parotid_L, above 450 HU Parotid_R.

    ``swap`` exchanges the two (a member that gets both wrong); ``only`` keeps one organ.
    """

    spatial_dims = 3
    size_multiple = (1, 1, 1)

    def __init__(self, swap: bool = False, only: int | None = None) -> None:
        super().__init__()
        self.swap, self.only = swap, only
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        hu = x[:, :1]
        left = ((hu > 250) & (hu <= 450)).float()
        right = (hu > 450).float()
        if self.swap:
            left, right = right, left
        out = torch.full((x.shape[0], CLASSES, *x.shape[2:]), -10.0)
        out[:, 0] = 0.0
        if self.only in (None, PAROTID_L):
            out[:, PAROTID_L] = 20 * left[:, 0] - 10
        if self.only in (None, PAROTID_R):
            out[:, PAROTID_R] = 20 * right[:, 0] - 10
        return out


def sphere_ct(spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
              shape: tuple[int, int, int] = (40, 64, 64), shift_mm: float = 0.0
              ) -> tuple[Volume, LabelMap]:
    """A water cylinder in air with a 300 HU sphere on the patient's left and a 600 HU one on
    the right (radius 7 mm), and the true label map (Parotid_L / Parotid_R)."""
    z, y, x = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing[::-1], strict=True)),
                          indexing="ij")
    cz, cy, cx = (np.asarray(shape) - 1) * np.asarray(spacing[::-1]) / 2
    ct = np.full(shape, -1000, np.int16)
    ct[(y - cy) ** 2 + (x - cx) ** 2 < (0.45 * shape[2] * spacing[0]) ** 2] = 0
    labels = np.zeros(shape, np.uint8)
    for hu, label, sign in ((300, PAROTID_L, 1), (600, PAROTID_R, -1)):
        # LPS: +x runs to the patient's left.
        ball = (z - cz) ** 2 + (y - cy) ** 2 + (x - cx - sign * (14 + shift_mm)) ** 2 < 7.0 ** 2
        ct[ball], labels[ball] = hu, label
    geometry = Geometry(shape, spacing, (-cx, -cy, -cz))
    return (Volume(ct, geometry, modality="CT"),
            LabelMap(labels, geometry, organs=HEAD_NECK))


def band_model(members: dict[str, Member] | None = None, rule: dict[str, str] | None = None,
               spacing: float = 2.0) -> ContourModel:
    """A model of oracle members on a ``spacing`` mm grid (no intensity steps: they read HU)."""
    members = members or {"3d": Member("3d", BandNet(), (16, 32, 32))}
    first = next(iter(members))
    return ContourModel("oracle", HEAD_NECK, Recipe("oracle", (
        Resample(spacing=(spacing,) * 3),)), InputExpectations("CT", (spacing,) * 3, "LPS"),
        members, rule or {o: first for o in HEAD_NECK.names})


def tiny_real_model() -> ContourModel:
    """A real (untrained, seeded) 2-D + 3-D + region model with the registry's networks."""
    torch.manual_seed(0)
    recipe = Recipe("tiny", (Resample(spacing=(8.0, 8.0, 6.0)), CropBody(),
                             ClipIntensity(-1000.0, 1500.0),
                             ZScore(mode="foreground", threshold=-500.0)))
    from autocontour.inference.combined import RoiSpec
    members = {
        "2d": Member("2d", build_network("ResUNet2D", out_channels=CLASSES,
                                         channels=[4, 8]).eval(), (1, 16, 16)),
        "3d": Member("3d", build_network("UNet3D", out_channels=CLASSES, channels=[4, 8],
                                         strides=[[2, 2, 2]] * 2).eval(), (8, 16, 16)),
        "3d_small": Member("3d_small", build_network(
            "UNet3D", out_channels=CLASSES, channels=[4, 8], strides=[[2, 2, 2]] * 2).eval(),
            (4, 8, 8), RoiSpec((4, 8, 8), ("OpticChiasm", "Pituitary"), "2d")),
    }
    rule = {o: ("3d_small" if o in ("OpticChiasm", "Pituitary") else
                "2d" if "Lens" in o else "3d") for o in HEAD_NECK.names}
    return ContourModel("tiny", HEAD_NECK, recipe, InputExpectations("CT", (8.0, 8.0, 6.0)),
                        members, rule, fallback={"OpticChiasm": "3d", "Pituitary": "3d"},
                        largest_component={"Brainstem": True}, info={"note": "test"})
