"""Table 1 of seed 004 (experiments/table1_combined.py): tables from fold scores, kept folds."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest


@pytest.fixture(scope="module")
def table1(experiment_script) -> ModuleType:
    return experiment_script("table1_combined")


ORGANS = ("Eye_L", "Lens_L", "OpticChiasm", "Pituitary")


def fold_scores(fold: int) -> dict:
    """Two held-out cases; 2D wins the eye, 3D the lens, 3D-small the chiasm and pituitary."""
    dice = {"2d": {"Eye_L": 0.9, "Lens_L": 0.5, "OpticChiasm": 0.2, "Pituitary": 0.1},
            "3d": {"Eye_L": 0.8, "Lens_L": 0.7, "OpticChiasm": 0.3, "Pituitary": 0.0},
            "3d_small": {"OpticChiasm": 0.6, "Pituitary": 0.5}}
    dice["combined"] = {"Eye_L": 0.9, "Lens_L": 0.7, "OpticChiasm": 0.6, "Pituitary": 0.5}
    cases = {}
    for c in range(2):
        cases[f"f{fold}c{c}"] = {
            m: {o: {"dice": d + 0.01 * c, "hd95_mm": None if d == 0.0 else 10 * (1 - d)}
                for o, d in organs.items()} for m, organs in dice.items()}
    rule = {"Eye_L": "2d", "Lens_L": "3d", "OpticChiasm": "3d_small", "Pituitary": "3d_small"}
    return {"cases": cases, "rule": rule, "fallback": dict(rule),
            "largest_component": dict.fromkeys(ORGANS, True)}


def test_tables_from_fold_scores(table1: ModuleType, tmp_path: Path) -> None:
    paths = table1.write_tables({0: fold_scores(0), 1: fold_scores(1)}, tmp_path,
                                {"command": "python experiments/table1_combined.py", "folds": 5})
    assert all(p.is_file() for p in paths.values())
    text = paths["table1.md"].read_text()
    assert "fold(s) 0, 1 of a 5-fold split (4 cases)" in text
    eye = next(line for line in text.splitlines() if line.startswith("| Eye_L |"))
    # 2D Dice 0.905 (mean of 0.90, 0.91) is the best and bold; 3D's 0.805 is not.
    assert "**0.905**" in eye and "| 0.805 |" in eye and "2D, 2D" in eye
    pituitary = next(line for line in text.splitlines() if line.startswith("| Pituitary |"))
    assert "**0.505**" in pituitary and "n/a*" in pituitary  # 3D never found it: no HD95
    with paths["table1.csv"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 2 * (4 + 4 + 2 + 4)  # folds x cases x (2D, 3D, 3D-small, combined)
    assert json.loads(paths["rules.json"].read_text())["1"]["rule"]["Lens_L"] == "3d"
    readme = paths["README.md"].read_text()
    assert "Combined model best (or within 0.001 of the best member) for 4 of 4 organs" in readme


def test_cross_fitted_rule_is_chosen_without_the_scored_fold(table1: ModuleType) -> None:
    """Fold 1's 3D wins the eye by far, fold 0's 2D by a little: each fold's rule comes from
    the other, so each fold is scored with the member it did *not* pick for itself."""
    f0, f1 = fold_scores(0), fold_scores(1)
    for case in f1["cases"].values():
        case["3d"]["Eye_L"]["dice"] = 0.99
    f1["rule"]["Eye_L"] = "3d"
    crossed = table1.cross_fitted_rule({0: f0, 1: f1}, list(ORGANS))
    # fold 0 scored with 3D (chosen on fold 1): 0.80, 0.81; fold 1 with 2D: 0.90, 0.91
    assert crossed["organ_dice"]["Eye_L"] == pytest.approx((0.80 + 0.81 + 0.90 + 0.91) / 4)
    assert crossed["organ_dice"]["OpticChiasm"] == pytest.approx(0.605)  # 3D-small everywhere
    assert sorted(crossed["changed"]) == [(0, "Eye_L", "2d", "3d"), (1, "Eye_L", "3d", "2d")]
    assert table1.cross_fitted_rule({0: f0}, list(ORGANS)) is None
    readme = table1.readme({0: f0, 1: f1}, table1.summarise(table1.long_rows({0: f0, 1: f1})),
                           list(ORGANS), [0, 1], 4, {})
    assert "each fold's rule chosen on the other folds" in readme


def test_no_scores_is_an_error(table1: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hold no scores"):
        table1.write_tables({0: {"cases": {}}}, tmp_path)


def test_kept_folds_are_reused_only_with_the_same_plans(table1: ModuleType,
                                                        tmp_path: Path) -> None:
    plans = [SimpleNamespace(name="2d", config={"epochs": 14, "patch_size": [1, 96, 96]})]
    recipe = SimpleNamespace(plans=lambda scale: plans)
    out = tmp_path / "results"
    record = table1.fold_record(out, 3)
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({**fold_scores(3), "plans": table1.plan_configs(plans)}))
    args = argparse.Namespace(work=tmp_path / "work", out=out, scale=1.0, collect_only=True,
                              force=False, folds=5, cases=40, selection="held-out")
    kept = table1.run_fold(3, args, recipe)
    assert kept is not None and set(kept["cases"]) == {"f3c0", "f3c1"}
    assert not (tmp_path / "work").exists()  # nothing trained, nothing written there

    plans[0].config["epochs"] = 28  # another budget: the kept fold is stale
    assert table1.committed_fold(out, 3, plans) is None
    assert table1.run_fold(3, args, recipe) is None  # collect-only: left out, not built


def test_a_built_fold_with_other_plans_is_not_tabulated(table1: ModuleType,
                                                       tmp_path: Path) -> None:
    """The shipped model's folder trained at another --scale is not fold 0 of these plans."""
    from autocontour.training import TrainConfig

    plan = {"epochs": 14, "patch_size": [1, 96, 96], "loss": {"batch_dice": True}}
    plans = [SimpleNamespace(name="2d", config=plan)]
    recipe = SimpleNamespace(plans=lambda scale: plans)
    fold_dir = tmp_path / "work" / "fold_0"
    (fold_dir / "2d").mkdir(parents=True)
    (fold_dir / "validation.json").write_text(json.dumps(fold_scores(0)))
    where = {"dataset": "ds", "out": str(fold_dir / "2d"), "fold": 0, "folds": 5}
    TrainConfig.from_dict({**plan, **where, "epochs": 28}).to_yaml(fold_dir / "2d" / "config.yaml")
    args = argparse.Namespace(work=tmp_path / "work", out=tmp_path / "out", scale=1.0,
                              collect_only=True, force=False, folds=5, cases=40, selection="held-out")
    with pytest.raises(SystemExit, match="built with other member plans .*2d: epochs"):
        table1.run_fold(0, args, recipe)
    # The run's config.yaml spells every default out; only what differs counts.
    TrainConfig.from_dict({**plan, **where}).to_yaml(fold_dir / "2d" / "config.yaml")
    assert set(table1.run_fold(0, args, recipe)["cases"]) == {"f0c0", "f0c1"}


