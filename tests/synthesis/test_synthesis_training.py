"""The synthesis trainer on tiny brain-lesion phantoms (32x32, widths of 4): every stage trains
what it should and nothing else, its losses are finite and move, the switches change what is
trained and used, and a stopped run resumed from its checkpoint ends exactly where an
uninterrupted one does."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from autocontour.errors import InvalidInputError, OutputExistsError
from autocontour.phantoms.brain_lesion import write_lesion_cases
from autocontour.synthesis.multimodal.config import SWITCHES, SynthesisConfig
from autocontour.synthesis.multimodal.structure import fuse_noise
from autocontour.synthesis.multimodal.train import (
    SynthesisTrainer,
    _run_step,
    draw_lesion_batch,
    load_training_data,
    read_synthesis_file,
    step_random,
    train_synthesis,
)

MODS = ("T1", "T2", "FLAIR")
TINY: dict[str, Any] = {
    "modalities": MODS, "width": 4, "depth": 2, "structure_width": 4, "structure_pools": 2,
    "latent_channels": 2, "disc_width": 4, "disc_pools": 2, "latent_disc_pools": 1,
    "batch_size": 2, "lr": 1e-3, "device": "cpu", "checkpoint_every": 0,
    "structure_steps": 0, "lesion_steps": 0, "converter_steps": 0, "pretrain_steps": 0,
    "adversarial_steps": 1,
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synth") / "brain"
    write_lesion_cases(folder, 3, seed=0, size=32, modalities=MODS)
    return folder


def tiny(data_dir: Path, out: Path, **changes: Any) -> SynthesisConfig:
    return SynthesisConfig(data=str(data_dir), out=str(out), **{**TINY, **changes})


def snapshot(trainer: SynthesisTrainer) -> dict[str, dict[str, torch.Tensor]]:
    return {k: {n: p.detach().clone() for n, p in net.state_dict().items()}
            for k, net in trainer.nets.items()}


def changed(before: dict, trainer: SynthesisTrainer) -> set[str]:
    return {k for k, net in trainer.nets.items()
            if any(not torch.equal(before[k][n], p) for n, p in net.state_dict().items())}


def run_steps(config: SynthesisConfig, stage: str, steps: int = 3
              ) -> tuple[SynthesisTrainer, set[str], list[dict[str, float]]]:
    data = load_training_data(config)
    trainer = SynthesisTrainer(config, len(data.modalities), torch.device("cpu"))
    before = snapshot(trainer)
    rows = []
    for k in range(steps):
        rng, gen = step_random(config, k)
        rows.append(_run_step(trainer, data, data.lesion_bank(), stage, rng, gen))
    return trainer, changed(before, trainer), rows


def assert_moving(rows: list[dict[str, float]], keys: list[str]) -> None:
    for key in keys:
        values = [r[key] for r in rows]
        assert all(np.isfinite(values)), (key, values)
        assert len(set(values)) > 1, f"{key} did not change: {values}"


def test_training_data(data_dir: Path, tmp_path: Path) -> None:
    data = load_training_data(tiny(data_dir, tmp_path))
    assert data.modalities == MODS
    assert data.images.shape == data.structures.shape == data.masks.shape == (3, 3, 32, 32)
    assert data.lesions.shape == (3, 32, 32) and len(data.lesion_bank()) >= 1
    assert set(np.unique(data.structures)) <= {0.0, 1.0}
    assert not data.structures[data.binary_lesions[:, None].repeat(3, 1) > 0].any()
    with pytest.raises(InvalidInputError, match="multiples of 64"):
        load_training_data(tiny(data_dir, tmp_path, depth=6))


def test_structure_stage(data_dir: Path, tmp_path: Path) -> None:
    _, moved, rows = run_steps(tiny(data_dir, tmp_path), "structure")
    assert moved == {"G_m", "E_s", "G_s", "D_z", "D_s"}
    assert_moving(rows, ["mask", "reconstruction", "latent_encoder", "map_generator",
                         "latent_critic", "map_critic"])


def test_lesion_segmenter_stage(data_dir: Path, tmp_path: Path) -> None:
    _, moved, rows = run_steps(tiny(data_dir, tmp_path), "lesion")
    assert moved == {"G_l0", "G_l1", "G_l2"}
    assert_moving(rows, ["segmenters", "segmenter_0", "segmenter_2"])
    assert rows[0]["segmenters"] == pytest.approx(sum(rows[0][f"segmenter_{i}"]
                                                      for i in range(3)), rel=1e-5)


def test_converter_stage(data_dir: Path, tmp_path: Path) -> None:
    _, moved, rows = run_steps(tiny(data_dir, tmp_path), "converter")
    assert moved == {"G_t", "D_t"}
    assert_moving(rows, ["cycle", "converter_generator", "converter_critic"])


def test_pretrain_stage(data_dir: Path, tmp_path: Path) -> None:
    _, moved, rows = run_steps(tiny(data_dir, tmp_path), "pretrain")
    assert moved == {"G"}
    assert_moving(rows, ["pretrain"])


def test_adversarial_stage_full_model(data_dir: Path, tmp_path: Path) -> None:
    _, moved, rows = run_steps(tiny(data_dir, tmp_path), "adversarial")
    assert moved == {"G", "D"}  # G_s, G_m, the segmenters and the converter stay fixed
    assert_moving(rows, ["generator", "critic", "registration"])
    for r in rows:
        assert r["total"] == pytest.approx(r["generator"] + r["lesion"] + r["registration"],
                                           rel=1e-5)
        assert np.isfinite(r["lesion"])


@pytest.mark.parametrize(("switch", "absent_nets", "absent_losses"), [
    ("lesion_loss", {"G_l0", "G_l1", "G_l2"}, {"lesion"}),
    ("registration_loss", {"G_t", "D_t"}, {"registration"}),
])
def test_loss_switches(data_dir: Path, tmp_path: Path, switch: str, absent_nets: set[str],
                       absent_losses: set[str]) -> None:
    config = tiny(data_dir, tmp_path, **{switch: False})
    trainer, moved, rows = run_steps(config, "adversarial", 2)
    assert not absent_nets & set(trainer.nets)
    assert not absent_losses & set(rows[0])
    assert moved == {"G", "D"}
    # G and D start from the same weights and see the same samples with the term on and off:
    # the switched-off term is what makes G end differently
    cpu = torch.device("cpu")
    start_on = SynthesisTrainer(tiny(data_dir, tmp_path), 3, cpu).nets
    start_off = SynthesisTrainer(config, 3, cpu).nets
    for name in ("G", "D"):
        a, b = start_on[name].state_dict(), start_off[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    full, _, _ = run_steps(tiny(data_dir, tmp_path), "adversarial", 2)
    g_on, g_off = full.nets["G"].state_dict(), trainer.nets["G"].state_dict()
    assert any(not torch.equal(g_on[k], g_off[k]) for k in g_on)
    parts = rows[0]["generator"] + sum(rows[0].get(k, 0.0) for k in ("lesion", "registration"))
    assert rows[0]["total"] == pytest.approx(parts, rel=1e-5)


def test_input_switches(data_dir: Path, tmp_path: Path) -> None:
    """structure_input / noise_fusion decide G's first input channel; the lesion is the second."""
    s = (torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1)) > 0.8).float()
    m = torch.zeros_like(s)
    m[..., :6] = 1
    lesion = torch.zeros_like(s)
    lesion[..., 10:14, 10:14] = 1

    def first_channel(**switches: bool) -> torch.Tensor:
        trainer = SynthesisTrainer(tiny(data_dir, tmp_path, **switches), 3,
                                   torch.device("cpu"))
        x = trainer.generator_input(s, m, lesion, torch.Generator().manual_seed(0))
        assert torch.equal(x[:, 1:], lesion)
        return x[:, :1]

    assert torch.equal(first_channel(noise_fusion=False), s)
    fused = first_channel()
    z = fused - s  # z' where the map is 0 inside the organ, 0 elsewhere
    inside = (s == 0) & (m == 0)
    assert ((z[inside] >= 0.5) & (z[inside] < 0.6)).all()
    assert torch.equal(fused[(s == 1) | (m == 1)], s[(s == 1) | (m == 1)])
    assert torch.allclose(fused, fuse_noise(s, m, torch.where(inside, z, torch.zeros_like(z))))
    noise = first_channel(structure_input=False)
    assert noise.min() >= 0 and noise.max() <= 1 and len(noise.unique()) > 100


