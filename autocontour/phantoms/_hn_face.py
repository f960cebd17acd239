"""Head & neck phantom, part 2: face, orbits and optic pathway, ears, jaw and parotids, neck.

Same model space as :mod:`autocontour.phantoms._hn_head` (mm, LPS, eyes at z = 0). Each paired
organ gets its own size factor, so left and right differ a little, as in patients.
"""

from __future__ import annotations

import numpy as np

from autocontour.phantoms._case import Variation
from autocontour.phantoms._hn_head import (
    AIR,
    AIR_CELLS,
    BLOOD,
    BRAINSTEM,
    CANCELLOUS,
    CORD,
    CORTICAL,
    CSF,
    DENSE,
    DISC,
    FAT,
    FLUID,
    LENS,
    LIP,
    LUNG,
    MUCOSA,
    NERVE,
    PAROTID,
    PITUITARY,
    SCLERA,
    SIDES,
    SUBLINGUAL,
    TEETH,
    TONGUE,
    VITREOUS,
    label,
)
from autocontour.phantoms._render import Layer, Structure
from autocontour.phantoms._shapes import (
    Box,
    Bumpy,
    Column,
    Ellipsoid,
    HalfSpace,
    Intersect,
    Shape,
    Subtract,
    Tube,
    Union,
    spline,
)


def _arch(z: float, scale: float, side: float | None = None) -> np.ndarray:
    """Dental/mandibular arch through the given height; one side only when ``side`` is set."""
    half = [(40, -24), (31, -46), (16, -61), (0, -66)]
    if side is not None:
        return spline([(side * x * scale, y * scale, z) for x, y in half], 3)
    pts = [(-x * scale, y * scale, z) for x, y in half] + [
        (x * scale, y * scale, z) for x, y in half[-2::-1]
    ]
    return spline(pts, 3)


def mouth(v: Variation, body: Shape) -> list[Structure]:
    """Oral cavity (tongue, floor of the mouth) and lips; painted before the jaws.

    The oral cavity fills the space inside the dental arches from under the hard palate down to
    the floor of the mouth (mylohyoid plane), back to the palatoglossal arches; the lips lie in
    front of the teeth up to the skin, from under the nose to the mentolabial fold. Maxilla,
    teeth and mandible are painted afterwards and take their own voxels back, so neither organ
    ever holds bone or teeth.
    """
    fo, fl = v.factor("Cavity_Oral", 0.07), v.factor("Lips", 0.1)
    lab = label("Cavity_Oral")
    floor = HalfSpace((0, 0.159, -1), (0, -16, -80))  # mylohyoid: -87 in front, -80 behind
    cavity = Intersect(
        Intersect(
            Ellipsoid((0, -24, -66), (31 * fo, 35 * fo, 24 * fo)),
            Intersect(HalfSpace((0, 0, 1), (0, 0, -49)), HalfSpace((0, 1, 0), (0, -15, 0))),
        ),
        floor,
    )
    out = [
        Structure("Cavity_Oral", cavity, TONGUE, lab),
        Structure(
            "lingual_septum", Intersect(Box((0, -36, -68), (0.8, 17, 14)), cavity), SUBLINGUAL, lab
        ),
    ]
    out += [
        Structure(
            "sublingual_space",
            Intersect(Ellipsoid((s * 13, -44, -81), (6, 13, 4.5), (0, 0, s * 20)), cavity),
            SUBLINGUAL,
            lab,
        )
        for _, s in SIDES
    ]
    gap = v.uniform("oral_air_mm", 0.0, 3.0)  # air between tongue and palate, or none
    if gap > 1.0:
        out.append(
            Structure(
                "oral_air",
                Intersect(Ellipsoid((0, -38, -50.5), (15 * fo, 13 * fo, gap)), cavity),
                AIR,
                lab,
            )
        )
    arches = Column([-120, 0], 0, -22, 44, 47)  # dental arches with their gums: behind the lips
    lips = Intersect(
        Intersect(Ellipsoid((0, -62, -57), (23 * fl, 30, 15 * fl)), body),
        HalfSpace((0, 0, 1), (0, 0, -41)),
    )
    lab = label("Lips")
    out.append(Structure("Lips", Subtract(lips, arches), None, lab, (Layer(1.2, LIP, lab),)))
    return out


