"""A data set folder: the one place that knows the names of its files.

An ``autocontour dataset import`` folder holds::

    cache.h5                                 the training cache (``autocontour.data.cache``)
    manifest.json                            every case: content hash, source, grid, organs
    import_report.json                       the last import: imported, unchanged, replaced,
                                             skipped (with reasons), unmapped ROI names, overlaps
    fingerprint.json                         the data set's fingerprint
                                             (``autocontour.data.fingerprint``)
    recipe.json                              the data set's recipe: chosen from the fingerprint
                                             by the import, or one saved with ``save_recipe``
    splits_<k>fold.json                      k-fold splits by case (``autocontour.data.splits``)
    preprocessed/<recipe name>-<hash>.h5     a recipe's preprocessed cases (layout of cache.h5)
    preprocessed/<recipe name>-<hash>.json   their records: {"recipe", "cases": {case ID:
                                             {"source_hash", "record"}}}
    .autocontour.lock                        the inter-process lock on the derived files

Every JSON file is written atomically (:func:`write_json`), so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from filelock import FileLock

from autocontour.data.cache import CacheWriter, CaseCache
from autocontour.data.fingerprint import Fingerprint, compute_fingerprint, recipe_from_fingerprint
from autocontour.data.recipes import Recipe, get_recipe
from autocontour.data.splits import load_splits, make_splits
from autocontour.errors import InvalidInputError, OutputExistsError
from autocontour.organs import OrganSet

CACHE = "cache.h5"
MANIFEST = "manifest.json"
IMPORT_REPORT = "import_report.json"
FINGERPRINT = "fingerprint.json"
RECIPE = "recipe.json"
PREPROCESSED = "preprocessed"
LOCK = ".autocontour.lock"
LOCK_TIMEOUT_S = 6 * 3600


def write_json(path: str | Path, data: object) -> Path:
    """Write JSON atomically: a temporary file beside ``path``, then a rename.

    A reader sees the old file or the new one, never part of one; on failure the temporary
    file is removed and ``path`` is left as it was.

    Raises:
        OSError: the folder is not writable (the temporary file is removed).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=2, default=str))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def recipe_hash(recipe: Recipe) -> str:
    """A short hash of the recipe's parameters (names its preprocessed cache)."""
    text = json.dumps(recipe.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


class DatasetFolder:
    """The files of one data set folder, read and written by name (see the module docstring).

    Creating one touches nothing on disk; the folder need not exist yet.

    Args:
        path: the data set folder.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"DatasetFolder({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatasetFolder) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    # --- the training cache -------------------------------------------------------------------

    @property
    def cache_path(self) -> Path:
        return self.path / CACHE

    def exists(self) -> bool:
        """Whether the folder holds a training cache (a data set has been imported here)."""
        return self.cache_path.is_file()

    def require(self) -> None:
        """Check that the folder holds a data set, without opening its cache.

        Raises:
            InvalidInputError: no training cache in the folder (nothing imported here yet).
        """
        if not self.exists():
            raise InvalidInputError(f"{self.path}: no data set here (no training cache "
                                    f"{CACHE}); run 'autocontour dataset import' first")

    def cache(self) -> CaseCache:
        """The training cache, opened for reading.

        Raises:
            InvalidInputError: no cache in the folder (see :meth:`require`), or a file that is
                not a training cache.
        """
        self.require()
        return CaseCache(self.cache_path)

    def cache_writer(self, organs: OrganSet) -> CacheWriter:
        """A writer that adds cases to the cache (made, with the folder, when absent).

        Raises:
            InvalidInputError: the existing cache holds another organ set or is not a cache.
        """
        return CacheWriter(self.cache_path, organs)

    # --- import: manifest and report ----------------------------------------------------------

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def import_report_path(self) -> Path:
        return self.path / IMPORT_REPORT

    def write_manifest(self, cache: CaseCache | None = None) -> Path:
        """Save every case's hash, source, grid and organs (from ``cache``, or the folder's).

        Raises:
            InvalidInputError: no training cache.
        """
        cache = cache if cache is not None else self.cache()
        return write_json(self.manifest_path, cache.manifest())

    def write_import_report(self, report: dict) -> Path:
        """Save the report of the last import (``dataclasses.asdict`` of an ImportReport)."""
        return write_json(self.import_report_path, report)

    # --- fingerprint and recipe ---------------------------------------------------------------

    @property
    def fingerprint_path(self) -> Path:
        return self.path / FINGERPRINT

    @property
    def recipe_path(self) -> Path:
        return self.path / RECIPE

    def compute_fingerprint(self, seed: int = 0, modality: str | None = None
                            ) -> tuple[Fingerprint, Recipe]:
        """Fingerprint the cached cases; save it and the recipe chosen from it; return both.

        Both are computed before either is written, and each file is replaced atomically.

        Args:
            seed: seed of the foreground voxel sampling.
            modality: "CT"/"MR"; by default the images' own.

        Raises:
            InvalidInputError: no training cache, or a data set that cannot be fingerprinted
                (see :func:`~autocontour.data.fingerprint.compute_fingerprint`), or one of a
                modality without an nnU-Net rule.
        """
        cache = self.cache()
        fingerprint = compute_fingerprint(((cid, *cache.load(cid)) for cid in cache.case_ids),
                                          seed=seed, modality=modality)
        recipe = recipe_from_fingerprint(fingerprint)
        write_json(self.fingerprint_path, fingerprint.to_dict())
        self.save_recipe(recipe)
        return fingerprint, recipe

    def fingerprint(self) -> Fingerprint:
        """The saved fingerprint.

        Raises:
            InvalidInputError: none saved, or an unreadable one (naming the file).
        """
        if not self.fingerprint_path.is_file():
            raise InvalidInputError(f"{self.fingerprint_path}: no fingerprint saved; run "
                                    f"'autocontour dataset fingerprint {self.path}'")
        return Fingerprint.load(self.fingerprint_path)

    def saved_recipe(self) -> Recipe | None:
        """The recipe saved in the folder, or None when there is none.

        Raises:
            InvalidInputError: an unreadable or malformed recipe file (naming it).
        """
        if not self.recipe_path.is_file():
            return None
        try:
            return Recipe.from_dict(json.loads(self.recipe_path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"{self.recipe_path}: unreadable recipe ({exc})") from None
        except InvalidInputError as exc:
            raise InvalidInputError(f"{self.recipe_path}: {exc}") from None

    def save_recipe(self, recipe: Recipe) -> Path:
        """Make ``recipe`` the data set's own (what the recipe name "fingerprint" means)."""
        return write_json(self.recipe_path, recipe.to_dict())

    def recipe(self, name: str = "fingerprint") -> Recipe:
        """The recipe ``name``; "fingerprint" is the data set's own (saved, else the fingerprint's).

        Raises:
            InvalidInputError: "fingerprint" with neither a saved recipe nor a fingerprint, an
                nnU-Net recipe without a fingerprint, or an unreadable file (naming it).
            UnknownOptionError: an unknown recipe name.
        """
        fingerprint = self.fingerprint() if self.fingerprint_path.is_file() else None
        if name.strip().lower() != "fingerprint":
            return get_recipe(name, fingerprint)
        saved = self.saved_recipe()
        if saved is not None:
            return saved
        if fingerprint is None:
            raise InvalidInputError(f"{self.path}: recipe 'fingerprint' needs {RECIPE} or "
                                    f"{FINGERPRINT}; run 'autocontour dataset fingerprint "
                                    f"{self.path}'")
        return recipe_from_fingerprint(fingerprint)

    # --- k-fold splits ------------------------------------------------------------------------

    def splits_path(self, folds: int) -> Path:
        return self.path / f"splits_{folds}fold.json"

    def has_splits(self, folds: int) -> bool:
        return self.splits_path(folds).is_file()

    def splits(self, folds: int, case_ids: list[str] | None = None
               ) -> list[dict[str, list[str]]]:
        """The saved ``folds``-fold splits, checked against ``case_ids`` when given.

        Raises:
            InvalidInputError: no such splits file, an unreadable one, or one naming a case
                that is not in ``case_ids``.
        """
        return load_splits(self.splits_path(folds), case_ids)

    def save_splits(self, splits: list[dict[str, list[str]]], overwrite: bool = False) -> Path:
        """Save splits as ``splits_<len(splits)>fold.json``.

        Raises:
            OutputExistsError: the file exists and ``overwrite`` is False (nothing is written):
                models trained on those folds would no longer match them.
        """
        path = self.splits_path(len(splits))
        if path.exists() and not overwrite:
            raise OutputExistsError(f"{path}: splits exist and models may use them; pass "
                                    "overwrite=True to replace them")
        return write_json(path, splits)

    def make_splits(self, folds: int, seed: int = 0, overwrite: bool = False,
                    cache: CaseCache | None = None) -> list[dict[str, list[str]]]:
        """Split the cases by case (stratified by organs present), save and return the splits.

        Args:
            folds: number of folds.
            seed: shuffle seed.
            overwrite: replace a saved file of ``folds`` folds.
            cache: the cases to split; the folder's training cache by default.

        Raises:
            InvalidInputError: no training cache, fewer than two folds or fewer cases than
                folds (checked before the file is).
            OutputExistsError: see :meth:`save_splits`.
        """
        cache = cache if cache is not None else self.cache()
        splits = make_splits({cid: cache.present(cid) for cid in cache.case_ids}, folds,
                             seed=seed)
        self.save_splits(splits, overwrite=overwrite)
        return splits

    # --- preprocessed caches and the lock -----------------------------------------------------

    def preprocessed_path(self, recipe: Recipe) -> Path:
        """Where ``recipe``'s preprocessed cache lives (its name and parameter hash)."""
        return self.path / PREPROCESSED / f"{recipe.name}-{recipe_hash(recipe)}.h5"

    def preprocessed_records_path(self, recipe: Recipe) -> Path:
        """The records (how to undo the recipe per case) beside its preprocessed cache."""
        return self.preprocessed_path(recipe).with_suffix(".json")

    def lock(self, timeout_s: float = LOCK_TIMEOUT_S) -> FileLock:
        """An inter-process lock on the derived files (preprocessed caches, splits).

        Several runs started at once on one data set (the folds of a k-fold study, members of a
        combined model) would otherwise write the same preprocessed HDF5 file together, which
        HDF5 refuses; with the lock the first one preprocesses and the others wait, then re-use
        it.
        """
        return FileLock(str(self.path / LOCK), timeout=timeout_s)
