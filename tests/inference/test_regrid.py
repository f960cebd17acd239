"""Probabilities on the network's grid -> labels on the CT's grid, against a brute-force oracle."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from autocontour.errors import GeometryMismatchError, InvalidInputError
from autocontour.evaluation.overlap import dice
from autocontour.inference.regrid import labels_on_grid
from autocontour.io.grid import reorient_to
from autocontour.io.volume import Geometry, Volume

SOURCE = Geometry((14, 18, 20), (2.0, 2.0, 3.0), (-20.0, -18.0, 10.0))


def _blobs(geometry: Geometry, organs: list[tuple[tuple[float, float, float], float]],
           sharpness: float = 6.0) -> np.ndarray:
    """Softmax probabilities (float32) of ball-shaped organs given by LPS centre and radius (mm);
    background logit 0, organ logit ``sharpness * (1 - (d / r)²)``."""
    z, y, x = np.indices(geometry.shape)
    xyz = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)
    points = geometry.index_to_physical(xyz)
    logits = [np.zeros(len(points))]
    for centre, radius in organs:
        d2 = ((points - np.asarray(centre)) ** 2).sum(1) / radius ** 2
        logits.append(sharpness * (1.0 - d2))
    logit = np.stack(logits).reshape(len(logits), *geometry.shape)
    return torch.softmax(torch.from_numpy(logit), 0).numpy().astype(np.float32)


# Three organs, two touching each other, one cut by the source grid's edge.
ORGANS = [((-6.0, -4.0, 28.0), 7.0), ((5.0, -4.0, 28.0), 6.0), ((14.0, 14.0, 45.0), 6.0)]


def _oracle(probabilities: np.ndarray, source: Geometry, target: Geometry
            ) -> tuple[np.ndarray, np.ndarray]:
    """Every channel resampled onto the whole target, then arg-max (and the top-two gap)."""
    channels = []
    for c, channel in enumerate(probabilities):
        image = source.apply_to_sitk(sitk.GetImageFromArray(channel.astype(np.float32)))
        reference = target.apply_to_sitk(sitk.Image([*target.shape[::-1]], sitk.sitkFloat32))
        channels.append(sitk.GetArrayFromImage(sitk.Resample(
            image, reference, sitk.Transform(), sitk.sitkLinear, 1.0 if c == 0 else 0.0,
            sitk.sitkFloat32)))
    stack = np.stack(channels)
    top = np.sort(stack, axis=0)
    return stack.argmax(0), top[-1] - top[-2]


def _assert_matches_oracle(probabilities: np.ndarray, target: Geometry, margin: int = 2
                           ) -> np.ndarray:
    labels = labels_on_grid(probabilities, SOURCE, target, margin=margin)
    expected, gap = _oracle(probabilities, SOURCE, target)
    assert labels.shape == target.shape and labels.dtype == np.uint8
    differ = labels != expected
    assert not differ[gap > 1e-5].any(), f"{int(differ.sum())} voxels differ from the oracle"
    return labels


def test_same_grid_is_plain_argmax() -> None:
    p = _blobs(SOURCE, ORGANS)
    labels = labels_on_grid(torch.from_numpy(p), SOURCE, SOURCE)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, p.argmax(0))


def test_matches_the_oracle_on_a_finer_shifted_grid_partly_outside() -> None:
    """0.7 x 1.3 x 1.1 mm voxels, the grid reaching past the source's field of view."""
    target = Geometry((40, 34, 50), (0.7, 1.3, 1.1), (-25.0, -20.0, 5.0))
    p = _blobs(SOURCE, ORGANS)
    assert (p.argmax(0)[:, -1] == 3).any()  # organ 3 is cut by the source's last row
    labels = _assert_matches_oracle(p, target)
    assert set(np.unique(labels).tolist()) == {0, 1, 2, 3}
    z, y, x = np.indices(target.shape)
    xyz = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)
    where = SOURCE.physical_to_index(target.index_to_physical(xyz))
    inside = ((where > -0.5) & (where < np.array(SOURCE.shape[::-1]) - 0.5)).all(1)
    outside = ~inside.reshape(target.shape)
    assert outside.any() and not labels[outside].any()  # beyond the source grid: background


