"""Thorax phantom parts: tissues, the rib cage's frame, body wall, lungs and skeleton.

Model space: mm, LPS axes (x to the patient's left, y posterior, z superior), origin on the
midline at the height of the carina (the T4/T5 disc, level with the sternal angle). The patient
lies supine with the arms raised above the head, as for thoracic radiotherapy.

Most parts hang on one :class:`Frame`, the inner surface of the rib cage (an elliptic column whose
width and depth vary with height), so that lungs, ribs, sternum and body outline stay consistent
when a case is made wider, deeper or fatter.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from autocontour.organs import CHEST
from autocontour.phantoms._case import Variation
from autocontour.phantoms._render import Layer, Structure, Tissue
from autocontour.phantoms._shapes import (
    Box,
    Column,
    Ellipsoid,
    HalfSpace,
    Intersect,
    Shape,
    Tube,
    Union,
    spline,
)

# CT numbers (HU) and T1-weighted-like MR signal (fat and marrow bright, muscle grey, lung, air,
# cortical bone and flowing blood dark).
AIR = Tissue(-1000, 0.0)
LUNG = Tissue(-865, 0.03, 30, 0.01)
LUNG_DEPENDENT = Tissue(-820, 0.04, 30, 0.01)  # the posterior lung is denser lying supine
FAT = Tissue(-100, 0.92, 10, 0.03)
MUSCLE = Tissue(50, 0.32, 7, 0.02)
SKIN = Tissue(35, 0.45)
CORTICAL = Tissue(1250, 0.03, 120, 0.01)
CANCELLOUS = Tissue(300, 0.6, 80, 0.08)  # ribs, sternum, clavicles, scapulae, humeri
VERTEBRAL = Tissue(430, 0.55, 80, 0.08)  # vertebral bodies: dense trabecular bone
MARROW = Tissue(-30, 0.85, 30, 0.05)
CARTILAGE = Tissue(130, 0.3, 40, 0.02)
DISC = Tissue(75, 0.35, 5, 0.02)
CSF = Tissue(6, 0.1, 2, 0.01)
CORD = Tissue(33, 0.62, 2, 0.015)
BLOOD = Tissue(42, 0.12, 3, 0.02)
LIVER = Tissue(58, 0.45, 5, 0.02)
SPLEEN = Tissue(48, 0.38, 5, 0.02)
WALL = Tissue(45, 0.35, 4, 0.02)  # airway, oesophageal and gastric wall

SIDES = (("L", 1.0), ("R", -1.0))  # patient left is +x in LPS

# The inner surface of the rib cage (before the width and depth factors): levels z, half-width,
# half-depth and centre y. Wide and deep at the heart, narrowing to the thoracic inlet and the
# lung apices above the first ribs; it continues below the diaphragm as the abdominal cavity.
_CAV_Z = (-320.0, -200.0, -140.0, -80.0, -20.0, 30.0, 60.0, 85.0, 100.0, 114.0)
_CAV_RX = (128.0, 132.0, 136.0, 138.0, 136.0, 124.0, 106.0, 80.0, 58.0, 20.0)
_CAV_RY = (76.0, 79.0, 81.0, 81.0, 80.0, 75.0, 66.0, 53.0, 42.0, 16.0)
_CAV_BACK = (86.0, 86.0, 84.0, 82.0, 80.0, 78.0, 75.0, 68.0, 62.0, 40.0)  # posterior wall y

WALL_MM = 15.0  # muscle and ribs between the cavity and the subcutaneous fat
SPINE_Y = 40.0  # centre of the thoracic vertebral bodies


def label(name: str) -> int:
    return CHEST.by_name(name).label


@dataclass(frozen=True)
class Frame:
    """One case's rib cage: width factor ``w``, depth factor ``a`` and subcutaneous fat (mm).

    The depth factor moves the anterior chest wall only: the back lies on the couch and the spine
    keeps its place.
    """

    w: float
    a: float
    fat: float

    def at(self, z: float) -> tuple[float, float, float]:
        """(half-width, half-depth, centre y) of the cavity at height ``z``."""
        rx = float(np.interp(z, _CAV_Z, _CAV_RX)) * self.w
        ry = float(np.interp(z, _CAV_Z, _CAV_RY)) * self.a
        return rx, ry, float(np.interp(z, _CAV_Z, _CAV_BACK)) - ry

    def ring(self, t_deg: float, z: float, offset: float = 0.0) -> np.ndarray:
        """Point of the cavity's outline at ``z``, ``t_deg`` from the posterior midline towards +x.

        t = 0 is posterior, 90 lateral (patient left), 180 anterior; ``offset`` mm further out.
        """
        rx, ry, cy = self.at(z)
        t = np.radians(t_deg)
        return np.array([(rx + offset) * np.sin(t), cy + (ry + offset) * np.cos(t), z])

    def cavity(self) -> Shape:
        """The inside of the rib cage (and of the abdominal wall below it)."""
        levels = [self.at(z) for z in _CAV_Z]
        return Column(
            _CAV_Z,
            0,
            [c for _, _, c in levels],
            [r for r, _, _ in levels],
            [r for _, r, _ in levels],
        )

    def front(self, z: float) -> float:
        """y of the cavity's anterior wall on the midline at ``z``."""
        _, ry, cy = self.at(z)
        return cy - ry


