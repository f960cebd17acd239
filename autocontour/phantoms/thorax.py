"""Synthetic thorax (chest) CT/MR with the CHEST structures: lungs, heart and clavicles.

The 3-D counterpart of the chest radiograph, so that tools can be shown a CT of the chest (e.g. a
chest CT given to a head-and-neck model). The anatomy (see ``_thorax_parts``) is painted in an
order in which each part covers what it lies in: body and chest-wall muscle, upper abdomen under
the diaphragm, aerated lungs with their vessels, the mediastinum (fat, oesophagus, trachea and
main bronchi, aorta, pulmonary arteries and veins, caval veins), pericardial fat and the heart,
spine, ribs and sternum, scapulae, humeri and clavicles. Per case the chest is posed, bent by a
smooth deformation, made wider, deeper or fatter, the diaphragm set higher or lower (breathing),
the heart resized and turned, and the pulmonary vessels drawn afresh; all of it is kept in
``meta``. The MR twin is T1-weighted-like (fat bright, lungs and flowing blood dark).
"""

from __future__ import annotations

import numpy as np

from autocontour.organs import CHEST
from autocontour.phantoms import _thorax_parts as parts
from autocontour.phantoms._case import PhantomCase, Recipe, Variation, build, check_shape
from autocontour.phantoms._render import Layer, Structure, Tissue, draw_deformation, draw_pose
from autocontour.phantoms._shapes import Bumpy, Column, Ellipsoid, Intersect, Shape, Tube, spline
from autocontour.phantoms._thorax_parts import AIR, BLOOD, FAT, WALL, Frame, label

DEFAULT_SHAPE_THORAX: tuple[int, int, int] = (64, 128, 128)
FOV_THORAX_MM = 450.0
# Model point placed at the grid centre: 15 mm below the carina, so that the default grid (192 mm)
# holds the clavicles at its top and most of the heart, and a 16-slice grid still some heart.
_CENTRE = (0.0, 0.0, -15.0)

MEDIASTINAL_FAT = Tissue(-90, 0.88, 15, 0.04)
PERICARDIAL_FAT = Tissue(-95, 0.9, 10, 0.03)
MYOCARDIUM = Tissue(48, 0.36, 4, 0.02)


def _mediastinum() -> list[Structure]:
    """Fat between the lungs: the superior mediastinum and the posterior one down to the hiatus."""
    superior = Column(
        [-30, 10, 50, 90, 140],
        [2, 3, 2, 0, 0],
        [-26, -24, -16, -6, 4],
        [38, 36, 32, 28, 26],
        [54, 54, 46, 36, 30],
    )
    posterior = Column([-260, -120, 0, 140], [14, 8, 5, 2], [14, 18, 20, 18], [28, 26, 26, 24], 18)
    return [
        Structure("mediastinum", superior, MEDIASTINAL_FAT),
        Structure("posterior_mediastinum", posterior, MEDIASTINAL_FAT),
    ]


def _heart(v: Variation, rng: np.random.Generator) -> tuple[Shape, list[Structure]]:
    """The heart: an ellipsoid whose long axis points left, anterior and down, with its chambers.

    Returns the outer shape (for the pericardial fat painted under the great vessels) and the
    structures drawn after them: myocardium and the four blood-filled chambers, all labelled Heart.
    """
    f = v.factor("Heart", 0.12)
    turn = v.uniform("heart_turn_deg", -8.0, 8.0)
    rot = (0.0, 20.0, -40.0 + turn)
    centre = np.array([22.0 + v.uniform("heart_shift_mm", -6.0, 6.0), -40.0, -64.0])
    heart = Bumpy(Ellipsoid(centre, (64 * f, 42 * f, 46 * f), rot), 1.5, 45.0, rng)
    lab = label("Heart")
    inner = heart.grown(-5.0)

    def chamber(offset: tuple[float, float, float], radii: tuple[float, float, float]) -> Shape:
        return Intersect(
            Ellipsoid(centre + np.asarray(offset) * f, np.asarray(radii) * f, rot), inner
        )

    structures = [
        Structure("Heart", heart, MYOCARDIUM, lab),
        Structure("Heart", chamber((16, -2, -8), (30, 15, 18)), BLOOD, lab),  # left ventricle
        Structure("Heart", chamber((-8, -26, -6), (30, 10, 22)), BLOOD, lab),  # right ventricle
        Structure("Heart", chamber((-8, 24, 24), (26, 14, 16)), BLOOD, lab),  # left atrium
        Structure("Heart", chamber((-44, 4, 8), (18, 20, 26)), BLOOD, lab),  # right atrium
    ]
    return heart, structures


def _vessels_and_airway() -> list[Structure]:
    """Oesophagus, trachea and main bronchi, aorta and its branches, pulmonary vessels, SVC."""
    airway = (Layer(2.5, AIR),)
    aorta = Tube(
        spline(
            [
                (-2, -30, -44),
                (-8, -36, -12),
                (-10, -32, 16),
                (-3, -16, 33),
                (12, 4, 37),
                (24, 20, 28),
                (28, 24, 6),
                (27, 25, -60),
                (18, 22, -160),
                (6, 20, -320),
            ]
        ),
        [14, 15.5, 15, 14, 13, 12.5, 12, 11.5, 11, 10],
    )
    return [
        Structure(
            "oesophagus",
            Column(
                [-260, -130, -40, 40, 200],
                [28, 14, 8, 4, 0],
                [2, 12, 17, 18, 18],
                [9, 9, 9, 9, 8],
                7,
            ),
            WALL,
            layers=(Layer(6.0, AIR),),
        ),
        Structure(
            "trachea", Column([-2, 60, 120, 200], 0, [0, -4, -12, -20], 10, 9), WALL, layers=airway
        ),
        Structure(
            "bronchus_R",
            Tube(spline([(0, 0, 2), (-18, 3, -10), (-36, 6, -24)]), [8, 7, 6]),
            WALL,
            layers=airway,
        ),
        Structure(
            "bronchus_L",
            Tube(spline([(0, 0, 2), (22, 3, -8), (44, 8, -28)]), [7, 6.5, 5.5]),
            WALL,
            layers=airway,
        ),
        Structure(
            "pulmonary_trunk",
            Tube(spline([(12, -58, -46), (18, -46, -22), (20, -32, -6)]), [13, 13, 12]),
            BLOOD,
        ),
        Structure(
            "pulmonary_artery_L",
            Tube(spline([(20, -32, -6), (36, -14, -2), (52, 2, -10)]), [11, 10, 8]),
            BLOOD,
        ),
        Structure(
            "pulmonary_artery_R",
            Tube(
                spline([(20, -32, -6), (0, -16, -12), (-26, -6, -15), (-50, 0, -20)]),
                [11, 11, 10, 8],
            ),
            BLOOD,
        ),
        *[
            Structure("pulmonary_vein", Tube([(s * 52, 10, z), (s * 14, 0, -38)], [6, 7]), BLOOD)
            for s in (1.0, -1.0)
            for z in (-22.0, -48.0)
        ],
        Structure("aorta", aorta, BLOOD),
        Structure(
            "brachiocephalic_trunk",
            Tube([(-4, -20, 32), (-14, -22, 70), (-18, -20, 140)], [7, 6, 5]),
            BLOOD,
        ),
        Structure("carotid_L", Tube([(5, -10, 37), (14, -12, 90), (22, -10, 160)], 4.5), BLOOD),
        Structure("subclavian_L", Tube(spline([(13, 2, 36), (30, 6, 78), (70, 8, 88)]), 5), BLOOD),
        Structure(
            "vena_cava_superior",
            Column([-36, 0, 40, 70], [-32, -32, -30, -24], [-24, -26, -26, -22], 10, 9),
            BLOOD,
        ),
        Structure(
            "brachiocephalic_vein_L", Tube([(50, -48, 72), (0, -40, 62), (-26, -26, 58)], 6), BLOOD
        ),
    ]


def thorax_case(seed: int, shape: tuple[int, int, int] = DEFAULT_SHAPE_THORAX) -> PhantomCase:
    """A thorax case: int16 HU CT, T1-like MR, and CHEST labels on one grid.

    Args:
        seed: case number; the same seed and shape give identical arrays.
        shape: (z, y, x) voxels. Slices are 3 mm; pixels are 450 mm / x, so organ sizes in mm do
            not depend on the grid, and a taller grid shows more of the chest (the default 64
            slices span the clavicles to the lower heart; about 110 reach the diaphragm).

    Raises:
        InvalidInputError: a shape that is not three sizes of at least 8.
    """
    shape = check_shape(shape)
    rng = np.random.default_rng([int(seed), 7])
    var = Variation(rng)
    pose = draw_pose(rng, _CENTRE)
    deformation = draw_deformation(rng, rms_mm=3.0)
    frame = Frame(
        var.factor("chest_width", 0.07),
        var.factor("chest_depth", 0.1),
        var.uniform("fat_mm", 5.0, 20.0),
    )
    body, support = parts.outline(frame)
    dome = parts.domes(var)
    heart, heart_parts = _heart(var, rng)
    structures = [
        *parts.body_wall(frame, body),
        *parts.abdomen(frame, dome),
        *parts.lung_structures(parts.lungs(frame, dome), rng),
        *_mediastinum(),
        Structure("pericardial_fat", heart.grown(4.0), PERICARDIAL_FAT),
        Structure("cardiophrenic_fat", Ellipsoid((52, -62, -98), (30, 22, 16)), FAT),
        *_vessels_and_airway(),
        *heart_parts,
        *parts.spine(var),
        *parts.rib_cage(var, frame),
        *parts.shoulder_girdle(var, frame),
    ]
    recipe = Recipe(
        "thorax", "th", CHEST, FOV_THORAX_MM, structures, pose, deformation, var, support, "T1"
    )
    return build(recipe, seed, shape)