def test_matches_the_oracle_on_an_oblique_coarser_grid() -> None:
    angle = np.deg2rad(30.0)
    c, s = np.cos(angle), np.sin(angle)
    direction = (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)
    target = Geometry((12, 16, 16), (2.5, 2.5, 3.5), (-12.0, -30.0, 8.0), direction)
    _assert_matches_oracle(_blobs(SOURCE, ORGANS), target)


@pytest.mark.parametrize("target", [
    Geometry((40, 34, 50), (0.7, 1.3, 1.1), (-25.0, -20.0, 5.0)),
    Geometry((12, 16, 16), (2.5, 2.5, 3.5), (-12.0, -30.0, 8.0),
             (0.8, -0.6, 0.0, 0.6, 0.8, 0.0, 0.0, 0.0, 1.0)),
], ids=["finer", "oblique"])
def test_hard_probabilities_with_the_smallest_margin(target: Geometry) -> None:
    """One-hot probabilities spread furthest (a whole source voxel) under interpolation: the
    tightest case for the boxes, checked at margin 1."""
    hard = _blobs(SOURCE, ORGANS, sharpness=200.0).round()
    _assert_matches_oracle(hard, target, margin=1)


@pytest.mark.parametrize("position", ["FFS", "HFP", "FFP"])
def test_flipped_storage_puts_labels_on_the_same_physical_voxels(position: str) -> None:
    p = _blobs(SOURCE, ORGANS)
    target = Geometry((20, 24, 26), (1.5, 1.4, 2.0), (-22.0, -19.0, 12.0))
    flipped = reorient_to(Volume(np.zeros(target.shape, np.uint8), target), position).geometry
    assert flipped.orientation_code != target.orientation_code
    on_target = labels_on_grid(p, SOURCE, target)
    on_flipped = labels_on_grid(p, SOURCE, flipped)
    moved = reorient_to(Volume(on_target, target), position)
    assert moved.geometry.mismatch(flipped) is None
    np.testing.assert_array_equal(on_flipped, moved.array)
    _assert_matches_oracle(p, flipped)


def test_sphere_on_a_twice_finer_grid_keeps_shape_and_volume() -> None:
    source = Geometry((24, 24, 24), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    radius = 14.0
    p = _blobs(source, [((23.0, 23.0, 23.0), radius)], sharpness=8.0)
    coarse = p.argmax(0)
    # The same field of view in 1 mm voxels: voxel edges line up with the coarse ones.
    fine = Geometry((48, 48, 48), (1.0, 1.0, 1.0), (-0.5, -0.5, -0.5))
    labels = labels_on_grid(p, source, fine)
    nearest = coarse.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    assert dice(labels == 1, nearest == 1) > 0.95
    sphere_cc = 4.0 / 3.0 * np.pi * radius ** 3 / 1000.0
    fine_cc = float((labels == 1).sum()) * 1.0 / 1000.0
    coarse_cc = float((coarse == 1).sum()) * 8.0 / 1000.0
    assert abs(fine_cc - sphere_cc) / sphere_cc < 0.02
    assert abs(fine_cc - coarse_cc) / coarse_cc < 0.05  # the 2 mm voxels are the rougher


def test_target_outside_the_source_is_background() -> None:
    far = Geometry((4, 5, 6), (1.0, 1.0, 1.0), (500.0, 500.0, 500.0))
    labels = labels_on_grid(_blobs(SOURCE, ORGANS), SOURCE, far)
    assert labels.shape == (4, 5, 6) and not labels.any()
    none = labels_on_grid(_blobs(SOURCE, []), SOURCE, Geometry((3, 3, 3), (1, 1, 1), (0, 0, 20)))
    assert not none.any()


def test_many_classes_get_a_wider_dtype() -> None:
    grid = Geometry((2, 2, 2), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    p = np.zeros((300, 2, 2, 2), np.float32)
    p[299] = 1.0
    labels = labels_on_grid(p, grid, grid)
    assert labels.dtype == np.uint16 and (labels == 299).all()


def test_bad_input_raises() -> None:
    p = _blobs(SOURCE, ORGANS)
    with pytest.raises(GeometryMismatchError, match="source grid"):
        labels_on_grid(p[:, :-1], SOURCE, SOURCE)
    with pytest.raises(GeometryMismatchError, match="source grid"):
        labels_on_grid(p[0], SOURCE, SOURCE)
    with pytest.raises(InvalidInputError, match="margin"):
        labels_on_grid(p, SOURCE, SOURCE, margin=0)
