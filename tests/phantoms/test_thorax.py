"""3-D thorax phantom: grid and labels, HU, sides, anatomy, determinism, make_case, export."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from autocontour.organs import CHEST
from autocontour.phantoms import DEFAULT_SHAPE_THORAX, PhantomCase, make_case, thorax_case
from autocontour.phantoms.export import write_cases

TINY = (16, 48, 48)


@pytest.fixture(scope="module")
def thorax() -> PhantomCase:
    return thorax_case(5)


def _centre(case: PhantomCase, organ: str) -> np.ndarray:
    """LPS (x, y, z) mm of an organ's centroid."""
    zyx = np.argwhere(case.labels.mask(organ)).mean(axis=0)
    return case.labels.geometry.index_to_physical(zyx[::-1][None])[0]


def _slice_xy(case: PhantomCase, k: int) -> tuple[np.ndarray, np.ndarray]:
    """LPS x and y (mm) of every pixel of slice k."""
    ny, nx = case.ct.shape[1:]
    j, i = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    idx = np.stack([i.ravel(), j.ravel(), np.full(i.size, k)], axis=1)
    pts = case.labels.geometry.index_to_physical(idx)
    return pts[:, 0].reshape(ny, nx), pts[:, 1].reshape(ny, nx)


def _body(ct_slice: np.ndarray) -> np.ndarray:
    """The patient in one slice: the largest dense region, lungs filled in, couch rows left out."""
    dense = ct_slice > -400
    couch = (ct_slice[:, :2] > -500).any(axis=1) | (ct_slice[:, -2:] > -500).any(axis=1)
    dense[ndimage.binary_dilation(couch)] = False
    regions, n = ndimage.label(dense)
    sizes = ndimage.sum(dense, regions, range(1, n + 1))
    return ndimage.binary_fill_holes(regions == 1 + int(np.argmax(sizes)))


def test_images_labels_and_grid(thorax):
    assert thorax.site == "thorax" and thorax.case_id == "th_s0005"
    assert thorax.ct.shape == DEFAULT_SHAPE_THORAX and thorax.ct.array.dtype == np.int16
    assert thorax.ct.modality == "CT" and thorax.mr.modality == "MR"
    assert thorax.mr.array.dtype == np.float32 and thorax.mr.geometry == thorax.ct.geometry
    assert thorax.labels.geometry == thorax.ct.geometry and thorax.labels.organs is CHEST
    assert thorax.ct.spacing == pytest.approx((450.0 / 128, 450.0 / 128, 3.0))
    assert [o.name for o in thorax.labels.present()] == CHEST.names
    assert thorax.meta["mr_weighting"] == "T1"
    json.dumps(thorax.meta)


def test_lungs_are_air_with_vessels(thorax):
    ct = thorax.ct.array
    lungs = thorax.labels.mask("Lung_L") | thorax.labels.mask("Lung_R")
    values = ct[lungs]
    assert -900 <= np.median(values) <= -780
    assert (values < -600).mean() > 0.8
    core = ndimage.binary_erosion(lungs, iterations=2)
    assert 0.005 < (ct[core] > -600).mean() < 0.15  # vessel texture, not a flat plateau


