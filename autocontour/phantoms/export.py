"""Write phantom cases to disk the way a clinic's data arrives: DICOM CT + RTSTRUCT, plus NIfTI.

Layout of one 3-D case folder::

    <case_id>/ct/            DICOM CT series, one file per 3 mm slice
    <case_id>/rtstruct.dcm   ground-truth RTSTRUCT referencing ct/
    <case_id>/ct.nii.gz      the same CT (HU)
    <case_id>/label.nii.gz   the ground truth as a label map (organ-set label values)
    <case_id>/mr.nii.gz      MR-like volume of the same anatomy on the same grid

A chest case (2-D radiograph) has ``image.nii.gz`` and ``label.nii.gz``. ``phantoms.json`` at the
top lists the cases, their seeds and the organ set, so a data set can be regenerated exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from autocontour.errors import InvalidInputError, OutputExistsError
from autocontour.io import write_volume
from autocontour.phantoms import PhantomCase, make_case


def write_case(case: PhantomCase, case_dir: Path, dicom: bool = True) -> dict[str, Any]:
    """Write one case into an empty or absent folder; returns its manifest entry.

    Raises:
        OutputExistsError: ``case_dir`` already holds files (nothing is touched).
    """
    if case_dir.exists() and any(case_dir.iterdir()):
        raise OutputExistsError(f"{case_dir}: already holds files; choose another --out")
    case_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    if case.site == "chest":
        files["image"] = write_volume(case.ct, case_dir / "image.nii.gz").name
    else:
        files["ct"] = write_volume(case.ct, case_dir / "ct.nii.gz").name
        if case.mr is not None:
            files["mr"] = write_volume(case.mr, case_dir / "mr.nii.gz").name
        if dicom:
            from autocontour.io import write_dicom_series, write_rtstruct
            ref = write_dicom_series(case.ct, case_dir / "ct", modality="CT",
                                     patient_id=case.case_id, patient_name=f"Phantom^{case.case_id}",
                                     series_description=f"{case.site} phantom CT",
                                     patient_sex={"male": "M", "female": "F"}.get(
                                         case.meta.get("sex", ""), ""))
            ct = replace(case.ct, dicom=ref)
            write_rtstruct(case.labels, ct, case_dir / "rtstruct.dcm",
                           series_description="phantom ground truth")
            files["dicom"], files["rtstruct"] = "ct", "rtstruct.dcm"
    files["label"] = write_volume(case.labels, case_dir / "label.nii.gz").name
    present = [o.name for o in case.labels.present()]
    return {"case_id": case.case_id, "files": files, "organs": present, "meta": case.meta}


def write_cases(site: str, cases: int, out: Path, seed: int = 0,
                shape: tuple[int, int, int] | None = None, sex: str | None = None,
                dicom: bool = True, progress: bool = True,
                on_case: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Generate ``cases`` phantoms with seeds seed, seed+1, ... and write them under ``out``.

    Args:
        on_case: called with each case's ID once it is written.

    Raises:
        InvalidInputError: fewer than one case.
        OutputExistsError: ``out`` already holds a phantom set.
    """
    if cases < 1:
        raise InvalidInputError(f"--cases must be at least 1, got {cases}")
    manifest_path = out / "phantoms.json"
    if manifest_path.exists():
        raise OutputExistsError(f"{manifest_path}: a phantom set is already there; choose "
                                "another --out")
    entries = []
    kwargs = {"sex": sex} if sex else {}
    for i in tqdm(range(cases), desc=f"{site} phantoms", unit="case", disable=not progress):
        case = make_case(site, seed + i, shape, **kwargs)
        entries.append(write_case(case, out / case.case_id, dicom=dicom))
        if on_case is not None:
            on_case(case.case_id)
    organs = case.labels.organs
    manifest = {"site": case.site, "seed": seed, "shape_zyx": list(case.labels.shape),
                "organ_set": organs.to_dict(), "cases": entries}
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return manifest
