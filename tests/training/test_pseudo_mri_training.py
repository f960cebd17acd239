"""Training on CT + pseudo-MRI (two channels) with the training engine, on the tiny pelvis set."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from autocontour.artifacts import TrainConfig, load_trained_network, read_file
from autocontour.artifacts.versioned import read_pseudo_mri_generator
from autocontour.data.cache import CaseCache
from autocontour.errors import InvalidInputError
from autocontour.training import Trainer, load_checkpoint
from autocontour.training.data import preprocessed_path

Factory = Callable[..., TrainConfig]


def test_the_network_takes_ct_and_pseudo_mri(two_channel_run, pseudo_mri_model: Path) -> None:
    config, result = two_channel_run
    assert result.steps == 2
    trained = load_trained_network(Path(config.out) / "last.pt")
    assert trained.net.arch_kwargs["in_channels"] == 2
    assert trained.recipe.inputs() == ["CT", "pseudo-MRI"]
    digest = read_pseudo_mri_generator(pseudo_mri_model).digest
    assert trained.recipe.resources() == (digest,)
    assert trained.recipe.steps[0].bound.digest == digest  # bound from the checkpoint itself
    assert trained.config.pseudo_mri == str(pseudo_mri_model)
    data = read_file(Path(config.out) / "last.pt")
    assert data["version"] == 2 and list(data["generators"]) == [digest]
    cache = CaseCache(preprocessed_path(Path(config.dataset), trained.recipe))
    first = cache.case_ids[0]
    assert cache.channels(first) == 2
    volumes, _ = cache.load_channels(first)
    assert [v.modality for v in volumes] == ["CT", "MR"]
    assert volumes[1].array.min() >= -1.0 and volumes[1].array.max() <= 1.0
    image, _ = cache.read_patch(first, (-4, 0, 0), (8, 8, 8))
    assert image[1, 0, 0, 0] == pytest.approx(float(volumes[1].array.min()))  # own padding
    with torch.no_grad():
        out = trained.net(torch.zeros(1, 2, 16, 32, 32))
    assert out.shape[1] == max(trained.organs.labels) + 1


def test_a_checkpoint_without_its_generator_is_refused(two_channel_run, tmp_path: Path) -> None:
    config, _ = two_channel_run
    data = load_checkpoint(Path(config.out) / "last.pt")
    del data["generators"]
    path = tmp_path / "nogen.pt"
    torch.save(data, path)
    with pytest.raises(InvalidInputError, match="nogen.pt: the recipe's pseudo-MRI step needs "
                                                "generator [0-9a-f]{12}, but holds none"):
        load_trained_network(path)


def test_resume_refuses_another_generator(two_channel_run, tiny_config: Factory,
                                          make_generator, tmp_path: Path) -> None:
    config, _ = two_channel_run
    other = make_generator(tmp_path / "other.pt", 1)
    changed = TrainConfig.from_dict({**config.to_dict(), "pseudo_mri": str(other),
                                     "epochs": 2})
    with pytest.raises(InvalidInputError, match="recipe .* differs from this run's"):
        Trainer(changed, progress=False).fit(resume=True)


def test_in_channels_that_do_not_fit_the_recipe(tiny_config: Factory, pseudo_mri_model: Path,
                                                tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "out", pseudo_mri=str(pseudo_mri_model),
                         network={"name": "UNet3D",
                                  "kwargs": {"channels": [4, 8, 8], "in_channels": 1}})
    with pytest.raises(InvalidInputError, match="in_channels is 1, but recipe .* gives 2 image "
                                                r"channel\(s\) \(CT, pseudo-MRI"):
        Trainer(config, progress=False).fit()


def test_a_missing_generator_file_is_one_line(tiny_config: Factory, tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "out", pseudo_mri=str(tmp_path / "none.pt"))
    with pytest.raises(InvalidInputError, match="none.pt: no pseudo-MRI model here"):
        Trainer(config, progress=False).fit()
    assert not (tmp_path / "out").exists()


def test_a_ct_only_config_reads_as_before(tiny_config: Factory, tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "out")
    assert "pseudo_mri" not in config.to_dict() and config.pseudo_mri is None
