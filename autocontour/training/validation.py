"""Validation during training: whole cases by sliding-window inference, Dice per organ.

Each validation case is read from the preprocessed cache (the network's grid) and predicted by
MONAI ``sliding_window_inference`` with windows of the training patch size, overlap 0.5 and
Gaussian weighting (spec B7); 2-D networks predict slice by slice. The windows run on the
network's device, the logits are put together on the CPU, and their arg-max is compared with the
labels on the same grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from torch import Tensor, nn

from autocontour.data.cache import CaseCache
from autocontour.evaluation.overlap import dice
from autocontour.organs import OrganSet
from autocontour.training.losses import SegmentationLoss

OVERLAP = 0.5


@dataclass(frozen=True)
class CaseScore:
    """One validation case: its loss and the Dice of each organ its labels contain."""

    case_id: str
    loss: float
    dice: dict[str, float]


def predict_logits(net: nn.Module, image: Tensor, patch_size: Sequence[int],
                   amp: bool = False, out_device: torch.device | None = None) -> Tensor:
    """Logits of a whole volume by Gaussian-weighted sliding windows.

    Args:
        net: a network in eval mode (``spatial_dims`` 2 or 3).
        image: ``(1, C, Z, Y, X)`` on the network's device.
        patch_size: the window ``(z, y, x)``; 2-D networks use ``(y, x)`` on each slice.
        amp: run the network under CUDA autocast.
        out_device: where the logits are put together (default: the image's device); the CPU
            keeps a whole CT's logits (classes x voxels) out of GPU memory.

    Returns:
        Logits ``(1, classes, Z, Y, X)`` (float32, on ``out_device``).
    """
    def forward(x: Tensor) -> Tensor:
        with (torch.autocast("cuda") if amp else nullcontext()):
            out = net(x)
        if isinstance(out, list | tuple):  # a recurrent network asked for every pass
            out = out[-1]
        return out.float()

    where = {"overlap": OVERLAP, "mode": "gaussian", "device": out_device or image.device}
    if getattr(net, "spatial_dims", 3) == 2:
        slices = image[0].movedim(1, 0)  # (Z, C, Y, X): slices as a batch
        logits = sliding_window_inference(slices, tuple(patch_size[1:]), 8, forward, **where)
        return logits.movedim(0, 1)[None]
    return sliding_window_inference(image, tuple(patch_size), 2, forward, **where)


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
    for cid in case_ids:
        volume, labels = cache.load(cid)
        truth = keep[labels.array]
        image = torch.from_numpy(np.asarray(volume.array, np.float32))[None, None].to(device)
        target = torch.from_numpy(truth)[None, None]
        logits = predict_logits(net, image, patch_size, amp, out_device=torch.device("cpu"))
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
