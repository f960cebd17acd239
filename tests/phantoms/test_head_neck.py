"""Head & neck phantom: determinism, anatomy (sizes, sides, HU), contrast, grid independence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autocontour.errors import InvalidInputError
from autocontour.organs import HEAD_NECK
from autocontour.phantoms import DEFAULT_SHAPE_HN, head_neck_case
from autocontour.phantoms.head_neck import grid_centre

VOLUME_RANGES_CC = [
    ("Lens_L", 0.1, 0.6),
    ("Lens_R", 0.1, 0.6),
    ("OpticChiasm", 0.1, 1.0),
    ("Pituitary", 0.05, 1.0),
    ("OpticNrv_L", 0.2, 1.5),
    ("Eye_L", 4.0, 10.0),
    ("Eye_R", 4.0, 10.0),
    ("Parotid_L", 10.0, 45.0),
    ("Parotid_R", 10.0, 45.0),
    ("Brainstem", 15.0, 40.0),
    ("Lobe_Temporal_L", 25.0, 90.0),
    ("Bone_Mandible_L", 10.0, 45.0),
    ("Joint_TM_L", 0.5, 5.0),
    ("Ear_Middle_L", 0.2, 3.0),
    ("Ear_Internal_R", 0.05, 1.5),
    ("Cochlea_R", 0.02, 0.5),
    # the organs added after StructSeg (adult anatomy; the oesophagus only as far as the
    # field of view reaches, a few cm below the cricoid)
    ("Larynx", 20.0, 45.0),
    ("Esophagus", 3.0, 15.0),
    ("Cavity_Oral", 40.0, 90.0),
    ("Glnd_Submand_L", 5.0, 15.0),
    ("Glnd_Submand_R", 5.0, 15.0),
    ("Glnd_Thyroid", 10.0, 30.0),
    ("Lips", 5.0, 20.0),
]
ADDED = ["Larynx", "Esophagus", "Cavity_Oral", "Glnd_Submand_L", "Glnd_Submand_R",
         "Glnd_Thyroid", "Lips"]
# Mean CT number of each added organ over its label: tissue, blurred with its neighbours at the
# edges (the larynx holds its air lumen; the oesophagus is small, in a thin fat plane, and may
# hold a little air; teeth blur into the oral cavity's edge).
MEAN_HU = [
    ("Larynx", -320.0, -80.0),
    ("Esophagus", -40.0, 55.0),
    ("Cavity_Oral", 20.0, 100.0),
    ("Glnd_Submand_L", 0.0, 45.0),
    ("Glnd_Submand_R", 0.0, 45.0),
    ("Glnd_Thyroid", 80.0, 120.0),
    ("Lips", 25.0, 70.0),
]
PAIRS = [(left.name, right.name) for left, right in HEAD_NECK.pairs()]


def test_geometry_and_types(hn):
    assert hn.case_id == "hn_s0007" and hn.site == "head-neck"
    assert hn.ct.shape == DEFAULT_SHAPE_HN and hn.ct.array.dtype == np.int16
    assert hn.ct.modality == "CT" and hn.mr.modality == "MR" and hn.mr.array.dtype == np.float32
    assert hn.ct.geometry.mismatch(hn.mr.geometry) is None
    assert hn.ct.geometry.mismatch(hn.labels.geometry) is None
    assert hn.ct.spacing[2] == 3.0 and hn.ct.geometry.orientation_code == "LPS"
    assert hn.ct.geometry.frame_of_reference_uid.startswith("1.2.")
    json.dumps(hn.meta)


def test_same_seed_same_case_and_other_seed_differs(hn, hn_other):
    again = head_neck_case(7)
    np.testing.assert_array_equal(again.ct.array, hn.ct.array)
    np.testing.assert_array_equal(again.mr.array, hn.mr.array)
    np.testing.assert_array_equal(again.labels.array, hn.labels.array)
    assert again.meta == hn.meta
    assert again.ct.geometry.frame_of_reference_uid == hn.ct.geometry.frame_of_reference_uid
    assert hn_other.meta["pose"] != hn.meta["pose"]
    assert hn_other.meta["factors"]["Parotid_L"] != hn.meta["factors"]["Parotid_L"]
    assert hn_other.meta["factors"]["Glnd_Thyroid"] != hn.meta["factors"]["Glnd_Thyroid"]
    assert not np.array_equal(hn_other.labels.array, hn.labels.array)
    assert hn_other.ct.geometry.frame_of_reference_uid != hn.ct.geometry.frame_of_reference_uid


def test_every_organ_present(hn, hn_other):
    for case in (hn, hn_other):
        assert [o.name for o in case.labels.present()] == HEAD_NECK.names


@pytest.mark.parametrize("organ,low,high", VOLUME_RANGES_CC)
def test_organ_volumes_plausible(hn, hn_other, organ, low, high):
    for case in (hn, hn_other):
        assert low <= case.labels.volumes_cc()[organ] <= high


@pytest.mark.parametrize("left,right", PAIRS)
def test_left_organs_lie_at_larger_lps_x(hn, measure, left, right):
    assert measure.centroid_x_mm(hn, left) > measure.centroid_x_mm(hn, right) + 10.0


def test_hu_values_inside_organs(hn):
    ct = hn.ct.array
    assert np.median(ct[hn.labels.mask("Bone_Mandible_L")]) > 700
    assert 20 <= np.median(ct[hn.labels.mask("Lobe_Temporal_L")]) <= 50
    assert np.median(ct[hn.labels.mask("Ear_Middle_R")]) < -100
    eye = hn.labels.mask("Eye_L")
    assert np.median(ct[hn.labels.mask("Lens_L")]) > np.median(ct[eye]) + 30
    body = ct > -300
    fat = ct[body & (ct > -150) & (ct < -50)]
    assert fat.size > 1000 and -150 <= np.median(fat) <= -50
    assert ct[~body].mean() < -900


@pytest.mark.parametrize("organ,low,high", MEAN_HU)
def test_added_organs_mean_hu(hn, hn_other, organ, low, high):
    for case in (hn, hn_other):
        assert low <= case.ct.array[case.labels.mask(organ)].mean() <= high


def _neck_soft_tissue_and_fat(case):
    """Median HU of unlabelled soft tissue (muscle, mostly) and of fat in the neck's slices."""
    ct, labels = case.ct.array, case.labels.array
    rows = case.labels.mask("Larynx").any(axis=(1, 2)) | case.labels.mask("Glnd_Submand_L").any(
        axis=(1, 2))
    ct, labels = ct[rows], labels[rows]
    soft = ct[(labels == 0) & (ct > -30) & (ct < 150)]
    fat = ct[(labels == 0) & (ct > -150) & (ct < -50)]
    return float(np.median(soft)), float(np.median(fat))