def face() -> list[Structure]:
    """Maxilla with sinuses, nasal cavity, zygomatic arches and upper teeth."""
    maxilla = Ellipsoid((0, -56, -30), (40, 24, 18))
    alveolus = Tube(_arch(-48, 0.97), 6, (1, 1, 1.4))
    out = [
        Structure("maxilla", maxilla.shell(2.5), CORTICAL),
        Structure("alveolus", alveolus, CORTICAL, layers=(Layer(2.0, CANCELLOUS),)),
        Structure("palate", Ellipsoid((0, -46, -46), (22, 20, 2.5)), CORTICAL),
    ]
    out += [
        Structure("maxillary_sinus", Ellipsoid((s * 23, -55, -28), (13, 16, 15)), AIR)
        for _, s in SIDES
    ]
    out += [
        Structure("nasal_cavity", Ellipsoid((0, -62, -24), (10, 24, 18)), AIR),
        Structure("nasal_septum", Box((0, -62, -24), (1, 20, 15), round_mm=0.5), MUCOSA),
        Structure("nasopharynx", Ellipsoid((0, -32, -36), (11, 8, 8)), AIR),
    ]
    out += [
        Structure("turbinate", Ellipsoid((s * 8, -60, -28), (3, 20, 4)), MUCOSA) for _, s in SIDES
    ]
    out += [
        Structure(
            "zygomatic_arch",
            Tube(
                spline(
                    [(s * 42, -66, -8), (s * 56, -46, -14), (s * 60, -24, -18), (s * 56, -10, -20)]
                ),
                4,
            ),
            CORTICAL,
        )
        for _, s in SIDES
    ]
    out.append(Structure("upper_teeth", Tube(_arch(-54, 0.95), 4.5, (1, 1, 1.8)), TEETH))
    return out


def eyes_and_optic_pathway(v: Variation) -> list[Structure]:
    """Orbits, globes with lenses, optic nerves, chiasm with tracts, and the pituitary."""
    out: list[Structure] = []
    for _, s in SIDES:
        cone = Tube([(s * 14, -30, 4), (s * 31, -60, 0)], [5, 17])
        front = HalfSpace((0, -1, 0), (0, -68, 0))
        out += [
            Structure("orbit_wall", Intersect(cone.grown(2.5), front), CORTICAL),
            Structure("orbit_fat", Intersect(cone, HalfSpace((0, -1, 0), (0, -70, 0))), FAT),
        ]
    for side, s in SIDES:
        f = v.factor(f"OpticNrv_{side}", 0.12)
        path = spline(
            [
                (s * 30, -52, 0.5),
                (s * 25, -42, 2.5),
                (s * 17, -32, 5),
                (s * 9, -23, 7.5),
                (s * 4, -19, 8),
            ]
        )
        out.append(
            Structure(f"OpticNrv_{side}", Tube(path, 2.4 * f), NERVE, label(f"OpticNrv_{side}"))
        )
    for side, s in SIDES:
        fe, fl = v.factor(f"Eye_{side}", 0.05), v.factor(f"Lens_{side}", 0.1)
        globe = Ellipsoid((s * 31, -63, 0), (11.8 * fe, 11.4 * fe, 11.8 * fe))
        out += [
            Structure(
                f"Eye_{side}",
                globe,
                SCLERA,
                label(f"Eye_{side}"),
                (Layer(1.2, VITREOUS, label(f"Eye_{side}")),),
            ),
            Structure(
                f"Lens_{side}",
                Ellipsoid((s * 31, -63 - 11.5 * fe + 3.0, 0), (4.8 * fl, 2.2 * fl, 4.8 * fl)),
                LENS,
                label(f"Lens_{side}"),
            ),
        ]
    for _, s in SIDES:
        out.append(Structure("optic_tract", Tube([(s * 5, -16, 8), (s * 14, -4, 10)], 2.0), NERVE))
    fc, fp = v.factor("OpticChiasm", 0.12), v.factor("Pituitary", 0.15)
    out += [
        Structure("sella_dura", Ellipsoid((0, -22, -2.5), (7.5, 6.5, 5)), BLOOD),
        Structure(
            "OpticChiasm",
            Ellipsoid((0, -19, 8), (7.5 * fc, 4.5 * fc, 2.4 * fc), (-10, 0, 0)),
            NERVE,
            label("OpticChiasm"),
        ),
        Structure(
            "Pituitary",
            Ellipsoid((0, -22, -2), (5 * fp, 4 * fp, 3.2 * fp)),
            PITUITARY,
            label("Pituitary"),
        ),
    ]
    return out


