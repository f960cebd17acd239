"""What a contouring run leaves in its output folder, for the planning system and for people.

==================== ==========================================================================
file                 content
==================== ==========================================================================
rtstruct.dcm         RT Structure Set referencing the input series (for NIfTI/NRRD/HDF5 input:
                     the series written to ``ct/`` beside it, so both import together): the
                     organs, then the body outline ``External`` (RT ROI interpreted type
                     EXTERNAL); when no organ was found it holds no organ and report.json warns
ct/                  only for non-DICOM input: the CT as a DICOM series
seg.dcm              the same organs as a DICOM-SEG (binary segments); absent when none found
labels.nii.gz        the label map on the input grid (label values of the organ set)
body.nii.gz          the body outline on the input grid (1 inside), when one was found
overview.png         a few slices with the contours, for a glance before import
pseudo_mri.nii.gz    only with ``predict --pseudo-mri`` (a CT + pseudo-MRI model): the pseudo-MRI
                     the networks saw, on the input grid; ``pseudo_mri/`` the same as a DICOM
                     MR series in the CT's study and Frame of Reference (DICOM input only)
report.json          organs found and their volumes (cm³, with a ``flag`` when the anatomy
                     checks doubt them), organs not found, organs removed as clearly wrong
                     (with the reason), the body outline's volume and what of each organ lay
                     outside it (``body``), ``safety`` (the CT's body regions, whether a refusal
                     was forced), time per stage, warnings, the model, the files written
==================== ==========================================================================

The folder is filled under a temporary name and renamed when complete, so a crash never
leaves half a result where a planning system might pick it up; an existing folder is never
overwritten unless asked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from autocontour.inference.body import EXTERNAL, body_labels
from autocontour.inference.pipeline import Prediction
from autocontour.io import write_rtstruct, write_volume
from autocontour.io.volume import Volume
from autocontour.paths import atomic_folder, refuse_existing

OUTPUT_FILES = {"rtstruct": "rtstruct.dcm", "seg": "seg.dcm", "labels": "labels.nii.gz",
                "body": "body.nii.gz", "overview": "overview.png", "report": "report.json"}


def write_outputs(prediction: Prediction, ct: Volume, out: str | Path, *,
                  source: str = "", overwrite: bool = False,
                  extra: dict[str, Any] | None = None,
                  also: Callable[[Path], dict[str, str]] | None = None) -> dict[str, Any]:
    """Write the RTSTRUCT, SEG, NIfTI labels, overview PNG and report of one run.

    Args:
        prediction: the run's result (labels on ``ct``'s grid).
        ct: the CT that was contoured, as read (with its DICOM identity when read from DICOM).
        out: the output folder.
        source: how the report names the input (its path).
        overwrite: replace an existing, non-empty output folder.
        extra: more top-level entries of the report (the job's ``model_choice``).
        also: writes more files into the (temporary) output folder it is given and returns
            {kind: file name} for the report's ``files`` (the predict job's pseudo-MRI); it
            runs inside the atomic folder, so a failure leaves nothing either.

    Returns:
        The report (also written as ``report.json``).

    Raises:
        OutputExistsError: ``out`` holds files and ``overwrite`` is False (nothing written).
        GeometryMismatchError: the labels are not on the CT's grid.
    """
    out = Path(out)
    refuse_existing(out, overwrite)  # before any work
    started = time.perf_counter()
    labels = prediction.labels
    files = dict(OUTPUT_FILES)
    body = prediction.body
    outline = [] if body is None else [(EXTERNAL, body)]
    forced = "FORCED " if prediction.safety.forced else ""
    description = f"{forced}autocontour {prediction.model.get('name', '')}".strip()[:64]
    with atomic_folder(out, overwrite) as tmp:
        def dicom_outputs() -> Any:
            """RTSTRUCT (and, for non-DICOM input, the CT series it references), then SEG."""
            if ct.dicom is None:
                rt = write_rtstruct(labels, ct, tmp / files["rtstruct"], allow_empty=True,
                                    series_description=description,
                                    write_reference_to=tmp / "ct", extra=outline)
                reference: Volume | Path = tmp / "ct"
            else:
                rt = write_rtstruct(labels, ct, tmp / files["rtstruct"], allow_empty=True,
                                    series_description=description, extra=outline)
                reference = ct
            if set(rt.written) - {EXTERNAL.name}:
                from autocontour.io.dicom_seg import write_dicom_seg  # highdicom: only here

                write_dicom_seg(labels, reference, tmp / files["seg"])
            return rt

        def other_outputs() -> None:
            from autocontour.inference.overview import write_overview  # matplotlib: only here

            write_volume(prediction.labels, tmp / files["labels"])
            if body is not None:
                write_volume(body_labels(body, ct.geometry), tmp / files["body"])
            write_overview(ct, prediction.labels, tmp / files["overview"],
                           title=Path(source).name or "input",
                           model=prediction.model.get("name"),
                           flags={f.organ: f.action for f in prediction.safety.organs},
                           body=body)

        # The two chains share nothing but the read-only labels: written side by side (most of
        # their time is in NumPy, SimpleITK, zlib and Agg, which release the GIL).
        with ThreadPoolExecutor(max_workers=2) as pool:
            dicom, other = pool.submit(dicom_outputs), pool.submit(other_outputs)
            other.result()
            rt = dicom.result()
        if also is not None:
            files.update(also(tmp))
        if ct.dicom is None:
            files["ct"] = "ct/"
        organs_written = [n for n in rt.written if n != EXTERNAL.name]
        if not organs_written:
            files.pop("seg")
        if body is None:
            files.pop("body")
        seconds = {**prediction.seconds, "write": round(time.perf_counter() - started, 3)}
        seconds["total"] = round(sum(v for k, v in seconds.items() if k != "total"), 3)
        report = _report(prediction, ct, source, organs_written,
                         [n for n in rt.empty if n != EXTERNAL.name], seconds, files)
        report.update(extra or {})
        if not organs_written:
            report["warnings"].append(f"no organ found: {files['rtstruct']} holds no organ and no "
                                      f"{OUTPUT_FILES['seg']} was written")
        (tmp / files["report"]).write_text(json.dumps(report, indent=2))
    return report


def _report(prediction: Prediction, ct: Volume, source: str, written: list[str],
            empty: list[str], seconds: dict[str, float], files: dict[str, str]) -> dict[str, Any]:
    volumes = prediction.labels.volumes_cc()
    safety = prediction.safety
    flagged = {f.organ: f.reason for f in safety.organs if f.action == "flagged"}
    removed = [{"name": f.organ, "reason": f.reason} for f in safety.organs
               if f.action == "removed"]
    gone = {r["name"] for r in removed}
    return {
        "input": {"source": source, "shape_zyx": list(ct.shape),
                  "spacing_xyz_mm": [round(s, 4) for s in ct.spacing],
                  "orientation": ct.geometry.orientation_code, "modality": ct.modality,
                  "series_instance_uid": ct.dicom.series_instance_uid if ct.dicom else None},
        "organs": [{"name": n, "volume_cc": round(volumes[n], 3),
                    **({"flag": flagged[n]} if n in flagged else {})} for n in written],
        "organs_not_found": [n for n in empty if n not in gone],
        "organs_removed": removed,
        "sex": safety.sex.to_dict() if safety.sex else None,
        "body": None if prediction.body is None else {
            "name": EXTERNAL.name,
            "volume_cc": round(float(prediction.body.sum()) * float(np.prod(ct.spacing)) / 1e3, 1),
            "clipped": [c.to_dict() for c in prediction.clipped]},
        "safety": safety.to_dict(),
        "seconds": seconds,
        "warnings": list(prediction.warnings),
        "model": prediction.model,
        "files": files,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