def test_added_organs_contrast(hn, hn_other):
    """Thyroid bright (iodine); submandibular glands between fat and muscle; larynx with air."""
    for case in (hn, hn_other):
        ct = case.ct.array
        muscle, fat = _neck_soft_tissue_and_fat(case)
        assert 35 <= muscle <= 65 and -130 <= fat <= -60
        assert ct[case.labels.mask("Glnd_Thyroid")].mean() > muscle + 30
        for side in ("L", "R"):
            gland = ct[case.labels.mask(f"Glnd_Submand_{side}")].mean()
            assert fat + 60 < gland < muscle - 10
        larynx = ct[case.labels.mask("Larynx")]
        assert 0.08 <= (larynx < -500).mean() <= 0.45  # the lumen is part of the organ
        assert np.median(ct[case.labels.mask("Cavity_Oral")]) > muscle - 10  # tongue: muscle


def test_added_organs_keep_out_of_bone_and_air(hn, hn_other):
    """The oral cavity holds no teeth or jaw, the lips stay inside the skin."""
    for case in (hn, hn_other):
        ct = case.ct.array
        assert (ct[case.labels.mask("Cavity_Oral")] > 900).mean() < 0.03
        assert (ct[case.labels.mask("Lips")] < -400).mean() < 0.05
        for bone in ("Bone_Mandible_L", "Bone_Mandible_R"):
            assert not (case.labels.mask(bone) & case.labels.mask("Cavity_Oral")).any()


def _centroid_mm(case, organ):
    zyx = np.argwhere(case.labels.mask(organ)).mean(axis=0)
    return case.labels.geometry.index_to_physical(zyx[::-1][None])[0]  # (x, y, z) LPS


def test_added_organs_where_anatomy_puts_them(hn, hn_other):
    """Top to bottom: oral cavity, submandibular glands, larynx, thyroid; lips in front of the
    oral cavity; the oesophagus behind the larynx and thyroid, near the midline."""
    for case in (hn, hn_other):
        c = {o: _centroid_mm(case, o) for o in ADDED}
        x, y, z = 0, 1, 2
        assert c["Cavity_Oral"][z] > c["Glnd_Submand_L"][z] > c["Larynx"][z] + 5
        assert c["Larynx"][z] > c["Glnd_Thyroid"][z] + 15
        assert c["Glnd_Submand_R"][z] > c["Larynx"][z]
        assert c["Lips"][y] < c["Cavity_Oral"][y] - 20  # anterior is -y in LPS
        assert c["Esophagus"][y] > c["Glnd_Thyroid"][y] + 5
        assert c["Esophagus"][y] > c["Larynx"][y] + 5
        assert c["Esophagus"][z] < c["Larynx"][z]
        midline = (c["Glnd_Submand_L"][x] + c["Glnd_Submand_R"][x]) / 2
        assert c["Glnd_Submand_L"][x] > midline + 20  # the left gland on the patient's left
        # near the midline, in front of the spine, slice by slice
        oesophagus, cord = case.labels.mask("Esophagus"), case.labels.mask("SpinalCord")
        for k in np.nonzero(oesophagus.any(axis=(1, 2)))[0]:
            dx = np.argwhere(oesophagus[k])[:, 1].mean() - np.argwhere(cord[k])[:, 1].mean()
            assert abs(dx * case.ct.spacing[0]) < 10.0


