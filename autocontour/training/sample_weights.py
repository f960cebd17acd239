"""The per-sample loss weights of a run, by case: which training cases the model distrusts.

When a run weighs its samples (the QAM, ``autocontour.training.qam``), every step's weights are
recorded with the case each patch came from. A weight is logged *normalised*: w_i × B, the
weight times the batch size, so 1.0 is an average sample, whatever the batch size (the weights of
a batch sum to 1 before the scaling); under DDP B is the rank's local batch.

Files in the run folder (rank 0 writes; every rank's weights are gathered first):

* ``sample_weights.jsonl``: one row per epoch and case drawn in it,
  ``{"epoch": 1-based, "case": id, "mean_weight": mean of w_i × B, "count": patches}``.
  A resumed run drops the rows written after its checkpoint and appends.
* ``result.json`` gains ``distrusted_cases``: the :data:`DISTRUSTED` cases with the lowest mean
  normalised weight over the whole run (every logged patch counts once), lowest first, each
  ``{"case", "mean_weight", "count"}``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from autocontour.training import distributed as ddp

#: How many of the lowest-weighted cases ``result.json`` lists.
DISTRUSTED = 10
FILE = "sample_weights.jsonl"


class SampleWeightLog:
    """Accumulates one epoch's weights by case; writes ``sample_weights.jsonl`` (module doc)."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / FILE
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)

    def start(self, epoch: int, is_main: bool) -> None:
        """Begin at ``epoch`` completed epochs: forget what is pending, drop later file rows."""
        self._sums.clear()
        self._counts.clear()
        if is_main and self.path.exists():
            rows = [r for r in read_weight_rows(self.path) if r["epoch"] <= epoch]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def add(self, case_ids: Sequence[str], weights: Tensor) -> None:
        """Record one batch: its cases and its weights ``(B,)`` (summing to 1)."""
        values = weights.detach().float().cpu().tolist()
        if len(values) != len(case_ids):
            raise ValueError(f"{len(values)} weights for {len(case_ids)} cases")
        for case, w in zip(case_ids, values, strict=True):
            self._sums[str(case)] += w * len(values)
            self._counts[str(case)] += 1

    def end_epoch(self, epoch: int, env: ddp.DistEnv) -> list[dict[str, Any]]:
        """Gather every rank's weights of epoch ``epoch`` (1-based), append its rows (rank 0).

        Collective under DDP: every rank must call it. Returns the rows (sorted by case).
        """
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        for part_sums, part_counts in ddp.gather((dict(self._sums), dict(self._counts)), env):
            for case, value in part_sums.items():
                sums[case] += value
                counts[case] += part_counts[case]
        self._sums.clear()
        self._counts.clear()
        rows = [{"epoch": epoch, "case": case, "mean_weight": sums[case] / counts[case],
                 "count": counts[case]} for case in sorted(sums)]
        if env.is_main:
            with self.path.open("a") as fh:
                fh.write("".join(json.dumps(r) + "\n" for r in rows))
        return rows

    def distrusted(self, n: int = DISTRUSTED) -> list[dict[str, Any]]:
        """The ``n`` cases of the file with the lowest mean weight over all epochs (module doc)."""
        return lowest_weighted(read_weight_rows(self.path), n)


def read_weight_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``sample_weights.jsonl`` (empty when absent)."""
    if not Path(path).is_file():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def lowest_weighted(rows: Sequence[dict[str, Any]], n: int = DISTRUSTED) -> list[dict[str, Any]]:
    """The ``n`` cases with the lowest count-weighted mean weight of ``rows``, lowest first."""
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        sums[row["case"]] += row["mean_weight"] * row["count"]
        counts[row["case"]] += row["count"]
    means = sorted((sums[c] / counts[c], c) for c in sums if counts[c])
    return [{"case": c, "mean_weight": m, "count": counts[c]} for m, c in means[:n]]
