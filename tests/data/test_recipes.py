"""Preprocessing recipes: serialisation, exact inversion onto the source grid, each step's effect."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from autocontour.data.recipes import FINGERPRINT_RECIPES, RECIPES, Recipe, get_recipe
from autocontour.data.steps import AppliedRecord, SourceInfo, StepRecord
from autocontour.data.steps_body import CropBody, coarse_stride
from autocontour.data.steps_grid import CropToLabels, Resample, resampled_geometry
from autocontour.data.steps_intensity import ClipIntensity, NormalizeMR, ScaleToUnit, ZScore
from autocontour.errors import GeometryMismatchError, InvalidInputError, UnknownOptionError
from autocontour.evaluation.overlap import dice
from autocontour.io import DicomSeriesRef, Geometry, LabelMap, Volume, read_volume, reorient_to
from autocontour.phantoms import PhantomCase, head_neck_case

ALL_STEPS = [
    ClipIntensity(-1000, 1500),
    ClipIntensity(upper=1600, space="stored", rescale_intercept=-1024, rescale_slope=1),
    ScaleToUnit(0, 1600, space="stored"),
    ZScore("global", 40.0, 300.0),
    ZScore("foreground", threshold=-500),
    ZScore("image"),
    NormalizeMR(1.0, 99.0),
    Resample(spacing=(1.0, 1.0, 3.0)),
    Resample(shape=(72, 256, 256)),
    Resample(),
    CropBody(margin_mm=5, remove_arms=False),
    CropToLabels(("OpticChiasm", "Pituitary"), size_vox=(16, 64, 64)),
    CropToLabels("Brainstem", size_mm=(50, 50, 30), centre="box"),
]
BIG_ORGANS = ("Brainstem", "Lobe_Temporal_L", "Lobe_Temporal_R", "Parotid_L", "Parotid_R")


@pytest.fixture(scope="module")
def hn_mid() -> PhantomCase:
    """A head-and-neck phantom fine enough (2.7 mm) for resampling round trips."""
    return head_neck_case(seed=3, shape=(24, 96, 96))


def _no_source() -> SourceInfo:
    return SourceInfo()


def _json(data: dict) -> dict:
    return json.loads(json.dumps(data))


def _with_intercept(volume: Volume, intercept: float | None) -> Volume:
    """The volume as if read from DICOM with this RescaleIntercept (None: no header at all)."""
    if intercept is None:
        return replace(volume, dicom=None)
    header = Dataset()
    header.RescaleIntercept = str(intercept)
    header.RescaleSlope = "1"
    ref = DicomSeriesRef("1.2.3", "1.2.3.4", "1.2.3.5", "1.2.840.10008.5.1.4.1.1.2",
                         tuple(f"1.2.3.6.{k}" for k in range(volume.shape[0])), header=header)
    return replace(volume, dicom=ref)


def _oblique(volume: Volume, degrees: float = 30.0) -> Volume:
    """The same array on a grid rotated about the slice normal (an oblique acquisition)."""
    a = np.deg2rad(degrees)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    g = volume.geometry
    return replace(volume, geometry=replace(g, direction=tuple((rot @ g.direction_matrix).ravel())))


# ---------------------------------------------------------------------------------------------
# Serialisation.


@pytest.mark.parametrize("step", ALL_STEPS, ids=lambda s: s.kind)
def test_every_step_round_trips_through_json(step):
    recipe = Recipe("one", (step,))
    again = Recipe.from_dict(_json(recipe.to_dict()))
    assert again == recipe
    assert again.steps[0].to_dict() == step.to_dict()


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_named_recipe_round_trips_through_json(name):
    recipe = get_recipe(name)
    assert recipe.name == name
    assert Recipe.from_dict(_json(recipe.to_dict())) == recipe


def test_names_are_forgiving_and_unknown_names_suggest_one():
    assert get_recipe(" Seed004_StructSeg ") is RECIPES["seed004-structseg"]
    with pytest.raises(UnknownOptionError, match="did you mean 'seed004-structseg'"):
        get_recipe("seed004-structsg")
    with pytest.raises(UnknownOptionError, match="choices: .*nnunet-ct"):
        get_recipe("cervix-please")
    for name in FINGERPRINT_RECIPES:
        with pytest.raises(InvalidInputError, match="fingerprint"):
            get_recipe(name)


INVALID = [
    (lambda: ClipIntensity(), InvalidInputError, "give lower, upper or both"),
    (lambda: ClipIntensity(10, 5), InvalidInputError, "must be below upper"),
    (lambda: ClipIntensity(0, 1, space="stores"), UnknownOptionError, "did you mean 'stored'"),
    (lambda: ClipIntensity(0, "a lot"), InvalidInputError, "upper must be a number"),
    (lambda: ClipIntensity(0, 1, rescale_slope=-1), InvalidInputError, "slope must be positive"),
    (lambda: ScaleToUnit(0, None), InvalidInputError, "give both"),
    (lambda: ZScore("global"), InvalidInputError, "needs the data set's foreground mean"),
    (lambda: ZScore("image", mean=1, std=2), InvalidInputError, "only with mode 'global'"),
    (lambda: ZScore("global", 0, 0), InvalidInputError, "std must be positive"),
    (lambda: ZScore("image", threshold=0), InvalidInputError, "only with mode 'foreground'"),
    (lambda: ZScore("glob"), UnknownOptionError, "did you mean 'global'"),
    (lambda: NormalizeMR(50, 10), InvalidInputError, "lower_pct < upper_pct"),
    (lambda: Resample(spacing=(1, 1, 1), shape=(1, 1, 1)), InvalidInputError, "not both"),
    (lambda: Resample(spacing=(1, 0, 1)), InvalidInputError, "3 positive numbers"),
    (lambda: Resample(shape=(72, 256)), InvalidInputError, "3 positive numbers"),
    (lambda: CropBody(margin_mm=-1), InvalidInputError, "margin_mm >= 0"),
    (lambda: CropToLabels((), size_vox=(4, 4, 4)), InvalidInputError, "at least one organ"),
    (lambda: CropToLabels("Brainstem"), InvalidInputError, "exactly one of size_vox"),
    (lambda: CropToLabels("Brainstem", size_vox=(4, 4, 4), centre="centre"),
     UnknownOptionError, "did you mean 'centroid'"),
    (lambda: Recipe("", ()), InvalidInputError, "needs a name"),
    (lambda: Recipe("x", ("clip",)), InvalidInputError, "is not a step"),
    (lambda: Recipe("x", (ZScore("image"), CropBody())), InvalidInputError,
     "'crop_body' reads HU.*after 'zscore'"),
    (lambda: Recipe("x", (ScaleToUnit(0, 1), ClipIntensity(0, 1600, space="stored"))),
     InvalidInputError, "after 'scale'"),
    (lambda: Recipe.from_dict({"name": "x", "steps": [{"kind": "clipp", "lower": 0}]}),
     UnknownOptionError, "did you mean 'clip'"),
    (lambda: Recipe.from_dict({"name": "x", "steps": [{"kind": "clip", "lowr": 0}]}),
     InvalidInputError, "bad parameters for step 'clip'"),
    (lambda: Recipe.from_dict({"steps": []}), InvalidInputError, "needs 'name' and 'steps'"),
    (lambda: AppliedRecord.from_dict({"recipe": "x"}), InvalidInputError, "missing"),
    (lambda: StepRecord.from_dict({"type": "warp"}), InvalidInputError, "unknown .* 'warp'"),
]


@pytest.mark.parametrize(("make", "error", "match"), INVALID)
def test_invalid_steps_and_recipes_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


# ---------------------------------------------------------------------------------------------
# Apply and invert: predictions land exactly on the source grid.


@pytest.mark.parametrize("position", ["HFS", "FFS"])
def test_crop_recipe_inverts_to_the_identical_labels_on_the_source_grid(hn_case, position):
    ct, labels = reorient_to(hn_case.ct, position), reorient_to(hn_case.labels, position)
    recipe = get_recipe("seed004-structseg")
    out = recipe.apply(ct, labels)
    assert out.image.array.dtype == np.float32
    assert out.labels.array.dtype == np.uint8 and out.labels.organs == labels.organs
    assert out.image.geometry == out.labels.geometry
    assert np.prod(out.image.shape) < 0.75 * np.prod(ct.shape)
    assert out.labels.volumes_cc() == pytest.approx(labels.volumes_cc())  # no organ voxel lost
    record = AppliedRecord.from_dict(_json(out.record.to_dict()))
    assert record == out.record
    back = recipe.invert_labels(out.labels, record)
    assert back.geometry.mismatch(labels.geometry) is None
    assert np.array_equal(back.array, labels.array)


def test_the_box_covers_the_same_patient_region_head_first_and_feet_first(hn_case):
    boxes = []
    for position in ("HFS", "FFS"):
        out = RECIPES["seed004-structseg"].apply(reorient_to(hn_case.ct, position))
        g = out.image.geometry
        corners = np.array([[i, j, k] for i in (0, g.shape[2] - 1) for j in (0, g.shape[1] - 1)
                            for k in (0, g.shape[0] - 1)], dtype=float)
        mm = g.index_to_physical(corners)
        boxes.append((mm.min(axis=0), mm.max(axis=0)))
    np.testing.assert_allclose(boxes[0], boxes[1], atol=1e-3)


@pytest.mark.parametrize("orient", ["HFS", "FFS", "oblique"])
def test_coarser_resampling_round_trip_keeps_geometry_and_big_organs(hn_mid, orient):
    if orient == "oblique":
        ct, labels = _oblique(hn_mid.ct), _oblique(hn_mid.labels)
    else:
        ct, labels = reorient_to(hn_mid.ct, orient), reorient_to(hn_mid.labels, orient)
    recipe = Recipe("coarse", (Resample(spacing=(3.4, 3.4, 3.6)),))
    out = recipe.apply(ct, labels)
    assert out.image.spacing == pytest.approx((3.4, 3.4, 3.6))
    assert out.image.geometry.direction == ct.geometry.direction
    assert out.image.array.dtype == np.float32
    back = recipe.invert_labels(out.labels, AppliedRecord.from_dict(_json(out.record.to_dict())))
    assert back.geometry.mismatch(labels.geometry) is None
    for organ in BIG_ORGANS:
        assert dice(back.mask(organ), labels.mask(organ)) > 0.9, organ


def test_labels_already_on_the_coarse_grid_survive_invert_then_apply(hn_mid):
    step = Resample(spacing=(3.4, 3.4, 3.6))
    recipe = Recipe("coarse", (step,))
    coarse = recipe.apply(hn_mid.ct, hn_mid.labels)
    prediction = coarse.labels  # a prediction on the network's grid
    on_source = recipe.invert_labels(prediction, coarse.record)
    again = recipe.apply(hn_mid.ct, on_source)
    assert again.labels.geometry.mismatch(prediction.geometry) is None
    assert np.array_equal(again.labels.array, prediction.array)


def test_resampling_to_the_own_spacing_changes_nothing(hn_case):
    out = Recipe("same", (Resample(spacing=hn_case.ct.spacing),)).apply(hn_case.ct, hn_case.labels)
    assert out.image is hn_case.ct and out.labels is hn_case.labels
    assert out.record.invert_labels(out.labels) is out.labels


def test_fixed_grid_resampling_gives_the_exact_shape_and_keeps_the_field_of_view(hn_case):
    out = Resample(shape=(72, 256, 256)).apply(hn_case.ct, hn_case.labels, _no_source())
    image, labels, record = out
    assert image.shape == labels.shape == (72, 256, 256)

    def edges(g: Geometry) -> np.ndarray:  # outer corners of the first and last voxels
        last = np.array(g.shape[::-1], float) - 0.5
        return g.index_to_physical(np.array([[-0.5, -0.5, -0.5], last]))

    np.testing.assert_allclose(edges(image.geometry), edges(hn_case.ct.geometry), atol=1e-6)
    back = record.invert_labels(labels)
    assert back.geometry.mismatch(hn_case.labels.geometry) is None
    assert np.array_equal(back.array, hn_case.labels.array)  # finer grid: nothing is lost


def test_resampled_geometry_centres_a_target_spacing_grid():
    g = Geometry((10, 20, 30), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    out = resampled_geometry(g, spacing=(2.0, 2.0, 2.0))
    assert out.shape == (10, 10, 15)
    np.testing.assert_allclose(out.origin, (0.5, 0.5, 0.0))
    assert resampled_geometry(g) is g


def test_inverting_checks_the_grid_and_the_recipe(hn_case):
    recipe = get_recipe("seed004-structseg")
    out = recipe.apply(hn_case.ct, hn_case.labels)
    with pytest.raises(GeometryMismatchError, match="not on the grid recipe 'seed004-structseg'"):
        recipe.invert_labels(hn_case.labels, out.record)
    with pytest.raises(InvalidInputError, match="made by recipe 'seed004-structseg'"):
        get_recipe("none").invert_labels(out.labels, out.record)
    shifted = replace(hn_case.labels, geometry=replace(hn_case.labels.geometry, origin=(0, 0, 0)))
    with pytest.raises(GeometryMismatchError, match="labels to preprocess.*origin"):
        recipe.apply(hn_case.ct, shifted)


def test_the_none_recipe_returns_the_input(hn_case):
    out = get_recipe("none").apply(hn_case.ct, hn_case.labels)
    assert out.image is hn_case.ct and out.labels is hn_case.labels
    assert out.record.final_geometry == hn_case.ct.geometry
    assert get_recipe("none").invert_labels(out.labels, out.record) is hn_case.labels


# ---------------------------------------------------------------------------------------------
# Intensity steps.


def test_stored_value_bound_is_converted_with_the_dicom_intercept(hn_case):
    ct = _with_intercept(hn_case.ct, -1024)
    out = Recipe("c", (ClipIntensity(upper=1600, space="stored"),)).apply(ct)
    assert out.image.array.max() == pytest.approx(1600 - 1024)
    expected = np.minimum(hn_case.ct.array, 576).astype(np.float32)
    assert np.array_equal(out.image.array, expected)
    assert out.record.steps[0].values == {"rescale_slope": 1.0, "rescale_intercept": -1024.0,
                                          "upper": 576.0}


def test_stored_value_bound_without_a_dicom_header_asks_for_the_intercept(hn_case):
    nifti_like = _with_intercept(hn_case.ct, None)
    with pytest.raises(InvalidInputError, match="stored pixel values.*give rescale_intercept"):
        get_recipe("seed002-cervix").apply(nifti_like)
    given = ClipIntensity(upper=1600, space="stored", rescale_intercept=-1000)
    out = Recipe("c", (given,)).apply(nifti_like)
    assert out.image.array.max() == pytest.approx(600)


def test_seed002_recipe_maps_stored_0_to_1600_onto_0_to_1_on_a_72_slice_grid(hn_case):
    ct = _with_intercept(hn_case.ct, -1024)
    out = get_recipe("seed002-cervix").apply(ct, hn_case.labels)
    assert out.image.shape == out.labels.shape == (72, 256, 256)
    assert out.image.array.dtype == np.float32
    assert out.image.array.min() >= 0.0 and out.image.array.max() <= 1.0
    assert out.record.steps[1].values["lower"] == -1024 and out.record.steps[1].values[
        "upper"] == 576
    # the intercept survives a grid change: a stored-value step after resampling still works
    late = Recipe("late", (Resample(shape=(8, 24, 24)), ClipIntensity(upper=1600, space="stored")))
    assert late.apply(ct).image.array.max() == pytest.approx(576)


def test_stored_bound_reads_a_real_series_with_unsigned_stored_values(ct_dir: Path, hn_case):
    """A scanner-like series (stored = HU + 1024, intercept -1024): clip applies before rescale."""
    stored = {}
    for f in sorted(ct_dir.glob("*.dcm")):
        ds = pydicom.dcmread(f)
        values = ds.pixel_array.astype(np.int32) + 1024
        ds.PixelRepresentation = 0
        ds.PixelData = values.astype(np.uint16).tobytes()
        ds.RescaleIntercept = "-1024"
        ds.save_as(f)
        stored[float(ds.ImagePositionPatient[2])] = values
    ct = read_volume(ct_dir)
    assert ct.dicom.header.RescaleIntercept == -1024
    out = Recipe("c", (ClipIntensity(upper=1600, space="stored"),)).apply(ct)
    ordered = np.stack([stored[z] for z in sorted(stored)])
    assert np.array_equal(out.image.array, np.minimum(ordered, 1600) - 1024.0)


def test_zscore_modes_give_mean_0_std_1_in_their_region(hn_case):
    ct = hn_case.ct
    image = ZScore("image").apply(ct, None, _no_source())[0].array
    assert image.dtype == np.float32
    assert abs(image.mean()) < 1e-4 and image.std() == pytest.approx(1.0, abs=1e-4)
    body = ct.array > -500
    fg, _, record = ZScore("foreground", threshold=-500).apply(ct, None, _no_source())
    assert abs(fg.array[body].mean()) < 1e-4
    assert fg.array[body].std() == pytest.approx(1.0, abs=1e-4)
    assert abs(fg.array[~body].mean()) > 1.0  # air lies far below the body's mean
    assert record.values["mean"] == pytest.approx(ct.array[body].mean())
    glob = ZScore("global", 100.0, 50.0).apply(ct, None, _no_source())[0].array
    np.testing.assert_allclose(glob, (ct.array - 100.0) / 50.0, rtol=1e-6)


def test_normalize_mr_clips_to_percentiles_and_standardises_the_foreground(hn_case):
    out, _, record = NormalizeMR().apply(hn_case.mr, None, _no_source())
    v = record.values
    assert v["lower"] < v["upper"]
    mask = hn_case.mr.array > v["threshold"]
    assert mask.mean() > 0.2  # the head, not a few bright voxels
    assert abs(out.array[mask].mean()) < 1e-3
    assert out.array[mask].std() == pytest.approx(1.0, abs=1e-3)
    assert out.array.max() == pytest.approx((v["upper"] - v["mean"]) / v["std"], abs=1e-4)
    assert get_recipe("mr").apply(hn_case.mr).image.array.dtype == np.float32


def test_constant_images_are_refused_by_per_image_normalisation(hn_case):
    flat = hn_case.ct.with_array(np.zeros(hn_case.ct.shape, np.int16))
    with pytest.raises(InvalidInputError, match="constant"):
        ZScore("image").apply(flat, None, _no_source())
    with pytest.raises(InvalidInputError, match="no foreground"):
        NormalizeMR().apply(flat, None, _no_source())


# ---------------------------------------------------------------------------------------------
# Crops.


def _couch_rows(ct: Volume) -> np.ndarray:
    """Rows (y) filled across the whole width: the couch's dense plates."""
    return np.nonzero((ct.array > -500).mean(axis=(0, 2)) > 0.9)[0]