def test_default_field_of_view_is_a_head_and_neck_planning_ct(hn, hn_other):
    """96 slices from above the temporal lobes to below the thyroid gland, with at least 3 cm
    of cervical oesophagus; a grid of up to 64 slices stays centred at ear level."""
    assert DEFAULT_SHAPE_HN == (96, 128, 128)
    assert grid_centre(64)[2] == grid_centre(16)[2] == -20.0
    assert -80.0 <= grid_centre(96)[2] <= -65.0
    for case in (hn, hn_other):
        labels = case.labels.array
        top, bottom = set(np.unique(labels[-1])), set(np.unique(labels[0]))
        for organ in ("Lobe_Temporal_L", "Lobe_Temporal_R", "Eye_L", "Eye_R", "OpticChiasm"):
            assert HEAD_NECK.by_name(organ).label not in top, organ
        for organ in ("Glnd_Thyroid", "Larynx"):
            assert HEAD_NECK.by_name(organ).label not in bottom, organ
        rows = np.nonzero(case.labels.mask("Esophagus").any(axis=(1, 2)))[0]
        assert rows.min() == 0 and (rows.max() + 1) * case.ct.spacing[2] >= 30.0


def test_organs_added_later_leave_the_older_draws_alone(hn):
    """The added organs draw from their own stream: a seed keeps its pose and older factors
    (the values seed 7 had before the organs were added)."""
    factors = hn.meta["factors"]
    assert hn.meta["pose"]["scale"] == 0.92084
    assert factors["Parotid_L"] == 0.9452 and factors["Brainstem"] == 0.9952
    assert factors["Bone_Mandible_R"] == 1.0191
    assert factors["ct_noise_hu"] == 15.6187 and factors["couch_gap_mm"] == 7.0818
    assert {"Larynx", "Glnd_Thyroid", "Glnd_Submand_L", "Lips", "Cavity_Oral"} <= set(factors)


def test_partial_volume_at_bone_edges(hn):
    """Bone edges blend into soft tissue: many intermediate values, not a few discrete levels."""
    ct = hn.ct.array
    mandible = hn.labels.mask("Bone_Mandible_L") | hn.labels.mask("Bone_Mandible_R")
    edge = mandible ^ np.roll(mandible, 1, axis=2)
    values = ct[edge]
    intermediate = values[(values > 150) & (values < 700)]
    assert intermediate.size > 0.15 * values.size
    assert np.unique(ct).size > 1000


@pytest.mark.parametrize("organ", ["OpticChiasm", "Pituitary", "Brainstem"])
def test_small_organs_hard_on_ct_clear_on_mr(hn, hn_other, measure, organ):
    for case in (hn, hn_other):
        c = measure.contrast(case, organ)
        assert abs(c["ct"][0]) < 40
        assert c["mr"][1] > c["ct"][1] + 0.3


def test_mr_tissue_contrast(hn):
    mr = hn.mr.array
    fat_like = mr[(hn.ct.array > -150) & (hn.ct.array < -60)]
    brain = mr[hn.labels.mask("Lobe_Temporal_L")]
    assert np.median(fat_like) > np.median(brain) > np.median(mr[hn.labels.mask("Ear_Middle_L")])


def test_couch_is_separate_from_the_patient(hn):
    """A dense flat plate lies behind (larger y than) the head, across the whole width."""
    ct = hn.ct.array
    # Rows mostly above 100 HU: only a plate of the couch (a row straddling a plate's edge is
    # blurred with the foam core, so not every voxel of it passes).
    rows = np.nonzero((ct > 100).mean(axis=(0, 2)) > 0.5)[0]
    head_rows = np.nonzero(hn.labels.array.any(axis=(0, 2)))[0]
    assert rows.size and rows.min() > head_rows.max()


def test_other_grid_keeps_sizes_in_mm(hn):
    small = head_neck_case(7, (40, 96, 80))
    assert small.ct.shape == (40, 96, 80)
    assert small.ct.spacing[0] == pytest.approx(260.0 / 80)
    for organ in ("Eye_L", "Eye_R", "Brainstem", "Parotid_L", "Lobe_Temporal_R", "Cavity_Oral",
                  "Lips"):
        ref = hn.labels.volumes_cc()[organ]
        assert small.labels.volumes_cc()[organ] == pytest.approx(ref, rel=0.25)


def test_smaller_grids_still_work():
    """A 64-slice grid is the former default (ear level); a tiny one still draws the head."""
    old_default = head_neck_case(8, (64, 128, 128))
    assert old_default.meta["pose"]["centre_mm"] == [0.0, 8.0, -20.0]
    present = {o.name for o in old_default.labels.present()}
    assert {"Cavity_Oral", "Lips", "Glnd_Submand_L", "Glnd_Submand_R", "Brainstem"} <= present
    tiny = head_neck_case(3, (16, 48, 48))
    assert tiny.ct.shape == (16, 48, 48)
    assert {"Brainstem", "Eye_L", "Parotid_R"} <= {o.name for o in tiny.labels.present()}


@pytest.mark.parametrize("shape", [(64, 128), (4, 64, 64), ("a", 1, 2), None])
def test_bad_shape_is_refused(shape):
    with pytest.raises(InvalidInputError, match="shape"):
        head_neck_case(1, shape)
