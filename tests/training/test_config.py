"""TrainConfig: YAML round trip, defaults from the sources, and every invalid option."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autocontour.data.augment import AugmentConfig
from autocontour.errors import InvalidInputError, UnknownOptionError
from autocontour.training import TrainConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BASE = {"dataset": "data/ds", "out": "runs/x"}


def test_defaults_follow_the_sources() -> None:
    config = TrainConfig.from_dict(BASE)
    assert config.lr == 1e-4 and config.min_lr == 1e-6  # seed 002's Adam; seed 004's stop
    assert config.plateau.factor == 0.5
    assert config.loss.name == "dicece" and config.recipe == "fingerprint"
    assert config.augmentation == AugmentConfig()


def test_yaml_round_trip(tmp_path: Path) -> None:
    config = TrainConfig.from_dict({
        **BASE, "network": {"name": "UNet3D", "kwargs": {"channels": [4, 8], "residual": True}},
        "patch_size": [16, 64, 64], "loss": "dice", "lr": 3e-4, "epochs": 7,
        "sampling": {"foreground_fraction": 0.5, "organ_sampling": {"CTV": 2.0}},
        "augmentation": {"rotation_deg": 5.0, "lr_mirror": "swap"}, "folds": 3, "fold": 2,
        "plateau": {"patience": 3}, "amp": False, "device": "cpu",
        "organs": ["CTV", "Bladder"]})
    path = config.to_yaml(tmp_path / "run.yaml")
    again = TrainConfig.from_yaml(path)
    assert again == config and again.organs == ("CTV", "Bladder")
    assert again.patch_size == (16, 64, 64) and again.loss.name == "dice"
    assert json.loads(json.dumps(config.to_dict())) == config.to_dict()
    assert TrainConfig.from_dict({**BASE, "augmentation": None}).augmentation is None


@pytest.mark.parametrize("name", ["pelvis_ctv_unet3d.yaml", "hn_dynunet.yaml",
                                  "seg_ct_pseudo_mri_hn.yaml"])
def test_example_configs_load(name: str) -> None:
    config = TrainConfig.from_yaml(CONFIGS / name)
    assert TrainConfig.from_dict(config.to_dict()) == config


INVALID = [
    ({"epoch": 3}, UnknownOptionError, "unknown option epoch; did you mean 'epochs'"),
    ({"network": {"nam": "UNet3D"}}, UnknownOptionError, "network.nam; did you mean 'name'"),
    ({"plateau": {"patiense": 2}}, UnknownOptionError, "did you mean 'patience'"),
    ({"augmentation": {"rotation": 5}}, UnknownOptionError, "did you mean 'rotation_deg'"),
    ({"loss": "dicec"}, UnknownOptionError, "unknown loss 'dicec'; did you mean 'dicece'"),
    ({"loss": {"name": "ce", "cycle_reduction": "max"}}, UnknownOptionError, "cycle_reduction"),
    ({"loss": {"name": "dicece", "batch_dice": "yes"}}, InvalidInputError, "batch_dice"),
    ({"device": "gpu"}, UnknownOptionError, "unknown device 'gpu'"),
    ({"sampling": {"organ_sampling": "unifrom"}}, UnknownOptionError, "did you mean 'uniform'"),
    ({"patch_size": [16, 32]}, InvalidInputError, r"patch_size must be 3 sizes"),
    ({"patch_size": [16, 0, 32]}, InvalidInputError, r"patch_size must lie in \[1"),
    ({"batch_size": 0}, InvalidInputError, r"batch_size must lie in \[1"),
    ({"batch_size": 2.5}, InvalidInputError, "batch_size must be a whole number"),
    ({"epochs": "ten"}, InvalidInputError, "epochs must be a number"),
    ({"lr": 0}, InvalidInputError, r"lr must lie in \(0"),
    ({"lr": 1e-4, "min_lr": 1e-3}, InvalidInputError, "min_lr .* must be below lr"),
    ({"weight_decay": -1}, InvalidInputError, "weight_decay"),
    ({"plateau": {"factor": 1.5}}, InvalidInputError, "plateau.factor"),
    ({"plateau": {"factor": 1.0}}, InvalidInputError, "plateau.factor must be below 1"),
    ({"folds": 0}, InvalidInputError, r"folds must lie in \[1"),
    ({"folds": 3, "fold": 3}, InvalidInputError, r"fold must lie in \[0, 2\]"),
    ({"amp": "yes"}, InvalidInputError, "amp must be true or false"),
    ({"sampling": {"foreground_fraction": 2}}, InvalidInputError, "foreground_fraction"),
    ({"sampling": {"organ_sampling": {"CTV": -1}}}, InvalidInputError, "organ_sampling.CTV"),
    ({"augmentation": {"flip_axes": ["x"]}}, InvalidInputError, "flip_axes may not contain 'x'"),
    ({"augmentation": 3}, InvalidInputError, "augmentation must be a mapping or null"),
    ({"network": {"name": "UNet3D", "kwargs": [1]}}, InvalidInputError, "network.kwargs"),
    ({"network": "UNet3D"}, InvalidInputError, "network must be a mapping"),
    ({"dataset": ""}, InvalidInputError, "dataset must be a non-empty string"),
    ({"organs": "CTV"}, InvalidInputError, "organs must be a non-empty list of organ names"),
    ({"organs": []}, InvalidInputError, "organs must be a non-empty list of organ names"),
    ({"organs": ["CTV", 3]}, InvalidInputError, "organs must be a non-empty list"),
    ({"organs": ["CTV", "CTV"]}, InvalidInputError, "organs names an organ twice"),
]


@pytest.mark.parametrize(("change", "error", "match"), INVALID)
def test_invalid_values_are_refused(change: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        TrainConfig.from_dict({**BASE, **change})


def test_missing_required_option() -> None:
    with pytest.raises(InvalidInputError, match="the config needs 'out'"):
        TrainConfig.from_dict({"dataset": "x"})


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="nope.yaml: cannot read"):
        TrainConfig.from_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: [unclosed\n")
    with pytest.raises(InvalidInputError, match="bad.yaml: not valid YAML"):
        TrainConfig.from_yaml(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("dataset: d\nout: o\nbatch_sise: 2\n")
    with pytest.raises(UnknownOptionError, match="typo.yaml: unknown option batch_sise; did you "
                       "mean 'batch_size'"):
        TrainConfig.from_yaml(typo)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(InvalidInputError, match="list.yaml: config must be a mapping"):
        TrainConfig.from_yaml(listed)
