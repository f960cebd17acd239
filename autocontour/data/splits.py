"""k-fold cross-validation splits by case, saved once and reused by every model.

A case never has slices or patches in two folds. Cases are stratified by which organs they
carry (e.g. male pelvis cases with a prostate, female ones with a CTV) so every fold sees each
kind in proportion. The file format is nnU-Net's ``splits_final.json``: a list of
``{"train": [...], "val": [...]}``, one per fold; where a data set keeps its splits is
:meth:`autocontour.data.folder.DatasetFolder.splits_path`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from autocontour.errors import InvalidInputError


def make_splits(cases: dict[str, list[str]], folds: int, seed: int = 0) -> list[dict[str, list[str]]]:
    """Split case IDs into ``folds`` folds of near-equal size, stratified by organ content.

    Args:
        cases: case ID -> names of the organs present (the stratum).
        folds: number of folds (the sources used 3 and 5).
        seed: shuffle seed; the same seed and cases give the same splits.

    Raises:
        InvalidInputError: fewer than two folds, or fewer cases than folds.
    """
    if folds < 2:
        raise InvalidInputError(f"k-fold needs at least 2 folds, got {folds}")
    if len(cases) < folds:
        raise InvalidInputError(f"{folds} folds need at least {folds} cases, the data set has "
                                f"{len(cases)}")
    rng = np.random.default_rng(seed)
    strata: dict[tuple[str, ...], list[str]] = {}
    for cid in sorted(cases):
        strata.setdefault(tuple(sorted(cases[cid])), []).append(cid)
    # Deal each stratum round-robin, continuing where the previous stratum stopped, so fold
    # sizes differ by at most one and every stratum spreads over the folds.
    assignment: dict[str, int] = {}
    position = 0
    for key in sorted(strata):
        members = list(rng.permutation(strata[key]))
        for cid in members:
            assignment[str(cid)] = position % folds
            position += 1
    ordered = sorted(cases)
    return [{"train": [c for c in ordered if assignment[c] != k],
             "val": [c for c in ordered if assignment[c] == k]} for k in range(folds)]


def save_splits(splits: list[dict[str, list[str]]], path: Path) -> Path:
    path.write_text(json.dumps(splits, indent=2))
    return path


def load_splits(path: Path, case_ids: list[str] | None = None) -> list[dict[str, list[str]]]:
    """Read splits, checking (when ``case_ids`` is given) that they name only known cases.

    Raises:
        InvalidInputError: unreadable file, or a case that is not in the data set.
    """
    try:
        splits = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path}: unreadable splits file ({exc})") from exc
    if case_ids is not None:
        known = set(case_ids)
        unknown = sorted({c for s in splits for c in s["train"] + s["val"]} - known)
        if unknown:
            raise InvalidInputError(f"{path}: names cases not in the data set: {unknown}")
    return splits