@pytest.mark.parametrize("seed", [2, 3])
def test_body_crop_removes_the_couch_and_keeps_every_organ(seed):
    case = head_neck_case(seed=seed, shape=(16, 48, 48))
    couch = _couch_rows(case.ct)
    assert couch.size  # the phantom has a couch below the patient
    image, labels, record = CropBody().apply(case.ct, case.labels, _no_source())
    (z0, y0, x0), y1 = record.start, record.stop[1]
    assert not np.any((couch >= y0) & (couch < y1))
    assert labels.volumes_cc() == pytest.approx(case.labels.volumes_cc())
    assert image.array.size < 0.75 * case.ct.array.size
    assert image.geometry.index_to_physical(np.zeros((1, 3)))[0] == pytest.approx(
        case.ct.geometry.index_to_physical(np.array([[x0, y0, z0]]))[0])
    without = CropBody(remove_couch=False, remove_arms=False).box(case.ct)
    assert without[1][1] > couch.min()  # the margin then runs into the couch


def test_body_crop_limits_the_width_to_the_head_when_shoulders_widen_the_body(hn_case):
    shoulders = hn_case.ct.array.copy()
    shoulders[:4, 20:32, 2:46] = 40  # soft tissue joined to the neck, far wider than the head
    ct = hn_case.ct.with_array(shoulders)
    start, stop = CropBody().box(ct)
    assert start[2] > 2 + 2 and stop[2] < 46 - 2  # the shoulders and their margin are cut
    labelled = np.nonzero(hn_case.labels.array.any(axis=(0, 1)))[0]
    assert start[2] <= labelled.min() and stop[2] > labelled.max()
    kept = CropBody(remove_arms=False).box(ct)
    assert kept[0][2] <= 2 and kept[1][2] >= 46