def parotids(v: Variation, rng: np.random.Generator) -> list[Structure]:
    """Parotid glands: a superficial lobe lateral to the ramus and a deep lobe behind it."""
    out = []
    for side, s in SIDES:
        f = v.factor(f"Parotid_{side}", 0.12)
        gland = Union(
            [
                Ellipsoid((s * 58, 4, -40), (11.5 * f, 19 * f, 27 * f)),
                Ellipsoid((s * 48, 13, -46), (10 * f, 11.5 * f, 19 * f)),
            ],
            smooth=5,
        )
        out.append(
            Structure(
                f"Parotid_{side}", Bumpy(gland, 1.5, 20.0, rng), PAROTID, label(f"Parotid_{side}")
            )
        )
    return out


def ears(v: Variation) -> list[Structure]:
    """Petrous bone with the inner ear and cochlea, middle ear, ear canal and mastoid air cells."""
    out = []
    for side, s in SIDES:
        fm, fi, fc = (
            v.factor(f"{n}_{side}", 0.12) for n in ("Ear_Middle", "Ear_Internal", "Cochlea")
        )
        mastoid = Ellipsoid((s * 52, 24, -30), (9, 10, 12))
        inner = Union(
            [
                Ellipsoid((s * 33, 10, -17), (3 * fi, 3.5 * fi, 3 * fi)),
                Ellipsoid((s * 33, 15, -13), (3 * fi, 3 * fi, 4 * fi)),
            ]
        )
        middle = Ellipsoid((s * 42, 6, -18), (4.5 * fm, 7.5 * fm, 7 * fm))
        out += [
            Structure(
                "petrous",
                Tube([(s * 54, 16, -20), (s * 36, 6, -16), (s * 22, -6, -14)], [8, 9, 6]),
                DENSE,
            ),
            Structure("mastoid", mastoid.grown(1.0), CORTICAL, layers=(Layer(1.0, AIR_CELLS),)),
            Structure(
                "ear_canal", Tube([(s * 76, 10, -22), (s * 58, 8, -21), (s * 47, 6, -20)], 3.5), AIR
            ),
            Structure(f"Ear_Middle_{side}", middle, AIR, label(f"Ear_Middle_{side}")),
            Structure(
                f"Ear_Middle_{side}",
                Ellipsoid((s * 42, 6, -16), (1.5, 2.5, 3)),
                CORTICAL,
                label(f"Ear_Middle_{side}"),
            ),
            Structure(
                "internal_auditory_canal", Tube([(s * 31, 8, -15), (s * 20, 4, -14)], 2.5), CSF
            ),
            Structure(f"Ear_Internal_{side}", inner, FLUID, label(f"Ear_Internal_{side}")),
            Structure(
                f"Cochlea_{side}",
                Ellipsoid((s * 29, 2, -19), (3.5 * fc, 3.5 * fc, 2.6 * fc)),
                FLUID,
                label(f"Cochlea_{side}"),
            ),
        ]
    return out


