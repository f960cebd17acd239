"""Random training patches from the HDF5 cache, with foreground and small-organ oversampling.

Sampling (per item): a case uniformly from ``case_ids``; then with probability
``foreground_fraction`` [0.33, nnU-Net's oversampling] a *foreground* patch, centred on a random
stored voxel of one organ, else a patch at a uniformly random position. Patches never hang past the
volume more than they must (a volume smaller than the patch is padded by the cache).

Class imbalance (spec B5, tiny organs such as chiasm, pituitary, lenses): the organ a foreground
patch is centred on is drawn among the organs present in the case with probability proportional
to a weight, ``organ_sampling``:

* ``"inverse_sqrt_volume"`` (default): 1 / sqrt(voxel count), with the exact counts the cache
  stores per organ; a 100-voxel chiasm is then centred on 10 times as often as a 10 000-voxel
  parotid. Plain inverse volume would give the lenses most patches.
* ``"uniform"``: every present organ alike (nnU-Net v2).
* a mapping {organ name: weight}: explicit relative weights, 1 for organs not named, 0 to never
  centre on an organ.

Reproducibility: item ``i`` of epoch ``e`` is drawn from ``numpy.random.default_rng([seed, e,
i])`` and the transform is re-seeded from it, so a run depends only on ``seed`` (not on the
number of DataLoader workers or which worker got the item) while every item differs. Call
:meth:`PatchDataset.set_epoch` before each epoch (it reaches workers unless
``persistent_workers=True``). The cache re-opens its HDF5 file in each worker process.

Images come as stored (HU for CT): put intensity normalisation in ``transform`` before the
augmentation (see ``benchmarks/bench_loading.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from autocontour.data.cache import CaseCache
from autocontour.errors import InvalidInputError, UnknownOptionError, did_you_mean

ORGAN_SAMPLING_RULES = ("inverse_sqrt_volume", "uniform")
Sample = dict[str, Any]


class PatchDataset(Dataset):
    """``samples_per_epoch`` random patches per epoch from a :class:`CaseCache`.

    Args:
        cache: the training cache.
        case_ids: the cases to sample (e.g. a training fold); None for all.
        patch_size: (z, y, x); z = 1 gives 2-D slices, output (C, y, x) (for the 2-D U-Net).
        samples_per_epoch: the dataset length.
        foreground_fraction: share of patches centred on an organ voxel.
        organ_sampling: rule or weights choosing the organ of a foreground patch (module doc).
        transform: applied to {"image": (C, [z,] y, x) float32, "label": (1, [z,] y, x) uint8}
            numpy arrays, e.g. ``build_augmentation(...)``; re-seeded per item when it has
            ``set_random_state``.
        seed: the run's seed.

    Items: {"image": float32 tensor (C, [z,] y, x), "label": uint8 tensor (1, [z,] y, x),
    "case_id": str, "start": int64 tensor (3,) patch corner (z, y, x) in the case's voxels
    (may be negative), "organ": int label the patch was centred on (0 for a random patch)}.

    Raises:
        InvalidInputError: an empty or unknown case list, a bad patch size, fraction or length,
            or a negative organ weight.
        UnknownOptionError: an unknown rule or organ name (with the closest choice).
    """

    def __init__(self, cache: CaseCache, case_ids: Sequence[str] | None = None,
                 patch_size: Sequence[int] = (64, 128, 128), samples_per_epoch: int = 250,
                 foreground_fraction: float = 0.33,
                 organ_sampling: str | Mapping[str, float] = "inverse_sqrt_volume",
                 transform: Callable[[Sample], Sample] | None = None, seed: int = 0) -> None:
        self.cache = cache
        self.case_ids = list(cache.case_ids if case_ids is None else case_ids)
        self.patch_size = _check_size(patch_size)
        if int(samples_per_epoch) < 1:
            raise InvalidInputError(f"samples_per_epoch must be at least 1, got {samples_per_epoch}")
        if not 0.0 <= float(foreground_fraction) <= 1.0:
            raise InvalidInputError(
                f"foreground_fraction must lie in [0, 1], got {foreground_fraction}")
        self.samples_per_epoch = int(samples_per_epoch)
        self.foreground_fraction = float(foreground_fraction)
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        if not self.case_ids:
            raise InvalidInputError(f"{cache.path}: no cases to sample patches from")
        unknown = sorted(set(self.case_ids) - set(cache.case_ids))
        if unknown:
            raise InvalidInputError(f"{cache.path}: cases not in the cache: {unknown[:5]}")
        weights = _organ_weights(organ_sampling, cache)
        self._shapes = {c: cache.shape(c) for c in self.case_ids}
        self._organ_odds = {c: _case_odds(cache, c, weights) for c in self.case_ids}

    def set_epoch(self, epoch: int) -> None:
        """Draw a new set of patches (call before iterating each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.samples_per_epoch:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        case_id = self.case_ids[int(rng.integers(len(self.case_ids)))]
        start, organ = self._draw_start(case_id, rng)
        image, label = self.cache.read_patch(case_id, start, self.patch_size)
        if self.patch_size[0] == 1:  # 2-D slice mode
            image, label = image[:, 0], label[0]
        sample: Sample = {"image": image, "label": label[None]}
        if self.transform is not None:
            if hasattr(self.transform, "set_random_state"):
                self.transform.set_random_state(seed=int(rng.integers(2**31)))
            sample = self.transform(sample)
        return {"image": torch.as_tensor(sample["image"], dtype=torch.float32),
                "label": torch.as_tensor(sample["label"], dtype=torch.uint8),
                "case_id": case_id, "start": torch.tensor(start, dtype=torch.int64),
                "organ": organ}

    def _draw_start(self, case_id: str, rng: np.random.Generator
                    ) -> tuple[tuple[int, int, int], int]:
        """(patch corner, organ label or 0) for one item."""
        shape = np.asarray(self._shapes[case_id])
        size = np.asarray(self.patch_size)
        lo, hi = np.minimum(0, shape - size), np.maximum(0, shape - size)
        labels, odds = self._organ_odds[case_id]
        if labels.size and rng.random() < self.foreground_fraction:
            organ = int(rng.choice(labels, p=odds))
            locations = self.cache.locations(case_id, organ)
            centre = locations[int(rng.integers(len(locations)))]
            start = np.clip(centre - size // 2, lo, hi)
        else:
            organ = 0
            start = rng.integers(lo, hi + 1)
        return tuple(int(s) for s in start), organ


def _check_size(patch_size: Sequence[int]) -> tuple[int, int, int]:
    size = tuple(int(s) for s in patch_size)
    if len(size) != 3 or min(size) < 1:
        raise InvalidInputError(f"patch_size must be 3 positive sizes (z, y, x), got {patch_size}")
    return size


def _organ_weights(rule: str | Mapping[str, float], cache: CaseCache
                   ) -> Callable[[int, int], float]:
    """weight(label, voxel count) for the chosen rule."""
    if isinstance(rule, Mapping):
        by_label = {cache.organs.by_name(name).label: float(w) for name, w in rule.items()}
        if any(w < 0 for w in by_label.values()):
            raise InvalidInputError(f"organ weights must not be negative, got {dict(rule)}")
        return lambda label, count: by_label.get(label, 1.0)
    key = str(rule).strip().lower()
    if key == "uniform":
        return lambda label, count: 1.0
    if key == "inverse_sqrt_volume":
        return lambda label, count: 1.0 / np.sqrt(count)
    raise UnknownOptionError(did_you_mean(f"unknown organ_sampling {rule!r}", key,
                                           list(ORGAN_SAMPLING_RULES)))


def _case_odds(cache: CaseCache, case_id: str, weight: Callable[[int, int], float]
               ) -> tuple[np.ndarray, np.ndarray]:
    """(organ labels, probabilities) of the organs a foreground patch of this case may centre on."""
    counts = cache.voxel_counts(case_id)
    weights = {label: weight(label, n) for label, n in counts.items() if n > 0}
    weights = {label: w for label, w in weights.items() if w > 0}
    labels = np.asarray(sorted(weights), dtype=np.int64)
    total = sum(weights.values())
    return labels, np.asarray([weights[int(v)] / total for v in labels])
