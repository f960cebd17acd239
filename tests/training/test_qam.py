"""The QAM and OCM (spec C2, C3): weights, their bound, joint training, the config switch, logs.

The synthetic task: 16 images of 32x32 pixels, each a noisy bright disk, labelled with its disk;
half the labels are corrupted (moved 8 px in a random direction, or dilated/eroded by the
label-noise module). A small 2-D U-Net and a QAM train on batches of 8 of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import Tensor, nn

from autocontour.artifacts import load_trained_network
from autocontour.data.label_noise import LabelNoiseConfig, apply_label_noise
from autocontour.errors import InvalidInputError, UnknownOptionError
from autocontour.models import ResUNet2D
from autocontour.models.qam import QualityNet
from autocontour.organs import Organ, OrganSet
from autocontour.training import (
    Callback,
    SampleWeightingConfig,
    SegmentationLoss,
    TrainableModule,
    TrainConfig,
    Trainer,
    load_checkpoint,
)
from autocontour.training.qam import QualityAwareness
from autocontour.training.sample_weights import lowest_weighted, read_weight_rows

Factory = Callable[..., TrainConfig]
DISK = OrganSet("disk", (Organ("Disk", 1, (255, 0, 0), "disk", None),))
QAM = {"name": "qam", "lr": 1e-3, "channels": [4, 8]}


class _FixedScores(nn.Module):
    """A stand-in for Φ that returns the scores it is given, whatever the input."""

    def __init__(self, scores: Tensor) -> None:
        super().__init__()
        self.scores = scores

    def forward(self, x: Tensor) -> Tensor:
        return self.scores


def _batch(b: int, dims: int = 2, size: int = 16, classes: int = 3) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(b)
    shape = (b, 1, *([size] * dims))
    return {"image": torch.randn(shape, generator=g),
            "label": torch.randint(0, classes, shape, generator=g, dtype=torch.uint8)}


@pytest.mark.parametrize(("dims", "ocm"), [(2, True), (2, False), (3, True)])
def test_weights_sum_to_one_per_batch(dims: int, ocm: bool) -> None:
    qam = QualityAwareness(QualityNet(dims, 1 + 3, (4, 8)), 3, 2.0 if ocm else None)
    for b in (2, 5, 8):
        batch = _batch(b, dims)
        w = qam.weights(batch, torch.rand(b)).detach()
        assert w.shape == (b,) and bool((w > 0).all())
        assert float(w.sum()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("lam", [0.5, 2.0, 5.0])
def test_ocm_bounds_the_weight_ratio_even_for_extreme_scores(lam: float) -> None:
    bound = math.exp(2 * lam)
    extreme = [torch.tensor([1e30, -1e30, 0.0, 3.0]), torch.tensor([1e4, -1e4]),
               torch.tensor([50.0, 49.0, -80.0, 7.0, -7.0, 0.1, 1e9, -1e9]),
               torch.randn(32, generator=torch.Generator().manual_seed(0)) * 1e3]
    for scores in extreme:
        qam = QualityAwareness(_FixedScores(scores), 3, lam)
        w = qam.weights(_batch(len(scores)), torch.ones(len(scores)))
        assert float(w.sum()) == pytest.approx(1.0, abs=1e-6)
        ratio = float(w.max() / w.min())
        assert ratio <= bound * (1 + 1e-5)  # reached (in float32) when tanh saturates
        assert qam.max_weight_ratio() == pytest.approx(bound)
    # Without the OCM nothing bounds it: one sample takes everything.
    free = QualityAwareness(_FixedScores(torch.tensor([1e4, -1e4, 0.0])), 3, None)
    w = free.weights(_batch(3), torch.ones(3))
    assert float(w[0]) == 1.0 and float(w[1]) == 0.0 and free.max_weight_ratio() == math.inf


def test_one_backward_pass_trains_segmenter_and_phi() -> None:
    torch.manual_seed(0)
    seg = ResUNet2D(1, 3, (4, 8))
    qam = QualityAwareness(QualityNet(2, 1 + 3, (4, 8)), 3)
    batch = _batch(4)
    per_sample = SegmentationLoss("dicece", reduction="none").per_sample(seg(batch["image"]),
                                                                         batch["label"])
    (qam.weights(batch, per_sample) * per_sample).sum().backward()
    for name, module in (("segmenter", seg), ("phi", qam)):
        grads = {n: p.grad for n, p in module.named_parameters()}
        assert all(g is not None and bool(g.abs().sum() > 0) for g in grads.values()), (
            name, [n for n, g in grads.items() if g is None or not bool(g.abs().sum() > 0)])
    before = [p.detach().clone() for p in qam.parameters()]
    torch.optim.Adam(qam.parameters(), 1e-4).step()
    assert all(not torch.equal(a, b) for a, b in zip(before, qam.parameters(), strict=True))


def test_qam_input_is_checked() -> None:
    qam = QualityAwareness(QualityNet(2, 1 + 3, (4,)), 3)
    batch = _batch(2)
    with pytest.raises(InvalidInputError, match=r"QAM: label value \d+ needs more than its 3 classes"):
        qam.weights({**batch, "label": batch["label"] + 5}, torch.ones(2))
    with pytest.raises(InvalidInputError, match=r"QAM: labels \(2, 1, 8, 8\) do not fit"):
        qam.weights({**batch, "label": batch["label"][..., :8, :8]}, torch.ones(2))
    with pytest.raises(InvalidInputError, match="ocm_lambda must be a positive number"):
        QualityAwareness(QualityNet(2, 4), 3, 0.0)


# The synthetic task.

def _disk_task(seed: int, noise: str) -> tuple[Tensor, Tensor, Tensor]:
    """(images (16, 1, 32, 32), labels, noisy (16,) bool): half the labels corrupted."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32]
    images, labels = {}, {}
    for i in range(16):
        radius, (cy, cx) = rng.uniform(5, 8), rng.uniform(10, 22, 2)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        images[f"c{i:02d}"] = (disk + rng.normal(0, 0.2, disk.shape)).astype(np.float32)
        labels[f"c{i:02d}"] = disk.astype(np.uint8)
    ids = sorted(images)
    if noise == "shift":  # 8 px in a random direction
        moved = set(rng.choice(ids, 8, replace=False).tolist())
        for case in sorted(moved):
            angle = rng.uniform(0, 2 * np.pi)
            step = (round(8 * np.sin(angle)), round(8 * np.cos(angle)))
            labels[case] = np.roll(labels[case], step, (0, 1))
        noisy = [c in moved for c in ids]
    else:
        labels, record = apply_label_noise(labels, DISK, LabelNoiseConfig(0.5, noise, seed=seed))
        noisy = [record.is_noisy(c) for c in ids]
    return (torch.from_numpy(np.stack([images[c] for c in ids]))[:, None],
            torch.from_numpy(np.stack([labels[c] for c in ids]))[:, None], torch.tensor(noisy))


