"""Head & neck phantom, part 1: tissues, body outline, skull, brain and skull base.

Model space: mm, LPS axes (x to the patient's left, y posterior, z superior), origin on the
midline at the height of the eye centres. Sizes follow adult radiological anatomy.
"""

from __future__ import annotations

import numpy as np

from autocontour.organs import HEAD_NECK
from autocontour.phantoms._case import Variation
from autocontour.phantoms._render import Layer, Structure, Tissue
from autocontour.phantoms._shapes import (
    Box,
    Bumpy,
    Column,
    Ellipsoid,
    Implicit,
    Intersect,
    Shape,
    Tube,
    Union,
    spline,
)

# CT numbers (HU) and T1-weighted-like MR signal (fat bright, white > grey matter, CSF dark).
AIR = Tissue(-1000, 0.0)
FAT = Tissue(-100, 0.92, 10, 0.03)
MUSCLE = Tissue(50, 0.32, 7, 0.02)
SKIN = Tissue(35, 0.45)
CORTICAL = Tissue(1300, 0.03, 120, 0.01)
CANCELLOUS = Tissue(330, 0.6, 90, 0.08)
DENSE = Tissue(1700, 0.02, 100)
TEETH = Tissue(2300, 0.02, 150)
CSF = Tissue(6, 0.1, 2, 0.01)
GREY = Tissue(36, 0.45, 2, 0.015)
WHITE = Tissue(27, 0.72, 2, 0.015)
BRAINSTEM = Tissue(31, 0.66, 2, 0.015)
CORD = Tissue(33, 0.62, 2, 0.015)
NERVE = Tissue(31, 0.68, 2, 0.015)
VITREOUS = Tissue(8, 0.12, 2, 0.01)
SCLERA = Tissue(55, 0.3)
LENS = Tissue(95, 0.58)
PITUITARY = Tissue(44, 0.6, 2, 0.015)
BLOOD = Tissue(45, 0.1, 3, 0.01)
PAROTID = Tissue(-10, 0.75, 15, 0.04)
FLUID = Tissue(12, 0.14)
AIR_CELLS = Tissue(-450, 0.04, 350, 0.01)
MUCOSA = Tissue(45, 0.4, 5, 0.02)
DISC = Tissue(75, 0.4, 5, 0.02)
THYROID = Tissue(105, 0.55, 5, 0.02)  # iodine: brighter than muscle on plain CT
CARTILAGE = Tissue(160, 0.25, 60, 0.02)  # laryngeal cartilage, partly calcified
LUNG = Tissue(-850, 0.02, 30, 0.005)
SUBMANDIBULAR = Tissue(28, 0.55, 10, 0.03)  # serous/mucous gland: between fat and muscle
TONGUE = Tissue(58, 0.4, 9, 0.03)  # intrinsic muscle with thin fat septa
LIP = Tissue(55, 0.38, 7, 0.02)  # orbicularis oris and mucosa
ESOPHAGUS = Tissue(40, 0.34, 5, 0.02)  # collapsed muscular wall
SUBLINGUAL = Tissue(-45, 0.7, 15, 0.04)  # fat with the sublingual glands

SIDES = (("L", 1.0), ("R", -1.0))  # patient left is +x in LPS


def label(name: str) -> int:
    return HEAD_NECK.by_name(name).label


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(0.5 * t)


