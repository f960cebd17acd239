"""The CT -> labels pipeline: exact input grid in any orientation, stages, refusals."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from oracles import PAROTID_L, PAROTID_R, band_model, sphere_ct

from autocontour.errors import InvalidInputError
from autocontour.evaluation import dice
from autocontour.inference import Contourer
from autocontour.inference.pipeline import resolve_device
from autocontour.io.grid import reorient_to


@pytest.mark.parametrize("position", ["HFS", "HFP", "FFS"])
def test_labels_land_on_the_input_grid_in_any_orientation(position: str) -> None:
    ct, truth = sphere_ct()
    stored, stored_truth = reorient_to(ct, position), reorient_to(truth, position)
    # 1 mm model grid: the oracle reads HU, and a 2 mm grid's partial-volume ring around the
    # 600 HU ball falls in the 300 HU band (the resampling path is tested below).
    prediction = Contourer(band_model(spacing=1.0)).run(stored)
    labels = prediction.labels
    assert labels.geometry == stored.geometry and labels.array.dtype == np.uint8
    for label in (PAROTID_L, PAROTID_R):
        assert dice(labels.array == label, stored_truth.array == label) > 0.9
    if position != "HFS":
        assert any("reorient" in w.lower() for w in prediction.warnings)


def test_fine_input_grid_gets_smooth_labels_of_the_right_volume() -> None:
    # 0.5 mm input, 2 mm model grid: interpolated probabilities, not 4x4x4 blocks.
    ct, truth = sphere_ct(spacing=(0.5, 0.5, 0.5), shape=(48, 96, 96))
    labels = Contourer(band_model()).predict(ct)
    for label in (PAROTID_L, PAROTID_R):
        assert dice(labels.array == label, truth.array == label) > 0.85
    true_cc = truth.volumes_cc()["Parotid_L"]
    assert labels.volumes_cc()["Parotid_L"] == pytest.approx(true_cc, rel=0.15)


def test_run_reports_every_stage_time_and_the_model() -> None:
    prediction = Contourer(band_model()).run(sphere_ct()[0], tta=True)
    assert list(prediction.seconds) == ["check", "reorient", "anatomy", "preprocess",
                                        "network 3d", "regrid", "postprocess", "body", "organ checks",
                                        "total"]
    assert prediction.model["name"] == "oracle" and prediction.model["tta"] is True
    assert prediction.model["rule"]["Parotid_L"] == "3d"


def test_refuses_an_mr_and_a_constant_volume() -> None:
    ct, _ = sphere_ct()
    contourer = Contourer(band_model())
    with pytest.raises(InvalidInputError, match="MR"):
        contourer.run(replace(ct, modality="MR"), name="t1.nii.gz")
    with pytest.raises(InvalidInputError, match="constant"):
        contourer.run(ct.with_array(np.zeros_like(ct.array)))


def test_unknown_device_is_a_clear_error() -> None:
    with pytest.raises(InvalidInputError, match="device"):
        resolve_device("tpu")
    assert str(resolve_device("cpu")) == "cpu"


def test_precision_is_chosen_recorded_and_checked(monkeypatch) -> None:
    from autocontour.errors import UnknownOptionError
    from autocontour.models import inferer

    ct, _truth = sphere_ct()
    contourer = Contourer(band_model(spacing=1.0))
    monkeypatch.setattr(inferer, "_cpu_has_bf16", lambda: True)
    low = contourer.run(ct)
    full = contourer.run(ct, precision="fp32")
    assert low.model["precision"] == "bfloat16" and full.model["precision"] == "float32"
    for label in (PAROTID_L, PAROTID_R):
        assert dice(low.labels.array == label, full.labels.array == label) > 0.98
    monkeypatch.setattr(inferer, "_cpu_has_bf16", lambda: False)
    assert contourer.run(ct).model["precision"] == "float32"  # no native bfloat16: float32
    with pytest.raises(UnknownOptionError, match="precision 'fp16'.*auto, fp32"):
        contourer.run(ct, precision="fp16")