def test_body_crop_leaves_out_a_separate_arm(hn_case):
    arms = hn_case.ct.array.copy()
    arms[:8, 18:30, 1:5] = 40  # an arm beside the head, apart from it
    start, _ = CropBody().box(hn_case.ct.with_array(arms))
    assert start[2] >= 5


@pytest.mark.parametrize(("spacing", "stride"), [(0.5, 4), (0.51, 4), (1.0, 2), (1.016, 2),
                                                 (1.3, 2), (1.4, 1), (2.03, 1), (3.0, 1)])
def test_body_is_looked_for_about_every_2_mm(spacing, stride):
    assert coarse_stride(np.array([spacing])).tolist() == [stride]


def test_body_crop_box_is_the_same_body_on_a_finer_grid():
    coarse = head_neck_case(seed=4, shape=(16, 128, 128))  # 2.03 mm: every voxel
    fine = head_neck_case(seed=4, shape=(16, 256, 256))  # same anatomy at 1.02 mm: every 2nd
    boxes = []
    for case in (coarse, fine):
        start, stop = CropBody().box(case.ct)
        g = case.ct.geometry
        corners = np.array([start[::-1], np.array(stop[::-1]) - 1], float)
        boxes.append(g.index_to_physical(corners))
    step = coarse.ct.geometry.spacing[0]
    assert boxes[1] == pytest.approx(boxes[0], abs=1.5 * step)


