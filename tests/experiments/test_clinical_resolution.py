"""experiments/clinical_resolution.py: the shipped model at 128x128 and 512x512, organ by organ."""

from __future__ import annotations

import json
from pathlib import Path

from autocontour.organs import HEAD_NECK


def test_one_phantom_at_both_resolutions(experiment_script, tmp_path: Path) -> None:
    experiment = experiment_script("clinical_resolution")
    assert experiment.main(["--cases", "1", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    dice = summary["organ_dice"]
    assert set(dice) == {"128", "512"} and len(dice["128"]) == len(HEAD_NECK)
    assert summary["seeds"] == "90001-90001"
    assert dice["128"]["Eye_L"] > 0.8 and dice["512"]["Eye_L"] > 0.7  # large organs hold up
    groups = summary["groups"]
    assert set(groups) == {"all organs", "10 small organs", "other organs"}
    table = (tmp_path / "table.md").read_text()
    assert "| **10 small organs** |" in table and "| OpticChiasm |" in table
