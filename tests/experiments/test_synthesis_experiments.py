"""experiments/synthesis_experiments.py at its smoke size: every part writes its table."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest


@pytest.fixture(scope="module")
def experiment(experiment_script) -> ModuleType:
    return experiment_script("synthesis_experiments")


def test_helpers(experiment: ModuleType) -> None:
    truth = np.zeros((8, 8), np.float32)
    truth[2:5, 2:5] = 1
    assert experiment.dice_score(truth, truth) == 1.0
    assert experiment.dice_score(np.zeros_like(truth), truth) == 0.0
    images = experiment.Images(np.random.default_rng(0).random((2, 8, 8), np.float32),
                               np.array([0, 1]), np.stack([truth, np.zeros_like(truth)]))
    crops = experiment.lesion_crops(images, 4)
    assert crops.x.shape == (1, 4, 4) and crops.lesion[0].sum() == 9  # the whole 3x3 lesion
    aug = experiment.augment(images, np.random.default_rng(1))
    assert aug.lesion.sum() == images.lesion.sum() and aug.x.shape == images.x.shape


def test_the_tiny_run_writes_every_table(experiment: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "results"
    argv = ["--size", "tiny", "--out", str(out), "--work", str(tmp_path / "work"),
            "--models", "A", "B", "F"]
    assert experiment.main(argv) == 0
    assert {p.name for p in out.iterdir()} == {"ablation.csv", "validity.csv", "usefulness.csv",
                                               "tables.md", "summary.json", "samples.png"}
    ablation = list(csv.DictReader((out / "ablation.csv").open()))
    assert [r["model"] for r in ablation] == ["real (train vs test)", "A", "B", "F"]
    assert all(0 <= float(r["ms_ssim"]) <= 1 for r in ablation)
    assert ablation[1]["structure_input"] == "False" and ablation[3]["lesion_loss"] == "True"
    validity = list(csv.DictReader((out / "validity.csv").open()))
    assert validity[0]["test data"].startswith("real") and len(validity) == 4
    usefulness = list(csv.DictReader((out / "usefulness.csv").open()))
    assert [r["mixing"] for r in usefulness].count("synthetic first") == 1
    assert all(0 <= float(r["dice"]) <= 1 for r in usefulness)
    tables = (out / "tables.md").read_text()
    assert "**not FID**" in tables and "not BRATS" in tables and "--models A B F" in tables
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ms_ssim_scales"]["image"] == 3 and summary["synthetic_tuples"] == 8
    # a second run reuses the trained models and the synthetic sets
    assert experiment.main([*argv, "--parts", "validity"]) == 0
