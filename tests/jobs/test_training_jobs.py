"""The train and data-set jobs: typed requests, progress, cancellation that loses nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from autocontour.artifacts import TrainConfig, load_trained_network
from autocontour.errors import InvalidInputError, JobCancelled, OutputExistsError
from autocontour.jobs import (
    ExportRequest,
    ImportRequest,
    Progress,
    SplitRequest,
    TrainRequest,
    export_dataset,
    fingerprint_dataset,
    import_dataset,
    split_dataset,
    train,
)
from autocontour.phantoms.export import write_cases

Factory = Callable[..., TrainConfig]


def test_train_job_reports_steps_and_epochs(tiny_config: Factory, tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", epochs=2, steps_per_epoch=2)
    config.to_yaml(tmp_path / "run.yaml")
    reports: list[Progress] = []
    result = train(TrainRequest(tmp_path / "run.yaml"), progress=reports.append)
    assert result.is_main and list(result.folds) == [0] and result.folds[0].epochs == 2
    steps = [r for r in reports if r.message.startswith("step")]
    epochs = [r for r in reports if "epoch" in r.stage]
    assert len(steps) == 4 and [r.stage for r in epochs] == ["fold 0 epoch 1", "fold 0 epoch 2"]
    assert [r.fraction for r in reports] == sorted(r.fraction for r in reports)
    assert reports[-1].fraction == 1.0
    saved = load_trained_network(tmp_path / "run" / "fold_0" / "last.pt").config
    assert saved == replace(config, out=str(tmp_path / "run" / "fold_0"))


def test_train_job_cancelled_keeps_the_last_checkpoint_for_resume(tiny_config: Factory,
                                                                  tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", epochs=2, steps_per_epoch=2)
    seen: list[str] = []
    with pytest.raises(JobCancelled, match="the last checkpoint stays; resume continues"):
        train(TrainRequest(config), progress=lambda p: seen.append(p.stage),
              cancel=lambda: "fold 0 epoch 1" in seen)
    saved = load_trained_network(tmp_path / "run" / "fold_0" / "last.pt").config
    assert saved == replace(config, out=str(tmp_path / "run" / "fold_0"))
    result = train(TrainRequest(config, resume=True))
    assert result.folds[0].epochs == 2


def test_train_job_refuses_a_bad_config_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: ds\nout: run\npatch_sise: [1, 2, 3]\n")
    with pytest.raises(Exception, match=r"bad.yaml: unknown option patch_sise.*patch_size"):
        train(TrainRequest(bad))


def test_dataset_jobs_import_split_fingerprint_export(tmp_path: Path) -> None:
    write_cases("pelvis", 3, tmp_path / "src", seed=21, shape=(16, 48, 48), dicom=False,
                progress=False)
    reports: list[Progress] = []
    result = import_dataset(ImportRequest(tmp_path / "src", tmp_path / "ds", organs="pelvis"),
                            progress=reports.append)
    assert len(result.report.imported) == 3 and result.fingerprint_error is None
    assert result.recipe is not None and result.recipe_path.is_file()
    assert [r.stage for r in reports][-1] == "fingerprint" and reports[-1].fraction == 1.0
    assert fingerprint_dataset(tmp_path / "ds").recipe == result.recipe

    splits = split_dataset(SplitRequest(tmp_path / "ds", folds=3))
    assert len(splits.splits) == 3 and splits.path.is_file()
    before = splits.path.read_text()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        split_dataset(SplitRequest(tmp_path / "ds", folds=3, seed=7))
    assert splits.path.read_text() == before

    exported = export_dataset(ExportRequest(tmp_path / "ds", tmp_path / "nnunet", "pelvis"))
    assert exported.cases == 3
    assert json.loads((exported.out / "dataset.json").read_text())["numTraining"] == 3


def test_dataset_import_cancelled_between_cases_keeps_what_was_stored(tmp_path: Path) -> None:
    write_cases("pelvis", 3, tmp_path / "src", seed=31, shape=(16, 48, 48), dicom=False,
                progress=False)
    seen: list[str] = []
    with pytest.raises(JobCancelled):
        import_dataset(ImportRequest(tmp_path / "src", tmp_path / "ds", organs="pelvis"),
                       progress=lambda p: seen.append(p.stage), cancel=lambda: len(seen) >= 1)
    again = import_dataset(ImportRequest(tmp_path / "src", tmp_path / "ds", organs="pelvis"))
    assert len(again.report.unchanged) == 1 and len(again.report.imported) == 2


def test_dataset_jobs_refuse_a_folder_without_a_data_set(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no data set here"):
        fingerprint_dataset(tmp_path)
    with pytest.raises(InvalidInputError, match="no data set here"):
        split_dataset(SplitRequest(tmp_path))
