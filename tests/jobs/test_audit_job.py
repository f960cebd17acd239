"""``autocontour dataset audit``: the job end to end on a tiny data set, and every refusal."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from autocontour.cli import main
from autocontour.errors import InvalidInputError, JobCancelled
from autocontour.jobs.audit import AuditRequest, audit_dataset

TINY = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4, "patch_size": (1, 32, 32),
        "channels": (4, 8), "flag": 2, "patches": 2}
TINY_ARGS = ["--epochs", "1", "--steps", "2", "--batch", "4", "--patch", "1", "32", "32",
             "--channels", "4", "8", "--flag", "2", "--patches", "2", "--quiet", "--threads", "1"]


@pytest.fixture(scope="module")
def audited(pelvis_ds: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("audit") / "out"
    return audit_dataset(AuditRequest(pelvis_ds, out, qam=True, **TINY))


def test_the_audit_ranks_every_case_and_writes_its_files(audited, pelvis_ds):
    from autocontour.data.folder import DatasetFolder
    cache = DatasetFolder(pelvis_ds).cache()
    out = audited.out
    summary = json.loads((out / "audit.json").read_text())
    assert [c["case"] for c in summary["cases"]] == [c["case"] for c in audited.cases]
    assert sorted(c["case"] for c in audited.cases) == sorted(cache.case_ids)
    distrust = [c["distrust"] for c in audited.cases]
    assert distrust == sorted(distrust, reverse=True) and audited.cases[0]["rank"] == 1
    for case in audited.cases:  # every contoured organ of the case is ranked within it
        assert sorted(o["organ"] for o in case["organs"]) == sorted(cache.present(case["case"]))
    assert summary["ranking"] == "model"
    assert summary["rankings"]["model"] == [c["case"] for c in audited.cases]
    assert {k: sorted(v) for k, v in summary["rankings"].items()} == dict.fromkeys(
        ("model", "qam", "volume"), sorted(cache.case_ids))
    with (out / "organs.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == sum(len(cache.present(c)) for c in cache.case_ids)
    assert float(rows[0]["distrust_qam"]) >= float(rows[-1]["distrust_qam"])
    assert [p.name for p in audited.overviews] == [
        f"{i:03d}_{c['case']}.png" for i, c in enumerate(audited.cases[:2], 1)]
    assert all(p.is_file() and p.stat().st_size > 10_000 for p in audited.overviews)
    assert audited.run == out / "run" / "last.pt" and audited.run.is_file()
    assert (out / "run" / "sample_weights.jsonl").is_file()
    assert not list(out.parent.glob(".*partial*"))


def test_reusing_the_run_gives_the_same_ranking_without_training(audited, pelvis_ds, tmp_path):
    again = audit_dataset(AuditRequest(pelvis_ds, tmp_path / "again", run=audited.out / "run",
                                       **TINY))
    assert [c["case"] for c in again.cases] == [c["case"] for c in audited.cases]
    assert [c["distrust"] for c in again.cases] == pytest.approx(
        [c["distrust"] for c in audited.cases], abs=1e-4)  # thread counts change the last bits
    assert not (tmp_path / "again" / "run").exists()
    assert again.run == audited.out / "run" / "last.pt"


def test_the_command_prints_the_ranking(audited, pelvis_ds, tmp_path, capsys):
    code = main(["dataset", "audit", str(pelvis_ds), "-o", str(tmp_path / "cli"),
                 "--run", str(audited.run), *TINY_ARGS])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"1  {audited.cases[0]['case']}" in printed
    assert "overviews of the top 2" in printed and (tmp_path / "cli" / "cases.csv").is_file()


def test_by_default_it_trains_the_segmenter_without_the_qam(pelvis_ds, tmp_path):
    plain = audit_dataset(AuditRequest(pelvis_ds, tmp_path / "plain", **{**TINY, "flag": 0}))
    summary = json.loads((tmp_path / "plain" / "audit.json").read_text())
    assert summary["qam"] is False and set(summary["rankings"]) == {"model", "volume"}
    assert not (tmp_path / "plain" / "run" / "sample_weights.jsonl").exists()
    with (tmp_path / "plain" / "organs.csv").open() as fh:
        header = fh.readline().strip().split(",")
    assert "distrust_qam" not in header and "distrust_model" in header
    assert len(plain.cases) == 4


def test_a_cancelled_audit_leaves_nothing(pelvis_ds, tmp_path):
    with pytest.raises(JobCancelled):
        audit_dataset(AuditRequest(pelvis_ds, tmp_path / "out", **TINY), cancel=lambda: True)
    assert list(tmp_path.iterdir()) == []


def test_a_run_for_other_organs_is_refused(audited, tmp_path):
    from autocontour.data.importer import import_dataset
    from autocontour.organs import CHEST
    from autocontour.phantoms.export import write_cases
    write_cases("chest", 2, tmp_path / "src", seed=3, shape=(1, 64, 64), dicom=False,
                progress=False)
    import_dataset(tmp_path / "src", tmp_path / "chest", organs=CHEST, layout="nifti",
                   modality="DX", progress=False, fingerprint=False)
    with pytest.raises(InvalidInputError, match="trained on organs .* the data set has"):
        audit_dataset(AuditRequest(tmp_path / "chest", tmp_path / "out", run=audited.run,
                                   **TINY))
    assert not (tmp_path / "out").exists()


def _bad(tmp_path: Path, pelvis_ds: Path, plain_run: Path) -> list[tuple[list[str], str]]:
    (tmp_path / "afile").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("kept")
    (tmp_path / "empty").mkdir()
    ds, out = str(pelvis_ds), str(tmp_path / "new")
    return [
        (["nowhere", "-o", out], "nowhere: no such data set folder"),
        ([str(tmp_path / "empty"), "-o", out], "empty"),
        ([ds, "-o", str(tmp_path / "afile")], "afile: is a file, not a folder"),
        ([ds, "-o", str(tmp_path / "full")], "full: already holds files"),
        ([ds, "-o", out, "--run", str(tmp_path / "gone.pt")], "gone.pt: no such file"),
        ([ds, "-o", out, "--run", str(tmp_path / "empty")], "no checkpoint there"),
        ([ds, "-o", out, "--run", str(plain_run), "--rank", "qam"],
         "trained without the QAM, so it cannot rank by 'qam'"),
        ([ds, "-o", out, "--rank", "qam"], "--rank qam needs the QAM: add --qam"),
        ([ds, "-o", out, "--batch", "1"], "--batch: must be at least 2"),
        ([ds, "-o", out, "--patch", "1", "0", "32"], "--patch: must be at least 1"),
        ([ds, "-o", out, "--rank", "size"], "--rank: invalid choice: 'size'"),
    ]


def test_bad_invocations_print_one_line_exit_2_and_write_nothing(pelvis_ds, tmp_path, capsys,
                                                                 tiny_config):
    from autocontour.training import Trainer
    Trainer(tiny_config(tmp_path / "plain"), progress=False).fit()
    for args, expected in _bad(tmp_path, pelvis_ds, tmp_path / "plain" / "last.pt"):
        parser = "must be at least" in expected or "invalid choice" in expected
        with pytest.raises(SystemExit) if parser else _no_raise() as ex:
            code = main(["dataset", "audit", *args, "--quiet"])
        code = ex.value.code if ex is not None and hasattr(ex, "value") else code
        err = capsys.readouterr().err.strip()
        assert code == 2, (args, err)
        assert len(err.splitlines()) == 1 and expected in err, (args, err)
        assert not (tmp_path / "new").exists()
        assert (tmp_path / "full" / "keep.txt").read_text() == "kept"


class _no_raise:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_another_ranking_orders_the_cases_and_the_files_by_it(audited, pelvis_ds, tmp_path):
    by_volume = audit_dataset(AuditRequest(pelvis_ds, tmp_path / "v", run=audited.run,
                                           ranking="volume", **{**TINY, "flag": 0}))
    summary = json.loads((tmp_path / "v" / "audit.json").read_text())
    assert [c["case"] for c in by_volume.cases] == summary["rankings"]["volume"]
    first = json.loads((audited.out / "audit.json").read_text())["rankings"]
    assert summary["rankings"]["volume"] == first["volume"]  # volumes do not depend on the run
    with (tmp_path / "v" / "organs.csv").open() as fh:
        values = [float(r["distrust_volume"]) for r in csv.DictReader(fh)]
    assert values == sorted(values, reverse=True) and by_volume.overviews == []
    with pytest.raises(InvalidInputError, match="unknown ranking 'size'"):
        audit_dataset(AuditRequest(pelvis_ds, tmp_path / "x", run=audited.run, ranking="size"))
