"""What the page's viewer shows: CT slices as windowed PNGs and contours as polygons, cached.

Everything is shown in the LPS layout (``io.grid.canonical``): axial slices with the patient's
front at the top and right on the viewer's left (the radiological convention), coronal and
sagittal reconstructions with the head at the top. A volume is read and laid out once per case
(kept in a small LRU); a slice is windowed and encoded per request (a 512x512 slice takes a few
milliseconds) and the PNG is kept too.

Axial contours are the RTSTRUCT's own points (what the planning system imports), mapped to
pixels; coronal and sagittal contours are traced on the RTSTRUCT rasterised onto the CT grid
(``io.rtstruct.read_rtstruct``) with the same tracer the RTSTRUCT writer uses
(``io.contours.mask_to_polygons``).
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from autocontour.io.contours import mask_to_polygons
from autocontour.io.formats import read_volume
from autocontour.io.grid import canonical
from autocontour.io.volume import Geometry, LabelMap, Volume

PRESETS: dict[str, tuple[float, float]] = {"soft tissue": (400, 40), "bone": (1800, 400),
                                           "brain": (80, 40), "lung": (1500, -600)}
VIEWS = ("axial", "coronal", "sagittal")

K = TypeVar("K")
T = TypeVar("T")


class Lru(Generic[K, T]):
    """A thread-safe least-recently-used cache; :meth:`get` builds a missing entry (one build at
    a time, so two requests for one volume read it once)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, T] = OrderedDict()
        self._lock = threading.Lock()
        self._building = threading.Lock()

    def get(self, key: K, build: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        with self._building:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            value = build()
            with self._lock:
                self._items[key] = value
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            return value


def plane(array: np.ndarray, view: str, index: int) -> np.ndarray:
    """One slice of a (z, y, x) LPS array as displayed (rows top to bottom)."""
    if view == "axial":
        return array[index]
    if view == "coronal":
        return array[::-1, index, :]
    return array[::-1, :, index]


def count(shape: tuple[int, ...], view: str) -> int:
    """How many slices a view has."""
    return {"axial": shape[0], "coronal": shape[1], "sagittal": shape[2]}[view]


@dataclass
class CaseImage:
    """A case's CT in the LPS layout, ready to window."""

    array: np.ndarray
    geometry: Geometry
    description: str = ""

    @classmethod
    def read(cls, path: Path) -> CaseImage:
        volume = canonical(read_volume(path))
        description = ""
        if volume.dicom is not None and volume.dicom.header is not None:
            description = str(volume.dicom.header.get("SeriesDescription", "") or "")
        return cls(np.ascontiguousarray(volume.array), volume.geometry, description)

    def info(self) -> dict[str, Any]:
        """The viewer's metadata (shape, spacing, slice positions, views, presets)."""
        nz, ny, nx = self.array.shape
        sx, sy, sz = (float(v) for v in self.geometry.spacing)
        z_mm = self.geometry.index_to_physical(
            np.stack([np.zeros(nz), np.zeros(nz), np.arange(nz)], axis=1))[:, 2]
        return {"shape": [nz, ny, nx], "spacing": [sx, sy, sz],
                "z_mm": [round(float(z), 2) for z in z_mm],
                "views": {"axial": {"count": nz, "rows": ny, "cols": nx, "pixel_mm": [sy, sx]},
                          "coronal": {"count": ny, "rows": nz, "cols": nx,
                                      "pixel_mm": [sz, sx]},
                          "sagittal": {"count": nx, "rows": nz, "cols": ny,
                                       "pixel_mm": [sz, sy]}},
                "presets": {name: list(wl) for name, wl in PRESETS.items()},
                "description": self.description}

    def png(self, view: str, index: int, window: float, level: float) -> bytes:
        """One slice windowed to 8 bits, as a grayscale PNG."""
        from PIL import Image

        values = plane(self.array, view, index).astype(np.float32)
        low = level - window / 2.0
        grey = np.clip((values - low) * (255.0 / window), 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(grey).save(out, "PNG", compress_level=1)
        return out.getvalue()


@dataclass
class Structures:
    """Contours to draw: the structures (name, colour, type) and polygons per view and slice."""

    structures: list[dict[str, Any]]
    axial: dict[int, list[tuple[str, list[np.ndarray]]]] | None
    labels: np.ndarray | None
    names: dict[int, str] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    """Structures that overlap the label map's (the body outline): name -> LPS boolean mask."""

    def contours(self, view: str, index: int) -> list[dict[str, Any]]:
        """[{name, polygons: [[[col, row], ...], ...]}] of one slice, in pixel coordinates."""
        if view == "axial" and self.axial is not None:
            drawn = self.axial.get(index, [])
            return [{"name": name, "polygons": [_rounded(p) for p in polygons]}
                    for name, polygons in drawn]
        if self.labels is None:
            return []
        section = plane(self.labels, view, index)
        found: list[dict[str, Any]] = []
        for value in np.flatnonzero(np.bincount(section.ravel(), minlength=1)):
            if value == 0 or int(value) not in self.names:
                continue
            polygons = [p[:, ::-1] for p in mask_to_polygons(section == value)]  # (col, row)
            found.append({"name": self.names[int(value)],
                          "polygons": [_rounded(p) for p in polygons]})
        for name, mask in self.masks.items():
            section = plane(mask, view, index)
            if section.any():
                found.append({"name": name, "polygons": [_rounded(p[:, ::-1]) for p in
                                                         mask_to_polygons(section)]})
        return found


def _rounded(polygon: np.ndarray) -> list[list[float]]:
    return np.round(polygon, 2).tolist()  # type: ignore[no-any-return]


def rtstruct_structures(rtstruct: Path, ct: Path, image: CaseImage,
                        report: dict[str, Any] | None = None,
                        body: Path | None = None) -> Structures:
    """The structures of an RTSTRUCT drawn on the CT ``ct`` (``image`` is its LPS layout);
    volumes and flags from the result's report when given; ``body``: the result's body outline
    (``body.nii.gz``), for the External structure in coronal and sagittal views.

    Colours are the overview's (:func:`~autocontour.inference.overview.overview_colours`): the
    organ set's, except that a right organ whose colour is too close to its left partner's gets
    a clearly different one, so that the page shows what the overview PNG shows."""
    from autocontour.io.rtstruct import read_rtstruct, read_structure_set

    data = read_structure_set(rtstruct)
    kinds = {int(o.ReferencedROINumber): str(o.get("RTROIInterpretedType", "") or "")
             for o in data.get("RTROIObservationsSequence", [])}
    organs = {o["name"]: o for o in (report or {}).get("organs", [])}
    numbers = {int(r.ROINumber): str(r.ROIName) for r in data.StructureSetROISequence}
    structures: list[dict[str, Any]] = []
    axial: dict[int, list[tuple[str, list[np.ndarray]]]] = {}
    for roi in data.get("ROIContourSequence", []):
        name = numbers.get(int(roi.ReferencedROINumber), f"ROI {roi.ReferencedROINumber}")
        colour = [int(c) for c in roi.get("ROIDisplayColor", [255, 255, 0])]
        entry = organs.get(name, {})
        structures.append({"name": name, "color": colour,
                           "type": kinds.get(int(roi.ReferencedROINumber), ""),
                           "volume_cc": entry.get("volume_cc"), "flag": entry.get("flag")})
        by_slice: dict[int, list[np.ndarray]] = {}
        for contour in roi.get("ContourSequence", []):
            points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
            index = image.geometry.physical_to_index(points)  # (x, y, z) in the LPS layout
            k = round(float(np.median(index[:, 2])))
            if 0 <= k < image.array.shape[0]:
                by_slice.setdefault(k, []).append(index[:, :2])  # (col, row)
        for k, polygons in by_slice.items():
            axial.setdefault(k, []).append((name, polygons))
    labels, _ = read_rtstruct(rtstruct, read_volume(ct))
    _display_colours(structures)
    masks: dict[str, np.ndarray] = {}
    external = [s["name"] for s in structures if s["type"] == "EXTERNAL"]
    if body is not None and body.is_file() and external:
        masks[external[0]] = canonical(read_volume(body)).array > 0
    return Structures(structures, axial, *_layout(labels), masks=masks)


def _display_colours(structures: list[dict[str, Any]]) -> None:
    from autocontour.inference.overview import overview_colours
    from autocontour.io.rtstruct import guess_organ_set

    names = [s["name"] for s in structures]
    organs = [o for o in guess_organ_set(names) if o.name in names]
    by_label = overview_colours(organs)
    colours = {o.name: [round(c * 255) for c in by_label[o.label]] for o in organs}
    for entry in structures:
        entry["color"] = colours.get(entry["name"], entry["color"])


def labelmap_structures(path: Path, names: dict[int, str], image: CaseImage) -> Structures:
    """The structures of a label map on the CT's grid; ``names``: label value -> organ name
    (a value without a name is shown as "label N")."""
    volume = read_volume(path)
    array = np.rint(volume.array).astype(np.int32) if not np.issubdtype(
        volume.array.dtype, np.integer) else volume.array
    values = [int(v) for v in np.unique(array) if v > 0]
    laid = canonical(Volume(array, volume.geometry)).array
    named = {v: names.get(v, f"label {v}") for v in values}
    structures = [{"name": n, "color": _colour(v), "type": "", "volume_cc": None, "flag": None}
                  for v, n in named.items()]
    return Structures(structures, None, laid.astype(np.int32), named)


def _layout(labels: LabelMap) -> tuple[np.ndarray, dict[int, str]]:
    laid = canonical(labels)
    return np.ascontiguousarray(laid.array), {o.label: o.name for o in labels.organs}


def _colour(value: int) -> list[int]:
    rng = np.random.default_rng(value)
    return [int(c) for c in rng.integers(60, 256, size=3)]


class Views:
    """The app's display caches: laid-out volumes, structures, PNGs and contour JSON."""

    def __init__(self, volumes: int = 4, structures: int = 16, slices: int = 512) -> None:
        self.images: Lru[str, CaseImage] = Lru(volumes)
        self.structures: Lru[tuple[str, int], Structures] = Lru(structures)
        self.pngs: Lru[tuple[Any, ...], bytes] = Lru(slices)
        self.contours: Lru[tuple[Any, ...], list[dict[str, Any]]] = Lru(slices * 4)
