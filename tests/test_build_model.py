"""Building a combined model: members trained, rule chosen on validation, model file written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autocontour.data.folder import DatasetFolder
from autocontour.data.importer import import_dataset
from autocontour.data.recipes import Recipe
from autocontour.data.steps_grid import Resample
from autocontour.data.steps_intensity import ClipIntensity, ZScore
from autocontour.inference import Contourer, load_model
from autocontour.inference.combined import SMALL_ROI_ORGANS, RoiSpec
from autocontour.jobs import BuildModelRequest, MemberPlan, Progress, build_model
from autocontour.organs import HEAD_NECK
from autocontour.phantoms import head_neck_case
from autocontour.phantoms.export import write_cases

COMMON = {"recipe": "fingerprint", "loss": {"name": "dicece"}, "lr": 1e-3, "epochs": 1,
          "steps_per_epoch": 2, "val_every": 1, "augmentation": None, "amp": False,
          "num_workers": 0, "device": "cpu"}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_build_trains_members_chooses_the_rule_and_writes_a_usable_model(tmp_path: Path):
    write_cases("head-neck", 4, tmp_path / "src", seed=10, shape=(16, 48, 48), dicom=False,
                progress=False)
    dataset = tmp_path / "ds"
    import_dataset(tmp_path / "src", dataset, organs=HEAD_NECK, progress=False)
    recipe = Recipe("t", (Resample(spacing=(8.0, 8.0, 6.0)), ClipIntensity(-1000.0, 1500.0),
                          ZScore(mode="foreground", threshold=-500.0)))
    DatasetFolder(dataset).save_recipe(recipe)
    plans = [
        MemberPlan("2d", {**COMMON, "network": {"name": "ResUNet2D", "kwargs": {
            "channels": [4, 8]}}, "patch_size": [1, 16, 16], "batch_size": 2}),
        MemberPlan("3d", {**COMMON, "network": {"name": "UNet3D", "kwargs": {
            "channels": [4, 8], "strides": [[2, 2, 2]] * 2}}, "patch_size": [8, 16, 16],
            "batch_size": 1}),
        MemberPlan("3d_small", {**COMMON, "network": {"name": "UNet3D", "kwargs": {
            "channels": [4, 8], "strides": [[2, 2, 2]] * 2}}, "patch_size": [4, 8, 8],
            "batch_size": 1}, roi=RoiSpec((4, 8, 8), SMALL_ROI_ORGANS, "2d")),
    ]
    reports: list[Progress] = []
    result = build_model(BuildModelRequest(dataset, tmp_path / "runs", tuple(plans), name="t",
                                           model_path=tmp_path / "t.pt", fold=0, folds=2,
                                           info={"command": "test"}), progress=reports.append)
    stages = [r.stage for r in reports]
    assert stages[-4:] == ["train 3d_small", "validate", "rule", "write"]
    assert [r.fraction for r in reports] == sorted(r.fraction for r in reports)
    model = load_model(result.path)
    assert set(model.rule) == set(HEAD_NECK.names)
    assert set(model.rule.values()) <= {"2d", "3d", "3d_small"}
    assert all(model.rule[o] != "3d_small" for o in HEAD_NECK.names if o not in SMALL_ROI_ORGANS)
    assert set(model.largest_component) == set(HEAD_NECK.names)
    assert model.info["command"] == "test" and len(model.info["val_cases"]) == 2
    assert set(model.info["validation_dice"]) == {"2d", "3d", "3d_small", "combined"}
    saved = json.loads((tmp_path / "runs" / "validation.json").read_text())
    case = next(iter(saved["cases"].values()))
    assert set(case) == {"2d", "3d", "3d_small", "combined"}
    assert set(case["3d_small"]) <= set(SMALL_ROI_ORGANS)
    labels = Contourer(model).predict(head_neck_case(99, (16, 48, 48)).ct)
    assert labels.shape == (16, 48, 48)
    # A second build re-uses the trained members (no checkpoint is rewritten).
    stamp = (tmp_path / "runs" / "3d" / "last.pt").stat().st_mtime_ns
    build_model(BuildModelRequest(dataset, tmp_path / "runs", tuple(plans), name="t",
                                  model_path=tmp_path / "t.pt", fold=0, folds=2))
    assert (tmp_path / "runs" / "3d" / "last.pt").stat().st_mtime_ns == stamp


def test_a_member_on_its_own_finer_data_set_is_validated_at_its_resolution(tmp_path: Path):
    """The same cases rendered finer: the member keeps that recipe; the splits are shared."""
    coarse, fine = tmp_path / "ds", tmp_path / "ds_fine"
    for folder, shape, spacing in ((coarse, (16, 48, 48), 8.0), (fine, (16, 96, 96), 4.0)):
        write_cases("head-neck", 4, folder.with_name(folder.name + "_src"), seed=10,
                    shape=shape, dicom=False, progress=False)
        import_dataset(folder.with_name(folder.name + "_src"), folder, organs=HEAD_NECK,
                       progress=False)
        DatasetFolder(folder).save_recipe(Recipe(f"t{spacing:g}", (
            Resample(spacing=(spacing, spacing, 6.0)), ClipIntensity(-1000.0, 1500.0),
            ZScore(mode="foreground", threshold=-500.0))))
    small = ("Lens_L", "Lens_R", "Eye_L", "Eye_R")
    plans = [
        MemberPlan("2d", {**COMMON, "network": {"name": "ResUNet2D", "kwargs": {
            "channels": [4, 8]}}, "patch_size": [1, 16, 16], "batch_size": 2}),
        MemberPlan("fine", {**COMMON, "network": {"name": "UNet3D", "kwargs": {
            "channels": [4, 8], "strides": [[1, 2, 2]] * 2}}, "patch_size": [4, 16, 16],
            "batch_size": 1, "organs": list(small)},
            roi=RoiSpec((4, 16, 16), small, "2d", 8.0), dataset=fine),
    ]
    result = build_model(BuildModelRequest(coarse, tmp_path / "runs", tuple(plans), name="t",
                                           model_path=tmp_path / "t.pt", fold=0, folds=2))
    assert DatasetFolder(fine).splits(2) == DatasetFolder(coarse).splits(2)
    model = load_model(result.path)
    member = model.members["fine"]
    assert member.recipe is not None and member.recipe.name == "t4"
    assert model.recipe.name == "t8" and model.members["2d"].recipe is None
    assert model.expect.spacing == (8.0, 8.0, 6.0)  # the model grid, not the cases' median
    assert all(model.rule[o] == "2d" for o in HEAD_NECK.names if o not in small)
    saved = json.loads((tmp_path / "runs" / "validation.json").read_text())
    own = saved["own_grid"]["fine"]
    assert set(own["cases"]) == set(model.info["val_cases"])
    for organ, scores in own["dice"].items():
        assert organ in small and scores["rule_member"] == "2d"
        winner = "fine" if scores["own"] is not None and (
            scores["rule"] is None or scores["own"] > scores["rule"]) else "2d"
        assert model.rule[organ] == winner
    assert "fine" not in next(iter(saved["cases"].values()))  # not scored on the model grid
    labels = Contourer(model).predict(head_neck_case(99, (16, 96, 96)).ct)
    assert labels.shape == (16, 96, 96)


def test_a_member_data_set_with_other_cases_is_refused(tmp_path: Path):
    from autocontour.errors import InvalidInputError

    for name, seed in (("ds", 10), ("other", 20)):
        write_cases("head-neck", 2, tmp_path / f"{name}_src", seed=seed, shape=(16, 32, 32),
                    dicom=False, progress=False)
        import_dataset(tmp_path / f"{name}_src", tmp_path / name, organs=HEAD_NECK,
                       progress=False)
    DatasetFolder(tmp_path / "ds").save_splits([{"train": ["a"], "val": ["b"]}] * 2)
    plans = (MemberPlan("fine", {**COMMON, "network": {"name": "UNet3D"},
                                 "patch_size": [4, 16, 16]}, dataset=tmp_path / "other"),)
    with pytest.raises(InvalidInputError, match="holds other cases"):
        build_model(BuildModelRequest(tmp_path / "ds", tmp_path / "runs", plans, name="t",
                                      model_path=tmp_path / "t.pt", fold=0, folds=2))
    assert not (tmp_path / "t.pt").exists() and not (tmp_path / "runs" / "fine").exists()


def test_nested_build_keeps_the_test_fold_out_of_training_and_choices(tmp_path: Path):
    """test_fold: its cases train nothing and choose nothing; the finished model is scored on
    them (``validation.json``'s ``test``), the choosing cases are another fold's."""
    write_cases("head-neck", 6, tmp_path / "src", seed=10, shape=(16, 48, 48), dicom=False,
                progress=False)
    dataset = tmp_path / "ds"
    import_dataset(tmp_path / "src", dataset, organs=HEAD_NECK, progress=False)
    DatasetFolder(dataset).save_recipe(Recipe("t", (
        Resample(spacing=(8.0, 8.0, 6.0)), ClipIntensity(-1000.0, 1500.0),
        ZScore(mode="foreground", threshold=-500.0))))
    splits = DatasetFolder(dataset).make_splits(3, seed=0)
    plans = (MemberPlan("2d", {**COMMON, "network": {"name": "ResUNet2D", "kwargs": {
                 "channels": [4, 8]}}, "patch_size": [1, 16, 16], "batch_size": 2}),
             MemberPlan("3d", {**COMMON, "network": {"name": "UNet3D", "kwargs": {
                 "channels": [4, 8], "strides": [[2, 2, 2]] * 2}}, "patch_size": [8, 16, 16],
                 "batch_size": 1}))
    reports: list[Progress] = []
    result = build_model(BuildModelRequest(dataset, tmp_path / "runs", plans, name="t",
                                           model_path=tmp_path / "t.pt", fold=1, folds=3,
                                           test_fold=0), progress=reports.append)
    test, choose = set(splits[0]["val"]), set(splits[1]["val"])
    assert [r.stage for r in reports][-3:] == ["rule", "test", "write"]
    info = load_model(result.path).info
    assert set(info["test_cases"]) == test and info["test_fold"] == 0
    assert set(info["val_cases"]) == choose
    assert set(info["train_cases"]) == set(splits[1]["train"]) - test
    assert not set(info["train_cases"]) & (test | choose)
    from autocontour.artifacts.config import TrainConfig

    ran = TrainConfig.from_yaml(tmp_path / "runs" / "2d" / "config.yaml")
    assert ran.test_fold == 0 and ran.fold == 1
    saved = json.loads((tmp_path / "runs" / "validation.json").read_text())
    assert set(saved["cases"]) == choose and set(saved["test"]["cases"]) == test
    for scores in saved["test"]["cases"].values():
        assert set(scores) == {"2d", "3d", "combined"}
    assert set(saved["test"]["member_dice"]) == {"2d", "3d", "combined"}
    # the rule was chosen on the choosing cases, not on the test cases
    assert saved["rule"] == load_model(result.path).rule


@pytest.mark.parametrize("fold, test_fold, match", [
    (1, 1, "other than fold 1"), (0, 3, "one of folds 0..2")])
def test_a_test_fold_that_is_the_choosing_fold_or_outside_the_split_is_refused(
        tmp_path: Path, fold: int, test_fold: int, match: str):
    from autocontour.errors import InvalidInputError

    write_cases("head-neck", 2, tmp_path / "src", seed=10, shape=(16, 32, 32), dicom=False,
                progress=False)
    import_dataset(tmp_path / "src", tmp_path / "ds", organs=HEAD_NECK, progress=False)
    plans = (MemberPlan("2d", {**COMMON, "network": {"name": "ResUNet2D"},
                               "patch_size": [1, 16, 16]}),)
    with pytest.raises(InvalidInputError, match=match):
        build_model(BuildModelRequest(tmp_path / "ds", tmp_path / "runs", plans, name="t",
                                      model_path=tmp_path / "t.pt", fold=fold, folds=3,
                                      test_fold=test_fold))
    assert not (tmp_path / "t.pt").exists() and not (tmp_path / "runs").exists()
