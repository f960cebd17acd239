"""experiments/audit_corrupted_contours.py: known errors in, precision/recall of the audit out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

TINY = ["--sets", "0", "--cases", "7", "--corrupted", "5", "--shape", "16", "48", "48",
        "--epochs", "1", "--steps", "2", "--batch", "4", "--patch", "1", "32", "32",
        "--channels", "4", "8", "--plain"]


@pytest.fixture(scope="module")
def experiment(experiment_script):
    return experiment_script("audit_corrupted_contours")


@pytest.fixture(scope="module")
def ran(experiment, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("audit_exp")
    assert experiment.main([*TINY, "--work", str(root / "work"), "--out", str(root / "out")]) == 0
    return root


def test_each_corrupted_case_holds_its_recorded_error(ran, experiment):
    from autocontour.data.folder import DatasetFolder
    from autocontour.phantoms import make_case
    truth = json.loads((ran / "work" / "set0" / "truth.json").read_text())
    assert [t["kind"] for t in truth.values()] == list(experiment.KINDS)  # one of each, in turn
    cache = DatasetFolder(ran / "work" / "set0" / "ds").cache()
    assert len(cache.case_ids) == 7
    for cid in cache.case_ids:
        stored = cache.load(cid)[1].array
        clean = make_case("pelvis", int(cid.split("_s")[1]), (16, 48, 48)).labels.array
        changed = {cache.organs.by_label(v).name for v in np.unique(
            np.concatenate([stored[stored != clean], clean[stored != clean]])) if v}
        assert changed == set(truth.get(cid, {}).get("organs", [])), cid


def test_the_table_scores_every_ranking(ran, experiment):
    table = (ran / "out" / "table.md").read_text()
    for name in experiment.RANKING_NAMES.values():
        assert table.count(f"| {name} |") == 3  # cases, contours, and a column of ranks
    summary_rankings = json.loads((ran / "out" / "summary.json").read_text())["sets"]["0"]
    assert set(summary_rankings["rankings"]) == {"model", "model_no_qam", "qam", "qam_plain",
                                                 "volume"}
    summary = json.loads((ran / "out" / "summary.json").read_text())
    qam = summary["sets"]["0"]["rankings"]["qam"]
    assert sorted(qam["rank_of"].values()) == sorted(set(qam["rank_of"].values()))
    assert all(1 <= r <= 7 for r in qam["rank_of"].values())
    p, r = qam["case_pr"]["5"]
    assert r == pytest.approx(p)  # k = the corrupted count: precision equals recall
    assert "Command: `python experiments/audit_corrupted_contours.py --sets 0" in table


def test_average_precision(experiment):
    assert experiment.average_precision(["a", "b", "c"], {"a", "b"}) == 1.0
    assert experiment.average_precision(["x", "a"], {"a"}) == 0.5


@pytest.mark.parametrize(("args", "message"), [
    (["--cases", "4", "--corrupted", "4"], "--corrupted must lie in 1..cases-1"),
    (["--sets", "10"], "--sets must lie in 0..9"),
    (["--sets", "x"], "invalid int value"),
])
def test_bad_options_print_one_line_and_exit_2(experiment, args, message, capsys):
    with pytest.raises(SystemExit) as ex:
        experiment.main(args)
    err = capsys.readouterr().err.strip()
    assert ex.value.code == 2 and len(err.splitlines()) == 1 and message in err