def test_body_crop_needs_a_body_above_the_threshold(hn_case):
    air = hn_case.ct.with_array(np.full(hn_case.ct.shape, -1000, np.int16))
    with pytest.raises(InvalidInputError, match="no voxel above -500 HU.*needs a CT in HU"):
        CropBody().apply(air, None, _no_source())


def test_roi_crop_is_centred_on_the_organs_and_pads_back(hn_case):
    organs = ("Ear_Middle_L", "Cochlea_L")
    step = CropToLabels(organs, size_vox=(8, 16, 16))
    image, labels, record = step.apply(hn_case.ct, hn_case.labels, _no_source())
    assert image.shape == labels.shape == (8, 16, 16)
    union = np.isin(hn_case.labels.array, [hn_case.labels.organs.by_name(o).label for o in organs])
    centre = np.argwhere(union).mean(axis=0)
    middle = (np.asarray(record.start) + np.asarray(record.stop) - 1) / 2
    assert np.all(np.abs(centre - middle) <= 0.5 + 1e-9)
    for organ in organs:
        assert labels.mask(organ).sum() == hn_case.labels.mask(organ).sum()
    back = record.invert_labels(labels)
    inside = np.zeros(hn_case.labels.shape, bool)
    inside[record.slices] = True
    assert np.array_equal(back.array[inside], hn_case.labels.array[inside])
    assert not back.array[~inside].any()


