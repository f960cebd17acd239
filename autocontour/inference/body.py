"""The body outline (``External``, TG-263) of a CT, without a network.

Planning systems need an External to compute dose, and every commercial auto-contouring product
writes one. It is found from HU alone, in about 0.3 s for a 512x512x160 CT:

1. **Threshold**: voxels above ``threshold_hu`` (-500 HU: skin and everything denser; lung and
   air fall below it), on a coarse copy of each slice (pixels of about ``COARSE_MM``).
2. **Couch and thin objects**: the mask is opened with a ball of ``opening_mm`` radius (in 3-D,
   so that a chin or a nose, thin in one slice but thick across slices, survives), which breaks
   the tabletop's thin dense skins, thermoplastic masks and the thin bridges between the patient
   and them.
3. **Components in 3-D**: of what remains, the largest connected component is the patient; other
   components are kept when they hold at least ``keep_fraction`` of its voxels and
   ``min_part_cc`` (arms lying beside the trunk, legs that part below the pelvis), everything
   smaller is dropped (couch fittings, cables, separate immobilisation parts).
4. **Skin restored**: what the opening removed comes back where it lies within ``opening_mm`` of
   the kept components, so the opening does not shave the nose or the fingers; a removed part
   that lies mostly further away (the tabletop) stays out, also where it touches the patient.
5. **Holes** (lungs, bowel gas, the airway, the mouth) are filled slice by slice, then in 3-D:
   a cavity whose opening is narrower than about 16 mm (``cavity_mm`` x 2) counts as closed (a
   middle ear behind its ear canal, a sinus behind a nostril) where it lies deeper than
   ``cavity_mm`` under the surface; the opening itself stays outside. The outline is
   then taken back to the CT's own pixels: inside the coarse body everything is body, in the
   one-coarse-pixel band around its edge each full-resolution pixel is body when it is above the
   threshold.

The outline is computed on the CT's array slices (the planes its RTSTRUCT contours lie in), in
any patient orientation. Every organ the networks draw is clipped to it (an organ outside the
patient is an error by definition); what was clipped is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from autocontour.io.volume import Geometry, LabelMap, Volume
from autocontour.organs import Organ, OrganSet

EXTERNAL = Organ("External", 0, (0, 255, 128), "external", interpreted_type="EXTERNAL")
"""The body outline as an ROI: TG-263 name, RT ROI interpreted type EXTERNAL. Its label value is
0 because it is never a label of the organ maps (it overlaps every organ); writers give its ROI
the number after the organs'."""
BODY_SET = OrganSet("body", (replace(EXTERNAL, label=1),))
"""The outline as a one-organ label map's set (``body.nii.gz``, drawing): External is label 1."""
COARSE_MM = 3.0


@dataclass(frozen=True)
class BodySettings:
    """How the outline is found (see the module docstring).

    Attributes:
        threshold_hu: body is what is denser than this (HU).
        opening_mm: radius of the in-plane opening and of the skin restored after it.
        keep_fraction: a further component is kept when it has this share of the largest one's
            voxels ...
        min_part_cc: ... and at least this volume.
        cavity_mm: a cavity whose opening to the outside is narrower than about twice this
            counts as closed (filled).
    """

    threshold_hu: float = -500.0
    opening_mm: float = 5.0
    keep_fraction: float = 0.02
    min_part_cc: float = 30.0
    cavity_mm: float = 8.0


def _ellipsoid(radius_px: tuple[int, int, int]) -> np.ndarray:
    """A (2rz+1, 2ry+1, 2rx+1) ellipsoidal structuring element (rz may be 0: in-plane)."""
    rz, ry, rx = radius_px
    z, y, x = np.ogrid[-rz:rz + 1, -ry:ry + 1, -rx:rx + 1]
    return (z / max(rz, 1e-9)) ** 2 + (y / max(ry, 1e-9)) ** 2 + (x / max(rx, 1e-9)) ** 2 <= 1.0


