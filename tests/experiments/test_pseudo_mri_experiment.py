"""experiments/pseudo_mri.py at its smoke size: every table, grid and file is written, and the
three segmentation models are project models (training engine checkpoints, Contourer)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from autocontour.artifacts import load_trained_network
from autocontour.artifacts.versioned import read_pseudo_mri_generator
from autocontour.inference import Contourer


@pytest.fixture(scope="module")
def experiment(experiment_script) -> ModuleType:
    return experiment_script("pseudo_mri")


def test_image_scores_of_known_volumes(experiment: ModuleType) -> None:
    truth = np.zeros((8, 16, 16), np.float32)
    same = experiment.image_scores(truth, truth)
    assert same["mae"] == 0 and same["psnr"] == np.inf and same["ssim"] == pytest.approx(1)
    off = experiment.image_scores(truth + 0.2, truth)
    assert off["mae"] == pytest.approx(0.2)
    assert off["psnr"] == pytest.approx(10 * np.log10(4 / 0.04))


def test_the_tiny_run_writes_every_table(experiment: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "results"
    argv = ["--size", "tiny", "--out", str(out), "--work", str(tmp_path / "work"),
            "--sites", "pelvis"]
    assert experiment.main(argv) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {"quality.csv", "dice.csv", "tables.md", "summary.json", "grid_pelvis.png",
                     "results_pelvis.json"}
    quality = list(csv.DictReader((out / "quality.csv").open()))
    assert {q["variant"] for q in quality} == {"original", "improved", "reference: CT as MR"}
    assert len(quality) == 6
    dice = list(csv.DictReader((out / "dice.csv").open()))
    assert {d["input"] for d in dice} == {"ct", "pseudo_mri", "ct+pseudo_mri"}
    assert all(0 <= float(d["dice"]) <= 1 for d in dice)
    tables = (out / "tables.md").read_text()
    assert "| pelvis | p (original vs improved) |" in tables and "### pelvis" in tables
    assert "p CT vs both" in tables and "--sites pelvis" in tables
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sites"]["pelvis"]["variants"] == ["original", "improved"]
    # the unpaired CycleGANs were trained on other phantoms than the scored ones
    site = summary["sites"]["pelvis"]
    assert site["gan_phantom_seeds"][1] < site["seg_seeds"][0] < site["test_seeds"][0]
    # the three models: engine checkpoints, each scored on every test case
    runs = {w: Path(site["seg_models"][w]) for w in ("ct", "pseudo_mri", "ct+pseudo_mri")}
    channels = {}
    for which, checkpoint in runs.items():
        assert checkpoint.is_file() and (checkpoint.parent / "result.json").is_file()
        assert json.loads((checkpoint.parent / "result.json").read_text())["steps"] == 2
        channels[which] = load_trained_network(checkpoint).net.arch_kwargs["in_channels"]
    assert channels == {"ct": 1, "pseudo_mri": 1, "ct+pseudo_mri": 2}
    inputs = {w: Contourer.from_checkpoint(c).inputs for w, c in runs.items()}
    assert inputs == {"ct": ["CT"], "pseudo_mri": ["MR"], "ct+pseudo_mri": ["CT", "pseudo-MRI"]}
    generator = read_pseudo_mri_generator(tmp_path / "work" / "pelvis" / "gan_improved"
                                          / "model.pt").digest
    assert load_trained_network(runs["ct+pseudo_mri"]).recipe.resources() == (generator,)
    cases = {(d["input"], d["case"]) for d in dice}
    assert {c for _, c in cases} == {"s59000", "s59001"}
    assert len(cases) == 6 and set(site["organ_checks_removed"]) == set(runs)
    # run again in the same work folder: nothing is trained again, the same Dice comes out
    mtimes = {w: c.stat().st_mtime_ns for w, c in runs.items()}
    first = (out / "dice.csv").read_text()
    assert experiment.main(argv) == 0
    assert {w: c.stat().st_mtime_ns for w, c in runs.items()} == mtimes
    assert (out / "dice.csv").read_text() == first
