"""Head & neck phantom, part 3: the neck's viscera and the submandibular glands.

Same model space as :mod:`autocontour.phantoms._hn_head` (mm, LPS, eyes at z = 0). On this
phantom's spine C2..C7 lie at z = -66..-146 and T1 at -170. From the top down: the pharynx
behind the tongue, the larynx from the epiglottis tip (z -91) past the hyoid (-100) and the
thyroid cartilage to the cricoid's lower edge (-152, C7), the trachea and, behind it in front of
the vertebral bodies, the oesophagus from there down; the thyroid gland's lobes (-135..-181)
hug larynx and trachea, its isthmus crosses in front of the upper tracheal rings. The organs'
contrast on CT is that of patients: the thyroid is bright (iodine), the oesophagus and the
larynx's soft tissue are muscle-like, the submandibular glands lie between fat and muscle.
"""

from __future__ import annotations

import numpy as np

from autocontour.phantoms._case import Variation
from autocontour.phantoms._hn_head import (
    AIR,
    CARTILAGE,
    CORTICAL,
    ESOPHAGUS,
    FAT,
    MUCOSA,
    SIDES,
    SUBMANDIBULAR,
    THYROID,
    label,
)
from autocontour.phantoms._render import Structure
from autocontour.phantoms._shapes import (
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

CRICOID_BOTTOM_Z = -152.0
"""Lower edge of the cricoid cartilage: the larynx ends and trachea and oesophagus begin."""


def _scaled(column: tuple[list[float], ...], f: float) -> Column:
    """A :class:`Column` (z, cx, cy, rx, ry) with its in-plane radii scaled by ``f``."""
    z, cx, cy, rx, ry = column
    return Column(z, cx, cy, [r * f for r in rx], [r * f for r in ry])


def pharynx() -> Shape:
    """Air of the naso- and oropharynx, down to the laryngeal inlet behind the epiglottis."""
    return Column([-106, -95, -62, -40], 0, [-8.5, -10, -8, -22], [9, 14, 13, 9], [4.5, 7, 8, 7])


def trachea() -> Shape:
    """Air of the trachea, from the cricoid down (continuing the laryngeal lumen)."""
    return Column([-600, -260, CRICOID_BOTTOM_Z], 0, [-10, -18, -22], 8.5, 7)


def larynx_envelope(f: float) -> Column:
    """The whole larynx, as clinics contour it: cartilages, soft tissue, fat spaces and lumen.

    Elliptic cross-sections from the epiglottis tip to the cricoid's lower edge, widest at the
    glottis inside the thyroid cartilage's laminae.
    """
    return _scaled(
        (
            [CRICOID_BOTTOM_Z, -146, -136, -124, -112, -102, -91],
            [0] * 7,
            [-20.5, -20.5, -19.5, -17.5, -16.5, -16, -17],
            [11.5, 12, 14.5, 18, 17, 13.5, 6.5],
            [10, 10.5, 12, 13.5, 12.5, 10, 4.5],
        ),
        f,
    )


def _larynx_lumen(f: float) -> Column:
    """Laryngeal air: vestibule, a slit at the glottis (vocal cords), the round subglottis."""
    return _scaled(
        (
            [CRICOID_BOTTOM_Z, -140, -128, -123, -118, -111, -103, -97],
            [0] * 8,
            [-22, -21.5, -20.5, -19.5, -18.5, -17, -15, -14],
            [8.5, 8, 6.5, 2.5, 5, 7, 8, 6],
            [7, 7, 7, 7.5, 7.5, 7, 6, 4],
        ),
        f,
    )


def esophagus_column() -> Column:
    """The collapsed oesophagus (about 18 x 9 mm): left of the midline, behind the trachea's
    wall and 1.5-3 mm in front of the vertebral bodies, from the cricoid down."""
    return Column(
        [-600, -300, -260, -220, -200, -170, CRICOID_BOTTOM_Z],
        [4, 4, 4, 4, 3.5, 3, 2],
        [5, -1.5, -2.5, -4, -5, -6, -5.5],
        [9, 9, 9, 9, 9, 8.5, 7.5],
        4.5,
    )


def submandibular_glands(v: Variation, rng: np.random.Generator) -> list[Structure]:
    """Submandibular glands under the mandible's body, medial to it, in a little fat.

    About 3.5 cm long (anteromedially oblique, along the mandible), 2.5 cm wide and 3 cm high;
    each gland has its own size factor. Painted before the mandible, which covers their top.
    """
    out: list[Structure] = []
    for side, s in SIDES:
        f = v.factor(f"Glnd_Submand_{side}", 0.1)
        gland = Bumpy(
            Ellipsoid((s * 32, -20, -96), (11 * f, 16 * f, 13 * f), (0, 0, -s * 15)),
            1.0,
            18.0,
            rng,
        )
        out += [
            Structure("submandibular_fat", gland.grown(2.5), FAT),
            Structure(f"Glnd_Submand_{side}", gland, SUBMANDIBULAR, label(f"Glnd_Submand_{side}")),
        ]
    return out


def neck_viscera(v: Variation, rng: np.random.Generator) -> list[Structure]:
    """Pharynx, larynx, hyoid, oesophagus, trachea and thyroid gland, in painting order.

    The larynx is labelled whole (lumen, cartilages, fat spaces); the pharyngeal air and the
    hyoid, painted after it, are not larynx. The trachea has a 2 mm wall, the oesophagus lies
    behind it in a thin fat plane. The thyroid gland is cut around larynx, trachea and
    oesophagus instead of covering them.
    """
    fl = v.factor("Larynx", 0.06)
    envelope = larynx_envelope(fl)
    lumen = _larynx_lumen(fl)
    lab = label("Larynx")
    # The cricoid's upper edge slopes: low in front (arch, z -145), high behind (lamina, -134).
    below_cricoid_top = HalfSpace((0, -0.524, 1), (0, -10 * fl, -134))
    cricoid = Subtract(  # a ring round the subglottic lumen, its lamina behind it taller
        Union(
            [
                Intersect(envelope.shell(2.5), below_cricoid_top),
                Intersect(
                    Intersect(envelope, HalfSpace((0, -1, 0), (0, -15 * fl, 0))), _below(-134)
                ),
            ]
        ),
        lumen,
    )
    thyroid_cartilage = Intersect(
        Intersect(envelope.shell(2.2), HalfSpace((0, 1, 0), (0, -12 * fl, 0))),
        Intersect(_above(-141), _below(-106)),
    )
    out = [
        Structure("Larynx", envelope, MUCOSA, lab),
        Structure("preepiglottic_fat", Ellipsoid((0, -23.5 * fl, -106), (8, 4.5, 8)), FAT, lab),
    ]
    out += [
        Structure("paraglottic_fat", Ellipsoid((s * 10 * fl, -19 * fl, -113), (4, 6, 7)), FAT, lab)
        for _, s in SIDES
    ]
    out += [
        Structure("pharynx", pharynx(), AIR),
        Structure("laryngeal_lumen", lumen, AIR, lab),
        Structure("thyroid_cartilage", thyroid_cartilage, CARTILAGE, lab),
        Structure("cricoid", cricoid, CARTILAGE, lab),
    ]
    out += [
        Structure("arytenoid", Ellipsoid((s * 5 * fl, -9.5 * fl, -129), (3, 3, 5)), CARTILAGE, lab)
        for _, s in SIDES
    ]
    out.append(
        Structure(
            "hyoid",
            Tube(
                spline(
                    [
                        (-20, -8, -100),
                        (-12, -24, -100),
                        (0, -30, -100),
                        (12, -24, -100),
                        (20, -8, -100),
                    ]
                ),
                2.5,
            ),
            CORTICAL,
        )
    )
    oesophagus = esophagus_column()
    out += [
        Structure("periesophageal_fat", oesophagus.grown(1.0), FAT),  # a thin fat plane
        Structure(
            "tracheal_wall", Intersect(trachea().grown(2.0), _below(CRICOID_BOTTOM_Z)), MUCOSA
        ),
        Structure("Esophagus", oesophagus, ESOPHAGUS, label("Esophagus")),
    ]
    air = v.uniform("esophagus_air_mm", 0.0, 2.0)  # a tiny air pocket in the lumen, or none
    if air > 1.0:
        out.append(
            Structure(
                "esophagus_air",
                Ellipsoid((3, -6, -172), (2.5 * air, 0.8 * air, 4.0 * air)),
                AIR,
                label("Esophagus"),
            )
        )
    out.append(Structure("trachea", trachea(), AIR))
    ft = v.factor("Glnd_Thyroid", 0.12)
    gland = Union(
        [
            *(Ellipsoid((s * 17.5, -19, -158), (8.8 * ft, 10.3 * ft, 23 * ft)) for _, s in SIDES),
            Ellipsoid((0, -31.5, -160), (12 * ft, 3.2 * ft, 6.5 * ft)),  # isthmus
        ],
        smooth=4.0,
    )
    around = Union([trachea().grown(2.0), envelope.grown(0.5), oesophagus.grown(1.5)])
    out.append(
        Structure(
            "Glnd_Thyroid",
            Subtract(Bumpy(gland, 1.0, 16.0, rng), around),
            THYROID,
            label("Glnd_Thyroid"),
        )
    )
    return out


def _above(z: float) -> HalfSpace:
    return HalfSpace((0, 0, -1), (0, 0, z))


def _below(z: float) -> HalfSpace:
    return HalfSpace((0, 0, 1), (0, 0, z))
