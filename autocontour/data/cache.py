"""The training cache: one HDF5 file, one group per case, chunked so a random patch is cheap.

Layout (``layout`` attribute ``autocontour-cache/1``)::

    /                    attrs: layout, organ_set (JSON), modality
    /cases/<id>/image    int16 (HU) or float32, (C, z, y, x), LZF in chunks of 16x64x64 voxels
    /cases/<id>/label    uint8 (z, y, x), same chunks
    /cases/<id>/locations/<label>   int32 (N, 3) voxel indices (z, y, x) of that organ, at most
                         MAX_LOCATIONS sampled (for patch sampling that oversamples small organs)
    group attrs: spacing, origin, direction, frame_of_reference_uid, modality, content_hash,
                 source, channels, minimum (of all channels), channel_minimum (per channel;
                 absent in caches written before it: the patch padding then uses minimum)

A case is written under a temporary name and renamed when complete, so a crash never leaves a
half-written case under a real ID. ``content_hash`` covers pixels, labels, geometry and organ
names: an import compares it to tell an unchanged case from a different one with the same ID.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Self

import h5py
import numpy as np

from autocontour.errors import InvalidInputError
from autocontour.io.volume import Geometry, LabelMap, Volume
from autocontour.organs import OrganSet

LAYOUT = "autocontour-cache/1"
CHUNK = (16, 64, 64)
MAX_LOCATIONS = 5000


def content_hash(images: list[Volume], labels: LabelMap) -> str:
    """SHA-256 of what a case *is*: pixel values, labels, geometry and the organ names.

    Geometry enters rounded to 0.001 mm (direction to 1e-5), so the same case read from DICOM
    (decimal strings) and from NIfTI (float32) hashes the same.
    """
    h = hashlib.sha256()
    for volume in images:
        h.update(str(volume.array.dtype).encode())
        h.update(np.ascontiguousarray(volume.array).tobytes())
    h.update(np.ascontiguousarray(labels.array).tobytes())
    g = labels.geometry
    h.update(json.dumps([g.shape, np.round(g.spacing, 3).tolist(), np.round(g.origin, 3).tolist(),
                         np.round(g.direction, 5).tolist()]).encode())
    h.update(json.dumps([(o.name, o.label) for o in labels.organs]).encode())
    return h.hexdigest()


class CaseCache:
    """Read access to a cache file; opened lazily and re-opened in each DataLoader worker."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._pid: int | None = None
        if not self.path.is_file():
            raise InvalidInputError(f"{self.path}: no training cache here (run "
                                    "'autocontour dataset import' first)")
        fh = self._h5()
        if fh.attrs.get("layout") != LAYOUT:
            raise InvalidInputError(f"{self.path}: not an autocontour training cache "
                                    f"(layout {fh.attrs.get('layout')!r}, expected {LAYOUT!r})")
        self._organs = OrganSet.from_dict(json.loads(fh.attrs["organ_set"]))

    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = state["_pid"] = None
        return state

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def organs(self) -> OrganSet:
        return self._organs

    @property
    def case_ids(self) -> list[str]:
        cases = self._h5().get("cases")
        return sorted(k for k in cases if not k.startswith(".")) if cases else []

    def _group(self, case_id: str) -> h5py.Group:
        try:
            return self._h5()["cases"][case_id]
        except KeyError:
            raise InvalidInputError(f"{self.path}: no case {case_id!r}") from None

    def shape(self, case_id: str) -> tuple[int, int, int]:
        return tuple(self._group(case_id)["label"].shape)

    def channels(self, case_id: str) -> int:
        return int(self._group(case_id)["image"].shape[0])

    def geometry(self, case_id: str) -> Geometry:
        g = self._group(case_id)
        return Geometry(g["label"].shape, tuple(g.attrs["spacing"]), tuple(g.attrs["origin"]),
                        tuple(g.attrs["direction"]),
                        str(g.attrs.get("frame_of_reference_uid", "")) or None)

    def content_hash(self, case_id: str) -> str:
        return str(self._group(case_id).attrs["content_hash"])

    def load_channels(self, case_id: str) -> tuple[list[Volume], LabelMap]:
        """Every image channel of a case and its labels, on the case's grid."""
        g = self._group(case_id)
        geometry = self.geometry(case_id)
        modalities = json.loads(g.attrs.get("channels", "[]")) or [None]
        image = g["image"][()]
        volumes = [Volume(image[c], geometry, modality=modalities[min(c, len(modalities) - 1)])
                   for c in range(image.shape[0])]
        return volumes, LabelMap(g["label"][()], geometry, organs=self._organs)

    def load(self, case_id: str) -> tuple[Volume, LabelMap]:
        """The first image channel and the labels of a case."""
        volumes, labels = self.load_channels(case_id)
        return volumes[0], labels

    def read_patch(self, case_id: str, start: tuple[int, int, int],
                   size: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """A (C, z, y, x) float32 image patch and its (z, y, x) uint8 labels.

        ``start`` may be negative and the patch may reach past the volume: the outside is
        padded with each channel's minimum (air) and label 0, so patches centred near an edge
        work.
        Only the chunks the patch touches are read and decompressed.
        """
        g = self._group(case_id)
        shape = g["label"].shape
        lo = [max(0, s) for s in start]
        hi = [min(n, s + w) for n, s, w in zip(shape, start, size, strict=True)]
        channels = g["image"].shape[0]
        lows = g.attrs.get("channel_minimum", [g.attrs["minimum"]] * channels)
        image = np.empty((channels, *size), np.float32)
        image[:] = np.asarray(lows, np.float32).reshape(channels, 1, 1, 1)
        label = np.zeros(size, np.uint8)
        if all(h > low for h, low in zip(hi, lo, strict=True)):
            src = tuple(slice(low, h) for low, h in zip(lo, hi, strict=True))
            dst = tuple(slice(low - s, h - s) for low, h, s in zip(lo, hi, start, strict=True))
            image[(slice(None), *dst)] = g["image"][(slice(None), *src)]
            label[dst] = g["label"][src]
        return image, label

    def present(self, case_id: str) -> list[str]:
        """Names of the organs with voxels in a case, in organ-set order."""
        stored = self._group(case_id).get("locations")
        labels = {int(k) for k in stored} if stored is not None else set()
        return [o.name for o in self._organs if o.label in labels]

    def manifest(self) -> dict:
        """Every case with its hash, source, geometry and organs: what ``manifest.json`` holds."""
        cases = {}
        for cid in self.case_ids:
            g, geom = self._group(cid), self.geometry(cid)
            cases[cid] = {"content_hash": str(g.attrs["content_hash"]),
                          "source": str(g.attrs.get("source", "")),
                          "shape_zyx": list(geom.shape), "spacing_mm": list(geom.spacing),
                          "channels": json.loads(g.attrs.get("channels", "[]")),
                          "organs": self.present(cid)}
        return {"layout": LAYOUT, "organ_set": self._organs.name, "cases": cases}

    def voxel_counts(self, case_id: str) -> dict[int, int]:
        """Exact voxel count of every organ present in a case (label value -> voxels)."""
        stored = self._group(case_id).get("locations")
        return {} if stored is None else {int(k): int(d.attrs["voxels"]) for k, d in stored.items()}

    def locations(self, case_id: str, label: int) -> np.ndarray:
        """(N, 3) voxel indices (z, y, x) of one organ; empty (0, 3) when it is absent."""
        locs = self._group(case_id).get(f"locations/{label}")
        return np.zeros((0, 3), np.int32) if locs is None else locs[()]


def _locations(labels: np.ndarray, organs: OrganSet, rng: np.random.Generator
               ) -> dict[int, tuple[np.ndarray, int]]:
    """label -> (sampled voxel indices (N, 3), the organ's exact voxel count)."""
    out = {}
    for organ in organs:
        idx = np.flatnonzero(labels == organ.label)
        if idx.size == 0:
            continue
        count = int(idx.size)
        if idx.size > MAX_LOCATIONS:
            idx = np.sort(rng.choice(idx, MAX_LOCATIONS, replace=False))
        out[organ.label] = (np.stack(np.unravel_index(idx, labels.shape), axis=1)
                            .astype(np.int32), count)
    return out


class CacheWriter:
    """Adds cases to a cache file (created if absent); used by the importers.

    Raises:
        InvalidInputError: the existing file holds another organ set or is not a cache.
    """

    def __init__(self, path: str | Path, organs: OrganSet) -> None:
        self.path = Path(path)
        self.organs = organs
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = h5py.File(self.path, "a")
        attrs = self._fh.attrs
        if "layout" not in attrs:
            attrs.update(layout=LAYOUT, organ_set=json.dumps(organs.to_dict()))
            self._fh.create_group("cases")
        elif attrs["layout"] != LAYOUT:
            raise InvalidInputError(f"{self.path}: not an autocontour training cache")
        elif OrganSet.from_dict(json.loads(attrs["organ_set"])) != organs:
            raise InvalidInputError(f"{self.path}: the cache holds organ set "
                                    f"{json.loads(attrs['organ_set'])['name']!r}, not "
                                    f"{organs.name!r}; import into another folder")
        for name in [k for k in self._fh["cases"] if k.startswith(".")]:
            del self._fh["cases"][name]  # a case interrupted mid-write last time

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._fh.close()

    def stored_hash(self, case_id: str) -> str | None:
        group = self._fh["cases"].get(case_id)
        return None if group is None else str(group.attrs["content_hash"])

    def stored_signature(self, case_id: str) -> str | None:
        """The source-file signature the case was imported from (see ``CaseSource.signature``)."""
        group = self._fh["cases"].get(case_id)
        return None if group is None else str(group.attrs.get("signature", "")) or None

    def set_signature(self, case_id: str, signature: str) -> None:
        self._fh["cases"][case_id].attrs["signature"] = signature

    def add(self, case_id: str, images: list[Volume], labels: LabelMap, source: str = "",
            digest: str | None = None, replace: bool = False, seed: int = 0,
            signature: str = "") -> str:
        """Write one case (all image channels on the labels' grid); returns its content hash.

        Raises:
            InvalidInputError: a channel's grid differs from the labels', or the ID exists with
                other content and ``replace`` is False (the stored case is kept).
        """
        for volume in images:
            why = labels.geometry.mismatch(volume.geometry)
            if why:
                raise InvalidInputError(f"case {case_id}: label grid does not match the image: "
                                        f"{why}")
        digest = digest or content_hash(images, labels)
        stored = self.stored_hash(case_id)
        if stored is not None and stored != digest and not replace:
            raise InvalidInputError(f"case {case_id}: already in the cache with different "
                                    "content; kept the stored case (use --replace-changed)")
        integer = all(np.issubdtype(v.array.dtype, np.integer) for v in images)
        data = np.stack([v.array for v in images]).astype(np.int16 if integer else np.float32)
        chunks = tuple(min(c, n) for c, n in zip(CHUNK, labels.shape, strict=True))
        cases = self._fh["cases"]
        tmp = f".{case_id}.partial"
        if tmp in cases:
            del cases[tmp]
        g = cases.create_group(tmp)
        g.create_dataset("image", data=data, chunks=(1, *chunks), compression="lzf", shuffle=True)
        g.create_dataset("label", data=labels.array.astype(np.uint8), chunks=chunks,
                         compression="lzf", shuffle=True)
        rng = np.random.default_rng(seed)
        for value, (locs, count) in _locations(labels.array, self.organs, rng).items():
            g.create_dataset(f"locations/{value}", data=locs).attrs["voxels"] = count
        geom = labels.geometry
        g.attrs.update(spacing=geom.spacing, origin=geom.origin, direction=geom.direction,
                       frame_of_reference_uid=str(geom.frame_of_reference_uid or ""),
                       content_hash=digest, source=str(source), minimum=float(data.min()),
                       channel_minimum=[float(c.min()) for c in data],
                       signature=signature,
                       channels=json.dumps([v.modality for v in images]))
        if stored is not None:
            del cases[case_id]
        cases.move(tmp, case_id)
        self._fh.flush()
        return digest


def write_cache(path: str | Path, cases: Iterable[tuple[str, Volume, LabelMap]],
                organs: OrganSet) -> CaseCache:
    """Write (case_id, image, labels) triples into a new or existing cache and open it."""
    with CacheWriter(path, organs) as writer:
        for case_id, image, labels in cases:
            writer.add(case_id, [image], labels)
    return CaseCache(path)
