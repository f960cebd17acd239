"""The phantom job behind ``autocontour phantom``: synthetic cases written as a clinic's data.

Sites "head-neck", "pelvis", "thorax" and "chest" are written by
:func:`autocontour.phantoms.export.write_cases` (manifest ``phantoms.json``); "brain-lesion" (the
2-D multi-modal phantom with tumours of :mod:`autocontour.phantoms.brain_lesion`, CT, T1, T2 and
FLAIR NIfTI files, lesion label and brain mask per case) by its own writer, in the generic
multi-modal layout (manifest ``dataset.json``) that :mod:`autocontour.data.multimodal` reads.

Cases are generated and written into a temporary folder inside ``out`` and moved into place
only when every case and the ``phantoms.json`` manifest are complete, so an interrupted run
leaves nothing half-written; an existing phantom set is never overwritten.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autocontour.errors import InvalidInputError, OutputExistsError, normalise_name
from autocontour.jobs.base import CancelCheck, ProgressCallback, Reporter
from autocontour.jobs.checks import check_output_folder
from autocontour.paths import first_missing, remove_if_no_files
from autocontour.phantoms.brain_lesion import DEFAULT_SIZE as LESION_SIZE
from autocontour.phantoms.brain_lesion import MANIFEST as LESION_MANIFEST
from autocontour.phantoms.brain_lesion import SITE_ALIASES, write_lesion_cases
from autocontour.phantoms.export import write_cases


@dataclass(frozen=True)
class PhantomRequest:
    """Which phantoms to write.

    Attributes:
        site: "head-neck", "pelvis", "thorax" (3-D chest CT), "chest" (2-D radiograph) or
            "brain-lesion" (2-D multi-modal brain slice with tumours; NIfTI only).
        cases: how many (seeds seed, seed+1, ...).
        out: the output folder (one sub-folder per case, ``phantoms.json``).
        seed: the first case's seed.
        shape: the grid (z, y, x); None: the small test size. "brain-lesion": (1, n, n).
        sex: pelvis only: "male" (prostate) or "female" (cervix CTV); None: by seed.
        dicom: also write the DICOM CT series and the RTSTRUCT (NIfTI only otherwise).
    """

    site: str
    cases: int
    out: str | Path
    seed: int = 0
    shape: tuple[int, int, int] | None = None
    sex: str | None = None
    dicom: bool = True


@dataclass
class PhantomResult:
    """The folder written and its manifest (``phantoms.json``; ``dataset.json`` for brain-lesion)."""

    out: Path
    manifest: dict[str, Any]


def write_phantoms(request: PhantomRequest, progress: ProgressCallback | None = None,
                   cancel: CancelCheck | None = None) -> PhantomResult:
    """Generate and write the phantom cases.

    Raises:
        InvalidInputError: fewer than one case, an unknown site, ``out`` (or a folder above
            it) is a file, or ``out`` cannot be created; for "brain-lesion", a shape that is not
            (1, n, n) or a sex.
        UnknownOptionError: an unknown site or sex (with the closest one).
        OutputExistsError: ``out`` holds a phantom set, or a folder of a case to write.
        JobCancelled: ``cancel`` said stop (nothing written).
    """
    out = Path(request.out)
    if request.cases < 1:
        raise InvalidInputError(f"--cases must be at least 1, got {request.cases}")
    lesion_site = normalise_name(request.site) in SITE_ALIASES
    if lesion_site:
        if request.sex is not None:
            raise InvalidInputError("--sex is for pelvis phantoms (prostate or cervix), not "
                                    "brain-lesion")
        shape = request.shape
        if shape is not None and (len(shape) != 3 or shape[0] != 1 or shape[1] != shape[2]):
            raise InvalidInputError("a brain-lesion phantom is one square slice: --shape NxNx1, "
                                    f"got (z, y, x) = {shape!r}")
    check_output_folder(out, what="--out", must_be_empty=False)
    for name in ("phantoms.json", LESION_MANIFEST):
        if (out / name).exists():
            raise OutputExistsError(f"{out / name}: a phantom set is already there; "
                                    "choose another --out")
    reporter = Reporter([f"case {i}" for i in range(request.cases)], progress, cancel,
                        job="writing phantoms")
    created = first_missing(out)  # the top folder this job creates (removed on failure)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".phantoms.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if lesion_site:
            size = LESION_SIZE if request.shape is None else request.shape[1]
            manifest = write_lesion_cases(tmp, request.cases, seed=request.seed, size=size,
                                          on_case=reporter.finished)
        else:
            manifest = write_cases(request.site, request.cases, tmp, seed=request.seed,
                                   shape=request.shape, sex=request.sex, dicom=request.dicom,
                                   progress=False, on_case=reporter.finished)
        manifest_name = LESION_MANIFEST if lesion_site else "phantoms.json"
        taken = [e["case_id"] for e in manifest["cases"] if (out / e["case_id"]).exists()]
        if taken:
            raise OutputExistsError(f"{out / taken[0]}: already there; choose another --out")
        for entry in manifest["cases"]:
            os.replace(tmp / entry["case_id"], out / entry["case_id"])
        os.replace(tmp / manifest_name, out / manifest_name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_if_no_files(created)
    return PhantomResult(out, manifest)