def clavicle_path(f: Frame, s: float) -> np.ndarray:
    """Control points of a clavicle: S-shaped from the manubrium to the acromion, rising laterally."""
    y0 = f.front(48.0) - 2.0
    return np.array(
        [
            (s * 20, y0, 50),
            (s * 55, y0 - 9, 54),
            (s * 95, y0 + 2, 60),
            (s * 128, y0 + 26, 68),
            (s * 150, y0 + 52, 73),
        ],
        float,
    )


def outline(f: Frame) -> tuple[Shape, list[tuple[float, float, float]]]:
    """Skin surface of trunk, shoulders, neck and raised upper arms; couch support points."""
    zs = (-420.0, *_CAV_Z[1:8])
    levels = [f.at(z) for z in zs]
    grow = WALL_MM + f.fat
    trunk = Column(
        zs,
        0,
        [c - 4.0 for _, _, c in levels],
        [r + grow for r, _, _ in levels],
        [r + grow + 4.0 for _, r, _ in levels],
    )
    back_y = 100.0 + f.fat
    half_x = 0.78 * (levels[3][0] + grow)
    back = Box((0, back_y - 50, -150), (half_x, 50, 250), round_mm=45)
    parts: list[Shape] = [trunk, back]
    parts.append(Column([40, 95, 140, 400], 0, [8, 10, 14, 16], [95, 72, 60, 58], [72, 62, 56, 54]))
    for _, s in SIDES:
        parts += [
            Ellipsoid((s * 128, 12, 66), (58, 66, 52)),  # shoulder, deltoid
            Tube([(s * 150, 15, 70), (s * 128, 18, 200), (s * 108, 20, 400)], [50, 44, 40]),
            Tube(clavicle_path(f, s)[:4], 7.0 + 4.0 + f.fat),  # the clavicle under the skin
        ]
    support = [(0.0, back_y, z) for z in (-150.0, -50.0, 50.0)]
    support += [(s * 0.6 * half_x, back_y, -50.0) for _, s in SIDES]
    return Union(parts, smooth=30.0), support


def body_wall(f: Frame, body: Shape) -> list[Structure]:
    """Skin and subcutaneous fat, then the muscle under it (chest wall, back, shoulders, arms)."""
    return [
        Structure("body", body, FAT, layers=(Layer(0.0, SKIN, 0, 2.0),)),
        Structure("muscle", body.grown(-f.fat), MUSCLE),
        # the fascial fat plane between the superficial muscles (pectoral, latissimus, trapezius)
        # and the deep ones on the ribs
        Structure("fascia", body.grown(-f.fat - 9.0).shell(2.5), FAT),
    ]


def domes(v: Variation) -> dict[str, Shape]:
    """The two domes of the diaphragm (the upper abdomen under them), right higher than left."""
    shift = v.uniform("diaphragm_mm", -12.0, 12.0)  # breathing phase
    top = {"R": -100.0 + shift, "L": -112.0 + shift}
    return {side: Ellipsoid((s * 52, 2, top[side] - 125), (108, 112, 125)) for side, s in SIDES}


def abdomen(f: Frame, dome: dict[str, Shape]) -> list[Structure]:
    """Diaphragm muscle, liver under the right dome, spleen and stomach (with gas) under the left."""
    cavity = f.cavity()
    both = Union([dome["R"], dome["L"]])
    stomach = Ellipsoid((62, -25, -150), (42, 35, 45))
    return [
        Structure("diaphragm", Intersect(cavity, both.grown(5.0)), MUSCLE),
        Structure("upper_abdomen", Intersect(cavity, both), SPLEEN),
        Structure(
            "liver",
            Intersect(cavity, Intersect(dome["R"], HalfSpace((1, 0, 0), (25, 0, 0)))),
            LIVER,
        ),
        Structure(
            "stomach",
            Intersect(Intersect(cavity, dome["L"].grown(-6.0)), stomach),
            WALL,
            layers=(Layer(4.0, Tissue(20, 0.25, 5, 0.03)),),
        ),
        Structure(
            "stomach_gas",
            Intersect(
                Intersect(stomach.grown(-4.0), dome["L"].grown(-10.0)),
                HalfSpace((0, 1, 0), (0, -28, 0)),
            ),
            AIR,
        ),
    ]


