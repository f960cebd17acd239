"""Multi-modal 2-D brain phantoms with tumour-like lesions, for the lesion-guided synthesis (E).

Why a brain slice: the source (seed 003) builds its multi-modal synthesis on BRATS (T1, T2, T1c and
FLAIR of the same axial brain slice, with tumour labels), so the phantom is an axial brain slice
with the structures that shape those images: scalp, skull, a thin layer of cerebrospinal fluid
(CSF) under the skull, a folded grey-matter cortex, white matter, deep grey nuclei, the lateral
ventricles and one or two tumours. Each tumour has a core (optionally with a necrotic centre) and
a rim of oedema. The one anatomy is rendered as

* ``CT``: Hounsfield units (bright skull, grey/white matter a few HU apart, hypodense oedema);
* ``T1``: T1-like MR (white matter brighter than grey matter, dark CSF, hypointense tumour);
* ``T2``: T2-like MR (bright CSF, hyperintense tumour and oedema);
* ``FLAIR``: FLAIR-like MR (T2 contrast with the CSF suppressed: oedema the brightest tissue).

Tumour contrast is drawn per tumour and per modality, so lesions differ from case to case and from
modality to modality; labels are exactly co-registered (one anatomy, one grid). MR images get a
smooth bias field and Rician noise, CT correlated noise (the finishing steps of the 3-D phantoms,
:mod:`autocontour.phantoms._imaging`).

Labels (``lesion``): 0 background, 1 tumour core (with necrosis), 2 oedema; ``lesion > 0`` is the
whole lesion. ``brain``: 1 inside the brain (grey and white matter, ventricles, deep nuclei: where
lesions may be), 0 elsewhere; it is the organ mask that lesion labels are filtered with.
Arrays are (1, size, size) Volumes (z, y, x) on an axial grid of 240 mm field of view; y grows to
the patient's back, x to the patient's left (DICOM LPS, as the 3-D phantoms).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autocontour.errors import InvalidInputError, OutputExistsError
from autocontour.io import write_volume
from autocontour.io.volume import Volume
from autocontour.phantoms._case import Variation, frame_uid
from autocontour.phantoms._imaging import finish_ct, finish_mr
from autocontour.phantoms._render import grid_geometry, texture
from autocontour.phantoms._shapes import Box, Bumpy, Ellipsoid, Shape

#: The modalities rendered, in this order (the condition index i of the synthesis is the position).
MODALITIES = ("CT", "T1", "T2", "FLAIR")
FOV_MM = 240.0
DEFAULT_SIZE = 128  # pixels per side (1.9 mm), the size the synthesis experiments use
_FLAT = 1e4  # ellipsoid radius along the unused z axis: an ellipse in the plane

#: Mean intensity of each tissue per modality: CT in HU, MR in arbitrary units (about 0..1). The
#: skull on MR (dark tables, brighter marrow) and the suppressed CSF on FLAIR are kept at 0.14 or
#: more, well above the air's noise floor, so that a foreground threshold separates head from air.
TISSUES: dict[str, dict[str, float]] = {
    "air": {"CT": -1000.0, "T1": 0.0, "T2": 0.0, "FLAIR": 0.0},
    "scalp": {"CT": 20.0, "T1": 0.75, "T2": 0.45, "FLAIR": 0.55},
    "skull": {"CT": 1100.0, "T1": 0.18, "T2": 0.14, "FLAIR": 0.14},
    "csf": {"CT": 8.0, "T1": 0.15, "T2": 0.95, "FLAIR": 0.15},
    "grey": {"CT": 40.0, "T1": 0.45, "T2": 0.58, "FLAIR": 0.52},
    "white": {"CT": 28.0, "T1": 0.66, "T2": 0.40, "FLAIR": 0.38},
    "deep": {"CT": 37.0, "T1": 0.52, "T2": 0.50, "FLAIR": 0.47},
}
#: Ranges (lo, hi) from which each tumour's core, necrosis and oedema intensities are drawn.
LESION_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "core": {"CT": (22.0, 60.0), "T1": (0.22, 0.40), "T2": (0.68, 0.88), "FLAIR": (0.66, 0.92)},
    "necrosis": {"CT": (10.0, 20.0), "T1": (0.14, 0.22), "T2": (0.85, 0.98),
                 "FLAIR": (0.20, 0.40)},
    "oedema": {"CT": (12.0, 22.0), "T1": (0.42, 0.55), "T2": (0.66, 0.82),
               "FLAIR": (0.78, 0.95)},
}
#: Display range (lo, hi) of each modality: what :func:`to_unit` maps to 0..1. CT: a wide
#: soft-tissue window (fat 0, bone 1); MR: the intensity scale above.
DISPLAY_RANGE: dict[str, tuple[float, float]] = {
    "CT": (-100.0, 150.0), "T1": (0.0, 1.0), "T2": (0.0, 1.0), "FLAIR": (0.0, 1.0)}


@dataclass(frozen=True)
class LesionCase:
    """One multi-modal phantom slice.

    Attributes:
        case_id: e.g. "brain_s0007".
        images: modality name -> image Volume (1, size, size); all on one grid.
        lesion: uint8 Volume, 0 background, 1 tumour core, 2 oedema.
        brain: uint8 Volume, 1 inside the brain (the organ lesions may lie in).
        meta: JSON-serialisable record of the seed, per-case factors and the lesions drawn.
    """

    case_id: str
    images: dict[str, Volume]
    lesion: Volume
    brain: Volume
    meta: dict[str, Any]


def to_unit(image: np.ndarray, modality: str) -> np.ndarray:
    """An image of ``modality`` mapped to float32 0..1 by its :data:`DISPLAY_RANGE` (clipped).

    Raises:
        InvalidInputError: an unknown modality.
    """
    if modality not in DISPLAY_RANGE:
        raise InvalidInputError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    lo, hi = DISPLAY_RANGE[modality]
    return np.clip((np.asarray(image, np.float32) - lo) / (hi - lo), 0.0, 1.0)


def _ellipse(cx: float, cy: float, rx: float, ry: float, deg: float = 0.0) -> Ellipsoid:
    return Ellipsoid((cx, cy, 0.0), (rx, ry, _FLAT), (0.0, 0.0, deg))


def _anatomy(var: Variation, rng: np.random.Generator) -> dict[str, Shape]:
    """The head's shapes (model mm, centred at 0); ``brain`` is where lesions may lie."""
    w, h = var.factor("head_width", 0.07), var.factor("head_length", 0.06)
    scalp_mm = var.uniform("scalp_mm", 4.0, 7.0)
    skull_mm = var.uniform("skull_mm", 5.0, 8.0)
    csf_mm = var.uniform("csf_mm", 1.5, 3.0)
    cortex_mm = var.uniform("cortex_mm", 3.0, 4.5)
    head = Bumpy(_ellipse(0.0, 0.0, 74.0 * w, 92.0 * h), 1.5, 90.0, rng)
    inner = head.grown(-(scalp_mm + skull_mm))
    brain = inner.grown(-csf_mm)
    # White matter: the brain less the cortex, its outline folded by the gyri (several mm deep).
    gyri = Bumpy(brain.grown(-cortex_mm), var.uniform("gyri_mm", 4.0, 6.5), 20.0, rng, waves=8)
    vent = var.factor("ventricles", 0.35)
    tilt = var.uniform("ventricle_tilt_deg", 8.0, 20.0)
    deep = var.factor("deep_nuclei", 0.12)
    return {
        "head": head,
        "skull": head.grown(-scalp_mm),
        "inner": inner,
        "brain": brain,
        "white": gyri,
        # The interhemispheric fissure: a thin sheet of CSF on the midline, front and back.
        "fissure": Box((0.0, -60.0, 0.0), (1.2, 38.0, _FLAT)),
        "fissure_back": Box((0.0, 62.0, 0.0), (1.2, 32.0, _FLAT)),
        "vent_L": _ellipse(7.0, -4.0, 4.5 * vent, 24.0, -tilt),
        "vent_R": _ellipse(-7.0, -4.0, 4.5 * vent, 24.0, tilt),
        "deep_L": _ellipse(22.0, 6.0, 9.0 * deep, 15.0 * deep, 15.0),
        "deep_R": _ellipse(-22.0, 6.0, 9.0 * deep, 15.0 * deep, -15.0),
    }


