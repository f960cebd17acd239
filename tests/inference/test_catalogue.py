"""The shipped models, and the one chosen for a CT by its body region."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from autocontour.errors import InvalidInputError, UnknownOptionError
from autocontour.inference.anatomy import AnatomyError, TrainingRecord
from autocontour.inference.catalogue import (
    ASSETS,
    DEFAULT_MODEL,
    SHIPPED,
    ShippedModel,
    choose_model,
    resolve_model,
    shipped_model,
    shipped_models,
)
from autocontour.phantoms import head_neck_case, make_case, pelvis_case


@pytest.fixture(scope="module")
def hn_model() -> ShippedModel:
    return shipped_model("head-neck")


def pelvis_like(hn: ShippedModel) -> ShippedModel:
    """A model description trained on pelvis CTs (the head-and-neck record, moved): the choice
    needs only the record, so this runs whether or not the pelvis model is installed."""
    record = hn.record
    pelvis = replace(record, site="pelvis", regions={"abdomen-pelvis": 1.0},
                     extent_mm=(144.0, 144.0), organ_cc={})
    return ShippedModel("pelvis", hn.path, {"site": "pelvis",
                                            "training_record": {"record": pelvis.to_dict()}})


def test_the_head_and_neck_model_is_shipped_with_its_record(hn_model: ShippedModel) -> None:
    assert hn_model.path == DEFAULT_MODEL == ASSETS / f"{SHIPPED['head-neck']}.pt"
    summary = hn_model.summary()
    assert summary["site"] == "head-neck" and "Brainstem" in summary["organs"]
    assert summary["training_cases"] == 32 and summary["regions"] == ("head-neck",)
    assert 0.5 < summary["validation_dice"] < 1.0
    assert summary["fresh_test"]["seeds"] == "98001-98010"
    names = [m.name for m in shipped_models()]
    assert names[0] == "head-neck" and set(names) <= set(SHIPPED)


def test_names_and_paths_resolve(hn_model: ShippedModel, tmp_path: Path) -> None:
    assert resolve_model(None) == DEFAULT_MODEL
    assert resolve_model("hn") == resolve_model("Head-Neck") == hn_model.path
    assert resolve_model("run/best.pt") == Path("run/best.pt")
    with pytest.raises(UnknownOptionError, match="unknown shipped model 'head-nek'.*head-neck"):
        resolve_model("head-nek")


def test_a_broken_description_is_named(tmp_path: Path) -> None:
    shutil.copy(ASSETS / "hn_phantom_default.json", tmp_path / "hn_phantom_default.json")
    (tmp_path / "hn_phantom_default.pt").write_bytes(b"weights")
    assert [m.name for m in shipped_models(tmp_path)] == ["head-neck"]
    info = json.loads((tmp_path / "hn_phantom_default.json").read_text())
    del info["training_record"]["record"]["organ_cc"]
    (tmp_path / "hn_phantom_default.json").write_text(json.dumps(info))
    with pytest.raises(InvalidInputError, match="hn_phantom_default.json: not a readable model"):
        shipped_models(tmp_path)


def test_each_site_gets_its_model(hn_model: ShippedModel) -> None:
    models = [hn_model, pelvis_like(hn_model)]
    hn = choose_model(head_neck_case(90011).ct, "hn.nii.gz", models)
    assert hn.model.name == "head-neck"
    assert "head-neck 100%" in hn.reason and "288 mm of head-neck anatomy" in hn.reason
    assert hn.checks["pelvis"].refusal is not None
    pelvis = choose_model(pelvis_case(90012).ct, "pv", models)
    assert pelvis.model.name == "pelvis" and pelvis.to_dict()["model"] == "pelvis"
    assert pelvis.to_dict()["candidates"]["head-neck"]["refusal"].startswith("pv: this CT")


def test_a_ct_no_model_fits_is_refused(hn_model: ShippedModel) -> None:
    models = [hn_model, pelvis_like(hn_model)]
    with pytest.raises(AnatomyError, match=r"chest.nii.gz: no shipped model fits this CT: it "
                                           r"shows thorax .*head-neck \(head-neck\); pelvis "
                                           r"\(abdomen-pelvis\)"):
        choose_model(make_case("thorax", 90013).ct, "chest.nii.gz", models)
    with pytest.raises(InvalidInputError, match="no shipped model is installed"):
        choose_model(make_case("thorax", 90013).ct, "chest.nii.gz", [])


def test_a_partial_head_still_gets_the_head_and_neck_model(hn_model: ShippedModel) -> None:
    from autocontour.data.steps import crop

    lower = crop(head_neck_case(90011).ct, (0, 0, 0), (32, 128, 128))
    chosen = choose_model(lower, "lower", [hn_model, pelvis_like(hn_model)])
    assert chosen.model.name == "head-neck" and "96 mm" in chosen.reason


def test_shipped_models_records_are_complete() -> None:
    for model in shipped_models():
        assert isinstance(model.record, TrainingRecord)
        assert model.record.cases >= 16
        assert set(model.organs) == set(model.info["rule"])
