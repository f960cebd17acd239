"""Label-noise simulation (C1): exact fraction, n ranges, clean samples untouched, reproducible."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autocontour.data.label_noise import (
    LabelNoiseConfig,
    NoiseRecord,
    apply_label_noise,
    slice_id,
)
from autocontour.errors import InvalidInputError, UnknownOptionError
from autocontour.organs import CHEST
from autocontour.phantoms import chest_case

RADIUS = 20


def _disk(size: int = 101, radius: float = RADIUS, centre: tuple[float, float] | None = None,
          value: int = 3) -> np.ndarray:
    cy, cx = centre or ((size - 1) / 2, (size - 1) / 2)
    yy, xx = np.mgrid[:size, :size]
    return np.where((yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2, value, 0).astype(np.uint8)


def _radius(mask: np.ndarray) -> float:
    return float(np.sqrt(mask.sum() / np.pi))


def _disks(n: int) -> dict[str, np.ndarray]:
    return {f"case{i:02d}": _disk()[None] for i in range(n)}


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_fraction_is_exact(fraction):
    samples = _disks(8)
    out, record = apply_label_noise(samples, CHEST, LabelNoiseConfig(fraction, seed=1))
    assert len(record.noisy_ids()) == round(fraction * 8)
    assert {s.sample_id for s in record.samples} == set(samples)
    for sid in record.noisy_ids():
        assert not np.array_equal(out[sid], samples[sid])


def test_clean_samples_are_unchanged_and_inputs_untouched():
    samples = {k: chest_case(i, size=64).labels.array for i, k in enumerate("abcdef")}
    before = {k: v.copy() for k, v in samples.items()}
    out, record = apply_label_noise(samples, CHEST, LabelNoiseConfig(0.5, "high", seed=4))
    for k, labels in samples.items():
        np.testing.assert_array_equal(labels, before[k])
        if not record.is_noisy(k):
            assert out[k] is labels
            assert record.samples[sorted(samples).index(k)].structures == {}
        assert out[k].dtype == labels.dtype and out[k].shape == labels.shape


@pytest.mark.parametrize("n", [1, 4, 8, 13])
def test_boundary_moves_by_n_pixels(n):
    out, record = apply_label_noise(_disks(12), CHEST, LabelNoiseConfig(1.0, (n, n), seed=n))
    ops = set()
    for sample in record.samples:
        done = sample.structures["Heart"]
        ops.add(done.op)
        assert done.n == done.n_applied == n
        sign = 1 if done.op == "dilate" else -1
        assert _radius(out[sample.sample_id][0] == 3) == pytest.approx(RADIUS + sign * n, abs=0.5)
    assert ops == {"dilate", "erode"}


@pytest.mark.parametrize(("level", "bounds"), [("low", (1, 8)), ("high", (5, 13))])
def test_n_is_drawn_over_the_whole_level_range(level, bounds):
    samples = {f"c{i}": np.stack([_disk(64, 12, value=v) for v in (1, 2, 3)]) for i in range(30)}
    _, record = apply_label_noise(samples, CHEST, LabelNoiseConfig(1.0, level, seed=0))
    drawn = [s.n for r in record.samples for s in r.structures.values()]
    assert min(drawn) == bounds[0] and max(drawn) == bounds[1]
    assert LabelNoiseConfig(level=level).n_range == bounds


def test_same_seed_same_output_other_seed_other_choice():
    samples = _disks(12)
    runs = [apply_label_noise(samples, CHEST, LabelNoiseConfig(0.5, seed=s)) for s in (3, 3, 9)]
    assert runs[0][1] == runs[1][1]
    for k in samples:
        np.testing.assert_array_equal(runs[0][0][k], runs[1][0][k])
    assert runs[0][1].noisy_ids() != runs[2][1].noisy_ids()


def test_touching_structures_keep_their_labels_and_stay_in_the_set():
    left = _disk(80, 15, (40, 22), value=1)
    right = _disk(80, 15, (40, 54), value=2)  # 2 px gap: any dilation collides
    heart = _disk(80, 6, (12, 40), value=3)
    orig = np.maximum(np.maximum(left, right), heart)[None]
    samples = {f"s{i}": orig for i in range(10)}
    out, record = apply_label_noise(samples, CHEST, LabelNoiseConfig(1.0, "high", seed=2))
    for sample in record.samples:
        noisy = out[sample.sample_id]
        assert set(np.unique(noisy).tolist()) <= {0, 1, 2, 3}
        changed = noisy != orig
        assert np.all((orig[changed] == 0) | (noisy[changed] == 0))  # only grows into background
        for name, done in sample.structures.items():
            assert np.any(noisy == CHEST.by_name(name).label)  # never vanishes
            assert 0 <= done.n_applied <= done.n


def test_erosion_stops_before_a_structure_vanishes():
    tiny = np.zeros((1, 30, 30), np.uint8)
    tiny[0, 10:15, 10:15] = 4  # a 5x5 square: erosion by 3 or more would empty it
    out, record = apply_label_noise({f"t{i}": tiny for i in range(12)}, CHEST,
                                    LabelNoiseConfig(1.0, (6, 6), seed=0))
    eroded = [r for r in record.samples if r.structures["Clavicle_L"].op == "erode"]
    assert eroded
    for r in eroded:
        assert r.structures["Clavicle_L"].n_applied == 2
        assert (out[r.sample_id] == 4).sum() == 1


def test_slice_unit_perturbs_exactly_the_chosen_slices():
    volume = np.stack([_disk(48, 10 + z % 4) for z in range(10)])
    out, record = apply_label_noise({"ct1": volume}, CHEST,
                                    LabelNoiseConfig(0.5, "low", unit="slice", seed=1))
    assert [s.sample_id for s in record.samples] == [slice_id("ct1", z) for z in range(10)]
    assert len(record.noisy_ids()) == 5
    for z in range(10):
        same = np.array_equal(out["ct1"][z], volume[z])
        assert same != record.is_noisy(slice_id("ct1", z))


def test_record_round_trips_through_json():
    _, record = apply_label_noise(_disks(4), CHEST, LabelNoiseConfig(0.75, (2, 5), seed=1))
    again = NoiseRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record
    assert record.to_dict()["samples"][0].keys() == {"id", "noisy", "structures"}
    with pytest.raises(KeyError):
        record.is_noisy("not-a-sample")


def test_whole_chest_phantom_batch():
    samples = {f"jsrt{i}": chest_case(i, size=96).labels.array for i in range(4)}
    out, record = apply_label_noise(samples, CHEST, LabelNoiseConfig(0.5, "high", seed=0))
    assert len(record.noisy_ids()) == 2
    for sid in record.noisy_ids():
        assert set(record.samples[sorted(samples).index(sid)].structures) == set(CHEST.names)
        assert set(np.unique(out[sid]).tolist()) <= {0, *CHEST.labels}


def test_sample_draw_shares_one_op_and_n_across_structures():
    """draw="sample" (seed 002's n_i per image): every structure of a noisy sample gets the same
    op and n; the default draws per structure, and the record says which was used."""
    samples = {f"jsrt{i}": chest_case(i, size=96).labels.array for i in range(6)}
    config = LabelNoiseConfig(1.0, "low", seed=3, draw="sample")
    _, record = apply_label_noise(samples, CHEST, config)
    for sample in record.samples:
        drawn = {(s.op, s.n) for s in sample.structures.values()}
        assert len(sample.structures) == len(CHEST) and len(drawn) == 1
    _, per_structure = apply_label_noise(samples, CHEST, LabelNoiseConfig(1.0, "low", seed=3))
    assert any(len({(s.op, s.n) for s in sample.structures.values()}) > 1
               for sample in per_structure.samples)
    assert NoiseRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    assert LabelNoiseConfig.from_dict({"fraction": 0.5}).draw == "structure"  # older records


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"fraction": 1.5}, InvalidInputError, r"fraction must lie in \[0, 1\]"),
    ({"level": "hgh"}, UnknownOptionError, "did you mean 'high'"),
    ({"level": (5, 2)}, InvalidInputError, "0 <= min <= max"),
    ({"unit": "slices"}, UnknownOptionError, "did you mean 'slice'"),
    ({"draw": "samples"}, UnknownOptionError, "did you mean 'sample'"),
])
def test_bad_config_is_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        LabelNoiseConfig(**kwargs)


@pytest.mark.parametrize(("labels", "match"), [
    (np.full((1, 8, 8), 9, np.uint8), r"label values \[9\] are not in organ set 'chest'"),
    (np.zeros((1, 8, 8), np.float32), "must hold integers"),
    (np.zeros(8, np.uint8), "2-D or 3-D"),
])
def test_bad_label_maps_are_refused(labels, match):
    with pytest.raises(InvalidInputError, match=match):
        apply_label_noise({"bad": labels}, CHEST, LabelNoiseConfig(0.5))


# --- corrupt_organ: the single-organ contouring errors of the dataset audit's test ------------

def _pelvis_labels() -> tuple[np.ndarray, object]:
    from autocontour.phantoms import make_case
    case = make_case("pelvis", 5, (16, 48, 48))
    return case.labels.array, case.labels.organs


def test_corrupt_organ_changes_only_the_named_organ():
    from autocontour.data.label_noise import corrupt_organ
    labels, organs = _pelvis_labels()
    before = labels.copy()
    bladder = organs.by_name("Bladder").label
    for kind, amount in (("dilate", 2), ("erode", 1), ("shift", 3), ("missing_slices", 2)):
        out, record = corrupt_organ(labels, organs, "Bladder", kind, amount,
                                    np.random.default_rng(0))
        assert np.array_equal(labels, before)  # the input is not modified
        changed = out != labels
        assert changed.any(), kind
        # every changed voxel was or became the bladder, nothing else moved
        assert np.all((labels[changed] == bladder) | (out[changed] == bladder)), kind
        assert record.kind == kind and record.organs == ("Bladder",)
    grown, _ = corrupt_organ(labels, organs, "Bladder", "dilate", 2, np.random.default_rng(0))
    shrunk, _ = corrupt_organ(labels, organs, "Bladder", "erode", 1, np.random.default_rng(0))
    n = int((labels == bladder).sum())
    assert (grown == bladder).sum() > n > (shrunk == bladder).sum()


def test_shift_keeps_the_shape_and_moves_it_by_the_amount():
    from autocontour.data.label_noise import corrupt_organ
    labels = np.zeros((3, 60, 60), np.uint8)
    labels[:, 20:30, 20:30] = 3  # Heart of the chest set, far from the edges
    out, record = corrupt_organ(labels, CHEST, "Heart", "shift", 5, np.random.default_rng(1))
    dy, dx = record.detail["dy_dx_px"]
    assert 4.5 <= np.hypot(dy, dx) <= 5.5
    assert np.array_equal(out, np.roll(labels, (dy, dx), axis=(1, 2)))


def test_swap_exchanges_the_pair_and_missing_slices_removes_a_range():
    from autocontour.data.label_noise import corrupt_organ
    labels, organs = _pelvis_labels()
    left, right = organs.by_name("Femur_Head_L").label, organs.by_name("Femur_Head_R").label
    out, record = corrupt_organ(labels, organs, "Femur_Head_R", "swap", 0,
                                np.random.default_rng(0))
    assert np.array_equal(out == left, labels == right)
    assert np.array_equal(out == right, labels == left)
    assert set(record.organs) == {"Femur_Head_L", "Femur_Head_R"}
    out, record = corrupt_organ(labels, organs, "Femur_Head_L", "missing_slices", 3,
                                np.random.default_rng(0))
    first, last = record.detail["slices"]
    assert last - first + 1 == record.amount == 3
    assert not (out[first:last + 1] == left).any()
    assert (out == left).any()  # at least one slice is left


def test_corrupt_organ_refuses_what_it_cannot_do():
    from autocontour.data.label_noise import corrupt_organ
    labels, organs = _pelvis_labels()
    rng = np.random.default_rng(0)
    with pytest.raises(UnknownOptionError, match="did you mean 'shift'"):
        corrupt_organ(labels, organs, "Bladder", "shfit", 2, rng)
    with pytest.raises(InvalidInputError, match="no left/right partner"):
        corrupt_organ(labels, organs, "Bladder", "swap", 0, rng)
    absent = "Prostate" if not (labels == organs.by_name("Prostate").label).any() else "CTV"
    with pytest.raises(InvalidInputError, match=f"{absent} is absent"):
        corrupt_organ(labels, organs, absent, "dilate", 2, rng)
    with pytest.raises(InvalidInputError, match="amount must be at least 1"):
        corrupt_organ(labels, organs, "Bladder", "dilate", 0, rng)
    one_slice = np.zeros((4, 20, 20), np.uint8)
    one_slice[2, 5:9, 5:9] = 3
    with pytest.raises(InvalidInputError, match="lies on one slice"):
        corrupt_organ(one_slice, CHEST, "Heart", "missing_slices", 1, rng)
