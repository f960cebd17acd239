"""The pseudo-MRI recipe step: a second channel derived from the CT, moved with it, reproducible
only with the generator it recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from autocontour.artifacts.versioned import read_pseudo_mri_generator
from autocontour.data.recipes import Recipe, get_recipe, with_channel
from autocontour.data.steps_grid import Resample
from autocontour.data.steps_intensity import ClipIntensity, ZScore
from autocontour.data.steps_pseudo_mri import PseudoMRIChannel, PseudoMRIGenerator
from autocontour.errors import InvalidInputError
from autocontour.io.grid import resample_image
from autocontour.phantoms import PhantomCase


@pytest.fixture(scope="module")
def generator(pseudo_mri_model: Path) -> PseudoMRIGenerator:
    return read_pseudo_mri_generator(pseudo_mri_model)


def bound(recipe: Recipe, generator: PseudoMRIGenerator) -> Recipe:
    return with_channel(recipe, PseudoMRIChannel(generator.digest)).bind(
        {generator.digest: generator})


def test_two_channels_on_the_recipes_grid_and_the_ct_channel_unchanged(
        hn_case: PhantomCase, generator: PseudoMRIGenerator) -> None:
    plain = get_recipe("seed004-structseg")  # body crop, clip, z-score
    recipe = bound(plain, generator)
    assert [s.kind for s in recipe.steps] == ["crop_body", "pseudo_mri", "clip", "zscore"]
    assert recipe.name == "seed004-structseg+pseudo_mri" and recipe.channels == 2
    assert recipe.inputs() == ["CT", "pseudo-MRI"]
    labels = hn_case.labels
    done, alone = recipe.apply(hn_case.ct, labels), plain.apply(hn_case.ct, labels)
    ct, mr = done.channels
    assert ct.shape < hn_case.ct.shape  # the body crop ran
    assert ct.geometry.mismatch(alone.image.geometry) is None
    assert mr.geometry.mismatch(ct.geometry) is None and done.labels.geometry == ct.geometry
    np.testing.assert_array_equal(ct.array, alone.image.array)  # the CT channel is untouched
    np.testing.assert_array_equal(done.labels.array, alone.labels.array)
    # channel 2 is the generator on the *cropped* CT in HU, not clipped or z-scored after it
    cropped = recipe.steps[0].apply(hn_case.ct, None, None)[0]
    np.testing.assert_allclose(mr.array, generator.translate(cropped.array), atol=1e-6)
    assert mr.modality == "MR" and -1.0 <= mr.array.min() < mr.array.max() <= 1.0
    assert done.stacked().shape == (2, *ct.shape) and done.stacked().dtype == np.float32
    # the records undo the crop for labels as before (the channel step changes no grid)
    assert recipe.invert_labels(done.labels, done.record).geometry == hn_case.ct.geometry


def test_later_grid_steps_move_the_pseudo_mri_with_the_ct(hn_case: PhantomCase,
                                                          generator: PseudoMRIGenerator) -> None:
    plain = Recipe("clip-resample", (ClipIntensity(-1000, 1500), ZScore(mode="image"),
                                      Resample(shape=(10, 24, 24))))
    recipe = bound(plain, generator)
    assert recipe.steps[0].kind == "pseudo_mri"  # before the first intensity step
    done = recipe.apply(hn_case.ct)
    ct, mr = done.channels
    assert ct.shape == mr.shape == (10, 24, 24)
    assert mr.geometry.mismatch(ct.geometry) is None
    full = hn_case.ct.with_array(generator.translate(hn_case.ct.array))
    np.testing.assert_allclose(mr.array, resample_image(full, ct.geometry).array, atol=1e-5)
    np.testing.assert_array_equal(ct.array, plain.apply(hn_case.ct).image.array)


def test_the_step_serialises_its_digest_only(generator: PseudoMRIGenerator) -> None:
    recipe = bound(get_recipe("seed004-structseg"), generator)
    data = recipe.to_dict()
    assert data["steps"][1] == {"kind": "pseudo_mri", "generator": generator.digest,
                                "batch_slices": 4}
    again = Recipe.from_dict(data)
    assert again == recipe and again.resources() == (generator.digest,)
    assert again.steps[1].bound is None and recipe.steps[1].bound is generator


def test_the_digest_is_of_the_content_not_of_the_file(tmp_path: Path, make_generator,
                                                       generator: PseudoMRIGenerator) -> None:
    again = PseudoMRIGenerator.from_payload(generator.to_payload())
    assert again.digest == generator.digest and len(generator.digest) == 64
    other = read_pseudo_mri_generator(make_generator(tmp_path / "other.pt", seed=1))
    assert other.digest != generator.digest
    same = read_pseudo_mri_generator(make_generator(tmp_path / "same.pt", seed=0))
    assert same.digest == generator.digest


def test_refusals(tmp_path: Path, hn_case: PhantomCase, generator: PseudoMRIGenerator,
                  make_generator) -> None:
    step = PseudoMRIChannel(generator.digest)
    recipe = with_channel(get_recipe("seed004-structseg"), step)
    with pytest.raises(InvalidInputError, match="no generator .* to run"):
        recipe.apply(hn_case.ct)  # read from a file but never bound
    other = read_pseudo_mri_generator(make_generator(tmp_path / "other.pt", seed=1))
    with pytest.raises(InvalidInputError, match=f"model.pt: .*needs generator "
                                                f"{generator.digest[:12]}, but holds generator "
                                                f"{other.digest[:12]} instead"):
        recipe.bind({other.digest: other}, where="model.pt")
    with pytest.raises(InvalidInputError, match="its SHA-256 differs"):
        recipe.bind({generator.digest: other})  # stored under the wrong key
    with pytest.raises(InvalidInputError, match="holds none"):
        recipe.bind({})
    with pytest.raises(InvalidInputError, match="64 hex digits"):
        PseudoMRIChannel("abc")
    with pytest.raises(InvalidInputError, match="already has a 'pseudo_mri' step"):
        with_channel(recipe, step)
    with pytest.raises(InvalidInputError, match="reads HU/stored values but comes after"):
        Recipe("late", (ZScore(mode="image"), step))
    with pytest.raises(InvalidInputError, match="not look like a CT in HU"):
        recipe.bind({generator.digest: generator}).apply(
            hn_case.ct.with_array(np.ones(hn_case.ct.shape, np.float32)))
    with pytest.raises(InvalidInputError, match="adds an image channel"):
        step.apply(hn_case.ct, None, None)
    state = dict(generator.state)
    state.popitem()
    with pytest.raises(InvalidInputError, match="damaged pseudo-MRI generator"):
        PseudoMRIGenerator(generator.spec, state, generator.normalisation)


def test_cpu_only_generator_runs_where_the_recipe_is_moved(generator: PseudoMRIGenerator
                                                           ) -> None:
    recipe = bound(get_recipe("none"), generator).to("cpu")
    assert recipe.steps[0].bound is generator
    assert isinstance(generator.network("cpu"), torch.nn.Module)
