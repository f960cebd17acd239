"""The data-set jobs behind ``autocontour dataset``: import, fingerprint, split, export.

Every file of a data set folder is named and written by
:class:`~autocontour.data.folder.DatasetFolder`; these jobs are what a user asks of it. An import
from Python gives the same folder as the command: cases, manifest, import report, fingerprint and
the recipe chosen from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autocontour.data.fingerprint import Fingerprint
from autocontour.data.folder import DatasetFolder
from autocontour.data.importer import ImportReport
from autocontour.data.importer import import_dataset as import_cases
from autocontour.data.nnunet import export_nnunet
from autocontour.data.recipes import Recipe
from autocontour.errors import InvalidInputError, OutputExistsError
from autocontour.jobs.base import CancelCheck, ProgressCallback, Reporter
from autocontour.jobs.checks import check_output_folder
from autocontour.organs import get_organ_set
from autocontour.paths import atomic_folder


@dataclass(frozen=True)
class ImportRequest:
    """Cases to import into a data set folder.

    Attributes:
        source: a folder of DICOM case folders, NIfTI pairs or an nnU-Net raw data set.
        out: the data set folder (created or added to).
        organs: organ set name (head-neck, pelvis, chest); None: the one a phantom folder's
            ``phantoms.json`` records, else guessed from ROI names.
        layout: "auto", "dicom", "nifti" or "nnunet".
        modality: modality of NIfTI/NRRD images, which do not record it.
        replace_changed: replace stored cases whose content changed (default: keep them).
    """

    source: str | Path
    out: str | Path
    organs: str | None = None
    layout: str = "auto"
    modality: str = "CT"
    replace_changed: bool = False


@dataclass
class ImportResult:
    """What was imported, and the data set's fingerprint and recipe.

    ``fingerprint_error`` holds why the data set could not be fingerprinted (e.g. mixed
    modalities); the cases, manifest and report are saved even then.
    """

    report: ImportReport
    fingerprint: Fingerprint | None
    recipe: Recipe | None
    recipe_path: Path
    fingerprint_error: str | None = None


def import_dataset(request: ImportRequest, progress: ProgressCallback | None = None,
                   cancel: CancelCheck | None = None) -> ImportResult:
    """Import the cases, then fingerprint the data set and save the recipe chosen from it.

    One bad case never stops an import: it is skipped and the report says why. Every case
    stored is written whole (the cache is transactional per case), so a cancellation between
    cases keeps the cases imported so far and loses nothing stored before.

    Raises:
        InvalidInputError: an unknown layout, or no case at all could be imported.
        UnknownOptionError: an unknown organ set (with the closest one).
        JobCancelled: ``cancel`` said stop (between cases).
    """
    organs = get_organ_set(request.organs) if request.organs else None
    reporter = Reporter([], progress, cancel, job=f"importing {request.source}",
                        kept="the cases imported so far are stored; import again to continue")
    reporter.check()

    def on_case(case: str, done: int, total: int) -> None:
        reporter.note(f"case {case}", f"{done} of {total}", 0.9 * done / max(total, 1))
        reporter.check()

    report = import_cases(request.source, Path(request.out), organs=organs,
                          layout=request.layout, replace_changed=request.replace_changed,
                          progress=False, modality=request.modality, fingerprint=False,
                          on_case=on_case)
    folder = DatasetFolder(request.out)
    try:
        fingerprint, recipe = folder.compute_fingerprint()
        error = None
    except InvalidInputError as exc:
        fingerprint, recipe, error = None, None, str(exc)
    reporter.note("fingerprint", "" if error else f"recipe {recipe.name}", 1.0)
    return ImportResult(report, fingerprint, recipe, folder.recipe_path, error)


@dataclass
class FingerprintResult:
    """The data set's fingerprint and the recipe chosen from it (both saved)."""

    fingerprint: Fingerprint
    recipe: Recipe
    recipe_path: Path


def fingerprint_dataset(dataset: str | Path) -> FingerprintResult:
    """Compute and save the fingerprint of a data set and the recipe chosen from it.

    Raises:
        InvalidInputError: no data set there, or one that cannot be fingerprinted.
    """
    folder = DatasetFolder(dataset)
    fingerprint, recipe = folder.compute_fingerprint()
    return FingerprintResult(fingerprint, recipe, folder.recipe_path)


@dataclass(frozen=True)
class SplitRequest:
    """k-fold splits by case, saved for every model trained on the data set."""

    dataset: str | Path
    folds: int = 5
    seed: int = 0
    overwrite: bool = False


@dataclass
class SplitResult:
    splits: list[dict[str, list[str]]]
    path: Path


def split_dataset(request: SplitRequest) -> SplitResult:
    """Make and save the splits.

    Raises:
        InvalidInputError: no data set there, fewer than two folds or fewer cases than folds.
        OutputExistsError: the splits exist (models may use them) and ``overwrite`` is False.
    """
    folder = DatasetFolder(request.dataset)
    path = folder.splits_path(request.folds)
    try:
        splits = folder.make_splits(request.folds, seed=request.seed,
                                    overwrite=request.overwrite)
    except OutputExistsError:
        raise OutputExistsError(f"{path}: splits exist and models may use them; pass "
                                "--overwrite to replace them") from None
    return SplitResult(splits, path)


@dataclass(frozen=True)
class ExportRequest:
    """The data set written in nnU-Net's raw layout."""

    dataset: str | Path
    nnunet: str | Path
    name: str = "autocontour"


@dataclass
class ExportResult:
    out: Path
    cases: int


def export_dataset(request: ExportRequest) -> ExportResult:
    """Write every case of the data set in nnU-Net's raw layout.

    The folder is written under a temporary name and renamed when complete, so a failure (a
    full disk) leaves nothing.

    Raises:
        InvalidInputError: no data set there, or an output folder that cannot be written.
        OutputExistsError: the nnU-Net data set folder exists and holds files.
    """
    out = Path(request.nnunet)
    check_output_folder(out, what="--nnunet", can_overwrite=False)
    cache = DatasetFolder(request.dataset).cache()
    cases = [(cid, *cache.load_channels(cid)) for cid in cache.case_ids]
    with atomic_folder(out) as tmp:
        export_nnunet(cases, cache.organs, tmp, dataset_name=request.name)
    return ExportResult(out, len(cases))
