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
The file names belong to :class:`~autocontour.data.folder.DatasetFolder`.

Splits are read from ``DS/splits_<k>fold.json``; when absent they are made (stratified, with the
config's seed) and saved there, so every later model uses the same folds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from autocontour.artifacts.config import TrainConfig
from autocontour.artifacts.versioned import read_pseudo_mri_generator
from autocontour.data.cache import CacheWriter, CaseCache
from autocontour.data.folder import DatasetFolder, recipe_hash, write_json
from autocontour.data.recipes import Recipe, with_channel
from autocontour.data.steps import AppliedRecord
from autocontour.data.steps_pseudo_mri import PseudoMRIChannel
from autocontour.errors import InvalidInputError, UnknownOptionError
from autocontour.organs import OrganSet
from autocontour.training.distributed import DistEnv, barrier

__all__ = ["TrainingData", "fold_cases", "load_records", "prepare_data", "preprocess",
           "preprocessed_path", "recipe_hash", "resolve_recipe", "trained_organs",
           "training_recipe"]


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
    """The recipe ``name``; "fingerprint" is the data set's own (:meth:`DatasetFolder.recipe`).

    Raises:
        InvalidInputError: "fingerprint" without a saved recipe or fingerprint in the data
            set, or an nnU-Net recipe without a fingerprint.
        UnknownOptionError: an unknown recipe name.
    """
    return DatasetFolder(dataset).recipe(name)


def preprocessed_path(dataset: Path, recipe: Recipe) -> Path:
    """Where the data set keeps ``recipe``'s preprocessed cache."""
    return DatasetFolder(dataset).preprocessed_path(recipe)


def preprocess(dataset: Path, recipe: Recipe, progress: bool = True) -> CaseCache:
    """The preprocessed cache of ``recipe``, made or brought up to date from the training cache.

    Only cases that are missing or whose source content hash changed are preprocessed; the
    records JSON is rewritten (atomically) after them.

    Every channel of the recipe's output is stored (the CT, then the channels the recipe
    derives from it, e.g. its pseudo-MRI).

    Raises:
        InvalidInputError: no data set cache; a case with more than one image channel in the
            data set (a recipe derives channels from one image); a step that fails on a case
            (naming it).
    """
    folder = DatasetFolder(dataset)
    source = folder.cache()
    path = folder.preprocessed_path(recipe)
    records_path = folder.preprocessed_records_path(recipe)
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
                                            f"{source.channels(cid)} image channels; a recipe "
                                            "takes one image (and may derive more channels "
                                            "from it, e.g. pseudo_mri in the config)")
                image, labels = source.load(cid)
                try:
                    done = recipe.apply(image, labels)
                except InvalidInputError as exc:
                    raise InvalidInputError(f"case {cid}: recipe {recipe.name!r}: {exc}") from None
                writer.add(cid, list(done.channels), done.labels, source=f"{source.path}:{cid}",
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


def fold_cases(dataset: Path, source: CaseCache, folds: int, fold: int, seed: int,
               test_fold: int | None = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(train, val) case IDs of ``fold``, making and saving the splits when absent.

    ``folds`` 1: every case trains and none validates. ``test_fold``: that fold's validation
    cases are left out of training too (nested cross-validation's test cases).

    Raises:
        InvalidInputError: unreadable splits, splits naming unknown cases, fewer cases than
            folds, or a fold outside the file.
    """
    if folds == 1:  # every case trains, none validates (no splits file is read or made)
        if fold != 0:
            raise InvalidInputError(f"one fold (folds: 1) has only fold 0, fold {fold} asked for")
        return tuple(source.case_ids), ()
    folder = DatasetFolder(dataset)
    if not folder.has_splits(folds):
        folder.make_splits(folds, seed=seed, cache=source)
    splits = folder.splits(folds, source.case_ids)
    if not 0 <= fold < len(splits):
        raise InvalidInputError(f"{folder.splits_path(folds)}: has {len(splits)} folds, fold "
                                f"{fold} asked for")
    train, val = tuple(splits[fold]["train"]), tuple(splits[fold]["val"])
    if test_fold is not None:
        if not 0 <= test_fold < len(splits) or test_fold == fold:
            raise InvalidInputError(f"{folder.splits_path(folds)}: test fold {test_fold} must be "
                                    f"another of its {len(splits)} folds than fold {fold}")
        test = set(splits[test_fold]["val"])
        train = tuple(c for c in train if c not in test)
        if not train:
            raise InvalidInputError(f"{folder.splits_path(folds)}: no training case is left "
                                    f"once fold {test_fold}'s test cases are kept out")
    return train, val


def training_recipe(config: TrainConfig, device: str | torch.device = "cpu") -> Recipe:
    """The run's recipe: ``config.recipe`` of the data set, with the pseudo-MRI step (bound to
    the generator of ``config.pseudo_mri``, run on ``device``) when the config names one.

    Raises:
        InvalidInputError: see :func:`resolve_recipe`; an unreadable pseudo-MRI model file.
        UnknownOptionError: an unknown recipe name.
    """
    recipe = DatasetFolder(Path(config.dataset)).recipe(config.recipe)
    if config.pseudo_mri is None:
        return recipe
    generator = read_pseudo_mri_generator(config.pseudo_mri)
    recipe = with_channel(recipe, PseudoMRIChannel(generator.digest))
    return recipe.bind({generator.digest: generator}, str(torch.device(device)),
                       config.pseudo_mri)


def prepare_data(config: TrainConfig, env: DistEnv, progress: bool = True,
                 device: str | torch.device = "cpu") -> TrainingData:
    """Recipe, preprocessed cache and fold split of a run; rank 0 writes, the others wait.

    Args:
        device: where a recipe's pseudo-MRI generator runs while preprocessing.

    Raises:
        InvalidInputError: see :func:`training_recipe`, :func:`preprocess`,
            :func:`fold_cases`.
    """
    dataset = Path(config.dataset)
    folder = DatasetFolder(dataset)
    folder.require()
    recipe = training_recipe(config, device)
    if config.organs is not None:  # an unknown name is refused before any preprocessing
        trained_organs(config, folder.cache().organs)
    if env.is_main:
        with folder.lock():
            preprocess(dataset, recipe, progress)
            fold_cases(dataset, folder.cache(), config.folds, config.fold, config.seed)
    barrier(env)
    cache = CaseCache(folder.preprocessed_path(recipe))
    train, val = fold_cases(dataset, cache, config.folds, config.fold, config.seed,
                            config.test_fold)
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