def mandible(v: Variation) -> list[Structure]:
    """Mandible halves (condyle, ramus, coronoid, body), lower teeth, temporomandibular joints."""
    out: list[Structure] = []
    for side, s in SIDES:
        f = v.factor(f"Bone_Mandible_{side}", 0.06)
        bone: Shape = Union(
            [
                Ellipsoid((s * 50, -10, -27), (9 * f, 5 * f, 5 * f)),  # condyle
                Tube([(s * 50, -10, -28), (s * 48.5, -9, -38)], 4 * f),  # neck
                Tube(
                    [(s * 48.5, -9, -36), (s * 47, -7, -52), (s * 46, -3, -70)], 4.5 * f, (1, 3, 1)
                ),  # ramus
                Tube([(s * 46, -24, -32), (s * 46.5, -20, -46)], 3 * f, (1, 2, 1)),  # coronoid
                Tube(
                    spline(
                        [
                            (s * 46, -2, -72),
                            (s * 43, -24, -78),
                            (s * 34, -46, -82),
                            (s * 18, -63, -84),
                            (0, -69, -85),
                            (-s * 4, -69, -85),
                        ]
                    ),
                    5 * f,
                    (1, 1, 2.8),
                ),  # body
            ]
        )
        half = Intersect(bone, HalfSpace((-s, 0, 0), (0, 0, 0)))
        lab = label(f"Bone_Mandible_{side}")
        out.append(
            Structure(f"Bone_Mandible_{side}", half, CORTICAL, lab, (Layer(2.2, CANCELLOUS, lab),))
        )
    out.append(Structure("lower_teeth", Tube(_arch(-63, 0.93), 4.5, (1, 1, 1.8)), TEETH))
    for side, s in SIDES:
        f = v.factor(f"Joint_TM_{side}", 0.1)
        out.append(
            Structure(
                f"Joint_TM_{side}",
                Ellipsoid((s * 50, -10, -24), (10 * f, 7 * f, 7 * f)),
                None,
                label(f"Joint_TM_{side}"),
            )
        )
    return out


def _vertebra(z: float, cy: float, cervical: bool) -> Shape:
    body = (9, 8, 6.5) if cervical else (13, 11, 8.5)
    return Union(
        [
            Ellipsoid((0, cy - 18, z), body),
            Ellipsoid((0, cy + 2, z), (15, 12, 4.5)),  # arch
            Tube([(0, cy + 10, z), (0, cy + 28, z - 8)], 3.5),  # spinous
            Tube([(-22, cy - 6, z), (22, cy - 6, z)], 3.5),
        ]
    )  # transverse


def neck_and_spine(v: Variation) -> list[Structure]:
    """Cervical spine with canal, brainstem and cord, neck vessels, lung apices.

    The airway, larynx, oesophagus and thyroid gland are painted after it (``_hn_neck``).
    """
    zc = [-600, -300, -150, -90, -55, -42]
    yc = [40, 34, 30, 28, 24, 21]
    out = [
        Structure(
            "discs",
            Column(
                [-600, -300, -150, -90, -58],
                0,
                [y - 18 for y in yc[:5]],
                [13, 13, 10, 9, 9],
                [11, 11, 9, 8, 8],
            ),
            DISC,
        )
    ]
    levels = [-66.0 - 16 * k for k in range(6)] + [-170.0 - 22 * k for k in range(20)]
    for i, z in enumerate(levels):
        vert = _vertebra(z, float(np.interp(z, zc, yc)), cervical=i < 6)
        out.append(Structure("vertebra", vert, CORTICAL, layers=(Layer(1.8, CANCELLOUS),)))
    atlas = Union(
        [Ellipsoid((0, 17, -50), (22, 18, 5)), Tube([(0, 5, -72), (0, 7, -46)], 5)]
    )  # C1 and dens
    out += [
        Structure("atlas", atlas, CORTICAL, layers=(Layer(1.8, CANCELLOUS),)),
        Structure("spinal_canal", Column(zc[:-1] + [-30], 0, yc[:-1] + [18], 8, 7.5), CSF),
    ]
    fb, fs = v.factor("Brainstem", 0.07), v.factor("SpinalCord", 0.1)
    stem = Tube(
        spline([(0, -8, 26), (0, -1, 10), (0, 4, -6), (0, 11, -22), (0, 17, -36)]),
        np.array([9.7, 12, 12.5, 9.7, 7.8]) * fb,
    )
    out += [
        Structure("Brainstem", stem, BRAINSTEM, label("Brainstem")),
        Structure("SpinalCord", Column(zc, 0, yc, 5 * fs, 4 * fs), CORD, label("SpinalCord")),
    ]
    for _, s in SIDES:
        out += [
            Structure("carotid", Column([-600, -40], s * 22, 2, 4, 4), BLOOD),
            Structure("jugular", Column([-600, -45], s * 30, 8, 6, 5), BLOOD),
            Structure("lung_apex", Ellipsoid((s * 52, 25, -330), (46, 58, 130)), LUNG),
        ]
    return out