def test_mask_filter_switch(data_dir: Path, tmp_path: Path) -> None:
    """With the filter every lesion lies inside the organ 1 - m_g; without, they fall anywhere."""
    data = load_training_data(tiny(data_dir, tmp_path))
    bank = data.lesion_bank()
    m_g = np.ones((8, 32, 32), np.float32)
    m_g[:, 4:28, 4:28] = 0  # organ: the middle 24x24
    rng = np.random.default_rng(0)
    on = tiny(data_dir, tmp_path)
    labels, misses = draw_lesion_batch(on, bank, m_g, rng)
    assert labels.shape == (8, 32, 32)
    for label in labels[:8 - misses]:
        if label.any():
            assert not (label[m_g[0] > 0] > 0).any()
    off = tiny(data_dir, tmp_path, mask_filter=False)
    outside = 0
    for _ in range(5):
        labels, misses = draw_lesion_batch(off, bank, m_g, rng)
        assert misses == 0
        outside += sum(int((lab[m_g[0] > 0] > 0).any()) for lab in labels)
    assert outside > 0
    empty = np.ones_like(m_g[:2])  # no organ at all: the samples go without a lesion
    labels, misses = draw_lesion_batch(on, bank, empty, rng)
    assert misses == 2 and not labels.any()


def test_noise_instead_of_structure_map_model_a(data_dir: Path, tmp_path: Path) -> None:
    values = {k: v for k, v in tiny(data_dir, tmp_path).to_dict().items()
              if k not in SWITCHES}
    config = SynthesisConfig.from_dict({**values, "ablation": "A"})
    assert config.ablation_model == "A" and not config.structure_input
    trainer, moved, rows = run_steps(config, "adversarial", 2)
    assert moved == {"G", "D"} and {"lesion", "registration"}.isdisjoint(rows[0])
    assert not {"G_t", "G_l0"} & set(trainer.nets)


