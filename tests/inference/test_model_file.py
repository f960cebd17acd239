"""Model files: round trip, float16 storage, training checkpoints, incompatible files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from oracles import tiny_real_model

from autocontour.errors import InvalidInputError, OutputExistsError
from autocontour.inference import Contourer
from autocontour.inference.model_file import MODEL_FORMAT_VERSION, load_model, save_model
from autocontour.phantoms import PhantomCase


def test_round_trip_keeps_members_rule_and_predictions(tmp_path: Path,
                                                       hn_case: PhantomCase) -> None:
    model = tiny_real_model()
    path = save_model(model, tmp_path / "m.pt", half=False)
    back = load_model(path)
    assert back.rule == model.rule and back.fallback == model.fallback
    assert back.largest_component == {"Brainstem": True}
    assert back.members["3d_small"].roi == model.members["3d_small"].roi
    assert back.expect == model.expect and back.recipe.to_dict() == model.recipe.to_dict()
    a = Contourer(model).predict(hn_case.ct).array
    b = Contourer.from_checkpoint(path).predict(hn_case.ct).array
    assert np.array_equal(a, b)


def test_float16_storage_halves_the_file_and_keeps_the_weights_close(tmp_path: Path) -> None:
    model = tiny_real_model()
    full = save_model(model, tmp_path / "f32.pt", half=False).stat().st_size
    half = save_model(model, tmp_path / "f16.pt").stat().st_size
    assert half < 0.7 * full
    w = model.members["3d"].net.state_dict()
    w16 = load_model(tmp_path / "f16.pt").members["3d"].net.state_dict()
    for key, value in w.items():
        if value.is_floating_point():
            assert torch.allclose(value, w16[key], rtol=1e-3, atol=1e-3), key


def test_existing_model_file_is_not_overwritten(tmp_path: Path) -> None:
    path = save_model(tiny_real_model(), tmp_path / "m.pt")
    with pytest.raises(OutputExistsError):
        save_model(tiny_real_model(), path)


def test_incompatible_version_names_the_writer(tmp_path: Path) -> None:
    path = save_model(tiny_real_model(), tmp_path / "m.pt")
    data = torch.load(path, weights_only=True)
    data["version"], data["autocontour_version"] = MODEL_FORMAT_VERSION + 1, "9.0.0"
    torch.save(data, path)
    newer = MODEL_FORMAT_VERSION + 1
    with pytest.raises(InvalidInputError, match=rf"version {newer}, written by autocontour "
                       r"9\.0\.0.*reads version 1, 2, 3 and 4"):
        load_model(path)


@pytest.mark.parametrize("content", [b"not a torch file", None])
def test_not_a_model_file(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "x.pt"
    if content is None:
        torch.save({"weights": torch.zeros(3)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(InvalidInputError, match="x.pt"):
        load_model(path)
    with pytest.raises(InvalidInputError, match="no model file"):
        load_model(tmp_path / "missing.pt")


def test_weights_that_do_not_fit_their_network(tmp_path: Path) -> None:
    path = save_model(tiny_real_model(), tmp_path / "m.pt")
    data = torch.load(path, weights_only=True)
    data["members"]["3d"]["network"]["arch_kwargs"]["channels"] = [8, 16]
    torch.save(data, path)
    with pytest.raises(InvalidInputError, match="member '3d'.*do not fit"):
        load_model(path)


def test_training_checkpoint_is_a_one_member_model(tmp_path: Path, hn_case: PhantomCase) -> None:
    from autocontour.artifacts import TrainConfig
    from autocontour.models.registry import network_spec
    from autocontour.training.checkpoint import save_checkpoint
    model = tiny_real_model()
    net = model.members["3d"].net
    config = TrainConfig(dataset="ds", out="run", patch_size=(8, 16, 16))
    payload = {"network": network_spec(net), "state_dict": net.state_dict(),
               "extra_modules": {}, "optimizers": {}, "scheduler": {}, "scaler": {},
               "epoch": 1, "step": 1, "seconds": 1.0, "stopped": None, "rng": [],
               "sampler": {"seed": 0, "epoch": 1}, "config": config.to_dict(),
               "recipe": model.recipe.to_dict(), "organs": model.organs.to_dict(), "fold": 0,
               "best_metric": None, "best_epoch": None, "best_row": None}
    path = save_checkpoint(tmp_path / "run" / "best.pt", payload)
    contourer = Contourer.from_checkpoint(path)
    assert list(contourer.model.members) == ["3d"]
    assert contourer.model.members["3d"].patch_size == (8, 16, 16)
    labels = contourer.predict(hn_case.ct)
    assert labels.shape == hn_case.ct.shape


@pytest.mark.parametrize(("change", "match"), [
    (lambda d: d.pop("fallback"), "m.pt: incomplete model file, missing fallback"),
    (lambda d: d.update(surprise=1), (r"m.pt: model file has keys this autocontour does not "
                                     r"know \(surprise\)")),
    (lambda d: d["members"]["3d"].pop("patch_size"),
     "m.pt: incomplete model file member '3d', missing patch_size"),
    (lambda d: d["members"]["3d"].update(stride=2),
     r"m.pt: model file member '3d' has keys .* \(stride\)"),
    (lambda d: d.update(format="autocontour-checkpoint", version=1),
     "m.pt: incomplete training checkpoint, missing network"),
])
def test_missing_or_unknown_keys_are_refused(tmp_path: Path, change: object, match: str) -> None:
    """Never a silent default: every key must be there, and no key this version cannot read."""
    path = save_model(tiny_real_model(), tmp_path / "m.pt")
    data = torch.load(path, weights_only=True)
    change(data)  # type: ignore[operator]
    torch.save(data, path)
    with pytest.raises(InvalidInputError, match=match):
        load_model(path)


def test_a_version_1_model_file_still_loads_without_a_record(tmp_path: Path) -> None:
    """Model files written before the training record (version 1) load; they have no record."""
    path = save_model(tiny_real_model(), tmp_path / "m.pt")
    data = torch.load(path, weights_only=True)
    assert data["version"] == MODEL_FORMAT_VERSION == 4 and "record" in data["expect"]
    data["version"] = 1
    del data["expect"]["record"]
    torch.save(data, path)
    assert load_model(path).expect.record is None


def test_a_version_3_model_file_loads_as_before(tmp_path: Path) -> None:
    """Version 4 only added the optional ``generators`` (pseudo-MRI models): a one-channel
    model writes none, and the same file labelled version 3 loads to the same model."""
    model = tiny_real_model()
    path = save_model(model, tmp_path / "m.pt")
    data = torch.load(path, weights_only=True)
    assert "generators" not in data
    data["version"] = 3
    torch.save(data, path)
    loaded = load_model(path)
    assert loaded.recipe == model.recipe and loaded.recipe.inputs() == ["CT"]

