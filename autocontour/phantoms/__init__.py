"""Synthetic phantoms: the project's test, demo and experiment data.

Four sites, each a function of a seed (same seed and grid -> identical arrays):

* :func:`head_neck_case`: CT (int16 HU) + T1-like MR + the 31 HEAD_NECK structures (the 22
  StructSeg OARs, the cochleae, larynx, oesophagus, oral cavity, submandibular glands, thyroid
  gland and lips).
* :func:`pelvis_case`: CT + T2-like MR + PELVIS (prostate for male, cervical CTV for female cases).
* :func:`thorax_case`: a 3-D chest CT + T1-like MR + the CHEST structures (lungs, heart and
  clavicles), site "thorax" (aliases "chest-ct", "thorax-ct").
* :func:`chest_case`: a 2-D chest radiograph (1, size, size) with lungs, heart and clavicles
  (site "chest").

And, for the multi-modal lesion synthesis, :func:`brain_lesion_case`: a 2-D brain slice rendered
as CT, T1, T2 and FLAIR with tumours (core, oedema) and their labels, written by
:func:`write_lesion_cases` in the generic multi-modal layout (site "brain-lesion" of
``autocontour phantom``; not a :class:`PhantomCase`, so not made by :func:`make_case`).

:func:`make_case` picks one by site name, for the CLI and the experiments.
"""

from __future__ import annotations

from typing import Any

from autocontour.errors import InvalidInputError, look_up_option, normalise_name
from autocontour.phantoms._case import PhantomCase
from autocontour.phantoms.brain_lesion import LesionCase, brain_lesion_case, write_lesion_cases
from autocontour.phantoms.chest import chest_case
from autocontour.phantoms.head_neck import DEFAULT_SHAPE_HN, head_neck_case
from autocontour.phantoms.pelvis import DEFAULT_SHAPE_PELVIS, pelvis_case
from autocontour.phantoms.thorax import DEFAULT_SHAPE_THORAX, thorax_case

SITES = ("head-neck", "pelvis", "chest", "thorax")
_ALIASES = {
    "hn": "head-neck",
    "headneck": "head-neck",
    "head-and-neck": "head-neck",
    "abdomen": "pelvis",
    "cervix": "pelvis",
    "prostate": "pelvis",
    "jsrt": "chest",
    "cxr": "chest",
    "chest-ct": "thorax",
    "thorax-ct": "thorax",
}


def make_case(
    site: str, seed: int, shape: tuple[int, int, int] | None = None, **kw: Any
) -> PhantomCase:
    """A phantom case of ``site`` ("head-neck", "pelvis", "chest", "thorax", or an alias: "hn").

    "chest" is the 2-D radiograph; "thorax" (alias "chest-ct") the 3-D chest CT of the same organs.

    Args:
        site: which phantom; case, spaces and underscores do not matter.
        seed: case number.
        shape: (z, y, x) grid, or None for the site's default; for the chest (1, size, size).
        **kw: passed on, e.g. ``sex="female"`` for the pelvis.

    Raises:
        UnknownOptionError: an unknown site (the message lists the choices and the closest one).
        InvalidInputError: a chest shape that is not (1, size, size).
    """
    key = look_up_option("phantom site", site, SITES, normalise=normalise_name, aliases=_ALIASES)
    if key == "chest":
        if shape is not None:
            if len(shape) != 3 or shape[0] != 1 or shape[1] != shape[2]:
                raise InvalidInputError(f"a chest image has shape (1, size, size), got {shape!r}")
            kw["size"] = shape[1]
        return chest_case(seed, **kw)
    builders = {"head-neck": head_neck_case, "pelvis": pelvis_case, "thorax": thorax_case}
    if kw.get("sex") is not None and key != "pelvis":
        raise InvalidInputError(f"--sex is for pelvis phantoms (prostate or cervix), not {key}")
    kw = {k: v for k, v in kw.items() if not (k == "sex" and v is None)}
    builder = builders[key]
    return builder(seed, shape, **kw) if shape is not None else builder(seed, **kw)


__all__ = [
    "DEFAULT_SHAPE_HN",
    "DEFAULT_SHAPE_PELVIS",
    "DEFAULT_SHAPE_THORAX",
    "SITES",
    "LesionCase",
    "PhantomCase",
    "brain_lesion_case",
    "chest_case",
    "head_neck_case",
    "make_case",
    "pelvis_case",
    "thorax_case",
    "write_lesion_cases",
]