def test_mid_thorax_slices_are_largely_lung(thorax):
    ct = thorax.ct.array
    nz = ct.shape[0]
    for k in (int(0.35 * nz), nz // 2, int(0.65 * nz)):
        body = _body(ct[k])
        assert ((ct[k] < -600) & body).sum() / body.sum() > 0.2


def test_body_size_and_soft_tissue_hu(thorax):
    k = thorax.ct.shape[0] // 2
    ys, xs = np.nonzero(_body(thorax.ct.array[k]))
    width, depth = (np.ptp(xs) + 1) * thorax.ct.spacing[0], (np.ptp(ys) + 1) * thorax.ct.spacing[1]
    assert 270 <= width <= 380 and 180 <= depth <= 280
    ct = thorax.ct.array
    assert np.median(ct[thorax.labels.mask("Heart")]) == pytest.approx(42, abs=15)
    assert np.median(ct[(ct > -150) & (ct < -50)]) == pytest.approx(-95, abs=25)


def test_spine_and_ribs_are_bone(thorax):
    ct, k = thorax.ct.array, thorax.ct.shape[0] // 2
    x, y = _slice_xy(thorax, k)
    heart, left, right = (_centre(thorax, n) for n in ("Heart", "Lung_L", "Lung_R"))
    mid = (left[0] + right[0]) / 2
    spine = (np.abs(x - mid) < 25) & (y > heart[1] + 40) & (ct[k] > 300)
    assert spine.sum() * thorax.ct.spacing[0] ** 2 > 600  # a vertebral body's cross-section
    assert 400 <= np.median(ct[k][spine]) <= 800
    ribs = (np.abs(x - mid) > 100) & (ct[k] > 300)
    assert ribs.sum() >= 5
    assert x[ribs].max() > left[0] and x[ribs].min() < right[0]  # outside both lungs


def test_sides_and_positions(thorax):
    left, right, heart = (_centre(thorax, n) for n in ("Lung_L", "Lung_R", "Heart"))
    assert left[0] > right[0] + 80  # Lung_L is on the patient's left, +x in LPS
    assert right[0] < heart[0] < left[0]
    assert heart[0] > (left[0] + right[0]) / 2  # the heart lies left of the midline
    k = thorax.ct.shape[0] // 2
    x, y = _slice_xy(thorax, k)
    spine = (np.abs(x - (left[0] + right[0]) / 2) < 25) & (thorax.ct.array[k] > 300)
    spine &= y > heart[1]
    assert heart[1] < y[spine].mean() - 40  # the heart is anterior to the spine
    clav_l, clav_r = _centre(thorax, "Clavicle_L"), _centre(thorax, "Clavicle_R")
    assert clav_l[0] > 50 > -50 > clav_r[0]
    assert min(clav_l[2], clav_r[2]) > heart[2] + 60  # at the top of the chest
    assert max(clav_l[1], clav_r[1]) < heart[1] + 20  # in front, under the skin
    assert np.median(thorax.ct.array[thorax.labels.mask("Clavicle_L")]) > 300


def test_mr_is_t1_like(thorax):
    ct, mr = thorax.ct.array, thorax.mr.array
    lungs = thorax.labels.mask("Lung_L") | thorax.labels.mask("Lung_R")
    fat = (ct > -130) & (ct < -70)
    assert np.median(mr[fat]) > 3 * np.median(mr[lungs])
    assert np.median(mr[fat]) > np.median(mr[thorax.labels.mask("Heart")])


def test_deterministic_and_varied():
    a, b = thorax_case(2, TINY), thorax_case(2, TINY)
    np.testing.assert_array_equal(a.ct.array, b.ct.array)
    np.testing.assert_array_equal(a.mr.array, b.mr.array)
    np.testing.assert_array_equal(a.labels.array, b.labels.array)
    assert a.meta == b.meta
    assert not np.array_equal(thorax_case(3, TINY).labels.array, a.labels.array)


@pytest.mark.parametrize("seed", range(4))
def test_tiny_grid_has_lungs_and_heart(seed):
    # 16 slices cover 48 mm: lungs and heart, but not the clavicles some 60 mm above the heart.
    vols = thorax_case(seed, TINY).labels.volumes_cc()
    assert vols["Lung_L"] > 100 and vols["Lung_R"] > 100 and vols["Heart"] > 10


@pytest.mark.parametrize("seed", range(6))
def test_default_height_has_every_organ(seed):
    vols = thorax_case(seed, (DEFAULT_SHAPE_THORAX[0], 48, 48)).labels.volumes_cc()
    assert all(v > 0 for v in vols.values()), vols


def test_whole_chest_volumes_plausible():
    vols = thorax_case(1, (110, 64, 64)).labels.volumes_cc()
    assert 1200 <= vols["Lung_L"] <= 3500 and 1200 <= vols["Lung_R"] <= 3500
    assert vols["Lung_R"] > vols["Lung_L"]  # the heart takes room from the left lung
    assert 300 <= vols["Heart"] <= 900
    assert 8 <= vols["Clavicle_L"] <= 40 and 8 <= vols["Clavicle_R"] <= 40


def test_other_grid_keeps_sizes_in_mm(thorax):
    small = thorax_case(5, (64, 80, 96))
    assert small.ct.spacing[0] == pytest.approx(450.0 / 96)
    for organ in ("Lung_L", "Lung_R", "Heart"):
        ref = thorax.labels.volumes_cc()[organ]
        assert small.labels.volumes_cc()[organ] == pytest.approx(ref, rel=0.15)


@pytest.mark.parametrize("site", ["thorax", "Thorax", "chest-ct", "chest_CT", "thorax-ct"])
def test_make_case_thorax_and_aliases(site):
    case = make_case(site, 1, TINY)
    assert case.site == "thorax" and case.labels.shape == TINY and case.ct.modality == "CT"
    np.testing.assert_array_equal(case.ct.array, thorax_case(1, TINY).ct.array)


def test_chest_still_means_the_radiograph():
    case = make_case("chest", 1, (1, 64, 64))
    assert case.site == "chest" and case.ct.modality == "DX"


def test_export_writes_a_3d_case(tmp_path):
    manifest = write_cases("chest-ct", 1, tmp_path, seed=4, shape=TINY, progress=False)
    entry = manifest["cases"][0]
    assert manifest["site"] == "thorax" and manifest["organ_set"]["name"] == "chest"
    assert entry["files"] == {
        "ct": "ct.nii.gz",
        "mr": "mr.nii.gz",
        "dicom": "ct",
        "rtstruct": "rtstruct.dcm",
        "label": "label.nii.gz",
    }
    case_dir = tmp_path / entry["case_id"]
    assert len(list((case_dir / "ct").glob("*.dcm"))) == TINY[0]
    assert {"Lung_L", "Lung_R", "Heart"} <= set(entry["organs"])


def test_sex_is_for_pelvis_phantoms_only() -> None:
    import pytest

    from autocontour.errors import InvalidInputError
    from autocontour.phantoms import make_case
    with pytest.raises(InvalidInputError, match="--sex is for pelvis phantoms"):
        make_case("thorax", 1, (16, 48, 48), sex="male")
