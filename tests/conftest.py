"""Shared test data, built with the project's own phantoms at tiny sizes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
import torch

from autocontour.artifacts import TrainConfig
from autocontour.data.importer import import_dataset
from autocontour.organs import get_organ_set
from autocontour.phantoms import PhantomCase, head_neck_case
from autocontour.phantoms.export import write_cases

# Whatever we write must be valid DICOM: a bad value raises instead of warning.
pydicom.config.settings.writing_validation_mode = pydicom.config.RAISE

TINY_HN = (20, 48, 48)  # (z, y, x): 20 slices (60 mm: the shipped model refuses under 56) of 48x48


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: on a shared 2-core machine, two threads per test run ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def hn_case() -> PhantomCase:
    return head_neck_case(seed=3, shape=TINY_HN)


@pytest.fixture
def ct_dir(tmp_path: Path, hn_case: PhantomCase) -> Path:
    """A fresh DICOM CT series of the tiny head-and-neck phantom, one file per slice."""
    from autocontour.io import write_dicom_series
    out = tmp_path / "ct"
    write_dicom_series(hn_case.ct, out, modality="CT", patient_id="TEST01")
    return out


# A tiny pelvis data set and tiny training configs (training and the train/build jobs).
SHAPE = (16, 48, 48)  # (z, y, x): every pelvis organ is drawn, a 16x32x32 patch fits


@pytest.fixture(scope="session")
def pelvis_ds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 pelvis phantom cases imported as a data set (the import saves fingerprint and recipe)."""
    root = tmp_path_factory.mktemp("pelvis")
    write_cases("pelvis", 4, root / "src", seed=5, shape=SHAPE, dicom=False, progress=False)
    ds = root / "ds"
    import_dataset(root / "src", ds, organs=get_organ_set("pelvis"), progress=False)
    return ds


@pytest.fixture(scope="session")
def tiny_values(pelvis_ds: Path) -> Callable[..., dict[str, Any]]:
    """values(out, **changes): config values of a tiny CPU run on ``pelvis_ds``."""
    return lambda out, **changes: _tiny_values(pelvis_ds, out, **changes)


@pytest.fixture(scope="session")
def tiny_config(pelvis_ds: Path) -> Callable[..., TrainConfig]:
    """config(out, **changes): a tiny CPU run on ``pelvis_ds`` (see ``_tiny_values``)."""
    return lambda out, **changes: TrainConfig.from_dict(_tiny_values(pelvis_ds, out, **changes))


def _tiny_values(dataset: Path, out: Path, **changes: Any) -> dict[str, Any]:
    """3-level UNet3D (4/8/8 channels), 16x32x32 patches, 2 folds, 2 epochs of 2 steps."""
    values: dict[str, Any] = {
        "dataset": str(dataset), "out": str(out),
        "network": {"name": "UNet3D", "kwargs": {"channels": [4, 8, 8]}},
        "patch_size": [16, 32, 32], "batch_size": 2, "lr": 3e-3, "epochs": 2,
        "steps_per_epoch": 2, "folds": 2, "fold": 0, "num_workers": 0, "device": "cpu",
        "augmentation": None, "seed": 0}
    values.update(changes)
    return values


@pytest.fixture(scope="session")
def pseudo_mri_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny CT -> MR generator (4 channels) in a pseudo-MRI model file, written by
    the function ``autocontour pseudo-mri train`` writes its ``model.pt`` with."""
    return write_generator(tmp_path_factory.mktemp("pmr") / "model.pt", seed=0)


@pytest.fixture(scope="session")
def make_generator() -> Callable[[Path, int], Path]:
    """make_generator(path, seed): another untrained tiny generator's model file."""
    return write_generator


def write_generator(path: Path, seed: int) -> Path:
    from autocontour.data.steps_pseudo_mri import Normalisation
    from autocontour.models.cyclegan import ImprovedResnetGenerator, gan_network_spec
    from autocontour.synthesis.pseudo_mri import _save

    torch.manual_seed(seed)
    g = ImprovedResnetGenerator(base_channels=4, n_down=2)
    norm = Normalisation((-1024.0, 1500.0), (0.5, 99.5), (0.0, 0.7))
    return _save(path, {"step": 0, "config": {}, "normalisation": norm.to_dict(),
                        "networks": {"ct_to_mr": {"spec": gan_network_spec(g),
                                                  "state": g.state_dict()}}})


@pytest.fixture(scope="session")
def two_channel_run(tiny_config: Callable[..., TrainConfig], pseudo_mri_model: Path,
                    tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainConfig, Any]:
    """(config, FitResult) of a 2-step run on CT + pseudo-MRI (``pseudo_mri_model``)."""
    from autocontour.training import Trainer

    config = tiny_config(tmp_path_factory.mktemp("pmr-run") / "out", epochs=1,
                         steps_per_epoch=2, pseudo_mri=str(pseudo_mri_model))
    return config, Trainer(config, progress=False).fit()

