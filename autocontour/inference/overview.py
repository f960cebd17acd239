"""A one-page PNG of the contours on the CT, for a clinician's glance before import.

A few axial slices chosen to show as many organs as possible, plus a coronal slice through the
contoured region, with every organ drawn as its outline: a thin line in the organ's colour over a
dark edge, so that it shows on white bone as on dark air. The colours are the organ set's, except
that the right member of a left/right pair whose colours are too alike to tell apart (the eyes,
the parotids...) gets a clearly different one (:func:`overview_colours`); the legend names every
organ with its side. An optional reference label map (the truth, in the demo) is drawn dashed in
the same colours. The title names the input, the CT's series description (from its DICOM
header, when there is one) and the model.

Whatever the stored orientation, images are shown in radiological convention (patient left on the
image right, anterior up in axial, head up in coronal) with true millimetre proportions, so a
3 mm slice stack is not squashed. Drawn with matplotlib's object API on the Agg canvas (no
pyplot, no display needed).
"""

from __future__ import annotations

import colorsys
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from skimage.measure import find_contours

from autocontour.errors import GeometryMismatchError, InvalidInputError, OutputExistsError
from autocontour.inference.body import EXTERNAL, body_labels
from autocontour.io.grid import canonical, is_axis_aligned
from autocontour.io.volume import LabelMap, Volume
from autocontour.organs import Organ

DPI = 150
PANEL_INCHES = 3.2
MAX_COLUMNS = 3
LINE_WIDTH = 1.0       # the coloured outline (points)
EDGE_WIDTH = 2.4       # the dark line under it
BODY_WIDTH = 0.6       # the body outline (External)
EDGE_COLOUR = (0.0, 0.0, 0.0)
REFERENCE_DASHES = (0, (3.0, 2.0))
#: Two colours closer than this (Euclidean distance of RGB in 0..1) are too alike for a pair.
MIN_PAIR_DISTANCE = 0.4

RGB = tuple[float, float, float]
#: Label maps to outline, each with its line style (solid: the contours, dashed: a reference).
Planes = list[tuple[LabelMap, str | tuple]]


def overview_colours(organs: Iterable[Organ]) -> dict[int, RGB]:
    """Label value -> outline colour (RGB, 0..1) of every organ.

    An organ's own colour, except for the right member of a left/right pair whose colour is
    within :data:`MIN_PAIR_DISTANCE` of its left partner's (the organ sets give the two sides
    nearly the same colour): it gets another hue, the one of a few turns of the colour wheel
    farthest from every other organ's colour, light enough to show on soft tissue.
    """
    organs = list(organs)
    colours = {o.label: _rgb(o) for o in organs}
    left = {o.key: o for o in organs if o.side == "L"}
    for organ in organs:
        partner = left.get(organ.key) if organ.side == "R" else None
        if partner is None or _distance(colours[organ.label],
                                        colours[partner.label]) >= MIN_PAIR_DISTANCE:
            continue
        others = [c for label, c in colours.items() if label != organ.label]
        colours[organ.label] = max(_turned(colours[partner.label]),
                                   key=lambda c: min(_distance(c, o) for o in others))
    return colours


def _distance(a: RGB, b: RGB) -> float:
    return float(np.linalg.norm(np.subtract(a, b)))


def _turned(colour: RGB) -> list[RGB]:
    """``colour`` turned round the colour wheel by a half (first), 2/5, 3/5, 1/3, 2/3 and 1/4,
    3/4 turn, saturated and lightened to a luminance of at least 0.45 (greys get full
    saturation, so they turn too)."""
    hue, lightness, saturation = colorsys.rgb_to_hls(*colour)
    saturation = max(saturation, 0.8)
    out = []
    for turn in (0.5, 0.4, 0.6, 1 / 3, 2 / 3, 0.25, 0.75):
        shade = min(max(lightness, 0.5), 0.75)
        while True:
            rgb = colorsys.hls_to_rgb((hue + turn) % 1.0, shade, saturation)
            if 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2] >= 0.45 or shade >= 0.85:
                break
            shade += 0.05
        out.append((rgb[0], rgb[1], rgb[2]))
    return out