def _lesions(rng: np.random.Generator, brain: Shape, count: int) -> list[dict[str, Any]]:
    """Draw ``count`` tumours whose centres lie at least their radius (at most 25 mm, at least
    12 mm) inside the brain; drawn in model mm, so a seed gives the same tumours on any grid."""
    out: list[dict[str, Any]] = []
    for _ in range(count):
        radius = float(rng.uniform(5.0, 20.0))
        depth = max(12.0, min(radius, 25.0))
        for _try in range(200):
            cx, cy = (float(v) for v in rng.uniform(brain.lo[:2], brain.hi[:2]))
            point = (np.array([cx], np.float32), np.array([cy], np.float32),
                     np.zeros(1, np.float32))
            if float(brain.sdf(point)[0]) < -depth:
                break
        aspect = float(rng.uniform(0.65, 1.0))
        angle = float(rng.uniform(0.0, 180.0))
        core = Bumpy(_ellipse(cx, cy, radius, radius * aspect, angle),
                     float(rng.uniform(0.1, 0.25)) * radius, radius * 1.5, rng, waves=4)
        necrosis = (
            _ellipse(cx, cy, radius * 0.45, radius * aspect * 0.45, angle)
            if rng.uniform() < 0.5 and radius > 9.0 else None
        )
        oedema_mm = float(rng.uniform(2.0, 12.0))
        oedema = Bumpy(core.grown(oedema_mm), oedema_mm * 0.4, 20.0, rng, waves=4)
        contrast = {
            part: {m: float(rng.uniform(*LESION_RANGES[part][m])) for m in MODALITIES}
            for part in LESION_RANGES
        }
        out.append({
            "centre_mm": [round(cx, 2), round(cy, 2)],
            "radius_mm": round(radius, 2),
            "aspect": round(aspect, 3),
            "angle_deg": round(angle, 1),
            "necrosis": necrosis is not None,
            "oedema_mm": round(oedema_mm, 2),
            "contrast": {k: {m: round(v, 4) for m, v in c.items()} for k, c in contrast.items()},
            "shapes": {"core": core, "necrosis": necrosis, "oedema": oedema},
        })
    return out


