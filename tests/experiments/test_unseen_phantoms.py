"""experiments/unseen_phantoms.py: the shipped model scored on phantoms it never saw."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import ModuleType

import pytest

from autocontour.errors import InvalidInputError
from autocontour.organs import HEAD_NECK


@pytest.fixture(scope="module")
def unseen(experiment_script) -> ModuleType:
    return experiment_script("unseen_phantoms")


def _row(model: str, case: str, organ: str, dice: float, hd: float) -> dict:
    return {"model": model, "case": case, "organ": organ, "dice": dice, "hd95_mm": hd,
            "assd_mm": hd / 2, "surface_dice": dice, "volume_pred_cc": 1.0,
            "volume_truth_cc": 1.0, "volume_diff_cc": 0.0, "volume_diff_pct": 0.0,
            "pred_empty": dice == 0.0, "truth_empty": False, "seconds": 2.0}


def test_tables_average_cases_then_organs_and_compare_pairs(unseen: ModuleType) -> None:
    rows = []
    for i in range(6):
        case = f"hn_s{i}"
        rows += [_row("a", case, "Eye_L", 0.9, 2.0), _row("a", case, "Lens_L", 0.5 + 0.01 * i, 3.0),
                 _row("b", case, "Eye_L", 0.8, 2.5), _row("b", case, "Lens_L", 0.0, float("nan"))]
    meta = {"command": "x", "seconds": 60.0, "threads": 1, "seeds": "0-5"}
    markdown, summary = unseen.tables(rows, meta)
    a, b = summary["models"]["a"], summary["models"]["b"]
    assert a["mean_dice"] == pytest.approx((0.9 + 0.525) / 2)
    assert a["organ_dice"]["Lens_L"] == pytest.approx(0.525)
    assert b["mean_dice"] == pytest.approx(0.4) and b["organs_missed"] == 6
    assert a["worst_case_mean_dice"] == pytest.approx(0.7)
    assert "| **mean over organs** | **0.713** |" in markdown
    assert "n/a*" in markdown  # b's lens: missed everywhere, no HD95
    lens = next(t for t in summary["paired_dice"] if t["organ"] == "Lens_L")
    assert lens["n"] == 6 and lens["diff"] == pytest.approx(0.525) and lens["p"] < 0.05
    assert "A better for 2 organ(s), worse for 0" in markdown


def test_shipped_model_on_an_unseen_phantom(unseen: ModuleType, tmp_path: Path) -> None:
    assert unseen.main(["--cases", "1", "--first-seed", "90011", "--threads", "1",
                        "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    shipped = summary["models"]["shipped"]
    assert summary["cases"] == ["hn_s90011"]
    assert shipped["mean_dice"] > 0.7 and shipped["organs_missed"] == 0
    with (tmp_path / "scores.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(HEAD_NECK) and {r["model"] for r in rows} == {"shipped"}
    assert "# Unseen head & neck phantoms: 1 cases (seeds 90011-90011)" in (
        tmp_path / "table.md").read_text()


def test_a_missing_model_file_is_named(unseen: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="nothing.pt"):
        unseen.main(["--models", str(tmp_path / "nothing.pt"), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_pelvis_scoring_counts_an_organ_of_the_other_sex(unseen: ModuleType) -> None:
    """An organ the truth lacks but the prediction has (a prostate in a woman) scores 0."""
    from types import SimpleNamespace

    from autocontour.phantoms import make_case

    class Stub:
        """Returns the truth with a prostate added in front of the rectum."""

        def run(self, ct, precision="auto"):
            assert precision == "auto"
            case = make_case("pelvis", 90002)
            array = case.labels.array.copy()
            array[20:24, 60:64, 60:64] = case.labels.organs.by_name("Prostate").label
            return SimpleNamespace(labels=case.labels.with_array(array))

    assert make_case("pelvis", 90002).meta["sex"] == "female"
    rows = unseen.score_models({"stub": Stub()}, [90002], progress=False, site="pelvis")
    dice = {r["organ"]: r["dice"] for r in rows}
    assert dice["Prostate"] == 0.0 and dice["Bladder"] > 0.95
    meta = {"command": "x", "seconds": 1.0, "threads": 1, "seeds": "90002", "site": "pelvis"}
    markdown, summary = unseen.tables(rows, meta)
    assert summary["models"]["stub"]["oar_mean_dice"] > 0.95
    assert markdown.startswith("# Unseen pelvis phantoms")


def test_small_organs_are_summarised_apart(unseen: ModuleType) -> None:
    rows = [_row("a", "hn_s1", organ, 0.6, 2.0) for organ in unseen.SMALL_ORGANS]
    rows += [_row("a", "hn_s1", "Brainstem", 0.9, 2.0), _row("a", "hn_s1", "Eye_L", 0.8, 2.0)]
    markdown, summary = unseen.tables(rows, {"command": "x", "seconds": 6.0, "threads": 1,
                                             "seeds": "1-1", "pixels": 512})
    a = summary["models"]["a"]
    assert a["small_organ_dice"] == pytest.approx(0.6)
    assert a["other_organ_dice"] == pytest.approx(0.85)
    assert "1 cases (seeds 1-1, 512x512 pixels)" in markdown
    assert "The 10 small organs" in markdown and "the others 0.850" in markdown


def test_pixels_outside_the_range_are_refused(unseen: ModuleType, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        unseen.main(["--pixels", "8", "--out", str(tmp_path / "o")])
    assert stop.value.code == 2 and "--pixels must lie in 32..1024" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
