"""The dataset audit: which cases, and which organs in them, look wrongly contoured.

Quality control of a clinic's own contours (beyond seed 002, which used the QAM only to train).
A segmenter is trained on every case (optionally with ``sample_weighting: qam``, the QAM with
the OCM, beside it). Then every organ of every case is measured again, deterministically; each
measure gives a **distrust** (higher: check it first), a robust z-score (median, 1.4826 × MAD,
with a floor) against the same organ in the other cases, since organs differ (a lens is not a
bladder):

* ``model`` (the default ranking): the segmenter's disagreement with the stored contour, −z of
  the Dice between its prediction and the contour;
* ``qam`` (runs with the QAM): Φ's own judgement, as a counterfactual: the mean gain of the
  bounded score Γ(Φ(x, y)) when, in ``patches`` training-sized patches centred on random voxels
  of the organ (seeded), the stored contour of that organ is replaced by the segmenter's (z of
  the gain). The same image is scored twice, so what Φ says about the image itself cancels
  (Φ's plain score, also recorded as ``qam_score``, ranks by the image as much as by the
  contour);
* ``volume``: |z| of the organ's volume (the simple baseline: an outlier volume flags dilated,
  eroded or partly missing contours, not shifted or swapped ones).

A **case's** distrust is that of its most distrusted organ. What was decided how, on phantoms
with known errors (``experiments/audit_corrupted_contours.py``; README, "Auditing a data set's
contours"): on development set 0 the segmenter's disagreement found the errors best and Φ's
plain score did no better than chance, so ``model`` became the default and Φ's measure the
counterfactual gain; on sets 1-3 the segmenter trained *without* the QAM found them better
than the one trained with it, so the audit trains without it unless asked; sets 4-5, touched by
no decision, give the reported figures.

Everything here reads the data set's preprocessed cache of the run's recipe, so the patches are
what the run trained on; volumes are taken from the training cache (as imported, in mL).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from autocontour.artifacts.files import CHECKPOINT, TrainedNetwork, read_file, trained_network
from autocontour.data.cache import CaseCache
from autocontour.errors import InvalidInputError
from autocontour.evaluation import dice
from autocontour.models.inferer import SlidingWindowInferer, spatial_dims
from autocontour.training.qam import QualityAwareness

#: The rankings an audit gives (module doc); the first is the default.
RANKINGS = ("model", "qam", "volume")
#: Patches Φ scores per organ and case.
PATCHES = 8


@dataclass(frozen=True)
class OrganRow:
    """One organ of one case: what the audit measured and how much each ranking distrusts it.

    Attributes:
        case, organ: which.
        qam_score: mean bounded Φ score of its patches with the stored contour.
        qam_gain: mean gain of that score when the contour is replaced by the segmenter's.
        volume_ml: its volume as imported.
        model_dice: Dice of the segmenter's prediction against the stored contour.
        distrust: ranking name -> robust z (higher: more suspicious); see the module doc.
    """

    case: str
    organ: str
    qam_score: float
    qam_gain: float
    volume_ml: float
    model_dice: float
    distrust: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AuditedRun:
    """A trained run's segmenter and its QAM (None for a run trained without), ready to score."""

    trained: TrainedNetwork
    qam: QualityAwareness | None

    @property
    def rankings(self) -> tuple[str, ...]:
        """The rankings this run can give (no ``qam`` without a QAM)."""
        return RANKINGS if self.qam is not None else tuple(r for r in RANKINGS if r != "qam")


def load_audited_run(path: str | Path, device: str | torch.device = "cpu") -> AuditedRun:
    """The segmenter and Φ of a training checkpoint (``last.pt``); a run trained without the
    QAM gives ``qam`` None (it ranks by the segmenter and by volume only).

    Raises:
        InvalidInputError: an unreadable checkpoint, or QAM weights that do not fit (the message
            names the file).
    """
    path = Path(path)
    data = read_file(path, (CHECKPOINT,))
    trained = trained_network(path, data, device)
    weighting = trained.config.sample_weighting
    state = (data.get("extra_modules") or {}).get("qam")
    if weighting is None or state is None:
        return AuditedRun(trained, None)
    kwargs = data["network"].get("arch_kwargs", {})
    classes = int(kwargs.get("out_channels", max(trained.organs.labels) + 1))
    qam = QualityAwareness.from_config(weighting, spatial_dims(trained.net),
                                       int(kwargs.get("in_channels", 1)), classes)
    try:
        qam.load_state_dict(state)
    except RuntimeError as exc:
        raise InvalidInputError(f"{path}: the QAM's weights do not fit its config "
                                f"({str(exc).splitlines()[0]})") from None
    return AuditedRun(trained, qam.to(next(trained.net.parameters()).device).eval())


