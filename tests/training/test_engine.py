"""Training runs on a tiny pelvis phantom data set: logs, checkpoints, resume, inference."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from autocontour.artifacts import load_trained_network
from autocontour.data.cache import CaseCache
from autocontour.data.recipes import Recipe
from autocontour.errors import InvalidInputError, OutputExistsError, UnknownOptionError
from autocontour.models.inferer import SlidingWindowInferer
from autocontour.training import (
    Callback,
    FitResult,
    TrainableModule,
    TrainConfig,
    Trainer,
    load_checkpoint,
)
from autocontour.training.data import preprocessed_path

Factory = Callable[..., TrainConfig]


@pytest.fixture(scope="module")
def trained(tiny_config: Factory, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[TrainConfig, FitResult]:
    """3 epochs of 4 steps with the default augmentation."""
    from autocontour.data.augment import AugmentConfig
    config = tiny_config(tmp_path_factory.mktemp("run") / "out", epochs=3, steps_per_epoch=4,
                         augmentation=AugmentConfig().to_dict())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return config, Trainer(config, progress=False).fit()
    finally:
        torch.set_num_threads(threads)


def test_run_writes_logs_curves_and_checkpoints(trained: tuple[TrainConfig, FitResult]) -> None:
    config, result = trained
    out = Path(config.out)
    assert result.epochs == 3 and result.steps == 12 and result.stopped == "epochs"
    for name in ("last.pt", "best.pt", "metrics.jsonl", "metrics.csv", "loss_curves.png",
                 "config.yaml", "result.json"):
        assert (out / name).is_file(), name
    assert TrainConfig.from_yaml(out / "config.yaml") == config
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and [r["step"] for r in rows] == [4, 8, 12]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]  # it learns
    assert all(0.0 <= r["val_dice_mean"] <= 1.0 and r["lr"] == config.lr for r in rows)
    with (out / "metrics.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 3 and "dice_CTV" in table[0] and "dice_Bladder" in table[0]
    assert float(table[2]["train_loss"]) == pytest.approx(rows[2]["train_loss"])
    assert (out / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = load_checkpoint(out / "best.pt")
    assert best["epoch"] == result.best_epoch and best["best_metric"] == result.best_metric
    assert best["fold"] == 0 and best["config"] == config.to_dict()
    assert best["sampler"] == {"seed": 0, "epoch": best["epoch"]}


def test_checkpoint_alone_predicts(trained: tuple[TrainConfig, FitResult]) -> None:
    config, _ = trained
    trained = load_trained_network(Path(config.out) / "best.pt")
    net, recipe, organs = trained.net, trained.recipe, trained.organs
    assert not net.training and organs.name == "pelvis" and trained.config == config
    dataset = Path(config.dataset)
    assert recipe == Recipe.from_dict(json.loads((dataset / "recipe.json").read_text()))
    cache = CaseCache(preprocessed_path(dataset, recipe))
    volume, _ = cache.load(cache.case_ids[0])
    image = torch.from_numpy(np.asarray(volume.array, np.float32))[None, None]
    with torch.no_grad():
        logits = SlidingWindowInferer(config.patch_size).logits(net, image)
    assert logits.shape == (max(organs.labels) + 1, *volume.shape)


def test_a_run_folder_is_never_overwritten(trained: tuple[TrainConfig, FitResult]) -> None:
    config, result = trained
    with pytest.raises(OutputExistsError, match="last.pt: the run folder holds a checkpoint"):
        Trainer(config, progress=False).fit()
    # Resuming a finished run trains nothing more.
    again = Trainer(config, progress=False).fit(resume=True)
    assert (again.epochs, again.best_metric) == (result.epochs, result.best_metric)


def test_resume_refuses_another_config(trained: tuple[TrainConfig, FitResult]) -> None:
    config, _ = trained
    changed = TrainConfig.from_dict({**config.to_dict(), "lr": 1e-3, "epochs": 5})
    with pytest.raises(InvalidInputError, match=r"last.pt: cannot resume .*\(lr differ"):
        Trainer(changed, progress=False).fit(resume=True)


class _Interrupt(Callback):
    def on_epoch_end(self, trainer: Trainer, row: dict) -> None:
        if row["epoch"] == 2:
            raise KeyboardInterrupt


def test_resume_continues_exactly(tiny_config: Factory, tmp_path: Path) -> None:
    """4 epochs in one go == 2 epochs, interrupted, then resumed (dropout, LR plateau steps)."""
    changes = {"epochs": 4, "plateau": {"patience": 0},
               "network": {"name": "UNet3D", "kwargs": {"channels": [4, 8, 8], "dropout": 0.2}}}
    whole = Trainer(tiny_config(tmp_path / "whole", **changes), progress=False).fit()
    parts = tiny_config(tmp_path / "parts", **changes)
    with pytest.raises(KeyboardInterrupt):
        Trainer(parts, callbacks=[_Interrupt()], progress=False).fit()
    assert load_checkpoint(tmp_path / "parts" / "last.pt")["epoch"] == 2
    resumed = Trainer(parts, progress=False).fit(resume=True)
    a = load_checkpoint(tmp_path / "whole" / "last.pt")
    b = load_checkpoint(tmp_path / "parts" / "last.pt")
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["scheduler"]["_last_lr"] == b["scheduler"]["_last_lr"] < [3e-3]  # LR was reduced
    assert (resumed.best_metric, resumed.steps) == (whole.best_metric, whole.steps)
    rows = (tmp_path / "parts" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3, 4]


class _BatchWeights(nn.Module):
    """A toy quality module: a score per sample from its mean intensity; softmax over the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.score = nn.Linear(1, 1)
        self.calls = 0

    def weights(self, batch: dict, per_sample_loss: Tensor) -> Tensor:
        self.calls += 1
        assert per_sample_loss.shape == (batch["image"].shape[0],)
        return torch.softmax(self.score(batch["image"].mean((1, 2, 3, 4))[:, None])[:, 0], 0)