def _states(path: Path) -> dict[str, Any]:
    return read_synthesis_file(path)["networks"]


def test_run_files_and_exact_resume(data_dir: Path, tmp_path: Path) -> None:
    steps = {"structure_steps": 2, "lesion_steps": 1, "converter_steps": 1,
             "pretrain_steps": 1, "adversarial_steps": 2}
    whole = train_synthesis(tiny(data_dir, tmp_path / "whole", **steps))
    assert whole.stopped == "finished" and whole.step == 7
    assert [r["stage"] for r in whole.history] == ["structure"] * 2 + [
        "lesion", "converter", "pretrain", "adversarial", "adversarial"]
    out = tmp_path / "whole"
    assert {p.name for p in out.iterdir()} >= {"config.json", "metrics.jsonl", "checkpoint.pt",
                                                "model.pt", "samples.png"}
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 7
    assert json.loads((out / "config.json").read_text())["adversarial_steps"] == 2
    model = read_synthesis_file(whole.model)
    assert set(model["networks"]) == {"G_s", "G_m", "G"} and model["kind"] == "model"

    # stopped after the lesion stage's step (3 steps), then resumed: the same weights at the end
    config = tiny(data_dir, tmp_path / "split", **steps)
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) == 3
    first = train_synthesis(config, should_stop=stop)
    assert first.stopped == "cancelled" and first.step == 3 and first.model is None
    with pytest.raises(OutputExistsError, match="already holds a synthesis checkpoint"):
        train_synthesis(config)
    with pytest.raises(InvalidInputError, match="differs from the checkpoint's in width"):
        train_synthesis(dataclasses.replace(config, width=8), resume=True)
    second = train_synthesis(dataclasses.replace(config, checkpoint_every=2), resume=True)
    assert second.step == 7 and second.stopped == "finished"
    a, b = _states(whole.checkpoint), _states(second.checkpoint)
    assert set(a) == set(b)
    for name in a:
        for key, value in a[name]["state"].items():
            assert torch.equal(value, b[name]["state"][key]), (name, key)
    rows = [json.loads(x) for x in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert rows == [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    with pytest.raises(InvalidInputError, match="no checkpoint.pt to resume"):
        train_synthesis(tiny(data_dir, tmp_path / "new", **steps), resume=True)