def test_roi_crop_stays_inside_the_image_and_sizes_in_mm(hn_case):
    near_edge = CropToLabels(("Eye_L",), size_vox=(12, 40, 40))
    image, _, record = near_edge.apply(hn_case.ct, hn_case.labels, _no_source())
    assert image.shape == (12, 40, 40)
    assert min(record.start) >= 0 and all(
        b <= n for b, n in zip(record.stop, hn_case.ct.shape, strict=True))
    whole = CropToLabels("Eye_L", size_vox=(40, 40, 40)).apply(hn_case.ct, hn_case.labels,
                                                             _no_source())
    assert whole[0].shape == (hn_case.ct.shape[0], 40, 40)  # the image has fewer than 40 slices
    in_mm = CropToLabels(("Brainstem",), size_mm=(54.0, 54.0, 30.0))
    assert in_mm.apply(hn_case.ct, hn_case.labels, _no_source())[0].shape == (10, 10, 10)


@pytest.mark.parametrize(("labels_kind", "organs", "error", "match"), [
    ("none", ("Pituitary",), InvalidInputError, "needs a label map holding Pituitary"),
    ("empty", ("Pituitary",), InvalidInputError, "none of Pituitary is present"),
    ("case", ("Pituitry",), UnknownOptionError, "did you mean 'Pituitary'"),
])
def test_roi_crop_failures_name_the_problem(hn_case, labels_kind, organs, error, match):
    labels = {"none": None, "case": hn_case.labels,
              "empty": LabelMap(np.zeros(hn_case.labels.shape, np.uint8), hn_case.labels.geometry,
                                organs=hn_case.labels.organs)}[labels_kind]
    with pytest.raises(error, match=match):
        CropToLabels(organs, size_vox=(4, 8, 8)).apply(hn_case.ct, labels, _no_source())
