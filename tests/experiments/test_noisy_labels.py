"""experiments/table31_noisy_labels.py: seed 002's table 3.1 grid (noisy labels, QAM, OCM)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from autocontour.data.folder import DatasetFolder
from autocontour.phantoms import make_case

TINY = ["--size", "32", "--train", "6", "--test", "4", "--epochs", "2", "--steps", "2",
        "--batch", "4", "--channels", "4,8", "--seeds", "0", "--fractions", "0.5",
        "--levels", "high", "--threads", "1"]
METHODS = ("baseline", "qam", "qam+ocm")


@pytest.fixture(scope="module")
def table31(experiment_script) -> ModuleType:
    return experiment_script("table31_noisy_labels")


@pytest.fixture(scope="module")
def grid(table31: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny grid, run once: 50 % high noise, the three methods, data sets kept."""
    root = tmp_path_factory.mktemp("table31")
    assert table31.main([*TINY, "--keep-data", "--work", str(root / "work"),
                         "--out", str(root / "out")]) == 0
    return root


def test_the_grid_writes_table_summary_and_plot(grid: Path) -> None:
    out = grid / "out"
    table = (out / "table.md").read_text()
    assert "JSRT" in table and "not available" in table
    assert "Command: `python experiments/table31_noisy_labels.py --size 32" in table
    for method in METHODS:
        assert f"| 50 % | 5-13 px | {method} |" in table
    # The source's numbers beside ours (table 3.1, 50 %, 5-13 px: baseline and QAM+OCM).
    assert "| 0.755 | 0.807 | 0.393 | 0.652 |" in table
    assert "| 0.942 | 0.942 | 0.853 | 0.912 |" in table
    summary = json.loads((out / "summary.json").read_text())
    assert [r["method"] for r in summary["runs"]] == list(METHODS)
    for run in summary["runs"]:
        assert set(run["dice"]) >= {"Lung_L", "Heart", "Clavicle_R", "lungs", "clavicles", "mean"}
        assert 0.0 <= run["dice"]["mean"] <= 1.0
        assert run["noisy_cases"] == 3
    weights = {r["method"]: r["weights"] for r in summary["runs"]}
    assert weights["baseline"] is None
    for method in ("qam", "qam+ocm"):
        assert weights[method]["epoch"] == [1, 2]
        assert all(0 < w for w in weights[method]["clean_mean"] + weights[method]["noisy_mean"])
    assert summary["source_table_3_1"]["invertednet_clean"] == [0.972, 0.935, 0.902, 0.936]
    assert (out / "weights.png").stat().st_size > 1000
    assert summary["figure"] == "weights.png"


def test_noise_only_in_the_requested_fraction_of_training_labels(table31: ModuleType,
                                                                  grid: Path) -> None:
    work = grid / "work"
    train = [f"cx_s{table31.FIRST_SEED + i:04d}" for i in range(6)]
    test = [f"cx_s{table31.FIRST_SEED + i:04d}" for i in range(6, 10)]
    source = DatasetFolder(work / "source").cache()
    assert source.case_ids == sorted(train + test)
    # The test labels the runs are scored against are the phantoms' own (clean).
    for cid in test:
        _, labels = source.load(cid)
        truth = make_case("chest", int(cid[4:]), (1, 256, 256)).labels.array
        np.testing.assert_array_equal(labels.array, truth)
    ds = DatasetFolder(work / "data" / "f50-high-s0")
    noisy = ds.cache()
    assert noisy.case_ids == train  # the test cases never enter a training data set
    changed = [cid for cid in train
               if not np.array_equal(noisy.load(cid)[1].array, source.load(cid)[1].array)]
    record = json.loads((ds.path / "noise.json").read_text())
    assert changed == sorted(s["id"] for s in record["samples"] if s["noisy"])
    assert len(changed) == 3  # 50 % of 6
    assert record["config"]["draw"] == "sample"
    for sample in record["samples"]:  # one op and n per case, as the source's n_i
        assert len({(s["op"], s["n"]) for s in sample["structures"].values()}) <= 1
        assert all(5 <= s["n"] <= 13 for s in sample["structures"].values())
    assert json.loads((work / "runs" / "f50-high" / "qam-s0" / "noise.json").read_text()) == record