def test_nested_folds_report_what_choosing_on_the_scored_cases_would_have_said(
        table1: ModuleType, tmp_path: Path) -> None:
    """--selection inner: the table scores the test cases; the README gives the inner cases'
    combined Dice beside it, the hindsight rule and each member's chosen epoch."""
    results = {}
    for f in (0, 1):
        validation = fold_scores(f + 10)  # the inner (choosing) cases
        validation["member_dice"] = {"combined": {o: 0.95 for o in ORGANS}}
        test = fold_scores(f)
        validation["test"] = {"cases": test["cases"], "member_dice": {}}
        results[f] = table1.fold_scores(validation, nested=True)
        results[f]["budget"] = {"2d": {"epochs": 14, "chosen_epoch": 12},
                                "3d_small": {"epochs": 8, "chosen_epoch": 8}}
    assert set(results[0]["cases"]) == {"f0c0", "f0c1"}  # the test cases, not the inner ones
    paths = table1.write_tables(results, tmp_path, {"folds": 5})
    readme = paths["README.md"].read_text()
    # combined on the test cases: (0.905 + 0.705 + 0.605 + 0.505) / 4 = 0.680
    assert "(each fold's inner cases, the source's way of scoring): mean 0.950; on the test " \
           "cases, which chose nothing: 0.680 (difference +0.270" in readme
    assert "fold 0: 2D 12/14, 3D-small 8/8" in readme
    assert "Nested selection" in readme and "each fold's rule chosen on the other" not in readme
    assert "| 12 |" in readme  # the chosen-epoch column of the budget table
    assert "never on the cases scored here" in paths["table1.md"].read_text()
    with pytest.raises(SystemExit, match="built without test cases"):
        table1.fold_scores(fold_scores(0), nested=True)