class Measured(NamedTuple):
    """What :func:`measure_case` gives per organ (the QAM's two are NaN without a QAM)."""

    qam_score: float
    qam_gain: float
    model_dice: float


def measure_case(run: AuditedRun, cache: CaseCache, case_id: str, patches: int = PATCHES,
                 seed: int = 0) -> dict[str, Measured]:
    """Organ name -> :class:`Measured` of one case of the preprocessed ``cache`` (module doc).

    Only organs with voxels in the case are measured.
    """
    net, config, organs = run.trained.net, run.trained.config, run.trained.organs
    device = next(net.parameters()).device
    size = np.asarray(config.patch_size)
    image, labels = cache.load_channels(case_id)
    shape = np.asarray(labels.shape)
    keep = None if config.organs is None else np.asarray(
        organs.subset(list(config.organs)).keep_lookup(), np.uint8)
    stored = labels.array if keep is None else keep[labels.array]
    predicted = predict_case(run, image)
    lo, hi = np.minimum(0, shape - size), np.maximum(0, shape - size)
    out: dict[str, Measured] = {}
    for organ in organs:
        if keep is not None and keep[organ.label] == 0:
            continue
        where = cache.locations(case_id, organ.label)
        if not len(where):
            continue
        rng = np.random.default_rng([seed, organ.label, *map(ord, case_id[-16:])])
        centres = where[rng.choice(len(where), size=min(patches, len(where)), replace=False)]
        starts = [tuple(int(v) for v in np.clip(c - size // 2, lo, hi)) for c in centres]
        img = torch.from_numpy(np.stack([cache.read_patch(case_id, s, tuple(size))[0]
                                         for s in starts]))
        mine = np.stack([_crop(stored, s, size) for s in starts])
        theirs = np.stack([_crop(predicted, s, size) for s in starts])
        swapped = np.where(mine == organ.label, 0, mine)
        swapped = np.where((theirs == organ.label) & (swapped == 0), organ.label, swapped)
        if size[0] == 1:  # 2-D: (B, C, 1, y, x) -> (B, C, y, x)
            img, mine, swapped = img[:, :, 0], mine[:, 0], swapped[:, 0]
        agree = dice(predicted == organ.label, stored == organ.label)
        if run.qam is None:
            out[organ.name] = Measured(float("nan"), float("nan"), agree)
            continue
        with torch.no_grad():
            img = img.to(device)
            before = run.qam.bound(run.qam.scores(img, torch.from_numpy(mine[:, None]).to(device)))
            after = run.qam.bound(run.qam.scores(img, torch.from_numpy(swapped[:, None])
                                                 .to(device)))
        out[organ.name] = Measured(float(before.mean()), float((after - before).mean()), agree)
    return out


def predict_case(run: AuditedRun, image: Sequence[Any]) -> np.ndarray:
    """The segmenter's labels of a preprocessed case (its channels), on the same grid."""
    net = run.trained.net
    x = torch.from_numpy(np.stack([v.array for v in image]).astype(np.float32))[None]
    with torch.no_grad():
        logits = SlidingWindowInferer(run.trained.config.patch_size, out_device="cpu").logits(
            net, x.to(next(net.parameters()).device))
    return logits.argmax(0).numpy().astype(np.uint8)


def _crop(array: np.ndarray, start: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """A patch of ``array`` at ``start`` (may hang outside: padded with 0), as ``read_patch``."""
    out = np.zeros(tuple(int(s) for s in size), array.dtype)
    lo = [max(0, int(s)) for s in start]
    hi = [min(n, int(s) + int(w)) for n, s, w in zip(array.shape, start, size, strict=True)]
    if all(h > low for h, low in zip(hi, lo, strict=True)):
        dst = tuple(slice(low - s, h - s) for low, h, s in zip(lo, hi, start, strict=True))
        out[dst] = array[tuple(slice(low, h) for low, h in zip(lo, hi, strict=True))]
    return out


def robust_z(values: Sequence[float], floor: float) -> np.ndarray:
    """(v − median) / max(1.4826 × MAD, ``floor``): the robust z-score of each value.

    ``floor`` is the smallest spread taken as real (differences below it are noise), so values
    that are nearly all equal do not turn a rounding difference into an outlier.
    """
    v = np.asarray(values, float)
    if not len(v):
        return v
    centre = np.median(v)
    return (v - centre) / max(1.4826 * float(np.median(np.abs(v - centre))), floor)


#: The smallest spread :func:`robust_z` takes as real: QAM score (bounded to ±2), a volume's
#: share of the organ's median volume, Dice.
SCORE_FLOOR, VOLUME_FLOOR, DICE_FLOOR = 0.01, 0.02, 0.01


def audit_rows(measured: dict[str, dict[str, Measured]],
               volumes: dict[str, dict[str, float]]) -> list[OrganRow]:
    """Every (case, organ) measured, with its distrust by each ranking (module doc); without
    the QAM's measures (NaN) there is no ``qam`` distrust."""
    rows: list[OrganRow] = []
    names = sorted({o for m in measured.values() for o in m})
    for organ in names:
        cases = [c for c in measured if organ in measured[c]]
        got = [measured[c][organ] for c in cases]
        volume = np.array([volumes[c].get(organ, 0.0) for c in cases])
        z = {"model": -robust_z([m.model_dice for m in got], DICE_FLOOR),
             "qam": robust_z([m.qam_gain for m in got], SCORE_FLOOR),
             "volume": np.abs(robust_z(volume, VOLUME_FLOOR * max(float(np.median(volume)),
                                                                  1e-6)))}
        if not np.all(np.isfinite(z["qam"])):
            del z["qam"]
        for i, case in enumerate(cases):
            rows.append(OrganRow(case, organ, got[i].qam_score, got[i].qam_gain,
                                 float(volume[i]), got[i].model_dice,
                                 {name: float(z[name][i]) for name in RANKINGS if name in z}))
    return rows


def rank_cases(rows: Sequence[OrganRow], ranking: str = RANKINGS[0]) -> list[dict[str, Any]]:
    """Cases, most distrusted first: ``{"case", "distrust", "organs"}`` with the case's organs
    most distrusted first (``{"organ", "distrust"}``).

    Raises:
        InvalidInputError: an unknown ranking, or one the rows lack (``qam`` without a QAM).
    """
    _check_ranking(rows, ranking)
    by_case: dict[str, list[OrganRow]] = {}
    for row in rows:
        by_case.setdefault(row.case, []).append(row)
    out = []
    for case, organ_rows in by_case.items():
        ordered = sorted(organ_rows, key=lambda r: -r.distrust[ranking])
        out.append({"case": case, "distrust": ordered[0].distrust[ranking],
                    "organs": [{"organ": r.organ, "distrust": r.distrust[ranking]}
                               for r in ordered]})
    return sorted(out, key=lambda c: (-c["distrust"], c["case"]))


def rank_organs(rows: Sequence[OrganRow], ranking: str = RANKINGS[0]) -> list[OrganRow]:
    """Every (case, organ), most distrusted first by ``ranking`` (raises as :func:`rank_cases`)."""
    _check_ranking(rows, ranking)
    return sorted(rows, key=lambda r: (-r.distrust[ranking], r.case, r.organ))


def _check_ranking(rows: Sequence[OrganRow], ranking: str) -> None:
    if ranking not in RANKINGS:
        raise InvalidInputError(f"unknown ranking {ranking!r}; choose from {', '.join(RANKINGS)}")
    if rows and ranking not in rows[0].distrust:
        raise InvalidInputError(f"ranking {ranking!r} needs a run trained with the QAM "
                                "(sample_weighting: qam)")


def organ_volumes(cache: CaseCache, case_ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """case -> organ -> volume (mL) from the stored voxel counts of a cache."""
    out = {}
    for cid in case_ids:
        voxel_ml = float(np.prod(cache.geometry(cid).spacing)) / 1000.0
        counts = cache.voxel_counts(cid)
        out[cid] = {o.name: counts[o.label] * voxel_ml for o in cache.organs if o.label in counts}
    return out


def measure_cases(run: AuditedRun, cache: CaseCache, case_ids: Sequence[str],
                  patches: int = PATCHES, seed: int = 0,
                  on_case: Callable[[str, int, int], None] | None = None
                  ) -> dict[str, dict[str, Measured]]:
    """:func:`measure_case` of every case, reporting each to ``on_case(case, done, total)``."""
    out = {}
    for i, cid in enumerate(case_ids):
        out[cid] = measure_case(run, cache, cid, patches, seed)
        if on_case is not None:
            on_case(cid, i + 1, len(case_ids))
    return out


def precision_recall(ranked: Sequence[str], truth: set[str], k: int) -> tuple[float, float]:
    """(precision, recall) of the first ``k`` of ``ranked`` against the set ``truth``."""
    if k < 1:
        raise InvalidInputError(f"k must be at least 1, got {k}")
    hits = len(set(ranked[:k]) & truth)
    return hits / min(k, len(ranked)) if ranked else 0.0, hits / len(truth) if truth else 1.0