def brain_lesion_case(
    seed: int,
    size: int = DEFAULT_SIZE,
    modalities: Sequence[str] = MODALITIES,
    lesions: int | None = None,
) -> LesionCase:
    """An axial brain slice rendered in each of ``modalities``, with tumours and their labels.

    Args:
        seed: case number; the same seed and size give identical arrays.
        size: pixels per side over a 240 mm field (128 gives 1.9 mm pixels).
        modalities: a subset of :data:`MODALITIES` (the anatomy does not depend on it).
        lesions: number of tumours (0, 1, 2, ...); None: 1 or 2 drawn by the seed.

    Raises:
        InvalidInputError: ``size`` below 32, an unknown or repeated modality, or a negative
            lesion count.
    """
    if int(size) < 32:
        raise InvalidInputError(f"brain phantom size must be at least 32 pixels, got {size!r}")
    mods = tuple(modalities)
    unknown = [m for m in mods if m not in MODALITIES]
    if unknown or not mods or len(set(mods)) != len(mods):
        raise InvalidInputError(
            f"modalities must be distinct names from {MODALITIES}, got {list(mods)}")
    if lesions is not None and int(lesions) < 0:
        raise InvalidInputError(f"the number of lesions must be 0 or more, got {lesions!r}")
    size = int(size)
    rng = np.random.default_rng([int(seed), 31])
    var = Variation(rng)
    shapes = _anatomy(var, rng)
    spin = np.radians(var.uniform("rotation_deg", -8.0, 8.0))
    shift = (var.uniform("shift_x_mm", -8.0, 8.0), var.uniform("shift_y_mm", -8.0, 8.0))

    pixel = FOV_MM / size
    axis = (np.arange(size) - (size - 1) / 2) * pixel
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    c, s = np.cos(spin), np.sin(spin)
    mx, my = c * (xx - shift[0]) + s * (yy - shift[1]), -s * (xx - shift[0]) + c * (yy - shift[1])
    p = (mx.astype(np.float32), my.astype(np.float32), np.zeros_like(mx, np.float32))
    d = {name: shape.sdf(p) for name, shape in shapes.items()}

    count = int(rng.integers(1, 3)) if lesions is None else int(lesions)
    drawn = _lesions(np.random.default_rng([int(seed), 32]), shapes["brain"], count)

    def cover(sdf: np.ndarray) -> np.ndarray:  # partial-volume weight, a one-pixel ramp
        return np.clip(0.5 - sdf / pixel, 0.0, 1.0).astype(np.float32)

    head, skull, inner = cover(d["head"]), cover(d["skull"]), cover(d["inner"])
    brain = cover(d["brain"])
    white = cover(d["white"]) * brain
    deep = np.maximum(cover(d["deep_L"]), cover(d["deep_R"])) * brain
    vent = np.maximum.reduce([cover(d[k]) for k in ("vent_L", "vent_R", "fissure",
                                                     "fissure_back")]) * brain
    brain_label = (d["brain"] < 0).astype(np.uint8)
    lesion_label = np.zeros((size, size), np.uint8)
    lesion_layers: list[tuple[dict[str, float], np.ndarray]] = []
    for les in drawn:
        sh = les["shapes"]
        oed = cover(sh["oedema"].sdf(p)) * brain
        core = cover(sh["core"].sdf(p)) * brain
        lesion_layers.append((les["contrast"]["oedema"], oed))
        lesion_layers.append((les["contrast"]["core"], core))
        lesion_label[(sh["oedema"].sdf(p) < 0) & (brain_label > 0) & (lesion_label == 0)] = 2
        lesion_label[(sh["core"].sdf(p) < 0) & (brain_label > 0)] = 1
        if sh["necrosis"] is not None:
            lesion_layers.append((les["contrast"]["necrosis"], cover(sh["necrosis"].sdf(p)) * core))

    geometry = grid_geometry((1, size, size), FOV_MM, 3.0,
                             frame_uid("brain-lesion", seed, (1, size, size)))
    tex = texture(int(seed), 33, 0, 1, (size, size), 1.2)[0]
    images: dict[str, Volume] = {}
    for k, mod in enumerate(MODALITIES):
        # Tissue painting: start from air, blend in each layer (outside in) by its partial-volume
        # fraction, so that later layers cover earlier ones.
        img = np.full((size, size), TISSUES["air"][mod], np.float32)
        layers = (("scalp", head), ("skull", skull), ("csf", inner), ("grey", brain),
                  ("white", white), ("deep", deep), ("csf", vent))
        for tissue, frac in layers:
            img += frac * (np.float32(TISSUES[tissue][mod]) - img)
        for contrast, frac in lesion_layers:
            img += frac * (np.float32(contrast[mod]) - img)
        lo, hi = DISPLAY_RANGE[mod]
        img += tex * np.float32(0.015 * (hi - lo)) * brain  # tissue inhomogeneity in the brain
        # Drawn for every modality, rendered or not, so the others stay the same.
        noise = var.uniform(f"{mod}_noise", *((3.0, 6.0) if mod == "CT" else (0.01, 0.025)))
        bias = var.uniform(f"{mod}_bias", 0.04, 0.12)
        if mod not in mods:
            continue
        if mod == "CT":
            out = finish_ct(img[None].copy(), int(seed) * 16 + k, noise)
            images[mod] = Volume(out, geometry, modality="CT")
        else:
            mr = finish_mr(img[None].copy(), geometry, int(seed) * 16 + k, noise, bias)
            images[mod] = Volume(mr, geometry, modality="MR")
    meta = {
        "seed": int(seed),
        "site": "brain-lesion",
        "shape": [1, size, size],
        "spacing_mm": list(geometry.spacing),
        "modalities": list(mods),
        "lesion_labels": {"1": "tumour core", "2": "oedema"},
        "lesions": [{k: v for k, v in les.items() if k != "shapes"} for les in drawn],
        "factors": dict(var.record),
    }
    return LesionCase(
        f"brain_s{int(seed):04d}",
        images,
        Volume(lesion_label[None], geometry, modality="SEG"),
        Volume(brain_label[None], geometry, modality="SEG"),
        meta,
    )