def skull_floor(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Height (mm) of the cranial floor and thickness of the bone under it, per (x, y).

    Anterior fossa over the domed orbital roofs, bowl-shaped middle fossae laterally (temporal
    lobes), the sella and the sloping clivus on the midline, the posterior fossa (cerebellum)
    behind the petrous ridges.
    """
    ant = _sigmoid((y + 32.0) / 4.0)
    post = _sigmoid((y - 12.0) / 6.0)
    lat = _sigmoid((np.abs(x) - 20.0) / 4.0)
    clivus = np.maximum(-6.0 - 1.4 * np.maximum(y + 14.0, 0.0), -42.0)
    middle = -6.0 - 12.0 * np.exp(-(((np.abs(x) - 40.0) / 16.0) ** 2) - ((y + 6.0) / 18.0) ** 2)
    posterior = -30.0 - 12.0 * np.exp(-((x / 35.0) ** 2) - ((y - 45.0) / 30.0) ** 2)
    orbit_roofs = 10.0 + 8.0 * np.exp(-(((np.abs(x) - 30.0) / 16.0) ** 2))
    floor = orbit_roofs * (1 - ant) + ant * (
        (1 - post) * (lat * middle + (1 - lat) * clivus) + post * posterior
    )
    thick = 4.0 * (1 - ant) + ant * ((1 - post) * (4.0 * lat + 12.0 * (1 - lat)) + 8.0 * post)
    return floor, thick


def _above_floor(shift: float, use_thickness: bool = False) -> Implicit:
    """Points above the cranial floor lowered by ``shift`` mm (and by the bone thickness)."""

    def fn(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        floor, thick = skull_floor(x, y)
        return (floor - shift - (thick if use_thickness else 0.0) - z).astype(np.float32)

    return Implicit(fn, [-np.inf] * 3, [np.inf] * 3)


def outline(v: Variation) -> tuple[Shape, Shape, list[tuple[float, float, float]]]:
    """Skin surface of head, face, neck and upper torso; the cranium; couch support points."""
    w, ln = v.factor("head_width", 0.05), v.factor("head_length", 0.05)
    cranium = Ellipsoid((0, 5, 25), (74 * w, 94 * ln, 82))
    parts: list[Shape] = [
        cranium,
        Ellipsoid((0, -24, -36), (58 * w, 66 * ln, 60)),  # face
        Ellipsoid((0, 2, -44), (76 * w, 62, 40)),  # jaw and parotid region
        Ellipsoid((0, -60, -82), (30, 20, 18)),  # chin
        Ellipsoid((0, -20, -92), (54 * w, 46, 18)),  # floor of the mouth, submandibular region
        Ellipsoid((0, -84, -14), (10, 13, 22), (-15, 0, 0)),  # nose
        Column(
            [-600, -240, -200, -170, -120, -60, -40],  # neck and upper torso
            0,
            [18, 18, 18, 17, 17.5, 18, 15],
            [112, 110, 88, 62, 56, 57, 57],
            [88, 86, 72, 61, 57.5, 58, 58],
        ),
    ]
    parts += [Ellipsoid((s * 31, -67, 0), (15, 10, 13)) for _, s in SIDES]  # eyelids
    body = Union(parts, smooth=12.0)
    support = [(0, 5 + 94 * ln, 25), (0, 106, -600), (0, 104, -240), (0, 76, -120)]
    return body, cranium, support


def soft_tissues(v: Variation, body: Shape, rng: np.random.Generator) -> list[Structure]:
    """Subcutaneous fat, muscle core, skin, and fat planes between the neck muscles."""
    fat = v.uniform("fat_mm", 3.0, 9.0)
    out = [Structure("body", body, FAT, layers=(Layer(fat, MUSCLE), Layer(0.0, SKIN, 0, 1.8)))]
    under_skin = body.grown(-3.0)  # fat planes stay under the skin
    for _, s in SIDES:
        j = rng.uniform(-5, 5, size=(3, 3))
        out += [
            Structure(
                "buccal_fat", Ellipsoid((s * 40 + j[0, 0], -46 + j[0, 1], -40), (12, 14, 14)), FAT
            ),
            Structure(
                "neck_fat",
                Intersect(
                    Ellipsoid((s * 40 + j[1, 0], 25 + j[1, 1], -110 + j[1, 2]), (10, 16, 30)),
                    under_skin,
                ),
                FAT,
            ),
            Structure(
                "neck_fat",
                Intersect(
                    Ellipsoid((s * 35 + j[2, 0], -22 + j[2, 1], -140 + j[2, 2]), (10, 10, 20)),
                    under_skin,
                ),
                FAT,
            ),
        ]
    return out


def skull_and_brain(v: Variation, cranium: Shape, rng: np.random.Generator) -> list[Structure]:
    """Calvarium (outer table, diploe, inner table), CSF spaces, brain, ventricles, cisterns."""
    scalp = v.uniform("scalp_mm", 4.0, 7.0)
    brain = Intersect(cranium.grown(-scalp - 9), _above_floor(-1.5))
    out = [
        Structure("skull", Intersect(cranium.grown(-scalp), _above_floor(0, True)), CORTICAL),
        Structure(
            "diploe", Intersect(cranium.grown(-scalp - 2), _above_floor(-2, True)), CANCELLOUS
        ),
        Structure("inner_table", Intersect(cranium.grown(-scalp - 5), _above_floor(2)), CORTICAL),
        Structure("intracranial_csf", Intersect(cranium.grown(-scalp - 7), _above_floor(0)), CSF),
        Structure("grey_matter", Bumpy(brain, 1.2, 14.0, rng, waves=4), GREY),
        Structure(
            "white_matter",
            Bumpy(Intersect(Ellipsoid((0, 2, 38), (56, 74, 44)), brain.grown(-6)), 3.0, 30.0, rng),
            WHITE,
        ),
        Structure("cerebellum", Intersect(Ellipsoid((0, 50, -22), (50, 34, 20)), brain), GREY),
        Structure("falx", Intersect(Box((0, 0, 72), (1.2, 100, 42)), brain), CSF),
        Structure("third_ventricle", Ellipsoid((0, -4, 16), (2.5, 14, 9)), CSF),
        Structure("suprasellar_cistern", Ellipsoid((0, -19, 8), (15, 12, 6)), CSF),
        Structure("prepontine_cistern", Ellipsoid((0, -6, -10), (14, 6, 20)), CSF),
        Structure("fourth_ventricle", Ellipsoid((0, 25, -20), (7, 4, 7)), CSF),
    ]
    size = v.factor("ventricles", 0.25)
    for _, s in SIDES:
        path = spline(
            [
                (s * 4, -28, 28),
                (s * 12, -8, 38),
                (s * 15, 20, 36),
                (s * 22, 38, 22),
                (s * 30, 18, 0),
                (s * 32, 0, -6),
            ]
        )
        out.append(
            Structure("lateral_ventricle", Tube(path, np.array([3, 6, 7, 5, 3, 2.5]) * size), CSF)
        )
    for side, s in SIDES:
        f = v.factor(f"Lobe_Temporal_{side}", 0.1)
        lobe = Intersect(Ellipsoid((s * 43, -6, -2), (24 * f, 40 * f, 23 * f)), brain)
        out.append(Structure(f"Lobe_Temporal_{side}", lobe, None, label(f"Lobe_Temporal_{side}")))
    for _, s in SIDES:
        out.append(
            Structure(
                "sylvian_fissure", Ellipsoid((s * 40, -8, 17), (22, 28, 2.2), (0, -s * 12, 0)), CSF
            )
        )
    return out


def skull_base(v: Variation) -> list[Structure]:
    """Sphenoid with sella, sinus and dorsum, cavernous sinuses, ethmoid and frontal sinuses."""
    sphenoid = Ellipsoid((0, -24, -12), (16, 14, 11))
    out = [
        Structure("sphenoid", sphenoid, CORTICAL, layers=(Layer(1.5, CANCELLOUS),)),
        Structure("sphenoid_sinus", Ellipsoid((0, -34, -16), (13, 10, 8)), AIR),
        Structure("dorsum_sellae", Box((0, -13, -3), (8, 2, 6), round_mm=1), CORTICAL),
        Structure("ethmoid", Ellipsoid((0, -52, 2), (10, 16, 12)), AIR_CELLS),
        Structure(
            "frontal_sinus",
            Ellipsoid((0, -80, 30), (16 * v.factor("frontal_sinus", 0.3), 6, 10)),
            AIR,
        ),
    ]
    out += [
        Structure("cavernous_sinus", Ellipsoid((s * 12, -22, -3), (4.5, 8, 6)), BLOOD)
        for _, s in SIDES
    ]
    return out