def lungs(f: Frame, dome: dict[str, Shape]) -> dict[str, Shape]:
    """Each lung: its half of the cavity above the diaphragm (the mediastinum is painted over)."""
    upper = Intersect(f.cavity(), HalfSpace((0, 0, -1), (0, 0, -190)))
    above = Union([dome["R"], dome["L"]]).grown(5.0)
    return {
        side: Intersect(upper, HalfSpace((-s, 0, 0), (s * 1.5, 0, 0))) - above for side, s in SIDES
    }


def lung_structures(lung: dict[str, Shape], rng: np.random.Generator) -> list[Structure]:
    """Aerated lungs, denser posteriorly, with lobar bronchi and pulmonary vessels branching out.

    Vessels and bronchi carry the lung's label (lung contours include the intrapulmonary ones);
    the hilar vessels and main bronchi, painted later with the mediastinum, clear it.
    """
    out: list[Structure] = []
    dependent = HalfSpace((0, -1, 0), (0, 40, 0))
    for side, _ in SIDES:
        lab = label(f"Lung_{side}")
        out += [
            Structure(f"Lung_{side}", lung[side], LUNG, lab),
            Structure(f"Lung_{side}", Intersect(lung[side], dependent), LUNG_DEPENDENT, lab),
        ]
    for side, s in SIDES:
        lab = label(f"Lung_{side}")
        inside = lung[side].grown(-2.0)
        hilum = np.array([s * 38.0, 6.0, -16.0])
        out += [
            Structure("lobar_bronchus", Intersect(tube, inside), WALL, lab, (Layer(1.5, AIR, lab),))
            for tube in _bronchi(hilum, s)
        ]
        out += [
            Structure("lung_vessel", Intersect(tube, inside), BLOOD, lab)
            for tube in _vessel_tree(hilum, s, rng)
        ]
    return out


def _bronchi(hilum: np.ndarray, s: float) -> list[Shape]:
    """Upper- and lower-lobe bronchi (and the middle-lobe one on the right) from the hilum."""
    ends = [(s * 62, 8, 35), (s * 70, 30, -70), (s * 72, -40, -45 if s < 0 else -30)]
    return [Tube([hilum, end], [5.0, 3.0]) for end in ends]


def _vessel_tree(hilum: np.ndarray, s: float, rng: np.random.Generator) -> list[Shape]:
    """Pulmonary vessels from the hilum: branching trees and short peripheral segments.

    Eight trunks run to the lung's regions and branch three times, tapering from 6 mm to under
    1 mm radius; the peripheral segments point away from the hilum and thin with distance. Small
    neighbouring tubes come as one union, which renders faster than many tiny structures.
    """
    targets = [
        (s * 62, 25, 85),
        (s * 95, -48, 30),
        (s * 118, 5, -20),
        (s * 95, -58, -60),
        (s * 80, 55, -115),
        (s * 112, 45, 35),
        (s * 60, -30, 55),
        (s * 110, -10, -95),
    ]

    def tube(start: np.ndarray, end: np.ndarray, radii: list[float]) -> Shape:
        bend = (start + end) / 2 + rng.normal(0.0, 0.08 * np.linalg.norm(end - start), 3)
        return Tube(spline([start, bend, end], per_span=3 if radii[0] > 3 else 2), radii)

    def children(
        start: np.ndarray, end: np.ndarray, radii: list[float], n: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray, list[float]]]:
        axis = (end - start) / np.linalg.norm(end - start)
        for _ in range(n):
            fork = start + (end - start) * rng.uniform(0.3, 0.85)
            d = axis + rng.normal(0.0, 0.75, 3)
            d *= rng.uniform(0.4, 0.6) * np.linalg.norm(end - start) / np.linalg.norm(d)
            yield fork, fork + d, [0.65 * radii[0], 0.6 * radii[-1] + 0.15]

    shapes: list[Shape] = []
    for target in targets:
        end = np.asarray(target, float) + rng.normal(0.0, 8.0, 3)
        radii = [6.0, 2.2]
        shapes.append(tube(hilum, end, radii))
        for a, b, r in children(hilum, end, radii, 3):
            group = [tube(a, b, r)]
            for a2, b2, r2 in children(a, b, r, 3):
                group.append(tube(a2, b2, r2))
                group += [tube(a3, b3, r3) for a3, b3, r3 in children(a2, b2, r2, 2)]
            shapes.append(Union(group))
    for _ in range(15):
        centre = rng.normal(0.0, 1.0, 3) * (1.0, 1.0, 1.6)
        centre[0] = s * abs(centre[0]) * 1.5
        group = []
        for _ in range(6):
            d = centre / np.linalg.norm(centre) + rng.normal(0.0, 0.25, 3)
            d /= np.linalg.norm(d)
            r = rng.uniform(30.0, 130.0)
            p = hilum + d * r
            group.append(Tube([p - d * 12.0, p + d * 12.0], [max(2.4 - 0.012 * r, 0.8), 0.7]))
        shapes.append(Union(group))
    return shapes


