"""Augmentation (A6): left/right mirroring swaps labels or never happens, bounds, noise, labels."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from monai.transforms import RandAffined

from autocontour.data.augment import AugmentConfig, build_augmentation, rotate_range
from autocontour.errors import InvalidInputError, UnknownOptionError
from autocontour.organs import CHEST, HEAD_NECK
from autocontour.phantoms import chest_case

# Every random step off; each test switches on what it checks.
NOTHING = {"affine_prob": 0.0, "elastic_prob": 0.0, "gamma_prob": 0.0, "noise_prob": 0.0,
           "flip_prob": 0.0}


def _sample(case) -> dict:
    image = ((case.ct.array.astype(np.float32) + 1000.0) / 2000.0)[None]  # ~0..1
    return {"image": image, "label": case.labels.array[None].copy()}


def _centroid(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask).mean(axis=0)


def test_swap_mirror_moves_left_labels_to_the_patients_left(hn_case):
    assert hn_case.labels.geometry.orientation_code == "LPS"  # +x index = patient left
    sample = _sample(hn_case)
    aug = build_augmentation(AugmentConfig(**NOTHING, lr_mirror="swap", lr_mirror_prob=1.0),
                             HEAD_NECK, spatial_dims=3)
    out = aug(sample)
    label, orig = out["label"].numpy()[0], sample["label"][0]
    np.testing.assert_array_equal(out["image"].numpy(), sample["image"][..., ::-1])
    for left, right in HEAD_NECK.pairs():
        np.testing.assert_array_equal(label == left.label, (orig == right.label)[..., ::-1])
        np.testing.assert_array_equal(label == right.label, (orig == left.label)[..., ::-1])
    for organ in (o for o in HEAD_NECK if o.side is None):
        np.testing.assert_array_equal(label == organ.label, (orig == organ.label)[..., ::-1])
    geometry = hn_case.labels.geometry
    x_left, x_right = (geometry.index_to_physical(_centroid(label == o.label)[::-1][None])[0, 0]
                       for o in (HEAD_NECK.by_name("Parotid_L"), HEAD_NECK.by_name("Parotid_R")))
    assert x_left > x_right + 20.0  # LPS: +x is the patient's left


def test_swap_mirror_in_2d_on_the_chest():
    case = chest_case(1, size=64)
    sample = {"image": case.ct.array.copy(), "label": case.labels.array.copy()}  # (1, y, x)
    aug = build_augmentation(AugmentConfig(**NOTHING, lr_mirror="swap", lr_mirror_prob=1.0),
                             CHEST, spatial_dims=2)
    label = aug(sample)["label"].numpy()[0]
    np.testing.assert_array_equal(label == 1, (case.labels.array[0] == 2)[:, ::-1])  # Lung_L
    assert _centroid(label == 1)[1] > _centroid(label == 2)[1]


def test_off_never_flips_left_right(hn_case):
    sample = _sample(hn_case)
    orig = sample["label"][0]
    allowed = [orig, orig[::-1], orig[:, ::-1], orig[::-1, ::-1]]  # z and y flips only
    aug = build_augmentation(AugmentConfig(**{**NOTHING, "flip_prob": 0.5}), HEAD_NECK, 3, seed=5)
    seen = set()
    for _ in range(40):
        label = aug(sample)["label"].numpy()[0]
        matches = [i for i, a in enumerate(allowed) if np.array_equal(label, a)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == {0, 1, 2, 3}


def test_off_keeps_sides_under_the_full_default_pipeline(hn_case):
    sample = _sample(hn_case)
    aug = build_augmentation(AugmentConfig(), HEAD_NECK, 3, seed=2)
    for _ in range(10):
        label = aug(sample)["label"].numpy()[0]
        assert _centroid(label == 12)[2] > _centroid(label == 13)[2]  # Parotid_L at larger x


def test_rotation_range_given_to_monai_is_the_configured_bound():
    assert rotate_range(AugmentConfig(), 3) == pytest.approx((math.radians(10), 0.0, 0.0))
    assert rotate_range(AugmentConfig(), 2) == pytest.approx((math.radians(10),))
    aug = build_augmentation(AugmentConfig(), HEAD_NECK, 3)
    affine = next(t for t in aug.transforms if isinstance(t, RandAffined))
    grid = affine.rand_affine.rand_affine_grid
    assert grid.rotate_range == pytest.approx((math.radians(10), 0.0, 0.0))
    assert grid.translate_range == pytest.approx((8.0, 8.0, 8.0))


def _max_rotation_seen(hn_case, degrees: float, draws: int = 25) -> float:
    """Largest in-plane turn (deg) of the Parotid_R -> Parotid_L vector over random rotations."""
    sample = _sample(hn_case)
    config = AugmentConfig(**{**NOTHING, "affine_prob": 1.0}, rotation_deg=degrees, scale=0.0,
                           translation_px=0.0)
    aug = build_augmentation(config, HEAD_NECK, 3, seed=0)

    def angle(label: np.ndarray) -> float:
        dy, dx = (_centroid(label == 12) - _centroid(label == 13))[1:]
        return math.degrees(math.atan2(dy, dx))

    before = angle(sample["label"][0])
    return max(abs(angle(aug(sample)["label"].numpy()[0]) - before) for _ in range(draws))


def test_rotation_stays_within_ten_degrees(hn_case):
    tolerance = 2.5  # centroid of a ~20 px apart pair on a 48x48 grid, nearest resampling
    seen = _max_rotation_seen(hn_case, 10.0)
    assert 4.0 < seen <= 10.0 + tolerance
    assert _max_rotation_seen(hn_case, 45.0) > 10.0 + tolerance  # the check would catch 45 deg


def test_noise_variance_on_a_constant_image():
    image = np.full((1, 16, 64, 64), 0.5, np.float32)
    aug = build_augmentation(AugmentConfig(**{**NOTHING, "noise_prob": 1.0}), HEAD_NECK, 3)
    out = aug({"image": image, "label": np.zeros((1, 16, 64, 64), np.uint8)})["image"].numpy()
    assert np.var(out) == pytest.approx(0.001, rel=0.05)
    assert np.mean(out) == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize("dims", [3, 2])
def test_labels_stay_values_of_the_set_after_every_transform(hn_case, dims):
    everything = AugmentConfig(affine_prob=1.0, elastic_prob=1.0, gamma_prob=1.0,
                               noise_prob=1.0, flip_prob=1.0, lr_mirror="swap")
    if dims == 3:
        sample, organs = _sample(hn_case), HEAD_NECK
    else:
        case = chest_case(2, size=64)
        sample, organs = {"image": case.ct.array, "label": case.labels.array}, CHEST
    aug = build_augmentation(everything, organs, dims, seed=3)
    allowed = {0, *organs.labels}
    for _ in range(4):
        out = aug(sample)
        assert out["label"].dtype == torch.uint8 and out["image"].dtype == torch.float32
        assert tuple(out["label"].shape) == sample["label"].shape
        assert tuple(out["image"].shape) == sample["image"].shape
        assert set(np.unique(out["label"].numpy()).tolist()) <= allowed


def test_same_seed_same_augmentation(hn_case):
    sample = _sample(hn_case)
    runs = [build_augmentation(AugmentConfig(), HEAD_NECK, 3, seed=s) for s in (7, 7, 8)]
    outs = [[aug(sample)["image"].numpy() for _ in range(3)] for aug in runs]
    for a, b in zip(outs[0], outs[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(outs[0], outs[2], strict=True))
    again = runs[0].set_random_state(seed=7)
    np.testing.assert_array_equal(again(sample)["image"].numpy(), outs[0][0])


def test_config_round_trips_through_json():
    config = AugmentConfig(rotation_deg=5.0, flip_axes=("z",), lr_mirror="swap")
    data = json.loads(json.dumps(config.to_dict()))
    assert AugmentConfig.from_dict(data) == config
    assert AugmentConfig().lr_mirror == "off" and AugmentConfig().noise_var == 0.001


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"lr_mirror": "swp"}, UnknownOptionError, "did you mean 'swap'"),
    ({"lr_mirror": "flip"}, UnknownOptionError, "choices: off, swap"),
    ({"flip_axes": ("z", "x")}, InvalidInputError, "lr_mirror='swap'"),
    ({"flip_axes": ("q",)}, InvalidInputError, "unknown axes"),
    ({"rotation_axes": ("w",)}, InvalidInputError, "unknown axes"),
    ({"rotation_deg": -1.0}, InvalidInputError, "rotation_deg must not be negative"),
    ({"noise_prob": 1.5}, InvalidInputError, r"noise_prob must lie in \[0, 1\]"),
    ({"gamma": (2.0, 1.0)}, InvalidInputError, "gamma must be a range"),
    ({"gamma": (0.0, 1.0)}, InvalidInputError, "gamma must be positive"),
])
def test_bad_options_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        AugmentConfig(**kwargs)


def test_bad_dims_and_unknown_keys_are_refused():
    with pytest.raises(InvalidInputError, match="spatial_dims must be 2 or 3"):
        build_augmentation(AugmentConfig(), HEAD_NECK, 4)
    with pytest.raises(UnknownOptionError, match="did you mean 'noise_var'"):
        AugmentConfig.from_dict({"noise_variance": 0.01})


@pytest.mark.parametrize("dims", [2, 3])
def test_spatial_transforms_move_every_channel_alike(hn_case, dims):
    """A CT + pseudo-MRI sample: two channels see one and the same flip, affine and elastic."""
    ct = hn_case.ct.array.astype(np.float32) / 1000.0
    image = np.stack([ct, ct])
    label = hn_case.labels.array[None].astype(np.uint8)
    if dims == 2:
        image, label = image[:, 10], label[:, 10]
    config = AugmentConfig(affine_prob=1.0, elastic_prob=1.0, flip_prob=0.5, gamma_prob=0.0,
                           noise_prob=0.0)
    for seed in range(3):
        out = build_augmentation(config, HEAD_NECK, dims, seed=seed)(
            {"image": image, "label": label})
        assert out["image"].shape == image.shape
        assert not torch.equal(out["image"][0], torch.from_numpy(image[0]))  # it moved
        assert torch.equal(out["image"][0], out["image"][1])
