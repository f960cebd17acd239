"""Class probabilities of a whole volume by Gaussian sliding windows, with optional mirrored TTA.

The same windows as validation (:func:`autocontour.training.validation.predict_logits`): MONAI
``sliding_window_inference`` with the training patch size, Gaussian weighting and the overlap
given; 2-D networks see the slices as a batch. The windows run on the network's device while the
output is put together on ``out_device`` (the CPU by default), because a whole CT's classes x
voxels would not fit next to the network in GPU memory.

Memory: the blended logits are turned into probabilities in place, and test-time augmentation
adds one more output, folded into the first channel by channel, so at most two
``(classes, Z, Y, X)`` float32 tensors exist at any time.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch
from monai.inferers import sliding_window_inference
from torch import Tensor, nn

from autocontour.errors import InvalidInputError


def predict_probabilities(net: nn.Module, image: Tensor, patch_size: Sequence[int], *,
                          overlap: float = 0.5, tta: bool = False,
                          mirror: Sequence[int] | None = None, lr_axis: int = 2,
                          sw_batch_size: int | None = None, amp: bool = False,
                          out_device: torch.device | str = "cpu") -> Tensor:
    """Softmax probabilities of a whole volume, optionally averaged with a left-right flip.

    Test-time augmentation (``tta``) also predicts the image flipped along ``lr_axis`` and flips
    that output back. A network names a paired organ by where it sits in the image, so on the
    flipped image it calls the patient's left parotid "Parotid_R"; ``mirror`` undoes that:
    channel ``c`` of the flipped pass is organ ``mirror[c]`` of the original image (e.g.
    ``organs.mirror_lookup()[:classes]``), so Parotid_L stays on the patient's left. Without
    ``mirror`` the channels are taken as they are (organ sets without left/right pairs).

    Args:
        net: a network in eval mode with ``spatial_dims`` 2 or 3 (3 when absent); it may
            return a list/tuple of outputs (every pass of a recurrent network), of which the
            last is used.
        image: ``(1, C, Z, Y, X)`` float tensor on the network's device.
        patch_size: the window ``(z, y, x)``; 2-D networks use ``(y, x)`` on each slice. An
            image smaller than the window is padded (by MONAI) and the padding cropped off.
        overlap: fraction of a window shared with its neighbour, in [0, 1).
        tta: also predict the flipped image and average the two.
        mirror: channel permutation of the flipped pass (length ``classes``); None: identity.
        lr_axis: the spatial axis (0 = z, 1 = y, 2 = x) that runs patient left-right; 2 in the
            canonical LPS layout.
        sw_batch_size: windows per forward pass (default 2 for 3-D, 8 slices' windows for 2-D).
        amp: run the network under autocast; ignored unless the image is on a CUDA device.
        out_device: where the output is put together and returned.

    Returns:
        ``(classes, Z, Y, X)`` float32 probabilities on ``out_device`` that sum to 1 over the
        classes. It is made under ``torch.inference_mode``: read it freely, but change it in
        place only inside inference mode (or ``clone()`` it first).

    Raises:
        InvalidInputError: ``image`` is not 5-D with batch 1, ``patch_size`` has not 3 sizes,
            ``lr_axis`` is not 0-2, or ``mirror`` is not a permutation of the class indices
            (checked before the first window, except its length, known after the first pass).
    """
    if image.ndim != 5 or image.shape[0] != 1:
        raise InvalidInputError(f"image must be (1, C, Z, Y, X), got {tuple(image.shape)}")
    if len(patch_size) != 3:
        raise InvalidInputError(f"patch_size must be (z, y, x), got {tuple(patch_size)}")
    if lr_axis not in (0, 1, 2):
        raise InvalidInputError(f"lr_axis must be 0, 1 or 2 (z, y, x), got {lr_axis}")
    order = _check_mirror(mirror) if tta and mirror is not None else None
    two_d = getattr(net, "spatial_dims", 3) == 2
    batch = sw_batch_size or (8 if two_d else 2)
    use_amp = amp and image.device.type == "cuda"
    out_device = torch.device(out_device)

    def forward(x: Tensor) -> Tensor:
        with torch.autocast("cuda") if use_amp else nullcontext():
            out = net(x)
        if isinstance(out, list | tuple):  # a recurrent network asked for every pass
            out = out[-1]
        return out.float()

    def one_pass(x: Tensor) -> Tensor:
        """Probabilities ``(classes, Z, Y, X)``: a view, not contiguous for 2-D networks."""
        where = {"overlap": overlap, "mode": "gaussian", "device": out_device}
        if two_d:
            slices = x[0].movedim(1, 0)  # (Z, C, Y, X): slices as a batch
            out = sliding_window_inference(slices, tuple(patch_size[1:]), batch, forward,
                                           **where).movedim(1, 0)
        else:
            out = sliding_window_inference(x, tuple(patch_size), batch, forward, **where)[0]
        return _softmax_(out)

    with torch.inference_mode():
        probs = one_pass(image)
        if tta:
            classes = probs.shape[0]
            order = list(range(classes)) if order is None else order
            if len(order) != classes:
                raise InvalidInputError(
                    f"mirror has {len(order)} entries, the network gives {classes} classes")
            flipped = one_pass(image.flip(2 + lr_axis))
            for c in range(classes):  # one (Z, Y, X) temporary at a time
                probs[order[c]].add_(flipped[c].flip(lr_axis))
            del flipped
            probs.mul_(0.5)
        return probs.contiguous()


def _softmax_(logits: Tensor) -> Tensor:
    """Softmax over dim 0 in place (no second classes x voxels tensor); returns ``logits``."""
    logits.sub_(logits.amax(0, keepdim=True))
    logits.exp_()
    logits.div_(logits.sum(0, keepdim=True))
    return logits


def _check_mirror(mirror: Sequence[int]) -> list[int]:
    """The channel permutation as a list.

    Checked before any window runs, so a bad table fails fast rather than after a whole pass.

    Raises:
        InvalidInputError: not each of 0 .. len - 1 exactly once.
    """
    order = [int(m) for m in mirror]
    if sorted(order) != list(range(len(order))):
        raise InvalidInputError(f"mirror must be a permutation of the class indices 0 .. "
                                f"{len(order) - 1}, got {order}")
    return order
