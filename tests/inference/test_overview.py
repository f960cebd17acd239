"""The overview PNG: slice choice, orientation independence, refusals, atomic writing, distinct
colours for left/right pairs, dark-edged outlines, a dashed reference and the title."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import imread

from autocontour.errors import GeometryMismatchError, OutputExistsError
from autocontour.inference.overview import (
    MIN_PAIR_DISTANCE,
    REFERENCE_DASHES,
    _title_lines,
    choose_slices,
    overview_colours,
    write_overview,
)
from autocontour.io import read_volume
from autocontour.io.grid import reorient_to
from autocontour.io.volume import Geometry, LabelMap
from autocontour.organs import CHEST, HEAD_NECK, PELVIS, Organ, OrganSet
from autocontour.phantoms import PhantomCase, head_neck_case

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def case128() -> PhantomCase:
    return head_neck_case(seed=5, shape=(24, 128, 128))


def _organs_on(labels: LabelMap, slices: list[int]) -> set[int]:
    return {int(v) for v in np.unique(labels.array[slices])} - {0}


def test_writes_a_small_png_of_sane_size(case128: PhantomCase, tmp_path: Path) -> None:
    path = write_overview(case128.ct, case128.labels, tmp_path / "sub" / "overview.png",
                          title="case 5")
    assert path == tmp_path / "sub" / "overview.png"
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert path.stat().st_size < 1_000_000
    height, width = imread(path).shape[:2]
    assert 600 < width < 3000 and 400 < height < 2500
    assert [p.name for p in path.parent.iterdir()] == ["overview.png"]  # no temporary left


def test_choose_slices_greedy_on_a_small_map() -> None:
    array = np.zeros((8, 4, 4), np.uint8)
    array[1, 0, 0] = 1                        # Brainstem only on slice 1
    array[5, 0, :2] = 2                       # slice 5: Eye_L (2 px), Eye_R, Lens_L
    array[5, 1, 0], array[5, 2, 0] = 3, 4
    array[6, 0, 0], array[6, 1, 0] = 2, 3     # slice 6: Eye_L, Eye_R (a subset of slice 5)
    labels = LabelMap(array, Geometry((8, 4, 4), (1, 1, 3), (0, 0, 0)), organs=HEAD_NECK)
    assert choose_slices(labels, 1) == [5]
    assert choose_slices(labels, 2) == [5, 1]            # head to feet: larger index first
    assert choose_slices(labels, 3) == [6, 5, 1]         # all shown: spread over the rest
    assert choose_slices(labels, 10) == [6, 5, 1]        # only contoured slices
    empty = LabelMap(np.zeros_like(array), labels.geometry, organs=HEAD_NECK)
    assert choose_slices(empty, 4) == []


def test_enough_slices_show_every_organ(hn_case: PhantomCase) -> None:
    labels = hn_case.labels
    present = {o.label for o in labels.present()}
    chosen = choose_slices(labels, len(present))
    assert len(set(chosen)) == len(chosen) and chosen == sorted(chosen, reverse=True)
    assert _organs_on(labels, chosen) == present
    # The first pick is a slice holding the most organs.
    per_slice = [len(_organs_on(labels, [k])) for k in range(labels.shape[0])]
    assert max(len(_organs_on(labels, [k])) for k in choose_slices(labels, 1)) == max(per_slice)


@pytest.mark.parametrize("position", ["HFP", "FFS"])
def test_stored_orientation_does_not_change_the_chosen_slices(hn_case: PhantomCase,
                                                              position: str) -> None:
    stored = reorient_to(hn_case.labels, position)
    assert choose_slices(stored, 4) == choose_slices(hn_case.labels, 4)


def test_grid_mismatch_is_refused_and_nothing_written(hn_case: PhantomCase,
                                                      tmp_path: Path) -> None:
    moved = replace(hn_case.labels, geometry=replace(hn_case.labels.geometry,
                                                     origin=(0.0, 0.0, 10.0)))
    with pytest.raises(GeometryMismatchError, match="not on the image's grid"):
        write_overview(hn_case.ct, moved, tmp_path / "o.png")
    assert not any(tmp_path.iterdir())


def test_existing_file_is_kept_unless_overwrite(hn_case: PhantomCase, tmp_path: Path) -> None:
    path = tmp_path / "o.png"
    path.write_bytes(b"keep")
    with pytest.raises(OutputExistsError, match="already exists"):
        write_overview(hn_case.ct, hn_case.labels, path)
    assert path.read_bytes() == b"keep"
    write_overview(hn_case.ct, hn_case.labels, path, overwrite=True, slices=2)
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_empty_label_map_still_gives_a_png(hn_case: PhantomCase, tmp_path: Path) -> None:
    empty = hn_case.labels.with_array(np.zeros_like(hn_case.labels.array))
    path = write_overview(reorient_to(hn_case.ct, "FFS"), reorient_to(empty, "FFS"),
                          tmp_path / "empty.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize("organs", [HEAD_NECK, PELVIS, CHEST], ids=lambda s: s.name)
def test_each_left_right_pair_has_distinct_colours(organs: OrganSet) -> None:
    colours = overview_colours(organs)
    assert set(colours) == set(organs.labels)
    for left, right in organs.pairs():
        distance = np.linalg.norm(np.subtract(colours[left.label], colours[right.label]))
        assert distance >= MIN_PAIR_DISTANCE, (left.name, right.name)
        assert colours[left.label] == tuple(c / 255 for c in left.color)  # left keeps its own
    for organ in organs:  # unpaired organs keep the organ set's colour
        if organ.side is None:
            assert colours[organ.label] == tuple(c / 255 for c in organ.color)
    assert all(0.0 <= c <= 1.0 for rgb in colours.values() for c in rgb)


def test_pairs_already_distinct_keep_their_colours() -> None:
    organs = OrganSet("custom", (Organ("Eye_L", 1, (255, 255, 0), "eye", "L"),
                                 Organ("Eye_R", 2, (0, 0, 255), "eye", "R")))
    assert overview_colours(organs) == {1: (1.0, 1.0, 0.0), 2: (0.0, 0.0, 1.0)}


def test_outlines_have_a_dark_edge_and_the_legend_names_sides(hn_case: PhantomCase,
                                                              tmp_path: Path,
                                                              monkeypatch) -> None:
    plotted: list[dict] = []
    legends: list[list[str]] = []
    plot, legend = Axes.plot, Figure.legend

    def spy_plot(self, *args, **kwargs):
        plotted.append(kwargs)
        return plot(self, *args, **kwargs)

    def spy_legend(self, *args, **kwargs):
        legends.append([h.get_label() for h in kwargs["handles"]])
        return legend(self, *args, **kwargs)
    monkeypatch.setattr(Axes, "plot", spy_plot)
    monkeypatch.setattr(Figure, "legend", spy_legend)
    path = write_overview(hn_case.ct, hn_case.labels, tmp_path / "o.png", model="m1")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert plotted and all(len(k["path_effects"]) == 2 for k in plotted)
    assert all(k["linestyle"] == "-" for k in plotted)
    colours = overview_colours(hn_case.labels.organs)
    assert {k["color"] for k in plotted} <= set(colours.values())
    assert "Parotid_L (left)" in legends[0] and "Parotid_R (right)" in legends[0]
    assert "Brainstem" in legends[0]


def test_reference_is_drawn_dashed_and_checked(hn_case: PhantomCase, tmp_path: Path,
                                               monkeypatch) -> None:
    styles: list = []
    original = Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda self, *a, **k: (styles.append(k["linestyle"]),
                                                              original(self, *a, **k))[1])
    truth = hn_case.labels
    pred = truth.with_array(np.where(truth.array == 1, 0, truth.array))  # brainstem missed
    path = write_overview(hn_case.ct, pred, tmp_path / "ref.png", reference=truth)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert "-" in styles and REFERENCE_DASHES in styles
    moved = replace(truth, geometry=replace(truth.geometry, origin=(0.0, 0.0, 10.0)))
    with pytest.raises(GeometryMismatchError, match="reference labels"):
        write_overview(hn_case.ct, pred, tmp_path / "bad.png", reference=moved)
    assert not (tmp_path / "bad.png").exists()


def test_title_names_the_series_description_and_the_model(ct_dir: Path, hn_case: PhantomCase,
                                                          tmp_path: Path) -> None:
    ct = read_volume(ct_dir)
    assert _title_lines(ct, "patient 1", "hn-model") == [
        "patient 1", f"CT: {ct.dicom.header.SeriesDescription}   model: hn-model"]
    assert _title_lines(hn_case.ct, None, None) == ["autocontour overview"]  # no DICOM header
    path = write_overview(ct, hn_case.labels, tmp_path / "t.png", title="patient 1",
                          model="hn-model")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_flagged_and_removed_organs_are_named(tmp_path, hn_case) -> None:
    from autocontour.inference.overview import _legend_name, write_overview
    from autocontour.organs import HEAD_NECK
    path = write_overview(hn_case.ct, hn_case.labels, tmp_path / "o.png",
                          flags={"Eye_L": "flagged", "Parotid_R": "removed"})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _legend_name(HEAD_NECK.by_name("Eye_L"), True) == "Eye_L (left) (!)"