#: Name of the manifest of a multi-modal folder (read by :mod:`autocontour.data.multimodal`).
MANIFEST = "dataset.json"
LAYOUT = "autocontour-multimodal-1"
#: The site name ``autocontour phantom --site`` knows this phantom by, and its aliases.
SITE = "brain-lesion"
SITE_ALIASES = ("brain-lesion", "brain", "brats", "brain-tumour", "brain-tumor")


def write_lesion_cases(
    out: str | Path,
    cases: int,
    seed: int = 0,
    size: int = DEFAULT_SIZE,
    modalities: Sequence[str] = MODALITIES,
    on_case: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Write ``cases`` brain-lesion phantoms (seeds seed, seed+1, ...) as a multi-modal folder.

    Layout (the one :func:`autocontour.data.multimodal.load_multimodal_folder` reads; a user's
    BRATS-like data in this layout works the same way)::

        <out>/dataset.json               manifest: modalities, label meanings, display ranges, cases
        <out>/<case_id>/<MODALITY>.nii.gz  one image per modality (e.g. CT, T1, T2, FLAIR)
        <out>/<case_id>/lesion.nii.gz    lesion label (0 background, 1 core, 2 oedema)
        <out>/<case_id>/mask.nii.gz      organ mask (1 in the brain: where lesions may be)

    Args:
        on_case: called with each case's ID once it is written.

    Returns:
        The manifest written.

    Raises:
        InvalidInputError: fewer than one case, or bad phantom arguments.
        OutputExistsError: ``out`` already holds a manifest or a case folder to write (nothing
            is overwritten).
    """
    out = Path(out)
    if int(cases) < 1:
        raise InvalidInputError(f"the number of cases must be at least 1, got {cases!r}")
    if (out / MANIFEST).exists():
        raise OutputExistsError(f"{out / MANIFEST}: a data set is already there; choose another "
                                "folder")
    entries = []
    for i in range(int(cases)):
        case = brain_lesion_case(seed + i, size=size, modalities=modalities)
        folder = out / case.case_id
        if folder.exists() and any(folder.iterdir()):
            raise OutputExistsError(f"{folder}: already holds files; choose another folder")
        files = {m: write_volume(v, folder / f"{m}.nii.gz").name for m, v in case.images.items()}
        files["lesion"] = write_volume(case.lesion, folder / "lesion.nii.gz").name
        files["mask"] = write_volume(case.brain, folder / "mask.nii.gz").name
        entries.append({"case_id": case.case_id, "files": files, "meta": case.meta})
        if on_case is not None:
            on_case(case.case_id)
    manifest = {
        "layout": LAYOUT,
        "site": SITE,
        "source": "brain-lesion phantom (synthetic, autocontour.phantoms.brain_lesion)",
        "seed": int(seed),
        "modalities": list(modalities),
        "lesion_labels": {"1": "tumour core", "2": "oedema"},
        "mask": "brain (where lesions may lie)",
        "display_range": {m: list(DISPLAY_RANGE[m]) for m in modalities},
        "cases": entries,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest
