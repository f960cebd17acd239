"""The combined model: per-organ rule, region member placement, fall-back, rule choice."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from oracles import PAROTID_L, PAROTID_R, BandNet, band_model, sphere_ct

from autocontour.data.recipes import Recipe
from autocontour.data.steps_grid import Resample
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
from autocontour.io.grid import canonical


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
    combined = combined_probabilities(model, image, organs=["Parotid_L"])
    probs, warnings = combined.probabilities, combined.warnings
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


# ---------------------------------------------------------------------------------------------
# A member on its own, finer grid (small organs at clinical resolution).


def _own_grid_model(coarse_mm: float = 4.0, fine_mm: float = 1.0, margin_mm: float = 6.0,
                    centre_only: int | None = None) -> ContourModel:
    """Coarse oracle 'w' on a ``coarse_mm`` grid; oracle 'f' on its own ``fine_mm`` grid
    gives Parotid_L in the bounding box of w's Parotid_L grown by ``margin_mm``."""
    fine_recipe = Recipe("fine", (Resample(spacing=(fine_mm,) * 3),))
    members = {"w": Member("w", BandNet(only=centre_only), (8, 16, 16)),
               "f": Member("f", BandNet(), (8, 16, 16),
                           RoiSpec((8, 16, 16), ("Parotid_L",), "w", margin_mm), fine_recipe)}
    model = band_model(members, {"Parotid_L": "f", "Parotid_R": "w"}, spacing=coarse_mm)
    model.fallback = {"Parotid_L": "w"}
    return model


def test_own_grid_member_paints_its_organ_finer_than_the_model_grid() -> None:
    ct, truth = sphere_ct(spacing=(0.5, 0.5, 0.5), shape=(64, 96, 96))
    fine = Contourer(_own_grid_model()).run(ct)
    coarse = Contourer(replace(_own_grid_model(), rule={"Parotid_L": "w",
                                                        "Parotid_R": "w"})).run(ct)
    d_fine = dice(fine.labels.array == PAROTID_L, truth.array == PAROTID_L)
    d_coarse = dice(coarse.labels.array == PAROTID_L, truth.array == PAROTID_L)
    assert d_fine > 0.95 and d_fine > d_coarse + 0.02
    # the other organ still comes from the model grid, untouched by the fine part
    assert dice(fine.labels.array == PAROTID_R, coarse.labels.array == PAROTID_R) == 1.0
    assert "network f" in fine.seconds and not any("region" in w for w in fine.warnings)


def test_own_grid_part_lies_in_the_grown_bounding_box_on_its_grid() -> None:
    ct, _ = sphere_ct(spacing=(0.5, 0.5, 0.5), shape=(64, 96, 96))
    model = _own_grid_model(margin_mm=6.0)
    canon = canonical(ct)
    pre = model.recipe.apply(canon)
    image = torch.from_numpy(pre.image.array.astype(np.float32))[None, None]
    combined = combined_probabilities(model, image, organs=["Parotid_L", "Parotid_R"],
                                      grid=pre.image.geometry, canonical=canon)
    (part,) = combined.parts
    assert part.member == "f" and part.organs == ["Parotid_L"]
    assert part.geometry.spacing == (1.0, 1.0, 1.0)
    # 14 mm ball + 2 x 6 mm margin, on a 1 mm grid: about 26 voxels (plus the coarse
    # blockiness), less where the box meets the edge of the volume (x: the ball is near it)
    assert all(20 <= n <= 40 for n in part.geometry.shape), part.geometry.shape
    # the model grid no longer carries the organ the part gives
    assert not (combined.probabilities.argmax(0) == PAROTID_L).any()
    assert (combined.probabilities.argmax(0) == PAROTID_R).any()
    # without the CT, the organ comes from the fall-back on the model grid (validation)
    plain = combined_probabilities(model, image, organs=["Parotid_L"])
    assert not plain.parts and (plain.probabilities.argmax(0) == PAROTID_L).any()


def test_own_grid_member_falls_back_when_nothing_places_its_box() -> None:
    ct, _ = sphere_ct(spacing=(0.5, 0.5, 0.5), shape=(64, 96, 96))
    prediction = Contourer(_own_grid_model(centre_only=PAROTID_R)).run(ct)
    assert any("to place the f region on" in w and "taken from w" in w
               for w in prediction.warnings)


def test_own_grid_member_needs_a_bounding_box_region() -> None:
    fine = Recipe("fine", (Resample(spacing=(1.0,) * 3),))
    members = {"w": Member("w", BandNet(), (8, 16, 16)),
               "f": Member("f", BandNet(), (8, 16, 16), RoiSpec((8, 16, 16), ("Parotid_L",),
                                                              "w"), fine)}
    with pytest.raises(InvalidInputError, match="own grid but no bounding-box region"):
        band_model(members)


def test_own_grid_member_survives_the_model_file(tmp_path) -> None:
    from oracles import CLASSES, tiny_real_model

    from autocontour.inference.model_file import load_model, save_model
    from autocontour.models.registry import build_network

    model = tiny_real_model()
    fine = Recipe("tiny-fine", (Resample(spacing=(4.0, 4.0, 6.0)),))
    model.members["fine"] = Member("fine", build_network(
        "UNet3D", out_channels=CLASSES, channels=[4, 8], strides=[[1, 2, 2]] * 2).eval(),
        (4, 16, 16), RoiSpec((4, 16, 16), ("Lens_L", "Lens_R"), "2d", 10.0), fine)
    model.rule.update({"Lens_L": "fine", "Lens_R": "fine"})
    path = save_model(model, tmp_path / "m.pt")
    loaded = load_model(path)
    member = loaded.members["fine"]
    assert member.recipe == fine and member.roi == model.members["fine"].roi
    assert loaded.rule["Lens_L"] == "fine"
    ct, _ = sphere_ct(spacing=(2.0, 2.0, 3.0), shape=(24, 48, 48))
    out = Contourer(loaded).run(ct, body=False)  # untrained: only that it runs end to end
    assert out.labels.array.shape == ct.shape