def write_overview(ct: Volume, labels: LabelMap, path: str | Path, *, slices: int = 4,
                   window: tuple[float, float] = (40.0, 400.0), title: str | None = None,
                   model: str | None = None, reference: LabelMap | None = None,
                   flags: Mapping[str, str] | None = None, overwrite: bool = False,
                   body: np.ndarray | None = None,
                   flag_source: str = "the anatomy checks",
                   flag_note: str = "see report.json",
                   legend: tuple[str, str] = ("contours", "reference (truth)")) -> Path:
    """Write the overview PNG: ``slices`` axial panels, one coronal panel and a legend.

    Args:
        ct: the image, any orientation.
        labels: label map on ``ct``'s grid.
        path: the PNG to write (parent folders are created).
        slices: number of axial panels (see :func:`choose_slices`); fewer when the image has
            fewer slices.
        window: (level, width) of the grey scale, in the image's units (HU for a CT).
        title: first line of the figure title (e.g. the input's name).
        model: the model's name, shown under the title with the CT's series description.
        reference: a second label map on the grid (e.g. the truth), drawn dashed in the
            colours of ``labels``' organ set (values that set lacks are not drawn).
        flags: organ -> "flagged" or "removed" by the anatomy checks: flagged organs are marked
            "(!)" in the legend, and a title line names both kinds.
        flag_source: who flagged them, for that title line (e.g. "the dataset audit").
        flag_note: where that line sends the reader for why.
        legend: the legend's names of the solid (``labels``) and dashed (``reference``) lines.
        overwrite: replace an existing file.
        body: the body outline (boolean, on ``ct``'s array grid), drawn as a thin line.

    Returns:
        ``path``. The file is written under a temporary name and renamed, so it is never left
        half-written.

    Raises:
        GeometryMismatchError: ``labels`` or ``reference`` is not on ``ct``'s grid (nothing
            written).
        OutputExistsError: ``path`` exists and ``overwrite`` is False (nothing written).
        InvalidInputError: ``slices`` below 1 or a window width that is not positive.
    """
    why = ct.geometry.mismatch(labels.geometry)
    if why is not None:
        raise GeometryMismatchError(f"overview: the labels are not on the image's grid: {why}")
    why = None if reference is None else ct.geometry.mismatch(reference.geometry)
    if why is not None:
        raise GeometryMismatchError(f"overview: the reference labels are not on the image's "
                                    f"grid: {why}")
    if slices < 1:
        raise InvalidInputError(f"overview: slices must be at least 1, got {slices}")
    level, width = (float(v) for v in window)
    if not width > 0:
        raise InvalidInputError(f"overview: window width must be positive, got {width:g}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists; pass overwrite=True to replace it "
                                "(nothing was written)")
    lines = _title_lines(ct, title, model)
    flags = dict(flags or {})
    for action in ("flagged", "removed"):
        named = [o for o, a in flags.items() if a == action]
        if named:
            lines.append(f"{action} by {flag_source}: {', '.join(named)} ({flag_note})")
    outline = None if body is None else canonical(body_labels(body, ct.geometry), "LPS").array
    fig = _figure(ct, labels, reference, slices, (level - width / 2, level + width / 2),
                  lines, {o for o, a in flags.items() if a == "flagged"}, outline, legend)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        fig.savefig(tmp, dpi=DPI, format="png")
        os.replace(tmp, path)
    finally:
        fig.clear()
        if tmp.exists():
            tmp.unlink()
    return path


def choose_slices(labels: LabelMap, n: int) -> list[int]:
    """Axial slices that together show as many organs as possible.

    Greedy: each pick is the slice holding the most organs not shown yet (ties: the larger area
    of those organs, then the slice nearer the middle of the contoured region). Once every
    organ is shown, further picks spread out over the contoured slices (farthest from those
    already picked, ties by contoured area).

    Args:
        labels: a label map in any orientation.
        n: how many slices at most.

    Returns:
        Indices k of axial slices of ``canonical(labels, "LPS")`` (so the same for any storage
        of the same labels), ordered head to feet; empty when no organ is contoured.

    Raises:
        InvalidInputError: ``n`` below 1.
    """
    if n < 1:
        raise InvalidInputError(f"choose_slices: n must be at least 1, got {n}")
    array = canonical(labels, "LPS").array
    organs = [o.label for o in labels.present()]
    if not organs:
        return []
    area = np.stack([np.bincount(array[k].ravel().astype(np.int64), minlength=256)[organs]
                     for k in range(array.shape[0])])  # (slices, organs) voxel counts
    contoured = np.flatnonzero(area.sum(axis=1))
    middle = (contoured[0] + contoured[-1]) / 2.0
    shown = np.zeros(len(organs), dtype=bool)
    chosen: list[int] = []
    for _ in range(min(n, len(contoured))):
        candidates = [k for k in contoured if k not in chosen]
        if not shown.all():
            gains = {k: _gain(area[k], shown, -abs(k - middle)) for k in candidates}
            best = max(candidates, key=gains.__getitem__)
            if gains[best][0] == 0:
                shown[:] = True  # nothing new anywhere: spread out from here on
        if shown.all():
            best = max(candidates, key=lambda k: (min(abs(k - c) for c in chosen) if chosen
                                                  else 0, int(area[k].sum())))
        chosen.append(int(best))
        shown |= area[best] > 0
    return sorted(chosen, reverse=True)


