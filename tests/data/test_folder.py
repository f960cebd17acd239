"""The data set folder: one owner of its file names; the import leaves a folder ready to train."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from autocontour.data import folder as folder_module
from autocontour.data.folder import DatasetFolder, write_json
from autocontour.data.importer import import_dataset
from autocontour.errors import InvalidInputError, OutputExistsError


@pytest.fixture(scope="module")
def imported(phantom_source: Path, tmp_path_factory: pytest.TempPathFactory) -> DatasetFolder:
    """The three head-and-neck phantoms imported from Python (no CLI)."""
    ds = tmp_path_factory.mktemp("folder") / "ds"
    import_dataset(phantom_source, ds, progress=False)
    return DatasetFolder(ds)


def test_python_import_then_training_with_the_fingerprint_recipe(imported, tmp_path):
    """Before, only the CLI saved fingerprint and recipe: training with 'fingerprint' failed."""
    from autocontour.training import TrainConfig
    from autocontour.training.data import prepare_data, resolve_recipe
    from autocontour.training.distributed import DistEnv

    assert imported.exists()
    assert {imported.cache_path, imported.manifest_path, imported.import_report_path,
            imported.fingerprint_path, imported.recipe_path} <= set(imported.path.iterdir())
    fingerprint = imported.fingerprint()
    assert fingerprint.modality == "CT" and fingerprint.case_ids == tuple(
        imported.cache().case_ids)
    recipe = resolve_recipe(imported.path, "fingerprint")
    assert recipe.name == "nnunet-ct" and recipe == imported.recipe() == imported.saved_recipe()
    assert imported.recipe("nnunet-ct") == recipe  # needs the saved fingerprint too
    config = TrainConfig.from_dict({
        "dataset": str(imported.path), "out": str(tmp_path / "run"), "recipe": "fingerprint",
        "network": {"name": "UNet3D", "kwargs": {"channels": [4, 8]}},
        "patch_size": [8, 16, 16], "batch_size": 1, "epochs": 1, "steps_per_epoch": 1,
        "folds": 3, "fold": 1, "num_workers": 0, "device": "cpu", "augmentation": None})
    data = prepare_data(config, DistEnv(), progress=False)
    assert data.recipe == recipe and data.cache.path == imported.preprocessed_path(recipe)
    assert imported.preprocessed_records_path(recipe).is_file()
    assert sorted(data.train_ids + data.val_ids) == imported.cache().case_ids
    assert data.val_ids == tuple(imported.splits(3)[1]["val"])


def test_import_without_fingerprint(phantom_source, tmp_path):
    folder = DatasetFolder(tmp_path / "ds")
    import_dataset(phantom_source, folder.path, progress=False, fingerprint=False)
    assert folder.exists() and folder.manifest_path.is_file()
    assert not folder.fingerprint_path.exists() and folder.saved_recipe() is None
    with pytest.raises(InvalidInputError, match="recipe 'fingerprint' needs recipe.json"):
        folder.recipe("fingerprint")
    with pytest.raises(InvalidInputError, match="no fingerprint saved"):
        folder.fingerprint()


def test_missing_cache_names_the_folder(tmp_path):
    folder = DatasetFolder(tmp_path / "nowhere")
    assert not folder.exists() and not folder.path.exists()  # creating one writes nothing
    for call in (folder.cache, folder.require, folder.compute_fingerprint,
                 lambda: folder.make_splits(2)):
        with pytest.raises(InvalidInputError) as info:
            call()
        message = str(info.value)
        assert message.startswith(f"{folder.path}: no data set here")
        assert "run 'autocontour dataset import'" in message and "\n" not in message
    assert not folder.path.exists()


def test_splits_are_not_overwritten_without_overwrite(imported, tmp_path):
    folder = DatasetFolder(tmp_path / "ds")
    folder.path.mkdir()
    cache = imported.cache()
    first = folder.make_splits(3, seed=0, cache=cache)
    saved = folder.splits_path(3).read_bytes()
    assert folder.has_splits(3) and folder.splits(3, cache.case_ids) == first
    with pytest.raises(OutputExistsError, match=r"splits_3fold.json: splits exist"):
        folder.make_splits(3, seed=1, cache=cache)
    assert folder.splits_path(3).read_bytes() == saved
    with pytest.raises(InvalidInputError, match="4 folds need at least 4 cases"):
        folder.make_splits(4, cache=cache)
    assert not folder.has_splits(4)
    other = [{"train": s["val"], "val": s["train"]} for s in first]
    with pytest.raises(OutputExistsError):
        folder.save_splits(other)
    folder.save_splits(other, overwrite=True)
    assert folder.splits(3) == other
    with pytest.raises(InvalidInputError, match=r"names cases not in the data set"):
        folder.splits(3, ["someone else"])


def test_fingerprint_files_are_written_atomically(imported, tmp_path, monkeypatch):
    folder = DatasetFolder(tmp_path / "ds")
    folder.path.mkdir()
    os.link(imported.cache_path, folder.cache_path)
    replaced: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def spy(src, dst):
        replaced.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(folder_module.os, "replace", spy)
    fingerprint, recipe = folder.compute_fingerprint()
    assert [dst for _, dst in replaced] == [folder.fingerprint_path, folder.recipe_path]
    for src, dst in replaced:  # a temporary file beside the target, renamed onto it
        assert src.parent == dst.parent and src.name.startswith(f".{dst.name}.partial-")
        assert not src.exists()
    assert json.loads(folder.fingerprint_path.read_text()) == fingerprint.to_dict()
    assert folder.saved_recipe() == recipe
    assert sorted(p.name for p in folder.path.iterdir()) == sorted(
        [folder.cache_path.name, folder.fingerprint_path.name, folder.recipe_path.name])


def test_a_failed_write_leaves_the_old_file_and_no_partial(tmp_path, monkeypatch):
    path = write_json(tmp_path / "recipe.json", {"old": 1})

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(folder_module.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_json(path, {"new": 2})
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["recipe.json"]


def test_bad_recipe_file_is_named(tmp_path):
    folder = DatasetFolder(tmp_path)
    folder.recipe_path.write_text("{not json")
    with pytest.raises(InvalidInputError, match=r"recipe.json: unreadable recipe"):
        folder.recipe("fingerprint")
    folder.recipe_path.write_text(json.dumps({"steps": []}))
    with pytest.raises(InvalidInputError, match=r"recipe.json: a recipe needs 'name'"):
        folder.saved_recipe()


def test_preprocessed_paths_and_lock(imported):
    recipe = imported.recipe()
    path = imported.preprocessed_path(recipe)
    assert path.parent == imported.path / "preprocessed" and path.suffix == ".h5"
    assert path.name.startswith(f"{recipe.name}-")
    assert imported.preprocessed_records_path(recipe) == path.with_suffix(".json")
    assert DatasetFolder(str(imported.path)) == imported
    with imported.lock(timeout_s=1):
        assert (imported.path / ".autocontour.lock").exists()