def _body_size(z: float) -> tuple[float, float]:
    """Half-width and half-depth (mm) of the vertebral body at height ``z``: larger caudally."""
    zr = (-330.0, -200.0, 0.0, 84.0, 200.0)
    return float(np.interp(z, zr, (23, 21, 17, 15, 11))), float(
        np.interp(z, zr, (17, 16, 14, 12, 9))
    )


def _vertebra(z: float, cy: float, half_h: float) -> Shape:
    """Vertebral body (a short elliptic cylinder) with pedicles, laminae and processes.

    The spinal canal (about 16 mm wide) is painted into it afterwards.
    """
    rx, ry = _body_size(z)
    back = cy + ry
    parts: list[Shape] = [Column([z - half_h, z + half_h], 0, cy, rx, ry)]
    for _, s in SIDES:
        transverse = [(s * 11, back + 10, z + 3), (s * (rx + 20), back + 16, z + 4)]
        parts += [
            Tube([(s * 11, back - 6, z + 2), (s * 11, back + 10, z + 2)], 4.0),  # pedicle
            Tube([(s * 11, back + 12, z + 1), (0, back + 22, z - 1)], 3.5),  # lamina
            Tube(transverse, 4.5),
        ]
    parts.append(Tube([(0, back + 22, z - 1), (0, back + 40, z - 16)], 4.0))  # spinous, sloping
    return Union(parts)


def spine(v: Variation) -> list[Structure]:
    """Thoracic spine (with the last cervical and first lumbar vertebrae), discs, canal, cord."""
    zc = [-330.0, -200.0, -60.0, 60.0, 130.0, 200.0]
    yc = [SPINE_Y - 8, SPINE_Y - 2, SPINE_Y + 3, SPINE_Y, SPINE_Y - 8, SPINE_Y - 14]  # kyphosis
    sizes = [_body_size(z) for z in zc]
    out = [
        Structure(
            "discs",
            Column(zc, 0, yc, [rx - 1 for rx, _ in sizes], [ry - 1 for _, ry in sizes]),
            DISC,
        ),
        Structure(
            "paravertebral",
            Column(zc, 0, [y + 32 for y in yc], 46, 30),
            MUSCLE,
        ),
    ]
    levels = [84.0 - 24.0 * k for k in range(-3, 12)] + [-208.0 - 28.0 * k for k in range(5)]
    for z in levels:
        half_h = 11.0 if z < -190 else 8.5 if z > 100 else 9.5
        vert = _vertebra(z, float(np.interp(z, zc, yc)), half_h)
        out.append(Structure("vertebra", vert, CORTICAL, layers=(Layer(1.8, VERTEBRAL),)))
    canal_y = [y + ry + 11 for y, (_, ry) in zip(yc, sizes, strict=True)]
    fs = v.factor("cord", 0.1)
    out += [
        Structure("spinal_canal", Column(zc, 0, canal_y, 8.5, 7.5), CSF),
        Structure("spinal_cord", Column(zc, 0, canal_y, 5.0 * fs, 4.0 * fs), CORD),
    ]
    return out


# Per rib (1..12): height drop from the posterior angle to the anterior end (mm), the angle of the
# anterior end from the posterior midline (degrees), and for ribs 1-7 the height at which the
# costal cartilage meets the sternum.
_RIB_DROP = (40, 58, 64, 70, 76, 80, 84, 86, 84, 76, 50, 26)
_RIB_END = (148, 150, 150, 150, 150, 150, 148, 146, 140, 132, 112, 86)
_STERNAL = (38.0, 0.0, -22.0, -42.0, -62.0, -82.0, -100.0)


