"""Synthetic head & neck CT/MR with the 22 StructSeg OARs, the cochleae and seven more organs.

The anatomy (see ``_hn_head``, ``_hn_face`` and ``_hn_neck``) is painted in an order in which each
part covers what it lies in: body, skull and brain, skull base, mouth (oral cavity, lips), face,
optic pathway, parotids, ears, submandibular glands, jaw, spine, and the neck's viscera (larynx,
oesophagus, thyroid gland). Per case the head is posed (a few degrees, +-10 mm, +-8 % scale), bent
by a smooth deformation, and each organ gets its own size factor; all of it is kept in ``meta``.
The organs added after StructSeg draw their factors from a random stream of their own, so a
seed's older organs keep the sizes they had.

The default grid is a head-and-neck planning CT: 96 slices of 3 mm from above the temporal lobes
(model z about +71 mm, the eyes at 0) to below the thyroid gland with a few cm of cervical
oesophagus (about -214 mm; the tops of the lung apices, from -200 mm, show in the lowest
slices of some cases, as in patients).
"""

from __future__ import annotations

import numpy as np

from autocontour.organs import HEAD_NECK
from autocontour.phantoms import _hn_face as face
from autocontour.phantoms import _hn_head as head
from autocontour.phantoms import _hn_neck as neck
from autocontour.phantoms._case import PhantomCase, Recipe, Variation, build, check_shape
from autocontour.phantoms._render import draw_deformation, draw_pose

DEFAULT_SHAPE_HN: tuple[int, int, int] = (96, 128, 128)
FOV_HN_MM = 260.0
_CENTRE = (0.0, 8.0, -20.0)  # model point at the centre of a grid of up to 64 slices: ear level
_CENTRE_Z_PLANNING = -72.0
"""Centre (model z, mm) of a grid of 96 slices or more: a head-and-neck planning CT, from above
the temporal lobes (z about +71 mm at 96 slices) to below the thyroid gland with a few cm of
cervical oesophagus (about -214 mm)."""


def grid_centre(nz: int) -> tuple[float, float, float]:
    """Model point (mm) placed at the centre of a grid of ``nz`` slices.

    Up to 64 slices (192 mm) it is mid-head at ear level, as it always was (brain, orbits,
    skull base, jaw). From 64 to 96 slices it moves down to :data:`_CENTRE_Z_PLANNING`, so that
    the extra slices show the neck; a taller grid adds as much above (the vertex) as below (the
    upper chest).
    """
    t = min(max((nz - 64) / 32.0, 0.0), 1.0)
    return (_CENTRE[0], _CENTRE[1], _CENTRE[2] + t * (_CENTRE_Z_PLANNING - _CENTRE[2]))


def head_neck_case(seed: int, shape: tuple[int, int, int] = DEFAULT_SHAPE_HN) -> PhantomCase:
    """A head & neck case: int16 HU CT, T1-like MR, and HEAD_NECK labels on one grid.

    Args:
        seed: case number; the same seed and shape give identical arrays.
        shape: (z, y, x) voxels. Slices are 3 mm; pixels are 260 mm / x, so organ sizes in mm do
            not depend on the grid. Up to 64 slices the grid is centred at ear level (the
            brain, orbits, skull base, jaw); the default 96 slices run from above the temporal
            lobes to below the thyroid gland (see :func:`grid_centre`).

    Raises:
        InvalidInputError: a shape that is not three sizes of at least 8.
    """
    shape = check_shape(shape)
    rng = np.random.default_rng([int(seed), 0])
    var = Variation(rng)
    pose = draw_pose(rng, grid_centre(shape[0]))
    deformation = draw_deformation(rng, rms_mm=1.5)
    body, cranium, support = head.outline(var)
    rng_added = np.random.default_rng([int(seed), 1])  # the organs added after StructSeg
    added = var.stream(rng_added)
    structures = [
        *head.soft_tissues(var, body, rng),
        *head.skull_and_brain(var, cranium, rng),
        *head.skull_base(var),
        *face.mouth(added, body),
        *face.face(),
        *face.eyes_and_optic_pathway(var),
        *face.parotids(var, rng),
        *face.ears(var),
        *neck.submandibular_glands(added, rng_added),
        *face.mandible(var),
        *face.neck_and_spine(var),
        *neck.neck_viscera(added, rng_added),
    ]
    recipe = Recipe(
        "head-neck", "hn", HEAD_NECK, FOV_HN_MM, structures, pose, deformation, var, support, "T1"
    )
    return build(recipe, seed, shape)