def test_an_interrupted_grid_resumes_without_redoing_finished_runs(
        table31: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from autocontour.training import Callback, Trainer

    class Interrupt(Callback):
        def on_epoch_end(self, trainer, row) -> None:
            raise KeyboardInterrupt

    real_train, calls = table31.train, []

    def cut_second(config) -> None:
        calls.append(Path(config.out).name)
        if len(calls) == 2:  # the QAM run stops after its first epoch
            Trainer(config, callbacks=[Interrupt()], progress=False).fit(resume=True)
        real_train(config)

    argv = [*TINY, "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")]
    monkeypatch.setattr(table31, "train", cut_second)
    with pytest.raises(KeyboardInterrupt):
        table31.main(argv)
    runs = tmp_path / "work" / "runs" / "f50-high"
    assert (runs / "baseline-s0" / "score.json").is_file()
    assert (runs / "qam-s0" / "last.pt").is_file() and not (runs / "qam-s0" / "result.json").exists()
    finished = (runs / "baseline-s0" / "score.json").stat().st_mtime_ns

    calls.clear()
    monkeypatch.setattr(table31, "train", lambda config: (calls.append(Path(config.out).name),
                                                          real_train(config)))
    assert table31.main(argv) == 0
    assert calls == ["qam-s0", "qam+ocm-s0"]  # the finished baseline is not trained again
    assert (runs / "baseline-s0" / "score.json").stat().st_mtime_ns == finished
    rows = [json.loads(line) for line in (runs / "qam-s0" / "metrics.jsonl").open()]
    assert [r["epoch"] for r in rows] == [1, 2]  # resumed after epoch 1, not restarted
    assert not (tmp_path / "work" / "data" / "f50-high-s0").exists()  # removed once scored
    # A third call finds everything done; other result-changing settings are refused.
    calls.clear()
    assert table31.main(argv) == 0 and calls == []
    with pytest.raises(SystemExit) as caught:
        table31.main([*argv, "--lr", "0.01"])
    assert caught.value.code == 2


@pytest.mark.parametrize(("change", "match"), [
    (["--fractions", "1.5"], "noise fraction must lie in 0..1"),
    (["--fractions", "25"], "noise fraction must lie in 0..1 (25 % is 0.25), got 25"),
    (["--methods", "qma"], "unknown method 'qma'; did you mean 'qam'?"),
    (["--levels", "hihg"], "unknown noise level 'hihg'; did you mean 'high'?"),
    (["--train", "1900", "--test", "200"], "--train + --test = 2100 exceeds the 2000 phantoms"),
    (["--size", "300"], "--size must lie in 32..256"),
    (["--size", "40", "--channels", "4,8,16,32,64"], "be a multiple of 16 (4 down-samplings)"),
    (["--batch", "1"], "--batch must be at least 2"),
    (["--draw", "case"], "unknown noise draw 'case'"),
    (["--device", "tpu"], "unknown device 'tpu'"),
])
def test_bad_options_give_one_line_errors(table31: ModuleType, tmp_path: Path,
                                          capsys: pytest.CaptureFixture, change: list[str],
                                          match: str) -> None:
    with pytest.raises(SystemExit) as caught:
        table31.main([*TINY, "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o"),
                      *change])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1
    assert not (tmp_path / "w").exists() and not (tmp_path / "o").exists()


def test_settings_run_zero_noise_once(table31: ModuleType) -> None:
    grid = table31.settings([0.0, 0.25, 0.5], ["low", "high"])
    assert [s.name for s in grid] == ["f00", "f25-low", "f50-low", "f25-high", "f50-high"]


def test_aggregate_gives_mean_sd_over_seeds_and_the_difference_to_baseline(
        table31: ModuleType) -> None:
    def run(method: str, seed: int, mean: float) -> dict:
        dice = {k: mean for k in (*table31.STRUCTURES, *table31.GROUPS, "mean")}
        late = {"clean": 1.5, "noisy": 0.5, "dilated": 0.4, "eroded": 0.6}
        return {"setting": "f75-high", "fraction": 0.75, "level": "high", "method": method,
                "seed": seed, "noisy_cases": 124, "dice": dice,
                "late_weights": None if method == "baseline" else late}

    results = [run("baseline", 0, 0.60), run("baseline", 1, 0.70),
               run("qam+ocm", 0, 0.70), run("qam+ocm", 1, 0.90)]
    base, ocm = table31.aggregate(results)
    assert base["mean"]["mean"] == pytest.approx(0.65)
    assert base["mean"]["sd"] == pytest.approx(np.std([0.6, 0.7], ddof=1))
    assert base["mean_minus_baseline"] is None and base["late_weights"] is None
    assert ocm["mean_minus_baseline"] == pytest.approx([0.1, 0.2])
    assert ocm["late_weights"] == {"clean": 1.5, "noisy": 0.5, "dilated": 0.4, "eroded": 0.6}
    assert ocm["source"] == (0.938, 0.937, 0.801, 0.892)
    assert table31._mean_sd([0.1, 0.2], signed=True) == "+0.150 ± 0.071"