def test_sample_weighting_module_is_trained_jointly(tiny_config: Factory, tmp_path: Path) -> None:
    quality = _BatchWeights()
    before = [p.detach().clone() for p in quality.parameters()]
    config = tiny_config(tmp_path / "qam", epochs=1)
    Trainer(config, extra_modules={"qam": TrainableModule(quality, lr=1e-2)},
            sample_weighting=quality, progress=False).fit()
    assert quality.calls == config.steps_per_epoch
    assert any(not torch.equal(a, b) for a, b in zip(before, quality.parameters(), strict=True))
    saved = load_checkpoint(tmp_path / "qam" / "last.pt")
    assert set(saved["optimizers"]) == {"network", "qam"}
    assert torch.equal(saved["extra_modules"]["qam"]["score.weight"], quality.score.weight)


class _LabelSpy(_BatchWeights):
    """Records the label values of every training batch the loss sees."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[int] = set()

    def weights(self, batch: dict, per_sample_loss: Tensor) -> Tensor:
        self.seen |= {int(v) for v in batch["label"].unique()}
        return super().weights(batch, per_sample_loss)


def test_training_on_some_organs(tiny_config: Factory, tmp_path: Path) -> None:
    """``organs``: the other organs are background to the loss; validation scores only these;
    the network keeps a channel per label value (a member of a combined model)."""
    spy = _LabelSpy()
    config = tiny_config(tmp_path / "some", epochs=1, steps_per_epoch=3,
                         organs=["CTV", "Bladder"],
                         sampling={"foreground_fraction": 1.0, "organ_sampling": "uniform"})
    result = Trainer(config, sample_weighting=spy, progress=False).fit()
    assert spy.seen <= {0, 1, 6} and spy.seen & {1, 6}
    row = result.best_row
    assert row is not None and {k for k in row if k.startswith("dice_")} == {
        "dice_Bladder", "dice_CTV"}
    assert row["val_dice_mean"] == pytest.approx(np.mean([row["dice_Bladder"], row["dice_CTV"]]))
    with (tmp_path / "some" / "metrics.csv").open() as fh:
        assert [c for c in next(csv.reader(fh)) if c.startswith("dice_")] == [
            "dice_Bladder", "dice_CTV"]
    trained = load_trained_network(tmp_path / "some" / "last.pt")
    net, organs = trained.net, trained.organs
    assert len(organs) == 6 and trained.config.organs == ("CTV", "Bladder")
    assert net(torch.zeros((1, 1, 16, 32, 32))).shape[1] == 7


def test_unknown_organ_to_train_on(tiny_config: Factory, tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "bad", organs=["CTV", "Bladdr"])
    with pytest.raises(UnknownOptionError, match="organs: .*'Bladdr'.*did you mean 'Bladder'"):
        Trainer(config, progress=False).fit()
    assert not (tmp_path / "bad" / "last.pt").exists()


def test_batch_dice_refuses_per_sample_weighting(tiny_config: Factory, tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "bd", epochs=1, loss={"name": "dicece", "batch_dice": True})
    with pytest.raises(InvalidInputError, match="batch_dice"):
        Trainer(config, sample_weighting=_BatchWeights(), progress=False)
    assert not (tmp_path / "bd").exists()


def test_deep_supervision_network_trains(tiny_config: Factory, tmp_path: Path) -> None:
    """MONAI DynUNet: stacked heads in training, spacing and patch filled in from the data."""
    from autocontour.models.dynunet import nnunet_kernels_strides
    stages = len(nnunet_kernels_strides([16, 32, 32], [3.0, 8.75, 8.75])[1])
    config = tiny_config(tmp_path / "dyn", epochs=1, steps_per_epoch=1, network={
        "name": "DynUNet", "kwargs": {"filters": [4] + [8] * (stages - 1),
                                      "deep_supervision": True, "deep_supr_num": 1}})
    Trainer(config, progress=False).fit()
    net = load_trained_network(tmp_path / "dyn" / "last.pt").net
    assert net.arch_kwargs["patch_size"] == [16, 32, 32]
    assert net.arch_kwargs["spacing"] == pytest.approx([3.0, 8.75, 8.75])


@pytest.mark.parametrize(("network", "patch", "match"), [
    ({"name": "UNet3D", "kwargs": {"channels": [4, 8, 8, 8, 8]}}, [16, 32, 32],
     r"patch_size \[16, 32, 32\] does not fit network UNet3D: .* multiple of \[32, 32, 32\]"),
    ({"name": "ResUNet2D", "kwargs": {"channels": [4, 8]}}, [16, 32, 32],
     r"network ResUNet2D is 2-D: patch_size must be \(1, y, x\)"),
    ({"name": "UNet3D", "kwargs": {"out_channels": 3}}, [16, 32, 32],
     "out_channels is 3, but organ set 'pelvis' needs 7 classes"),
    ({"name": "UNet4D", "kwargs": {}}, [16, 32, 32], "network UNet4D: unknown network"),
    ({"name": "UNet3D", "kwargs": {"chanels": [4]}}, [16, 32, 32], "network UNet3D: .*chanels"),
])
def test_network_problems_are_reported(tiny_config: Factory, tmp_path: Path, network: dict,
                                       patch: list, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        Trainer(tiny_config(tmp_path / "x", network=network, patch_size=patch),
                progress=False).fit()


def test_missing_dataset_and_recipe(tiny_config: Factory, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no data set here"):
        Trainer(TrainConfig.from_dict({**tiny_config(tmp_path).to_dict(),
                                       "dataset": str(tmp_path / "none")})).fit()
    empty = tmp_path / "ds"
    empty.mkdir()
    (empty / "cache.h5").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="recipe 'fingerprint' needs recipe.json"):
        Trainer(TrainConfig.from_dict({**tiny_config(tmp_path).to_dict(),
                                       "dataset": str(empty)})).fit()


def _bad_checkpoints(tmp_path: Path, good: Path) -> list[tuple[Path, str]]:
    cases = []
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    cases.append((garbage, "garbage.pt: not a readable training checkpoint"))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:2000])
    cases.append((truncated, "truncated.pt: not a readable training checkpoint"))
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    cases.append((other, "other.pt: not an autocontour training checkpoint"))
    data = torch.load(good, weights_only=True)
    future = tmp_path / "future.pt"
    torch.save({**data, "version": 99}, future)
    cases.append((future, "future.pt: training checkpoint format version 99"))
    partial = tmp_path / "partial.pt"
    torch.save({k: v for k, v in data.items() if k not in ("recipe", "organs")}, partial)
    cases.append((partial, "partial.pt: incomplete training checkpoint, missing recipe, organs"))
    wrong = tmp_path / "wrong.pt"
    torch.save({**data, "state_dict": {"conv.weight": torch.zeros(1)}}, wrong)
    cases.append((wrong, "wrong.pt: the weights do not fit the network 'UNet3D'"))
    cases.append((tmp_path / "absent.pt", "absent.pt: no training checkpoint here"))
    unknown = tmp_path / "unknown.pt"
    torch.save({**data, "surprise": 1}, unknown)
    cases.append((unknown, ("unknown.pt: training checkpoint has keys this autocontour does not "
                           "know \\(surprise\\)")))
    old_config = tmp_path / "old_config.pt"
    config = {k: v for k, v in data["config"].items() if k != "organs"}
    config["loss"] = {k: v for k, v in config["loss"].items() if k != "batch_dice"}
    torch.save({**data, "config": config}, old_config)
    cases.append((old_config, ("old_config.pt: the saved training config lacks loss.batch_dice, "
                              "organs")))
    model_file = tmp_path / "model.pt"
    torch.save({**data, "format": "autocontour-model"}, model_file)
    cases.append((model_file, ("model.pt: not an autocontour training checkpoint \\(it is a "
                              "model file\\)")))
    return cases


def test_bad_checkpoints_give_clear_errors(trained: tuple[TrainConfig, FitResult],
                                           tmp_path: Path) -> None:
    for path, match in _bad_checkpoints(tmp_path, Path(trained[0].out) / "last.pt"):
        with pytest.raises(InvalidInputError, match=match):
            load_trained_network(path)


def test_stops_when_lr_falls_below_min_lr(tiny_config: Factory, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A flat validation Dice halves the LR (patience 0) until it is below min_lr."""
    from autocontour.training import engine
    monkeypatch.setattr(engine, "summarise", lambda scores, organs: {
        "val_loss": 1.0, "val_dice_mean": 0.5, **{f"dice_{n}": 0.5 for n in organs.names}})
    config = tiny_config(tmp_path / "plateau", epochs=10, steps_per_epoch=1, lr=1e-3,
                         min_lr=3e-4, plateau={"factor": 0.5, "patience": 0})
    result = Trainer(config, progress=False).fit()
    # epoch 1 sets the best; epochs 2 and 3 halve the LR: 5e-4, then 2.5e-4 < 3e-4.
    assert (result.stopped, result.epochs, result.best_epoch) == ("min_lr", 3, 1)
    rows = (tmp_path / "plateau" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["lr"] for r in rows] == [1e-3, 5e-4, 2.5e-4]
