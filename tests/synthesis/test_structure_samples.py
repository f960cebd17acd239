"""Training tuples (image, structure map, mask, lesion) from a multi-modal phantom folder."""

from __future__ import annotations

import numpy as np
import pytest

from autocontour.data.multimodal import load_multimodal_folder
from autocontour.errors import InvalidInputError
from autocontour.phantoms.brain_lesion import write_lesion_cases
from autocontour.synthesis.multimodal.samples import StructureParams, structure_samples
from autocontour.synthesis.multimodal.structure import extract_mask, structure_map


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mm") / "set"
    write_lesion_cases(folder, 1, seed=2, size=64, modalities=("T1", "T2", "FLAIR"))
    return load_multimodal_folder(folder)[0]


def test_one_sample_per_modality(case) -> None:
    samples = structure_samples(case, ["FLAIR", "T1"])
    assert [(s.modality, s.index) for s in samples] == [("FLAIR", 0), ("T1", 1)]
    lesion = (case.lesion.array[0] > 0).astype(np.float32)
    for s in samples:
        x = case.unit(s.modality)
        assert np.array_equal(s.image, x)
        assert np.array_equal(s.structure, structure_map(x, lesion))
        assert np.array_equal(s.mask, extract_mask(x))
        assert np.array_equal(s.lesion, lesion) and s.lesion.any()
        assert not s.structure[s.lesion > 0].any()
    assert StructureParams().to_dict()["alpha"] == 0.35


def test_params_and_errors(case) -> None:
    loose = structure_samples(case, ["T2"], StructureParams(alpha=0.2, enlarge_px=0))[0]
    strict = structure_samples(case, ["T2"])[0]
    assert loose.structure.sum() > strict.structure.sum()
    with pytest.raises(InvalidInputError, match="no modality 'CT'"):
        structure_samples(case, ["CT"])
    with pytest.raises(InvalidInputError, match="slice 1"):
        structure_samples(case, slice_index=1)
