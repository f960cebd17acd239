"""experiments/site_recognition.py: which shipped model each fresh phantom gets."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from autocontour.phantoms import head_neck_case


@pytest.fixture(scope="module")
def experiment(experiment_script) -> ModuleType:
    return experiment_script("site_recognition")


def test_fields_of_view_cut_what_they_say(experiment: ModuleType) -> None:
    ct = head_neck_case(96001, shape=(16, 48, 48)).ct
    rng = np.random.default_rng(0)
    assert experiment.cut(ct, "full", rng) is ct
    assert experiment.cut(ct, "shifted", rng).shape == (12, 48, 40)
    partial = experiment.cut(ct, "partial", rng)
    assert partial.shape == (8, 48, 48)
    # a cut keeps the patient where he was: the origin moves with the first voxel kept
    first = ct.geometry.index_to_physical(np.array([[0, 0, 0]]))[0]
    assert partial.geometry.origin[2] in (first[2], first[2] + 8 * ct.spacing[2])


def test_one_case_per_site_is_scored_and_written(experiment: ModuleType, tmp_path: Path) -> None:
    assert experiment.main(["--cases", "1", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["total"] == 9 and summary["cases_per_site"] == 1
    by_site = summary["right_by_site_and_field"]
    assert by_site["head-neck"]["full"] == 1  # the head-and-neck model is always shipped
    assert by_site["thorax"]["full"] == 1     # and no shipped model takes a chest
    assert "| head-neck | head-neck |" in (tmp_path / "table.md").read_text()
    assert len((tmp_path / "cases.csv").read_text().splitlines()) == 10