def _train(task: tuple[Tensor, Tensor, Tensor], ocm: bool, steps: int, seed: int,
           qam_lr: float) -> list[tuple[Tensor, Tensor]]:
    """(sample indices, weights x batch size) of every step of a joint training."""
    images, labels, _ = task
    torch.manual_seed(seed)
    seg = ResUNet2D(1, 2, (8, 16, 32))
    qam = QualityAwareness(QualityNet(2, 1 + 2), 2, 2.0 if ocm else None)
    optimisers = [torch.optim.Adam(seg.parameters(), 3e-3),
                  torch.optim.Adam(qam.parameters(), qam_lr)]
    loss_fn = SegmentationLoss("dicece", reduction="none")
    draw = torch.Generator().manual_seed(seed)
    history = []
    for _ in range(steps):
        idx = torch.randperm(len(images), generator=draw)[:8]
        batch = {"image": images[idx], "label": labels[idx]}
        per_sample = loss_fn.per_sample(seg(batch["image"]), batch["label"])
        weights = qam.weights(batch, per_sample)
        for opt in optimisers:
            opt.zero_grad()
        (weights * per_sample).sum().backward()
        for opt in optimisers:
            opt.step()
        history.append((idx, weights.detach() * 8))
    return history


def _mean_weights(history: list[tuple[Tensor, Tensor]], noisy: Tensor) -> tuple[float, float]:
    """(noisy, clean) mean normalised weight over the second half of the steps."""
    part = history[len(history) // 2:]
    weights = torch.cat([w for _, w in part])
    is_noisy = torch.cat([noisy[idx] for idx, _ in part])
    return float(weights[is_noisy].mean()), float(weights[~is_noisy].mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noisy_samples_get_lower_weight(seed: int) -> None:
    """Labels moved by 8 px: after 30 of 60 steps the QAM + OCM weighs them far below the clean
    ones (over seeds 0-11: noisy 0.06-0.42, clean 1.61-2.03; 1.0 = an average sample)."""
    task = _disk_task(seed, "shift")
    noisy, clean = _mean_weights(_train(task, True, 60, seed, 1e-3), task[2])
    assert noisy < 0.5 and clean > 1.4


def test_noisy_samples_from_the_label_noise_module_get_lower_weight() -> None:
    """Dilated/eroded by 5-13 px (label-noise "high"), Φ at a tenth of the segmenter's learning
    rate: 16 of 16 seeds separate (seeds 0-15: noisy 0.23-0.89, clean 1.12-1.72)."""
    task = _disk_task(3, "high")
    noisy, clean = _mean_weights(_train(task, True, 140, 3, 3e-4), task[2])
    assert noisy < 0.7 and clean > 1.3


def test_without_ocm_the_weights_degenerate() -> None:
    """The QAM alone ends with (nearly) all of a batch's weight on one sample (seeds 0-11: weight
    ratios of 1e10 to inf within 60 steps); the OCM keeps every ratio below e^(2λ)."""
    task = _disk_task(0, "shift")
    free = _train(task, False, 60, 0, 1e-3)
    assert max(float(w.max() / w.min()) for _, w in free) > 1e6
    assert max(float(w.max()) / 8 for _, w in free[30:]) > 0.99
    bounded = _train(task, True, 60, 0, 1e-3)
    assert max(float(w.max() / w.min()) for _, w in bounded) <= math.exp(4.0) * (1 + 1e-5)
    assert max(float(w.max()) / 8 for _, w in bounded) <= math.exp(4) / (math.exp(4) + 7) + 1e-5


# The config switch.

def test_config_round_trip(tiny_values: Callable[..., dict], tmp_path: Path) -> None:
    config = TrainConfig.from_dict(tiny_values(tmp_path, sample_weighting={
        "name": "QAM", "lr": 3e-4, "ocm": False, "ocm_lambda": 1.5, "channels": [4, 8, 16]}))
    assert config.sample_weighting == SampleWeightingConfig("qam", 3e-4, False, 1.5, (4, 8, 16))
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig.from_yaml(config.to_yaml(tmp_path / "c.yaml")) == config
    assert yaml.safe_load((tmp_path / "c.yaml").read_text())["sample_weighting"] == {
        "name": "qam", "lr": 3e-4, "ocm": False, "ocm_lambda": 1.5, "channels": [4, 8, 16]}
    short = TrainConfig.from_dict(tiny_values(tmp_path, sample_weighting="qam"))
    assert short.sample_weighting == SampleWeightingConfig()
    assert (SampleWeightingConfig().lr, SampleWeightingConfig().ocm_lambda) == (1e-4, 2.0)
    # Off: left out of the saved config, so configs from before the option read the same.
    off = TrainConfig.from_dict(tiny_values(tmp_path, sample_weighting=None))
    assert off.sample_weighting is None and "sample_weighting" not in off.to_dict()
    assert TrainConfig.from_dict(off.to_dict()) == off


@pytest.mark.parametrize(("change", "error", "match"), [
    ({"sample_weighting": {"name": "qma"}}, UnknownOptionError,
     "sample_weighting.name.*'qma'.*did you mean 'qam'"),
    ({"sample_weighting": {"lr": -1e-4}}, InvalidInputError,
     r"sample_weighting.lr must lie in \(0.0, inf\], got -0.0001"),
    ({"sample_weighting": {"lr": 0}}, InvalidInputError, "sample_weighting.lr must lie in"),
    ({"sample_weighting": {"ocm_lambda": 0}}, InvalidInputError,
     r"sample_weighting.ocm_lambda must lie in \(0.0, inf\]"),
    ({"sample_weighting": {"ocm_lambda": -2}}, InvalidInputError, "ocm_lambda must lie in"),
    ({"sample_weighting": {"ocm": "yes"}}, InvalidInputError,
     "sample_weighting.ocm must be true or false"),
    ({"sample_weighting": {"channels": []}}, InvalidInputError,
     "sample_weighting.channels must be a non-empty list"),
    ({"sample_weighting": {"channels": [8, 0]}}, InvalidInputError,
     r"sample_weighting.channels must lie in \[1, inf\], got 0"),
    ({"sample_weighting": {"lamda": 2}}, UnknownOptionError,
     "unknown option sample_weighting.lamda"),
    ({"sample_weighting": [1]}, InvalidInputError, "sample_weighting must be a mapping"),
    ({"sample_weighting": "qam", "loss": {"name": "dicece", "batch_dice": True}},
     InvalidInputError, "sample_weighting .QAM. weighs per-sample losses, but loss.batch_dice"),
    ({"sample_weighting": "qam", "batch_size": 1}, InvalidInputError,
     "sample_weighting .QAM. needs batch_size of at least 2"),
])
def test_config_errors(tiny_values: Callable[..., dict], tmp_path: Path, change: dict,
                       error: type, match: str) -> None:
    with pytest.raises(error, match=match) as caught:
        TrainConfig.from_dict(tiny_values(tmp_path, **change))
    assert "\n" not in str(caught.value)


def test_config_file_errors_name_the_file(tiny_values: Callable[..., dict],
                                          tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tiny_values(tmp_path, sample_weighting={"ocm_lambda": 0})))
    with pytest.raises(InvalidInputError, match=r"run.yaml: sample_weighting.ocm_lambda"):
        TrainConfig.from_yaml(path)


# The training engine.

@pytest.fixture(scope="module")
def qam_2d(tiny_config: Factory, tmp_path_factory: pytest.TempPathFactory) -> TrainConfig:
    """A 2-D run (ResUNet2D on 32x32 slices) with the QAM from the config: 2 epochs of 3 steps."""
    config = tiny_config(tmp_path_factory.mktemp("qam2d") / "out", patch_size=[1, 32, 32],
                         network={"name": "ResUNet2D", "kwargs": {"channels": [4, 8]}},
                         batch_size=4, steps_per_epoch=3, sample_weighting=QAM)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Trainer(config, progress=False).fit()
    finally:
        torch.set_num_threads(threads)
    return config


def test_2d_run_trains_phi_and_logs_weights_by_case(qam_2d: TrainConfig) -> None:
    out = Path(qam_2d.out)
    saved = load_checkpoint(out / "last.pt")
    assert set(saved["optimizers"]) == {"network", "qam"}
    assert saved["optimizers"]["qam"]["param_groups"][0]["lr"] == 1e-3
    phi = saved["extra_modules"]["qam"]
    assert phi["phi.features.0.weight"].shape == (4, 1 + 7, 3, 3)  # image + 7 pelvis classes
    assert TrainConfig.from_yaml(out / "config.yaml") == qam_2d
    rows = read_weight_rows(out / "sample_weights.jsonl")
    assert {r["epoch"] for r in rows} == {1, 2}
    for epoch in (1, 2):
        mine = [r for r in rows if r["epoch"] == epoch]
        assert sum(r["count"] for r in mine) == 3 * 4  # steps x batch
        # Normalised weights: their count-weighted mean over an epoch is exactly 1.
        assert sum(r["mean_weight"] * r["count"] for r in mine) == pytest.approx(12.0)
        assert {r["case"] for r in mine} <= set(json.loads(
            (Path(qam_2d.dataset) / "splits_2fold.json").read_text())[0]["train"])
    result = json.loads((out / "result.json").read_text())
    assert result["distrusted_cases"] == lowest_weighted(rows)
    weights = [c["mean_weight"] for c in result["distrusted_cases"]]
    assert weights == sorted(weights) and len(weights) == len({r["case"] for r in rows})


def test_phi_is_not_part_of_the_trained_network(qam_2d: TrainConfig) -> None:
    trained = load_trained_network(Path(qam_2d.out) / "last.pt")
    assert isinstance(trained.net, ResUNet2D)
    assert not any(k.startswith("phi.") for k in trained.net.state_dict())
    assert trained.config.sample_weighting == SampleWeightingConfig(**{
        **QAM, "channels": tuple(QAM["channels"])})


def test_3d_run_with_qam(tiny_config: Factory, tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "qam3d", epochs=1, sample_weighting=QAM)
    trainer = Trainer(config, progress=False)
    result = trainer.fit()
    assert result.steps == 2
    qam = trainer.extra["qam"].module
    assert isinstance(qam, QualityAwareness) and qam.phi.spatial_dims == 3
    saved = load_checkpoint(tmp_path / "qam3d" / "last.pt")
    assert saved["extra_modules"]["qam"]["phi.features.0.weight"].shape == (4, 8, 3, 3, 3)
    rows = read_weight_rows(tmp_path / "qam3d" / "sample_weights.jsonl")
    assert sum(r["count"] for r in rows) == 2 * 2


class _Interrupt(Callback):
    def on_epoch_end(self, trainer: Trainer, row: dict) -> None:
        if row["epoch"] == 1:
            raise KeyboardInterrupt


def test_resume_restores_phi_exactly(tiny_config: Factory, tmp_path: Path) -> None:
    changes = {"epochs": 2, "sample_weighting": QAM}
    whole = Trainer(tiny_config(tmp_path / "whole", **changes), progress=False)
    whole.fit()
    parts = tiny_config(tmp_path / "parts", **changes)
    with pytest.raises(KeyboardInterrupt):
        Trainer(parts, callbacks=[_Interrupt()], progress=False).fit()
    resumed = Trainer(parts, progress=False)
    resumed.fit(resume=True)
    a = whole.extra["qam"].module.state_dict()
    b = resumed.extra["qam"].module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    saved = load_checkpoint(tmp_path / "parts" / "last.pt")["extra_modules"]["qam"]
    assert all(torch.equal(a[k], saved[k].to(a[k].device)) for k in a)
    assert (read_weight_rows(tmp_path / "whole" / "sample_weights.jsonl")
            == read_weight_rows(tmp_path / "parts" / "sample_weights.jsonl"))


def test_resume_of_a_run_without_qam_refuses_to_add_it(tiny_config: Factory,
                                                       tmp_path: Path) -> None:
    Trainer(tiny_config(tmp_path / "plain", epochs=1), progress=False).fit()
    with pytest.raises(InvalidInputError, match=r"cannot resume .*\(sample_weighting differ"):
        Trainer(tiny_config(tmp_path / "plain", epochs=2, sample_weighting=QAM),
                progress=False).fit(resume=True)


def test_config_weighting_and_an_object_are_not_both_taken(tiny_config: Factory,
                                                           tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "both", sample_weighting=QAM)
    qam = QualityAwareness(QualityNet(3, 8), 7)
    with pytest.raises(InvalidInputError, match="sample_weighting and a sample_weighting object"):
        Trainer(config, sample_weighting=qam)
    with pytest.raises(InvalidInputError, match="extra module name 'qam' is taken"):
        Trainer(config, extra_modules={"qam": TrainableModule(qam)})


def test_cli_train_uses_the_config_switch(tiny_values: Callable[..., dict], tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    from autocontour.cli import main
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tiny_values(tmp_path / "cli", epochs=1, steps_per_epoch=1,
                                               sample_weighting={"channels": [4]})))
    assert main(["train", str(path), "--fold", "0", "--device", "cpu", "--quiet"]) == 0
    run = tmp_path / "cli" / "fold_0"
    assert "qam" in load_checkpoint(run / "last.pt")["extra_modules"]
    assert len(read_weight_rows(run / "sample_weights.jsonl")) >= 1
    assert json.loads((run / "result.json").read_text())["distrusted_cases"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(tiny_values(tmp_path / "bad", sample_weighting={"name": "x"})))
    capsys.readouterr()
    assert main(["train", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: unknown sample_weighting.name" in err and err.count("\n") == 1
