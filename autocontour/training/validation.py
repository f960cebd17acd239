"""Validation during training: whole cases by sliding-window inference, Dice per organ.

Each validation case is read from the preprocessed cache (the network's grid) and predicted by
the one sliding-window inferer of the package (:class:`~autocontour.models.inferer.
SlidingWindowInferer`: windows of the training patch size, overlap 0.5, Gaussian weighting, spec
B7), the same windows that contour a CT; 2-D networks predict slice by slice. The windows run on
the network's device, the logits are put together on the CPU, and their arg-max is compared with
the labels on the same grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from autocontour.data.cache import CaseCache
from autocontour.evaluation.overlap import dice
from autocontour.models.inferer import SlidingWindowInferer
from autocontour.organs import OrganSet
from autocontour.training.losses import SegmentationLoss


@dataclass(frozen=True)
class CaseScore:
    """One validation case: its loss and the Dice of each organ its labels contain."""

    case_id: str
    loss: float
    dice: dict[str, float]


@torch.no_grad()
def score_cases(net: nn.Module, cache: CaseCache, case_ids: Sequence[str],
                patch_size: Sequence[int], organs: OrganSet, loss_fn: SegmentationLoss,
                device: torch.device, amp: bool = False) -> list[CaseScore]:
    """Loss and Dice per organ of each case (organs absent from a case's labels are left out).

    ``organs`` are the organs the network is trained on: labels of any other organ count as
    background (``TrainConfig.organs``).
    """
    was_training = net.training
    net.eval()
    scores = []
    keep = np.asarray(organs.keep_lookup(), dtype=np.int64)
    inferer = SlidingWindowInferer(tuple(patch_size), amp=amp, out_device="cpu")
    for cid in case_ids:
        volumes, labels = cache.load_channels(cid)
        truth = keep[labels.array]
        image = torch.from_numpy(np.stack([np.asarray(v.array, np.float32) for v in volumes])
                                 )[None].to(device)
        target = torch.from_numpy(truth)[None, None]
        logits = inferer.logits(net, image)[None]
        prediction = logits.argmax(1)[0].numpy()
        dices = {organ.name: dice(prediction == organ.label, truth == organ.label)
                 for organ in organs if (truth == organ.label).any()}
        scores.append(CaseScore(cid, float(loss_fn.per_sample(logits, target).mean()), dices))
    net.train(was_training)
    return scores


def summarise(scores: Sequence[CaseScore], organs: OrganSet) -> dict[str, float | None]:
    """Validation metrics from case scores (in case-ID order, so the same on every rank).

    An organ's Dice is the mean over the cases whose labels contain it (an organ rightly absent
    is not a success to average in); the mean Dice is the mean over organs that have one.

    Returns:
        {"val_loss", "val_dice_mean", "dice_<organ>" per organ (None when in no case)}.
    """
    scores = sorted(scores, key=lambda s: s.case_id)
    per_organ = {name: [s.dice[name] for s in scores if name in s.dice] for name in organs.names}
    means = {name: float(np.mean(v)) if v else None for name, v in per_organ.items()}
    present = [v for v in means.values() if v is not None]
    return {"val_loss": float(np.mean([s.loss for s in scores])) if scores else None,
            "val_dice_mean": float(np.mean(present)) if present else None,
            **{f"dice_{name}": value for name, value in means.items()}}