def _gain(area: np.ndarray, shown: np.ndarray, nearness: float) -> tuple[int, int, float]:
    """Sort key of a slice: organs not shown yet, their area, nearness to the middle."""
    new = (area > 0) & ~shown
    return int(new.sum()), int(area[new].sum()), nearness


# ---------------------------------------------------------------------------------------------
# Drawing.

def _title_lines(ct: Volume, title: str | None, model: str | None) -> list[str]:
    """The title, then the CT's series description (DICOM input) and the model, when known."""
    header = ct.dicom.header if ct.dicom is not None else None
    description = str(header.get("SeriesDescription", "") or "") if header is not None else ""
    details = ([f"CT: {description}"] if description.strip() else []) + (
        [f"model: {model}"] if model else [])
    return [title or "autocontour overview"] + (["   ".join(details)] if details else [])


def _outline(width: float) -> list[patheffects.AbstractPathEffect]:
    """A dark line under the coloured one, so that an outline shows on bone as on air."""
    return [patheffects.Stroke(linewidth=width + EDGE_WIDTH - LINE_WIDTH,
                               foreground=EDGE_COLOUR, alpha=0.85), patheffects.Normal()]


def _legend_name(organ: Organ, flagged: bool = False) -> str:
    side = {"L": " (left)", "R": " (right)"}.get(organ.side or "", "")
    return organ.name + side + (" (!)" if flagged else "")


