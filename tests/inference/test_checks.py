"""Input checks: what is refused (with a message that helps), what is warned, reorientation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from autocontour.errors import InvalidInputError, UnknownOptionError
from autocontour.inference.checks import InputExpectations, check_input
from autocontour.io.grid import canonical, is_axis_aligned, reorient_to
from autocontour.io.volume import Volume
from autocontour.phantoms import PhantomCase

CT_MODEL = InputExpectations()


def _with_spacing(volume: Volume, spacing: tuple[float, float, float]) -> Volume:
    return replace(volume, geometry=replace(volume.geometry, spacing=spacing))


def _rotated_about_z(volume: Volume, degrees: float) -> Volume:
    a = np.radians(degrees)
    rz = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    direction = rz @ volume.geometry.direction_matrix
    return replace(volume, geometry=replace(volume.geometry, direction=tuple(direction.ravel())))


def test_phantom_ct_passes_without_warning(hn_case: PhantomCase) -> None:
    assert check_input(hn_case.ct, CT_MODEL) == []
    assert check_input(hn_case.ct, InputExpectations("CT", hn_case.ct.spacing)) == []
    assert check_input(replace(hn_case.ct, modality=None), CT_MODEL) == []


def test_mr_with_its_modality_tag_is_refused(hn_case: PhantomCase) -> None:
    with pytest.raises(InvalidInputError, match=r"^t1\.nii: .*contours CT .*Modality is MR.*"
                                                r"give the CT series"):
        check_input(hn_case.mr, CT_MODEL, "t1.nii")


def test_mr_without_a_tag_is_refused_by_its_intensities(hn_case: PhantomCase) -> None:
    with pytest.raises(InvalidInputError, match=r"^t1\.nii: intensities .*no air near -1000 HU"):
        check_input(replace(hn_case.mr, modality=None), CT_MODEL, "t1.nii")


def test_ct_without_rescale_is_refused_with_the_rescale_hint(hn_case: PhantomCase) -> None:
    stored = hn_case.ct.with_array((hn_case.ct.array.astype(np.int32) + 1024).astype(np.int16),
                                   modality=None)
    with pytest.raises(InvalidInputError, match="RescaleIntercept") as err:
        check_input(stored, CT_MODEL, "ct.nrrd")
    assert str(err.value).startswith("ct.nrrd: intensities 0..")
    assert "1st percentile" in str(err.value)


@pytest.mark.parametrize("value", [0, -1000])
def test_constant_volume_is_refused(hn_case: PhantomCase, value: int) -> None:
    flat = hn_case.ct.with_array(np.full_like(hn_case.ct.array, value))
    with pytest.raises(InvalidInputError, match=f"constant value {value}: no anatomy"):
        check_input(flat, CT_MODEL)


def test_non_finite_values_are_refused(hn_case: PhantomCase) -> None:
    array = hn_case.ct.array.astype(np.float32)
    array[3, 10, 10] = np.nan
    array[5, 1, 1] = np.inf
    with pytest.raises(InvalidInputError, match="2 voxel.*NaN or infinite"):
        check_input(hn_case.ct.with_array(array), CT_MODEL, "ct")


def test_single_slice_is_refused(hn_case: PhantomCase) -> None:
    ct = hn_case.ct
    one = Volume(ct.array[7:8].copy(), replace(ct.geometry, shape=(1, *ct.shape[1:])),
                 modality="CT")
    with pytest.raises(InvalidInputError, match="^ct: a single slice"):
        check_input(one, CT_MODEL, "ct")


def test_spacing_far_from_the_model_is_a_warning(hn_case: PhantomCase) -> None:
    fine = _with_spacing(hn_case.ct, (0.488, 0.488, 1.0))
    warnings = check_input(fine, InputExpectations("CT", (2.0, 2.0, 3.0)), "ct")
    expected = ("ct: spacing 0.49x0.49x1.0 mm is far from the model's 2.0x2.0x3.0 mm; "
                "resampled to the model's grid (small organs may lose detail)")
    assert warnings == [expected]
    close = _with_spacing(hn_case.ct, (1.1, 1.1, 2.0))
    assert check_input(close, InputExpectations("CT", (2.0, 2.0, 3.0))) == []


def test_thick_and_anisotropic_slices_are_warnings(hn_case: PhantomCase) -> None:
    thick = check_input(_with_spacing(hn_case.ct, (1.0, 1.0, 6.0)), CT_MODEL)
    assert len(thick) == 1 and "6.0 mm thick" in thick[0] and "between slices" in thick[0]
    flat = check_input(_with_spacing(hn_case.ct, (0.3, 0.3, 4.0)), CT_MODEL)
    assert len(flat) == 1 and "13x longer than wide" in flat[0]


@pytest.mark.parametrize(("position", "code"), [("HFP", "RAS"), ("FFS", "RPI")])
def test_other_storage_is_reoriented_exactly(hn_case: PhantomCase, position: str,
                                             code: str) -> None:
    ct = hn_case.ct
    stored = reorient_to(ct, position)
    warnings = check_input(stored, CT_MODEL, "ct")
    assert len(warnings) == 1 and warnings[0].startswith(f"ct: stored in {code}")
    assert "reoriented" in warnings[0] and "no resampling" in warnings[0]
    back = canonical(stored)
    assert np.array_equal(back.array, ct.array) and back.dicom is None
    g, h = back.geometry, ct.geometry
    assert g.shape == h.shape
    for a, b in ((g.spacing, h.spacing), (g.origin, h.origin), (g.direction, h.direction)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_oblique_grid_is_warned_and_resampled_axis_aligned(hn_case: PhantomCase) -> None:
    oblique = _rotated_about_z(hn_case.ct, 20.0)
    warnings = check_input(oblique, CT_MODEL, "ct")
    assert len(warnings) == 1 and "oblique (20.0 degrees" in warnings[0]
    assert not is_axis_aligned(oblique.geometry)
    out = canonical(oblique)
    assert is_axis_aligned(out.geometry) and out.geometry.orientation_code == "LPS"
    np.testing.assert_allclose(out.geometry.direction_matrix, np.eye(3), atol=1e-9)
    assert out.array.dtype == oblique.array.dtype
    # The centre of the volume keeps its LPS position and value.
    centre = (np.asarray(oblique.shape[::-1]) - 1) / 2
    point = oblique.geometry.index_to_physical(centre[None])
    index = np.rint(out.geometry.physical_to_index(point)[0]).astype(int)
    orig = np.rint(centre).astype(int)
    assert abs(int(out.array[tuple(index[::-1])]) - int(oblique.array[tuple(orig[::-1])])) < 150
    # Every original corner lies inside the new grid.
    corners = np.array([[i, j, k] for i in (0, oblique.shape[2] - 1)
                        for j in (0, oblique.shape[1] - 1) for k in (0, oblique.shape[0] - 1)])
    inside = out.geometry.physical_to_index(oblique.geometry.index_to_physical(corners))
    assert np.all(inside > -0.51) and np.all(inside < np.asarray(out.shape[::-1]) - 0.49)
    labels = canonical(_rotated_about_z(hn_case.labels, 20.0))
    assert labels.geometry == out.geometry and set(np.unique(labels.array)) <= {
        0, *hn_case.labels.organs.labels}


def test_mr_model_takes_mr_and_refuses_ct(hn_case: PhantomCase) -> None:
    mr_model = InputExpectations("MR")
    assert check_input(hn_case.mr, mr_model) == []
    assert check_input(replace(hn_case.mr, modality=None), mr_model) == []
    with pytest.raises(InvalidInputError, match="Modality is CT"):
        check_input(hn_case.ct, mr_model)
    with pytest.raises(InvalidInputError, match="air near -1000 HU"):
        check_input(replace(hn_case.ct, modality=None), mr_model)


def test_expectations_round_trip_and_validate() -> None:
    expect = InputExpectations("ct", (0.9, 0.9, 2.5), "lps")
    assert expect.modality == "CT" and expect.orientation == "LPS"
    assert InputExpectations.from_dict(expect.to_dict()) == expect
    with pytest.raises(InvalidInputError,
                       match="missing or unknown: orientation, record, spacing"):
        InputExpectations.from_dict({"modality": "CT"})
    with pytest.raises(InvalidInputError, match="missing or unknown: size"):
        InputExpectations.from_dict({**expect.to_dict(), "size": 3})
    with pytest.raises(UnknownOptionError, match="modality"):
        InputExpectations("PET")
    with pytest.raises(UnknownOptionError, match="orientation"):
        InputExpectations(orientation="LLS")
    with pytest.raises(InvalidInputError, match="spacing"):
        InputExpectations(spacing=(1.0, 0.0, 1.0))
