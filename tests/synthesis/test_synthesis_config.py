"""The synthesis config: the ablation's models A-F, stages, YAML reading and bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from autocontour.errors import InvalidInputError, UnknownOptionError
from autocontour.synthesis.multimodal.config import (
    ABLATION_MODELS,
    STAGES,
    SWITCHES,
    SynthesisConfig,
)

BASE = {"data": "d", "out": "o"}

# The source's table 1: structure input, mask filter, noise fusion, L_reg, L_les.
TABLE1 = {
    "A": (False, False, False, False, False),
    "B": (True, False, False, False, True),
    "C": (True, True, False, False, False),
    "D": (True, True, True, False, False),
    "E": (True, True, True, True, False),
    "F": (True, True, True, True, True),
}


@pytest.mark.parametrize("letter", list(TABLE1))
def test_ablation_models_are_table_1(letter: str) -> None:
    config = SynthesisConfig.from_dict({**BASE, "ablation": letter.lower()})
    assert tuple(getattr(config, s) for s in SWITCHES) == TABLE1[letter]
    assert config.ablation_model == letter
    assert set(ABLATION_MODELS) == set(TABLE1)


def test_switches_decide_the_stages() -> None:
    full = SynthesisConfig(**BASE, structure_steps=3, lesion_steps=2, converter_steps=4,
                           pretrain_steps=1, adversarial_steps=5)
    assert full.total_steps() == 15
    assert [full.stage_at(k) for k in (0, 2, 3, 5, 9, 10, 14)] == [
        ("structure", 0), ("structure", 2), ("lesion", 0), ("converter", 0), ("pretrain", 0),
        ("adversarial", 0), ("adversarial", 4)]
    c = SynthesisConfig.from_dict({**full.to_dict(), "lesion_loss": False,
                                   "registration_loss": False})
    assert c.stage_steps("lesion") == c.stage_steps("converter") == 0
    assert c.total_steps() == 9
    with pytest.raises(IndexError):
        c.stage_at(9)
    assert len(STAGES) == 5


def test_round_trip_and_yaml(tmp_path: Path) -> None:
    c = SynthesisConfig(**BASE, modalities=("T1", "T2"), structure={"alpha": 0.3})
    assert SynthesisConfig.from_dict(c.to_dict()) == c
    assert c.structure_params.alpha == 0.3 and c.size_multiple == 16
    path = tmp_path / "c.yaml"
    path.write_text("data: d\nout: o\nablation: D\nadversarial_steps: 7\n")
    loaded = SynthesisConfig.from_file(path)
    assert loaded.ablation_model == "D" and loaded.adversarial_steps == 7


BAD = [
    ({"ablation": "G"}, UnknownOptionError, "unknown ablation model 'G'"),
    ({"ablation": "B", "lesion_loss": True}, InvalidInputError, "do not give lesion_loss"),
    ({"lesion_los": True}, UnknownOptionError, "did you mean 'lesion_loss'"),
    ({"noise_fusion": "yes"}, InvalidInputError, "noise_fusion must be true or false"),
    ({"adversarial_steps": -1}, InvalidInputError, "adversarial_steps must be a whole number"),
    ({"width": 0}, InvalidInputError, "width must be a whole number of at least 1"),
    ({"disc_pools": 6}, InvalidInputError, "disc_pools must be 1..5"),
    ({"lr": 0}, InvalidInputError, "lr must be > 0"),
    ({"fusion_low": 0.7, "fusion_high": 0.6}, InvalidInputError, "fusion noise range"),
    ({"device": "tpu"}, UnknownOptionError, "unknown device 'tpu'"),
    ({"modalities": ["T1", "T1"]}, InvalidInputError, "modalities must be distinct"),
    ({"structure": {"alpa": 0.3}}, UnknownOptionError, "did you mean 'alpha'"),
    ({"structure_steps": 0, "lesion_steps": 0, "converter_steps": 0, "adversarial_steps": 0},
     InvalidInputError, "nothing to train"),
]


@pytest.mark.parametrize(("change", "error", "match"), BAD)
def test_bad_values(change: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        SynthesisConfig.from_dict({**BASE, **change})


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="needs 'data'"):
        SynthesisConfig.from_dict({"out": "o"})
    with pytest.raises(InvalidInputError, match="must be a mapping"):
        SynthesisConfig.from_dict(["data"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(InvalidInputError, match="bad.yaml: not valid YAML"):
        SynthesisConfig.from_file(bad)
    with pytest.raises(InvalidInputError, match="missing.yaml: cannot read"):
        SynthesisConfig.from_file(tmp_path / "missing.yaml")


def test_example_config_reads() -> None:
    path = Path(__file__).parents[2] / "configs" / "synthesis_brain.yaml"
    config = SynthesisConfig.from_file(path)
    assert config.ablation_model == "F" and config.modalities == ("T1", "T2", "FLAIR")
    assert 128 % config.size_multiple == 0