def _figure(ct: Volume, labels: LabelMap, reference: LabelMap | None, n: int,
            clim: tuple[float, float], title: list[str],
            flagged: set[str] | frozenset[str] = frozenset(),
            body: np.ndarray | None = None,
            legend: tuple[str, str] = ("contours", "reference (truth)")) -> Figure:
    image = canonical(ct, "LPS")
    planes = [(canonical(labels, "LPS"), "-")]
    if reference is not None:
        planes.append((canonical(reference, "LPS"), REFERENCE_DASHES))
    present = labels.present()
    found = {o.label for o in present} | (
        {o.label for o in reference.present()} if reference is not None else set())
    shown = [o for o in labels.organs if o.label in found]  # named after the labels' organ set
    colours = overview_colours(labels.organs)
    axial = choose_slices(planes[0][0], n)
    coronal_row = _coronal_row(planes[0][0].array)
    if not axial:
        axial = [image.shape[0] // 2]
    panels = len(axial) + 1
    columns = min(panels, MAX_COLUMNS)
    rows = math.ceil(panels / columns)
    fig = Figure(figsize=(PANEL_INCHES * columns + (2.4 if shown else 0.0),
                          PANEL_INCHES * rows + 0.8), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    drawn: list[set[int]] = [set() for _ in planes]  # per plane, the labels drawn
    sx, sy, sz = image.spacing
    for ax, k in zip(axes, axial):
        for done, new in zip(drawn, _draw_axial(ax, image, planes, k, shown, colours, clim, ct)):
            done |= new
        if body is not None:
            _draw_body(ax, body[k], (sy, sx))
    for done, new in zip(drawn, _draw_coronal(axes[len(axial)], image, planes, coronal_row,
                                              shown, colours, clim, axial)):
        done |= new
    if body is not None:
        _draw_body(axes[len(axial)], body[:, coronal_row, :], (sz, sx))
    for ax in axes[panels:]:
        ax.set_axis_off()
    lines = list(title)
    if not present:
        lines.append("no organ contoured")
    else:
        missing = [o.name for o in present if o.label not in drawn[0]]
        lines.append(f"{len(present)} organ(s) contoured"
                     + (f"; not on these slices: {', '.join(missing)}" if missing else ""))
    if shown:
        handles = [Line2D([], [], color=colours[o.label], linewidth=2.0,
                          label=_legend_name(o, o.name in flagged), path_effects=_outline(2.0))
                   for o in shown if any(o.label in done for done in drawn)]
        if body is not None:
            handles.append(Line2D([], [], color=_rgb(EXTERNAL), linewidth=BODY_WIDTH,
                                  label="External (body outline)"))
        if reference is not None:
            handles += [Line2D([], [], color="0.4", linewidth=1.5, label=label, linestyle=style)
                        for label, style in ((legend[0], "-"), (legend[1], REFERENCE_DASHES))]
        fig.legend(handles=handles, loc="outside right upper", fontsize=7, frameon=False)
    fig.suptitle("\n".join(lines), fontsize=9)
    return fig


def _draw_axial(ax: Axes, image: Volume, planes: Planes, k: int, organs: list[Organ],
                colours: dict[int, RGB], clim: tuple[float, float],
                stored: Volume) -> list[set[int]]:
    sx, sy, _ = image.spacing
    ny, nx = image.shape[1:]
    # Row 0 (anterior) at the top, column 0 (patient right) on the left: radiological view.
    ax.imshow(image.array[k], cmap="gray", vmin=clim[0], vmax=clim[1], origin="upper",
              extent=(-0.5 * sx, (nx - 0.5) * sx, (ny - 0.5) * sy, -0.5 * sy))
    drawn = _draw_planes(ax, [(lab.array[k], style) for lab, style in planes], organs,
                         colours, (sy, sx))
    z = float(image.geometry.slice_origin(k)[2])
    ax.set_title(f"axial slice {_stored_slice(image, k, stored)}, z = {z:.1f} mm", fontsize=8)
    _finish(ax)
    return drawn


def _draw_coronal(ax: Axes, image: Volume, planes: Planes, row: int, organs: list[Organ],
                  colours: dict[int, RGB], clim: tuple[float, float],
                  axial: list[int]) -> list[set[int]]:
    sx, _, sz = image.spacing
    nz, _, nx = image.shape
    # Slice index grows towards the head in LPS: origin="lower" puts the head up.
    ax.imshow(image.array[:, row, :], cmap="gray", vmin=clim[0], vmax=clim[1], origin="lower",
              extent=(-0.5 * sx, (nx - 0.5) * sx, -0.5 * sz, (nz - 0.5) * sz))
    drawn = _draw_planes(ax, [(lab.array[:, row, :], style) for lab, style in planes], organs,
                         colours, (sz, sx))
    for k in axial:
        ax.axhline(k * sz, color="cyan", linewidth=0.5, linestyle=":", alpha=0.8)
    y = float(image.geometry.index_to_physical(np.array([[0.0, row, 0.0]]))[0, 1])
    ax.set_title(f"coronal, y = {y:.1f} mm (dotted: axial slices)", fontsize=8)
    _finish(ax)
    return drawn


def _draw_planes(ax: Axes, planes: list[tuple[np.ndarray, str | tuple]], organs: list[Organ],
                 colours: dict[int, RGB], pixel_mm: tuple[float, float]) -> list[set[int]]:
    """Outline the organs of each plane in its line style; per plane, the labels drawn."""
    return [_draw_contours(ax, plane, organs, colours, pixel_mm, style)
            for plane, style in planes]


def _draw_contours(ax: Axes, plane: np.ndarray, organs: list[Organ], colours: dict[int, RGB],
                   pixel_mm: tuple[float, float], style: str | tuple = "-") -> set[int]:
    """Outline every organ of ``plane`` (rows, columns) in its colour; the labels drawn."""
    drawn = set()
    for organ in organs:
        mask = plane == organ.label
        if not mask.any():
            continue
        padded = np.pad(mask.astype(np.float32), 1)  # close outlines that touch the border
        for line in find_contours(padded, 0.5):
            rows, columns = line[:, 0] - 1, line[:, 1] - 1
            ax.plot(columns * pixel_mm[1], rows * pixel_mm[0], color=colours[organ.label],
                    linewidth=LINE_WIDTH, linestyle=style, path_effects=_outline(LINE_WIDTH))
        drawn.add(organ.label)
    return drawn


def _draw_body(ax: Axes, plane: np.ndarray, pixel_mm: tuple[float, float]) -> None:
    """The body outline on one panel: a thin line, under the organs' outlines."""
    if not plane.any():
        return
    for line in find_contours(np.pad(plane.astype(np.float32), 1), 0.5):
        ax.plot((line[:, 1] - 1) * pixel_mm[1], (line[:, 0] - 1) * pixel_mm[0],
                color=_rgb(EXTERNAL), linewidth=BODY_WIDTH, zorder=1.5)


def _finish(ax: Axes) -> None:
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.01, 0.5, "R", transform=ax.transAxes, color="yellow", fontsize=7, va="center")
    ax.text(0.99, 0.5, "L", transform=ax.transAxes, color="yellow", fontsize=7, va="center",
            ha="right")


def _coronal_row(array: np.ndarray) -> int:
    """Row (y index) through the centre of the contoured region, or the middle row."""
    rows = np.flatnonzero(array.any(axis=(0, 2)))
    if rows.size == 0:
        return array.shape[1] // 2
    return (int(rows[0]) + int(rows[-1])) // 2


def _stored_slice(image: Volume, k: int, stored: Volume) -> int:
    """Slice number of LPS slice ``k`` in the image as stored, when its slices are axial."""
    geometry = stored.geometry
    if not (is_axis_aligned(geometry) and geometry.is_axial):
        return k
    point = image.geometry.slice_origin(k)[None, :]
    return round(float(geometry.physical_to_index(point)[0, 2]))


def _rgb(organ: Organ) -> RGB:
    r, g, b = organ.color
    return (r / 255.0, g / 255.0, b / 255.0)
