"""The combined model: per-organ rule, region member placement, fall-back, rule choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from oracles import PAROTID_L, PAROTID_R, BandNet, band_model, sphere_ct

from autocontour.errors import InvalidInputError
from autocontour.evaluation import dice
from autocontour.inference import Contourer
from autocontour.inference.combined import (
    ContourModel,
    Member,
    RoiSpec,
    choose_rule,
    combined_probabilities,
    roi_box,
)


def _labels(model: ContourModel, volume, **kw) -> np.ndarray:
    return Contourer(model).predict(volume, **kw).array


def test_each_organ_comes_from_the_member_the_rule_names() -> None:
    ct, truth = sphere_ct()
    members = {"a": Member("a", BandNet(only=PAROTID_L), (16, 32, 32)),
               "b": Member("b", BandNet(only=PAROTID_R), (16, 32, 32))}
    # A 1 mm model grid: no partial-volume ring (HU between the bands) around the spheres.
    out = _labels(band_model(members, {"Parotid_L": "a", "Parotid_R": "b"}, spacing=1.0), ct)
    for label in (PAROTID_L, PAROTID_R):
        assert dice(out == label, truth.array == label) > 0.9
    wrong = _labels(band_model(members, {"Parotid_L": "b", "Parotid_R": "a"}, spacing=1.0), ct)
    assert not wrong.any()  # each member is blind to the organ the rule gives it


def test_single_member_keeps_its_own_background_and_skips_unwanted_organs() -> None:
    ct, truth = sphere_ct()
    out = Contourer(band_model(spacing=1.0)).predict(ct, organs=["parotid_l"])
    assert out.organs.names == ["Parotid_L"]
    assert set(np.unique(out.array)) == {0, PAROTID_L}
    assert dice(out.array == PAROTID_L, truth.array == PAROTID_L) > 0.9


def test_unknown_organ_is_refused_with_a_suggestion() -> None:
    ct, _ = sphere_ct()
    with pytest.raises(InvalidInputError, match="Parotid_L"):
        Contourer(band_model()).predict(ct, organs=["Parotd_L"])


def test_roi_box_stays_inside_and_pads_small_volumes() -> None:
    box = roi_box((2.0, 30.0, 60.0), (16, 64, 64), (40, 100, 70))
    assert box.start == (0, 0, 6)
    assert [s.stop - s.start for s in box.target] == [16, 64, 64]
    small = roi_box((3.0, 5.0, 5.0), (16, 64, 64), (8, 100, 100))
    assert small.start[0] == -4 and small.target[0] == slice(0, 8)
    assert small.source[0] == slice(4, 12)


def _region_model(centre_only: int | None) -> ContourModel:
    """Whole member 'w' (band oracle, maybe blind to one organ) centres region member 'r'."""
    members = {"w": Member("w", BandNet(only=centre_only), (16, 32, 32)),
               "r": Member("r", BandNet(), (8, 8, 8), RoiSpec((8, 8, 8), ("Parotid_L",), "w"))}
    return band_model(members, {"Parotid_L": "r", "Parotid_R": "w"})


def test_region_member_runs_only_in_its_box_around_the_centring_prediction() -> None:
    ct, truth = sphere_ct()
    model = _region_model(None)
    out = _labels(model, ct)
    # The box (8 voxels of 2 mm = 16 mm) holds the whole 14 mm ball.
    assert dice(out == PAROTID_L, truth.array == PAROTID_L) > 0.85
    assert dice(out == PAROTID_R, truth.array == PAROTID_R) > 0.9
    image = torch.from_numpy(model.recipe.apply(ct).image.array.astype(np.float32))[None, None]
    probs, warnings = combined_probabilities(model, image, organs=["Parotid_L"])
    assert not warnings
    inside = probs[PAROTID_L] > 0.5
    zyx = inside.nonzero()
    assert (zyx.max(0).values - zyx.min(0).values < 8).all()


def test_region_member_falls_back_when_the_centring_member_finds_nothing() -> None:
    ct, _truth = sphere_ct()
    model = _region_model(PAROTID_R)  # 'w' never predicts Parotid_L: nothing to centre on
    model.fallback = {"Parotid_L": "w"}
    prediction = Contourer(model).run(ct)
    assert any("found none of Parotid_L" in w for w in prediction.warnings)
    assert not (prediction.labels.array == PAROTID_L).any()  # w's answer: no Parotid_L


def test_model_rejects_rules_naming_unknown_members_or_organs() -> None:
    with pytest.raises(InvalidInputError, match="member 'x'"):
        band_model(rule={"Parotid_L": "x"})
    with pytest.raises(InvalidInputError, match="Nose"):
        band_model(rule={"Nose": "3d"})
    members = {"r": Member("r", BandNet(), (8, 8, 8), RoiSpec((8, 8, 8), ("Parotid_L",), "q"))}
    with pytest.raises(InvalidInputError, match="not a whole-volume member"):
        band_model(members)


def test_choose_rule_takes_the_best_member_per_organ_and_a_whole_volume_fallback() -> None:
    dices = {"2d": {"Eye_L": 0.9, "OpticChiasm": 0.4}, "3d": {"Eye_L": 0.8, "OpticChiasm": 0.5},
             "3d_small": {"OpticChiasm": 0.7}}
    members = {"2d": Member("2d", BandNet(), (1, 8, 8)), "3d": Member("3d", BandNet(), (8, 8, 8)),
               "3d_small": Member("3d_small", BandNet(), (8, 8, 8),
                                  RoiSpec((8, 8, 8), ("OpticChiasm",), "2d"))}
    rule, fallback = choose_rule(dices, ["Eye_L", "OpticChiasm"], members)
    assert rule == {"Eye_L": "2d", "OpticChiasm": "3d_small"}
    assert fallback == {"Eye_L": "2d", "OpticChiasm": "3d"}
    # An organ in no validation case goes to the first whole-volume member.
    assert choose_rule(dices, ["Brainstem"], members)[0] == {"Brainstem": "2d"}
    with pytest.raises(InvalidInputError, match="whole-volume"):
        choose_rule({"3d_small": {"OpticChiasm": 0.7}}, ["OpticChiasm"], members)


def test_rule_table_lists_every_organ_with_its_member(tiny_model: ContourModel) -> None:
    table = tiny_model.rule_table()
    assert "OpticChiasm" in table and "3d_small" in table
    assert len(table.splitlines()) == len(tiny_model.organs.names) + 1


@pytest.fixture
def tiny_model() -> ContourModel:
    from oracles import tiny_real_model
    return tiny_real_model()
