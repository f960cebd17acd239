"""The dataset audit's scoring: robust z, the rankings, precision/recall, loading a QAM run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autocontour.errors import InvalidInputError
from autocontour.training.audit import (
    SCORE_FLOOR,
    Measured,
    audit_rows,
    load_audited_run,
    measure_case,
    precision_recall,
    rank_cases,
    rank_organs,
    robust_z,
)


def test_robust_z_ignores_the_outlier_it_measures_and_has_a_floor():
    z = robust_z([1.0, 1.1, 0.9, 1.05, 0.95, 10.0], floor=1e-6)
    assert z[-1] > 20 and np.all(np.abs(z[:-1]) < 1.5)  # the outlier does not hide itself
    flat = robust_z([0.5, 0.5, 0.5, 0.5 + 1e-9], floor=SCORE_FLOOR)
    assert np.all(np.abs(flat) < 1e-6)  # a rounding difference is not an outlier


def _measured(n: int = 8) -> tuple[dict, dict]:
    """n cases with Bladder and Rectum: c3's rectum the model disputes, c6's the QAM, c5's
    bladder volume is odd."""
    rng = np.random.default_rng(0)
    measured, volumes = {}, {}
    for i in range(n):
        case = f"c{i}"
        measured[case] = {
            "Bladder": Measured(0.5, 0.01 * rng.standard_normal(), 0.9 + 0.01 * rng.random()),
            "Rectum": Measured(0.2, 0.01 * rng.standard_normal(), 0.8 + 0.01 * rng.random())}
        volumes[case] = {"Bladder": 200.0 + rng.standard_normal(), "Rectum": 50.0}
    measured["c3"]["Rectum"] = Measured(0.2, 0.0, 0.3)
    measured["c6"]["Rectum"] = Measured(-1.0, 1.5, 0.8)  # a better score with the model's
    volumes["c5"]["Bladder"] = 400.0
    return measured, volumes


def test_each_ranking_puts_its_own_outlier_first():
    rows = audit_rows(*_measured())
    by_model = rank_cases(rows)  # the default ranking
    assert by_model[0]["case"] == "c3" and by_model[0]["organs"][0]["organ"] == "Rectum"
    assert by_model[0]["distrust"] > 10
    assert rank_cases(rows, "qam")[0]["case"] == "c6"
    assert rank_cases(rows, "volume")[0]["case"] == "c5"
    first = rank_organs(rows)[0]
    assert (first.case, first.organ) == ("c3", "Rectum")
    assert first.volume_ml == 50.0 and first.model_dice == 0.3
    other = rank_organs(rows, "qam")[0]
    assert (other.case, other.qam_score, other.qam_gain) == ("c6", -1.0, 1.5)
    with pytest.raises(InvalidInputError, match="unknown ranking 'size'"):
        rank_cases(rows, "size")


def test_precision_and_recall_at_k():
    ranked = ["a", "b", "c", "d"]
    assert precision_recall(ranked, {"a", "c"}, 2) == (0.5, 0.5)
    assert precision_recall(ranked, {"a", "c"}, 3) == (2 / 3, 1.0)
    assert precision_recall(ranked, {"a"}, 10) == (0.25, 1.0)  # k past the end: all of them
    with pytest.raises(InvalidInputError, match="k must be at least 1"):
        precision_recall(ranked, {"a"}, 0)


def _qam_run(tiny_config, out: Path) -> Path:
    from autocontour.training import Trainer
    config = tiny_config(out, folds=1, sample_weighting={"name": "qam", "lr": 1e-4,
                                                         "channels": [4, 8]})
    Trainer(config, progress=False).fit()
    return out / "last.pt"


def test_a_qam_run_scores_every_present_organ_deterministically(tiny_config, pelvis_ds,
                                                               tmp_path):
    from autocontour.data.folder import DatasetFolder
    from autocontour.training.data import preprocess

    run = load_audited_run(_qam_run(tiny_config, tmp_path / "run"))
    assert run.qam.ocm_lambda == 2.0
    cache = preprocess(pelvis_ds, run.trained.recipe, progress=False)
    case = cache.case_ids[0]
    first = measure_case(run, cache, case, patches=3, seed=1)
    assert set(first) == set(DatasetFolder(pelvis_ds).cache().present(case))
    for score, gain, dice in first.values():  # bounded by the OCM
        assert -2.0 < score < 2.0 and -4.0 < gain < 4.0 and 0.0 <= dice <= 1.0
    assert measure_case(run, cache, case, patches=3, seed=1) == first


def test_a_run_without_the_qam_ranks_by_model_and_volume_only(tiny_config, pelvis_ds, tmp_path):
    from autocontour.training import Trainer
    from autocontour.training.data import preprocess
    Trainer(tiny_config(tmp_path / "plain"), progress=False).fit()
    run = load_audited_run(tmp_path / "plain" / "last.pt")
    assert run.qam is None and run.rankings == ("model", "volume")
    cache = preprocess(pelvis_ds, run.trained.recipe, progress=False)
    measured = {c: measure_case(run, cache, c, patches=2) for c in cache.case_ids[:3]}
    for organs in measured.values():
        for m in organs.values():
            assert np.isnan(m.qam_score) and np.isnan(m.qam_gain) and 0.0 <= m.model_dice <= 1.0
    rows = audit_rows(measured, {c: {} for c in measured})
    assert set(rows[0].distrust) == {"model", "volume"}
    assert len(rank_cases(rows, "model")) == 3
    with pytest.raises(InvalidInputError, match="'qam' needs a run trained with the QAM"):
        rank_cases(rows, "qam")


def test_one_fold_trains_on_every_case_without_validation(tiny_config, pelvis_ds, tmp_path):
    from autocontour.data.folder import DatasetFolder
    from autocontour.training.data import fold_cases
    cache = DatasetFolder(pelvis_ds).cache()
    train, val = fold_cases(pelvis_ds, cache, 1, 0, 0)
    assert train == tuple(cache.case_ids) and val == ()
    assert not (pelvis_ds / "splits_1fold.json").exists()
    with pytest.raises(InvalidInputError, match="only fold 0"):
        fold_cases(pelvis_ds, cache, 1, 1, 0)