def body_outline(ct: Volume, settings: BodySettings = BodySettings()) -> np.ndarray:
    """A boolean (z, y, x) mask of the patient's body on ``ct``'s own grid (see module doc).

    An image with no voxel above the threshold (an MR, a scaled image, an empty scan) gives an
    all-False mask; callers decide what that means.
    """
    array = ct.array
    sx, sy, _ = ct.spacing
    fy, fx = max(1, round(COARSE_MM / sy)), max(1, round(COARSE_MM / sx))
    coarse = array[:, ::fy, ::fx] > settings.threshold_hu
    if not coarse.any():
        return np.zeros(ct.shape, bool)
    csy, csx = sy * fy, sx * fx
    sz = ct.spacing[2]
    ball = _ellipsoid(_radius_px(settings.opening_mm, (csx, csy, sz)))
    opened = ndimage.binary_opening(coarse, structure=ball)
    if not opened.any():  # only thin structures (a tiny phantom): keep what was there
        opened = coarse
    parts, count = ndimage.label(opened)
    sizes = np.bincount(parts.ravel(), minlength=count + 1)[1:]
    voxel_cc = csx * csy * sz / 1000.0
    keep = (sizes >= settings.keep_fraction * sizes.max()) & (sizes * voxel_cc >= settings.min_part_cc)
    keep[np.argmax(sizes)] = True
    patient = np.concatenate([[False], keep])[parts]
    # skin the opening shaved off comes back; a removed part that lies mostly further from the
    # patient than the ball (the tabletop, a mask) stays out, also where it touches the patient
    near = ndimage.binary_dilation(patient, structure=ball)
    removed, count = ndimage.label(coarse & ~opened)
    total = np.bincount(removed.ravel(), minlength=count + 1)
    close = np.bincount(removed.ravel(), weights=near.ravel(), minlength=count + 1)
    restore = close >= 0.5 * total
    restore[0] = False
    foreign = (removed > 0) & ~restore[removed]
    patient |= restore[removed] & near
    patient = ndimage.binary_fill_holes(patient, structure=_cross())  # slice by slice
    # and in 3-D: the mask is closed with a ball of cavity_mm, which shuts narrow openings (an
    # ear canal, a nostril), filled, and eroded with the same ball, so that what is added lies
    # deeper than cavity_mm inside the closed surface (a middle ear), not at the surface (the
    # mouth of the canal, a skin fold). On every other coarse pixel: cavities are far larger
    # than the 6 mm this gives at most, and this is the dearest step.
    cavity = _ellipsoid(_radius_px(settings.cavity_mm, (2 * csx, 2 * csy, sz)))
    pad = [(r, r) for r in cavity.shape]
    closed = ndimage.binary_closing(np.pad(patient[:, ::2, ::2], pad), cavity)
    closed = closed[tuple(slice(r, -r) for r in cavity.shape)]
    deep = ndimage.binary_erosion(ndimage.binary_fill_holes(closed), cavity, border_value=1)
    patient |= _upsample(deep, 2, 2, patient.shape)
    core = ndimage.binary_erosion(patient, structure=_cross(), border_value=1)
    edge = ndimage.binary_dilation(patient, structure=_cross()) & ~core
    full = _upsample(core, fy, fx, ct.shape)
    band = _upsample(edge, fy, fx, ct.shape)
    if foreign.any():
        band &= ~_upsample(foreign, fy, fx, ct.shape)
    full |= band & (array > settings.threshold_hu)
    return full


def _radius_px(mm: float, spacing: tuple[float, float, float]) -> tuple[int, int, int]:
    """(z, y, x) radii in voxels of a ball of ``mm`` on a grid of (x, y, z) ``spacing``: at least
    one pixel in-plane, possibly 0 across thick slices."""
    sx, sy, sz = spacing
    return round(mm / sz), max(1, round(mm / sy)), max(1, round(mm / sx))


def _cross() -> np.ndarray:
    """The in-plane 4-neighbourhood as a (1, 3, 3) structure."""
    return ndimage.generate_binary_structure(2, 1)[None]


def _upsample(mask: np.ndarray, fy: int, fx: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Nearest-neighbour copy of a coarse (every fy-th row, fx-th column) mask onto ``shape``."""
    if fy == fx == 1:
        return mask.copy()
    rows = np.minimum(np.arange(shape[1]) // fy, mask.shape[1] - 1)
    cols = np.minimum(np.arange(shape[2]) // fx, mask.shape[2] - 1)
    # np.take keeps the result C-ordered; chained fancy indexing does not, and later
    # element-wise operations on a mixed-order pair are many times slower
    return np.ascontiguousarray(np.take(np.take(mask, rows, axis=1), cols, axis=2))


def body_labels(body: np.ndarray, geometry: Geometry) -> LabelMap:
    """The outline as a label map (1 inside) on ``geometry``, for writing and drawing it."""
    return LabelMap(body.view(np.uint8), geometry, organs=BODY_SET)


@dataclass(frozen=True)
class Clipped:
    """An organ's voxels that lay outside the body outline and were removed."""

    organ: str
    voxels: int
    volume_cc: float

    def to_dict(self) -> dict[str, object]:
        return {"organ": self.organ, "voxels": self.voxels, "volume_cc": round(self.volume_cc, 3)}


def clip_to_body(labels: LabelMap, body: np.ndarray) -> tuple[LabelMap, list[Clipped]]:
    """Remove every organ voxel outside ``body``; returns the clipped map and what was removed."""
    array = labels.array
    planes = np.flatnonzero(array.reshape(array.shape[0], -1).max(axis=1))
    if planes.size == 0:
        return labels, []
    box = slice(planes[0], planes[-1] + 1)  # the organs' slices: a fraction of a CT
    sub = array[box]
    outside = (sub > 0) & ~body[box]
    if not outside.any():
        return labels, []
    counts = np.bincount(sub[outside], minlength=max(labels.organs.labels) + 1)
    voxel_cc = float(np.prod(labels.spacing)) / 1000.0
    clipped = [Clipped(o.name, int(counts[o.label]), counts[o.label] * voxel_cc)
               for o in labels.organs if counts[o.label]]
    array = array.copy()
    array[box][outside] = 0
    return replace(labels, array=array), clipped
