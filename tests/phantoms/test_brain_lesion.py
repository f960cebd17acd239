"""The multi-modal brain-lesion phantom: determinism, co-registration, per-modality lesion
contrast, labels, and the folder it writes (read back by autocontour.data.multimodal)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autocontour.errors import InvalidInputError, OutputExistsError
from autocontour.phantoms.brain_lesion import (
    MODALITIES,
    brain_lesion_case,
    to_unit,
    write_lesion_cases,
)


@pytest.fixture(scope="module")
def case():
    return brain_lesion_case(11, size=96)


def test_same_seed_same_arrays_other_seed_differs(case) -> None:
    again = brain_lesion_case(11, size=96)
    for m in MODALITIES:
        assert np.array_equal(case.images[m].array, again.images[m].array)
    assert np.array_equal(case.lesion.array, again.lesion.array)
    other = brain_lesion_case(12, size=96)
    assert not np.array_equal(case.lesion.array, other.lesion.array)
    assert not np.array_equal(case.images["T1"].array, other.images["T1"].array)


def test_all_modalities_on_one_grid_with_labels(case) -> None:
    assert tuple(case.images) == MODALITIES
    grid = case.lesion.geometry
    for m in MODALITIES:
        assert case.images[m].shape == (1, 96, 96)
        assert case.images[m].geometry.mismatch(grid) is None
    assert case.images["CT"].array.dtype == np.int16 and case.images["CT"].modality == "CT"
    assert set(np.unique(case.lesion.array)) <= {0, 1, 2}
    assert (case.lesion.array == 1).any() and (case.lesion.array == 2).any()
    # Lesions lie inside the brain (the organ mask).
    assert not ((case.lesion.array > 0) & (case.brain.array == 0)).any()


def _lesion_contrast(case, label: int) -> dict[str, float]:
    """Mean of the lesion part minus mean of the rest of the brain, in display units (0..1)."""
    out = {}
    inside = case.lesion.array[0] == label
    rest = (case.brain.array[0] > 0) & (case.lesion.array[0] == 0)
    for m in MODALITIES:
        x = to_unit(case.images[m].array[0], m)
        out[m] = float(x[inside].mean() - x[rest].mean())
    return out


def test_lesion_contrast_differs_per_modality(case) -> None:
    core = _lesion_contrast(case, 1)
    oedema = _lesion_contrast(case, 2)
    # Tumour core: dark on T1, bright on T2 and FLAIR, as in BRATS.
    assert core["T1"] < -0.1 and core["T2"] > 0.1 and core["FLAIR"] > 0.1
    # Oedema: far brighter on FLAIR than it is dark on T1; hypodense on CT.
    assert oedema["FLAIR"] > 0.2 and oedema["FLAIR"] > abs(oedema["T1"]) + 0.1
    assert oedema["CT"] < 0
    # So the lesion's signature is not one contrast scaled: the signs differ between modalities.
    assert np.sign(core["T1"]) != np.sign(core["T2"])


def test_lesion_count_and_arguments() -> None:
    none = brain_lesion_case(3, size=48, lesions=0, modalities=("T1", "T2"))
    assert tuple(none.images) == ("T1", "T2") and not none.lesion.array.any()
    # The anatomy does not depend on which modalities are rendered.
    full = brain_lesion_case(3, size=48, lesions=0)
    assert np.array_equal(full.images["T2"].array, none.images["T2"].array)
    for kwargs, match in [({"size": 16}, "at least 32"), ({"modalities": ("PET",)}, "modalities"),
                          ({"modalities": ("T1", "T1")}, "distinct"),
                          ({"lesions": -1}, "0 or more")]:
        with pytest.raises(InvalidInputError, match=match):
            brain_lesion_case(0, **kwargs)


def test_write_and_load_folder(tmp_path) -> None:
    from autocontour.data.multimodal import load_multimodal_folder

    manifest = write_lesion_cases(tmp_path / "set", 2, seed=4, size=48, modalities=("CT", "T2"))
    assert json.loads((tmp_path / "set" / "dataset.json").read_text()) == manifest
    assert sorted(p.name for p in (tmp_path / "set" / "brain_s0004").iterdir()) == [
        "CT.nii.gz", "T2.nii.gz", "lesion.nii.gz", "mask.nii.gz"]
    cases = load_multimodal_folder(tmp_path / "set")
    assert [c.case_id for c in cases] == ["brain_s0004", "brain_s0005"]
    fresh = brain_lesion_case(5, size=48, modalities=("CT", "T2"))
    assert np.array_equal(cases[1].images["T2"].array, fresh.images["T2"].array)
    assert np.array_equal(cases[1].lesion.array, fresh.lesion.array)
    assert np.array_equal(cases[1].unit("CT"), to_unit(fresh.images["CT"].array[0], "CT"))
    with pytest.raises(OutputExistsError, match="already there"):
        write_lesion_cases(tmp_path / "set", 1, size=48)
    with pytest.raises(InvalidInputError, match="at least 1"):
        write_lesion_cases(tmp_path / "other", 0)


def test_same_anatomy_and_lesions_on_any_grid() -> None:
    small, big = brain_lesion_case(6, size=64), brain_lesion_case(6, size=128)
    assert small.meta["lesions"] == big.meta["lesions"]

    def centroid_mm(volume) -> np.ndarray:
        zyx = np.argwhere(volume.array > 0).mean(axis=0)
        return volume.geometry.index_to_physical(zyx[::-1][None])[0]

    for get in (lambda c: c.lesion, lambda c: c.brain):
        assert np.abs(centroid_mm(get(small)) - centroid_mm(get(big))).max() < 2.0


def test_phantom_command_writes_the_multimodal_folder(tmp_path, capsys) -> None:
    from autocontour.cli import main
    from autocontour.data.multimodal import load_multimodal_folder

    out = tmp_path / "brain"
    code = main(["phantom", "--site", "brain", "--cases", "2", "--out", str(out), "--shape",
                 "48x48x1", "--seed", "3", "--quiet"])
    assert code == 0 and "wrote 2 brain-lesion phantom case(s)" in capsys.readouterr().out
    cases = load_multimodal_folder(out)
    assert [c.case_id for c in cases] == ["brain_s0003", "brain_s0004"]
    assert cases[0].images["FLAIR"].shape == (1, 48, 48) and tuple(cases[0].images) == MODALITIES
    assert not any(p.name.startswith(".phantoms.partial") for p in out.iterdir())
    # Refused: a second set into the same folder, a 3-D shape, a sex.
    assert main(["phantom", "--site", "brain-lesion", "--out", str(out), "--quiet"]) != 0
    assert "already there" in capsys.readouterr().err
    for extra, message in [(["--shape", "48x48x4"], "one square slice"),
                           (["--sex", "male"], "--sex is for pelvis")]:
        code = main(["phantom", "--site", "brain-lesion", "--out", str(tmp_path / "x"),
                     "--quiet", *extra])
        assert code != 0 and message in capsys.readouterr().err
        assert not (tmp_path / "x").exists()