def _rib(f: Frame, z_head: float, k: int, s: float) -> tuple[Shape, np.ndarray]:
    """Rib k (0-based) on side s: head at the vertebra, round the cavity 7 mm outside its wall."""
    drop, t_end = _RIB_DROP[k], _RIB_END[k]
    pts = [
        np.array([s * 19.0, SPINE_Y + 2, z_head]),
        np.array([s * 38.0, SPINE_Y + 28, z_head - 1]),
    ]
    for t in np.linspace(28.0, t_end, 7):
        u = (t - 28.0) / (t_end - 28.0)
        z = z_head - 2.0 - drop * u**1.1
        pts.append(f.ring(float(t), z, 7.0))
    return Tube(spline(pts, per_span=3), 4.2, (1.0, 1.0, 1.45)), pts[-1]


def rib_cage(v: Variation, f: Frame) -> list[Structure]:
    """Twelve pairs of ribs, costal cartilages and the sternum (manubrium, body, xiphoid)."""
    shift = v.uniform("rib_shift_mm", -6.0, 6.0)
    zs = (-128.0, -108.0, -98.0, -2.0, 2.0, 40.0, 49.0)
    half_w = (4.0, 8.0, 14.0, 15.0, 19.0, 26.0, 22.0)
    half_d = (3.0, 4.0, 6.0, 6.0, 7.0, 8.5, 7.0)
    sternum = Column(
        zs, 0, [f.front(z) - 1.0 - d for z, d in zip(zs, half_d, strict=True)], half_w, half_d
    )
    out: list[Structure] = []
    for k in range(12):
        z_head = 84.0 - 24.0 * k + 8.0 + shift
        for _, s in SIDES:
            rib, end = _rib(f, z_head, k, s)
            out.append(Structure("rib", rib, CORTICAL, layers=(Layer(1.4, CANCELLOUS),)))
            if k < 7:
                z_att = _STERNAL[k] + shift / 2
                w_att = float(np.interp(z_att, zs, half_w))
                joint = np.array([s * w_att, f.front(z_att) - 4.0, z_att])
                mid = (end + joint) / 2 + np.array([0.0, -3.0, 0.0])
                cart = Tube(spline([end, mid, joint], per_span=3), [4.2, 4.0])
            elif k < 10:  # false ribs: cartilage rising to join the one above
                join = f.ring(165.0, end[2] + 26.0, 6.0)
                cart = Tube([end, join], [4.0, 3.5])
            else:
                continue
            out.append(Structure("costal_cartilage", cart, CARTILAGE))
    out.append(Structure("sternum", sternum, CORTICAL, layers=(Layer(1.5, CANCELLOUS),)))
    return out


def shoulder_girdle(v: Variation, f: Frame) -> list[Structure]:
    """Scapulae on the posterior ribs, humeral heads with the raised humeri, and the clavicles."""
    out: list[Structure] = []
    for side, s in SIDES:
        fc = v.factor(f"Clavicle_{side}", 0.08)
        path = clavicle_path(f, s)
        blade = Intersect(
            f.cavity().grown(20.0).shell(5.0),
            Ellipsoid((s * 100, 70, 12), (48, 60, 72), (0, 0, s * 10)),
        )
        head = np.array([s * 158.0, 22.0, 66.0])
        out += [
            Structure(
                "scapula",
                Union(
                    [
                        blade,
                        Tube(
                            [(s * 62, 92, 58), (s * 120, 70, 72), path[-1] + (0, 8, 4)],
                            [4.5, 5.5, 6.0],
                        ),
                        Ellipsoid((s * 138, 30, 64), (10, 16, 18)),  # glenoid
                        Tube([(s * 110, 58, 58), (s * 138, 30, 64)], 7.0),  # neck
                    ]
                ),
                CORTICAL,
                layers=(Layer(1.5, CANCELLOUS),),
            ),
            Structure(
                "humerus",
                Union(
                    [
                        Ellipsoid(head, (23, 23, 23)),
                        Tube([head, (s * 148, 24, 150), (s * 130, 26, 330)], [14, 11, 10]),
                    ]
                ),
                CORTICAL,
                layers=(Layer(2.0, CANCELLOUS),),
            ),
            Structure(
                "humeral_marrow", Tube([(s * 150, 24, 120), (s * 130, 26, 330)], 6.0), MARROW
            ),
            Structure(
                f"Clavicle_{side}",
                Tube(
                    spline(path, per_span=4),
                    np.array([8.5, 7.0, 6.0, 6.0, 7.5]) * fc,
                    (1.0, 0.85, 0.8),
                ),
                CORTICAL,
                label(f"Clavicle_{side}"),
                (Layer(1.6, CANCELLOUS, label(f"Clavicle_{side}")),),
            ),
        ]
    return out
