"""The preprocessed cache per recipe (made once, re-used, records beside it) and the fold split."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest

from autocontour.data.cache import CaseCache
from autocontour.data.recipes import get_recipe
from autocontour.errors import InvalidInputError
from autocontour.training.data import (
    fold_cases,
    load_records,
    preprocess,
    preprocessed_path,
    resolve_recipe,
)


def test_preprocessed_cache_is_made_once_and_undoable(pelvis_ds: Path) -> None:
    recipe = resolve_recipe(pelvis_ds, "fingerprint")
    assert recipe.name == "nnunet-ct"
    cache = preprocess(pelvis_ds, recipe, progress=False)
    path = preprocessed_path(pelvis_ds, recipe)
    assert cache.path == path and path.parent.name == "preprocessed"
    assert path.name.startswith("nnunet-ct-") and path.suffix == ".h5"
    stamp = path.stat().st_mtime_ns, path.with_suffix(".json").stat().st_mtime_ns
    preprocess(pelvis_ds, recipe, progress=False)  # nothing new: neither file is touched
    assert (path.stat().st_mtime_ns, path.with_suffix(".json").stat().st_mtime_ns) == stamp
    source = CaseCache(pelvis_ds / "cache.h5")
    records = load_records(path)
    assert sorted(records) == source.case_ids == cache.case_ids
    cid = source.case_ids[0]
    image, labels = cache.load(cid)
    assert image.array.dtype == np.float32 and -5 < image.array.min() < image.array.max() < 5
    assert records[cid].final_geometry.mismatch(labels.geometry) is None
    back = recipe.invert_labels(labels, records[cid])
    assert np.array_equal(back.array, source.load(cid)[1].array)


def test_another_recipe_gets_another_file(pelvis_ds: Path) -> None:
    fingerprint = resolve_recipe(pelvis_ds, "fingerprint")
    other = get_recipe("seed004-structseg")
    assert preprocessed_path(pelvis_ds, other) != preprocessed_path(pelvis_ds, fingerprint)
    assert preprocessed_path(pelvis_ds, other).name.startswith("seed004-structseg-")


def test_splits_are_made_once_with_the_seed(pelvis_ds: Path) -> None:
    source = CaseCache(pelvis_ds / "cache.h5")
    path = pelvis_ds / "splits_3fold.json"
    path.unlink(missing_ok=True)
    train, val = fold_cases(pelvis_ds, source, 3, 1, seed=7)
    saved = json.loads(path.read_text())
    assert (list(train), list(val)) == (saved[1]["train"], saved[1]["val"])
    assert sorted(train + val) == source.case_ids
    assert fold_cases(pelvis_ds, source, 3, 1, seed=99) == (train, val)  # the saved file wins
    path.unlink()


def test_bad_records_and_splits(pelvis_ds: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="unreadable preprocessing records"):
        load_records(tmp_path / "none.h5")
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "splits_2fold.json").write_text(json.dumps([{"train": ["x"], "val": ["pv_s0005"]}]))
    source = CaseCache(pelvis_ds / "cache.h5")
    with pytest.raises(InvalidInputError, match=r"names cases not in the data set: \['x'\]"):
        fold_cases(ds, source, 2, 0, seed=0)


def _prepare(values: dict) -> tuple[str, ...]:
    """One process of the concurrency test: prepare a run's data, return its training cases."""
    import torch

    from autocontour.training import TrainConfig
    from autocontour.training.data import prepare_data
    from autocontour.training.distributed import DistEnv

    torch.set_num_threads(1)
    return prepare_data(TrainConfig.from_dict(values), DistEnv(), progress=False).train_ids


def _fresh_copy(pelvis_ds: Path, to: Path) -> Path:
    """The data set without its derived files (preprocessed caches, splits)."""
    shutil.copytree(pelvis_ds, to, ignore=shutil.ignore_patterns("preprocessed", "splits_*"))
    return to


def test_runs_started_together_share_one_preprocessing(pelvis_ds: Path, tiny_values,
                                                       tmp_path: Path) -> None:
    """Two runs on one fresh data set at once: HDF5 refuses two writers, so one must wait."""
    ds = _fresh_copy(pelvis_ds, tmp_path / "ds")
    values = [{**tiny_values(tmp_path / f"run{i}"), "dataset": str(ds), "fold": i}
              for i in range(2)]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        trains = list(pool.map(_prepare, values))
    splits = json.loads((ds / "splits_2fold.json").read_text())
    assert trains == [tuple(splits[0]["train"]), tuple(splits[1]["train"])]
    recipe = resolve_recipe(ds, "fingerprint")
    assert CaseCache(preprocessed_path(ds, recipe)).case_ids == CaseCache(
        ds / "cache.h5").case_ids


def test_new_cases_while_the_cache_is_in_use_get_a_clear_error(pelvis_ds: Path,
                                                               tmp_path: Path) -> None:
    ds = _fresh_copy(pelvis_ds, tmp_path / "ds")
    recipe = resolve_recipe(ds, "fingerprint")
    reader = preprocess(ds, recipe, progress=False)
    records_path = preprocessed_path(ds, recipe).with_suffix(".json")
    records = json.loads(records_path.read_text())
    first = min(records["cases"])
    records["cases"][first]["source_hash"] = "changed"
    records_path.write_text(json.dumps(records))
    spawn = multiprocessing.get_context("spawn")
    # Another run reading the cache holds HDF5's file lock.
    with (h5py.File(reader.path, "r"),
          pytest.raises(InvalidInputError, match="another process has this cache open"),
          ProcessPoolExecutor(1, mp_context=spawn) as pool):
        pool.submit(preprocess, ds, recipe, False).result()
    assert json.loads(records_path.read_text()) == records  # nothing was rewritten
