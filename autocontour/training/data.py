"""The training data of a run: recipe, preprocessed cache, fold split (spec A4, A5, B6).

The data set's cache (``DS/cache.h5``) holds images as read (HU on their original grids). A
recipe is applied once per case and the result kept in a preprocessed cache per recipe::

    DS/preprocessed/<recipe name>-<hash>.h5     the preprocessed cases (same layout as cache.h5)
    DS/preprocessed/<recipe name>-<hash>.json   {"recipe": the recipe, "cases": {case ID:
                                                {"source_hash", "record": the AppliedRecord
                                                (crop box, grids) that undoes it}}}

``<hash>`` is a short SHA-256 of the recipe's parameters, so another recipe (or the same name
with other numbers) gets another file. A later run re-uses the file and preprocesses only cases
that are new or whose content changed since. The patch loader reads the preprocessed cache.

Splits are read from ``DS/splits_<k>fold.json``; when absent they are made (stratified, with the
config's seed) and saved there, so every later model uses the same folds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
from tqdm import tqdm

from autocontour.data.cache import CacheWriter, CaseCache
from autocontour.data.fingerprint import Fingerprint, recipe_from_fingerprint
from autocontour.data.importer import CACHE_NAME, write_json
from autocontour.data.recipes import Recipe, get_recipe
from autocontour.data.splits import load_splits, make_splits, save_splits, splits_path
from autocontour.data.steps import AppliedRecord
from autocontour.errors import InvalidInputError, UnknownOptionError
from autocontour.organs import OrganSet
from autocontour.training.config import TrainConfig
from autocontour.training.distributed import DistEnv, barrier

PREPROCESSED = "preprocessed"


@dataclass(frozen=True)
class TrainingData:
    """What a run trains and validates on.

    Attributes:
        cache: the preprocessed cache (network-ready images and labels).
        recipe: the recipe that made it (saved in checkpoints).
        organs: the data set's organ set.
        train_ids: the fold's training cases.
        val_ids: the fold's validation cases.
        scored: the organs the network is trained on and validated for (``TrainConfig.organs``;
            all of ``organs`` by default), with their label values.
    """

    cache: CaseCache
    recipe: Recipe
    organs: OrganSet
    train_ids: tuple[str, ...]
    val_ids: tuple[str, ...]
    scored: OrganSet


def resolve_recipe(dataset: Path, name: str) -> Recipe:
    """The recipe ``name``; "fingerprint" is the data set's own (``DS/recipe.json``).

    Raises:
        InvalidInputError: "fingerprint" without recipe.json or fingerprint.json in the data
            set, or an nnU-Net recipe without fingerprint.json.
        UnknownOptionError: an unknown recipe name.
    """
    recipe_file, fingerprint_file = dataset / "recipe.json", dataset / "fingerprint.json"
    fingerprint = Fingerprint.load(fingerprint_file) if fingerprint_file.is_file() else None
    if name.strip().lower() != "fingerprint":
        return get_recipe(name, fingerprint)
    if recipe_file.is_file():
        try:
            return Recipe.from_dict(json.loads(recipe_file.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"{recipe_file}: unreadable recipe ({exc})") from None
    if fingerprint is None:
        raise InvalidInputError(f"{dataset}: recipe 'fingerprint' needs recipe.json or "
                                "fingerprint.json; run 'autocontour dataset fingerprint "
                                f"{dataset}'")
    return recipe_from_fingerprint(fingerprint)


def recipe_hash(recipe: Recipe) -> str:
    """A short hash of the recipe's parameters (names the preprocessed cache)."""
    text = json.dumps(recipe.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def preprocessed_path(dataset: Path, recipe: Recipe) -> Path:
    return dataset / PREPROCESSED / f"{recipe.name}-{recipe_hash(recipe)}.h5"


def preprocess(dataset: Path, recipe: Recipe, progress: bool = True) -> CaseCache:
    """The preprocessed cache of ``recipe``, made or brought up to date from ``DS/cache.h5``.

    Only cases that are missing or whose source content hash changed are preprocessed; the
    records JSON is rewritten (atomically) after them.

    Raises:
        InvalidInputError: no data set cache; a case with more than one image channel (one
            recipe per channel is not supported yet); a step that fails on a case (naming it).
    """
    source = CaseCache(dataset / CACHE_NAME)
    path = preprocessed_path(dataset, recipe)
    records_path = path.with_suffix(".json")
    records: dict = {}
    if path.is_file() and records_path.is_file():
        records = json.loads(records_path.read_text()).get("cases", {})
    todo = [cid for cid in source.case_ids
            if records.get(cid, {}).get("source_hash") != source.content_hash(cid)]
    if todo or not path.is_file():
        try:
            writer_cm = CacheWriter(path, source.organs)
        except BlockingIOError:
            raise InvalidInputError(
                f"{path}: {len(todo)} case(s) need preprocessing, but another process has this "
                "cache open (a training run still using the data set's older cases); wait for "
                "it to finish, then start this run again") from None
        with writer_cm as writer:
            for cid in tqdm(todo, desc=f"preprocess ({recipe.name})", unit="case",
                            disable=not progress):
                if source.channels(cid) != 1:
                    raise InvalidInputError(f"{source.path}: case {cid} has "
                                            f"{source.channels(cid)} image channels; training "
                                            "takes one")
                image, labels = source.load(cid)
                try:
                    done = recipe.apply(image, labels)
                except InvalidInputError as exc:
                    raise InvalidInputError(f"case {cid}: recipe {recipe.name!r}: {exc}") from None
                writer.add(cid, [done.image], done.labels, source=f"{source.path}:{cid}",
                           replace=True)
                records[cid] = {"source_hash": source.content_hash(cid),
                                "record": done.record.to_dict()}
        write_json(records_path, {"recipe": recipe.to_dict(), "cases": records})
    return CaseCache(path)


def load_records(cache_path: Path) -> dict[str, AppliedRecord]:
    """Case ID -> the AppliedRecord of a preprocessed cache (maps predictions back).

    Raises:
        InvalidInputError: no records file beside ``cache_path``, or a malformed one.
    """
    path = Path(cache_path).with_suffix(".json")
    try:
        cases = json.loads(path.read_text())["cases"]
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise InvalidInputError(f"{path}: unreadable preprocessing records ({exc})") from None
    return {cid: AppliedRecord.from_dict(entry["record"]) for cid, entry in cases.items()}


def fold_cases(dataset: Path, source: CaseCache, folds: int, fold: int, seed: int
               ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(train, val) case IDs of ``fold``, making and saving the splits when absent.

    Raises:
        InvalidInputError: unreadable splits, splits naming unknown cases, fewer cases than
            folds, or a fold outside the file.
    """
    path = splits_path(dataset, folds)
    if not path.is_file():
        save_splits(make_splits({cid: source.present(cid) for cid in source.case_ids}, folds,
                                seed=seed), path)
    splits = load_splits(path, source.case_ids)
    if not 0 <= fold < len(splits):
        raise InvalidInputError(f"{path}: has {len(splits)} folds, fold {fold} asked for")
    return tuple(splits[fold]["train"]), tuple(splits[fold]["val"])


def dataset_lock(dataset: Path, timeout_s: float = 6 * 3600) -> FileLock:
    """An inter-process lock on a data set's derived files (preprocessed caches, splits).

    Several runs started at once on one data set (the folds of a k-fold study, members of a
    combined model) would otherwise write the same preprocessed HDF5 file together, which HDF5
    refuses; with the lock the first one preprocesses and the others wait, then re-use it.
    """
    return FileLock(str(dataset / ".autocontour.lock"), timeout=timeout_s)


def prepare_data(config: TrainConfig, env: DistEnv, progress: bool = True) -> TrainingData:
    """Recipe, preprocessed cache and fold split of a run; rank 0 writes, the others wait.

    Raises:
        InvalidInputError: see :func:`resolve_recipe`, :func:`preprocess`, :func:`fold_cases`.
    """
    dataset = Path(config.dataset)
    if not (dataset / CACHE_NAME).is_file():
        raise InvalidInputError(f"{dataset}: no data set here (no {CACHE_NAME}); run "
                                "'autocontour dataset import' first")
    recipe = resolve_recipe(dataset, config.recipe)
    if config.organs is not None:  # an unknown name is refused before any preprocessing
        trained_organs(config, CaseCache(dataset / CACHE_NAME).organs)
    if env.is_main:
        with dataset_lock(dataset):
            preprocess(dataset, recipe, progress)
            fold_cases(dataset, CaseCache(dataset / CACHE_NAME), config.folds, config.fold,
                       config.seed)
    barrier(env)
    cache = CaseCache(preprocessed_path(dataset, recipe))
    train, val = fold_cases(dataset, cache, config.folds, config.fold, config.seed)
    return TrainingData(cache, recipe, cache.organs, train, val,
                        trained_organs(config, cache.organs))


def trained_organs(config: TrainConfig, organs: OrganSet) -> OrganSet:
    """The organs a run trains on: ``config.organs`` of the data set's set, or all of them.

    Raises:
        UnknownOptionError: a name the data set's organ set does not have (did-you-mean).
    """
    if config.organs is None:
        return organs
    try:
        return organs.subset(list(config.organs))
    except UnknownOptionError as exc:
        raise UnknownOptionError(f"config option organs: {exc}") from None
