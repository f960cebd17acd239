"""The one sliding-window inferer: whole volumes through a network, for validation and prediction.

Validation during training (:mod:`autocontour.training.validation`) and contouring
(:mod:`autocontour.inference.combined`) both run networks through :class:`SlidingWindowInferer`,
so the windows, their overlap, their Gaussian weighting and their batch sizes cannot drift apart:

* MONAI ``sliding_window_inference`` with the training patch size as the window, Gaussian
  weighting and :data:`OVERLAP` (0.5, spec B7);
* 2-D networks see the slices of a volume as a batch (windows ``(y, x)`` of the patch size);
* the windows run on the network's device while the output is put together on ``out_device``
  (the CPU by default), because a whole CT's classes x voxels would not fit beside the network in
  GPU memory;
* reduced precision (``amp``) only where the hardware computes it natively (:func:`autocast_dtype`):
  float16 on a CUDA device, bfloat16 on a CPU with AVX512-BF16 or AMX (about 1.7x faster than
  float32 there; on the head-and-neck development phantoms the mean Dice moved by 0.0001 and no
  organ by more than 0.004); elsewhere float32.

:meth:`SlidingWindowInferer.logits` gives logits (validation scores a loss on them);
:meth:`SlidingWindowInferer.probabilities` turns them into softmax probabilities in place and,
with test-time augmentation, averages a left-right mirrored pass whose paired organs are swapped
back. At most two ``(classes, Z, Y, X)`` float32 tensors exist at any time.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from monai.inferers import sliding_window_inference
from torch import Tensor, nn

from autocontour.errors import InvalidInputError

#: Fraction of a window shared with its neighbour (spec B7; nnU-Net uses 0.5 as well).
OVERLAP = 0.5
#: Windows per forward pass: 3-D windows, and 2-D windows (slices).
BATCH_3D, BATCH_2D = 2, 8


def autocast_dtype(device: torch.device | str) -> torch.dtype | None:
    """The reduced precision ``device`` computes natively: float16 on CUDA, bfloat16 on a CPU
    with AVX512-BF16 or AMX tiles, None elsewhere (emulated bfloat16 would be slower than float32).
    """
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.float16
    if kind == "cpu" and _cpu_has_bf16():
        return torch.bfloat16
    return None


def _cpu_has_bf16() -> bool:
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def spatial_dims(net: nn.Module) -> int:
    """2 for a network on axial slices, 3 for a volumetric one (networks without the attribute)."""
    return int(getattr(net, "spatial_dims", 3))


@dataclass(frozen=True)
class SlidingWindowInferer:
    """Gaussian sliding windows of a network's patch size over a whole volume.

    Attributes:
        patch_size: the training patch ``(z, y, x)``; 2-D networks use ``(y, x)`` on each slice.
            An image smaller than the window is padded (by MONAI) and the padding cropped off.
        overlap: fraction of a window shared with its neighbour, in [0, 1).
        sw_batch_size: windows per forward pass (default :data:`BATCH_3D` / :data:`BATCH_2D`).
        amp: run the network under autocast in :func:`autocast_dtype` of the image's device
            (ignored where that is None).
        out_device: where the output is put together and returned.

    Raises:
        InvalidInputError: ``patch_size`` has not 3 positive sizes, or ``overlap`` is outside [0, 1).
    """

    patch_size: tuple[int, int, int]
    overlap: float = OVERLAP
    sw_batch_size: int | None = None
    amp: bool = False
    out_device: str = "cpu"

    def __post_init__(self) -> None:
        size = tuple(int(s) for s in self.patch_size)
        if len(size) != 3 or min(size) < 1:
            raise InvalidInputError(f"patch_size must be 3 positive sizes (z, y, x), got "
                             f"{tuple(self.patch_size)}")
        if not 0.0 <= float(self.overlap) < 1.0:
            raise InvalidInputError(f"overlap must lie in [0, 1), got {self.overlap}")
        object.__setattr__(self, "patch_size", size)
        object.__setattr__(self, "out_device", str(self.out_device))

    def logits(self, net: nn.Module, image: Tensor) -> Tensor:
        """Blended logits of the whole volume.

        Args:
            net: a network in eval mode; it may return a list/tuple of outputs (every pass of a
                recurrent network), of which the last is used.
            image: ``(1, C, Z, Y, X)`` float tensor on the network's device.

        Returns:
            ``(classes, Z, Y, X)`` float32 logits on ``out_device`` (a view, not contiguous, for
            2-D networks).

        Raises:
            InvalidInputError: ``image`` is not 5-D with batch 1.
        """
        if image.ndim != 5 or image.shape[0] != 1:
            raise InvalidInputError(f"image must be (1, C, Z, Y, X), got {tuple(image.shape)}")
        dtype = autocast_dtype(image.device) if self.amp else None

        def forward(x: Tensor) -> Tensor:
            with torch.autocast(image.device.type, dtype=dtype) if dtype else nullcontext():
                out = net(x)
            if isinstance(out, list | tuple):  # a recurrent network asked for every pass
                out = out[-1]
            return out.float()

        where = {"overlap": float(self.overlap), "mode": "gaussian",
                 "device": torch.device(self.out_device)}
        if spatial_dims(net) == 2:
            slices = image[0].movedim(1, 0)  # (Z, C, Y, X): slices as a batch
            padded, kept = pad_to_window(slices, self.patch_size[1:])
            return sliding_window_inference(padded, self.patch_size[1:],
                                            self.sw_batch_size or BATCH_2D, forward,
                                            **where)[kept].movedim(1, 0)
        padded, kept = pad_to_window(image, self.patch_size)
        return sliding_window_inference(padded, self.patch_size, self.sw_batch_size or BATCH_3D,
                                        forward, **where)[kept][0]

    def probabilities(self, net: nn.Module, image: Tensor, *, tta: bool = False,
                      mirror: Sequence[int] | None = None, lr_axis: int = 2) -> Tensor:
        """Softmax probabilities of the whole volume, optionally averaged with a left-right flip.

        Test-time augmentation (``tta``) also predicts the image flipped along ``lr_axis`` and
        flips that output back. A network names a paired organ by where it sits in the image, so
        on the flipped image it calls the patient's left parotid "Parotid_R"; ``mirror`` undoes
        that: channel ``c`` of the flipped pass is organ ``mirror[c]`` of the original image
        (e.g. ``organs.mirror_lookup()[:classes]``). Without ``mirror`` the channels are taken as
        they are (organ sets without left/right pairs).

        Args:
            net: see :meth:`logits`.
            image: ``(1, C, Z, Y, X)`` float tensor on the network's device.
            tta: also predict the flipped image and average the two.
            mirror: channel permutation of the flipped pass (length ``classes``); None: identity.
            lr_axis: the spatial axis (0 = z, 1 = y, 2 = x) that runs patient left-right; 2 in
                the canonical LPS layout.

        Returns:
            ``(classes, Z, Y, X)`` contiguous float32 probabilities on ``out_device`` that sum
            to 1 over the classes, made under ``torch.inference_mode`` (``clone()`` before
            changing it in place outside inference mode).

        Raises:
            InvalidInputError: ``image`` is not 5-D with batch 1, ``lr_axis`` is not 0-2, or ``mirror``
                is not a permutation of the class indices (checked before the first window,
                except its length, known after the first pass).
        """
        if lr_axis not in (0, 1, 2):
            raise InvalidInputError(f"lr_axis must be 0, 1 or 2 (z, y, x), got {lr_axis}")
        order = _check_mirror(mirror) if tta and mirror is not None else None
        with torch.inference_mode():
            probs = _softmax_(self.logits(net, image))
            if tta:
                classes = probs.shape[0]
                order = list(range(classes)) if order is None else order
                if len(order) != classes:
                    raise InvalidInputError(
                        f"mirror has {len(order)} entries, the network gives {classes} classes")
                flipped = _softmax_(self.logits(net, image.flip(2 + lr_axis)))
                for c in range(classes):  # one (Z, Y, X) temporary at a time
                    probs[order[c]].add_(flipped[c].flip(lr_axis))
                del flipped
                probs.mul_(0.5)
            return probs.contiguous()


def pad_to_window(image: Tensor, window: Sequence[int]) -> tuple[Tensor, tuple[slice, ...]]:
    """``image`` (B, C, *spatial) padded to at least ``window`` along each spatial axis with
    each channel's minimum, and the slices that cut the original back out of an output.

    Training patches that hang past a volume are padded the same way (the cache pads with each
    channel's minimum, air), so a volume smaller than the window must look alike here. MONAI's
    own padding fills with 0, which after a z-score is soft tissue: a band of "tissue" around a
    small volume that no training patch ever showed.
    """
    spatial = image.shape[2:]
    short = [max(0, int(w) - int(n)) for n, w in zip(spatial, window, strict=True)]
    kept = (slice(None), slice(None),
            *(slice(s // 2, s // 2 + n) for s, n in zip(short, spatial, strict=True)))
    if not any(short):
        return image, kept
    lows = image.transpose(0, 1).flatten(1).amin(1)  # (C,) each channel's minimum
    out = lows.view(1, -1, *([1] * len(spatial))).to(image.dtype).expand(
        image.shape[0], image.shape[1], *(n + s for n, s in zip(spatial, short, strict=True)))
    out = out.clone()
    out[kept] = image
    return out, kept


def _softmax_(logits: Tensor) -> Tensor:
    """Softmax over dim 0 in place (no second classes x voxels tensor); returns ``logits``."""
    logits.sub_(logits.amax(0, keepdim=True))
    logits.exp_()
    logits.div_(logits.sum(0, keepdim=True))
    return logits


def _check_mirror(mirror: Sequence[int]) -> list[int]:
    """The channel permutation as a list, checked before any window runs.

    Raises:
        InvalidInputError: not each of 0 .. len - 1 exactly once.
    """
    order = [int(m) for m in mirror]
    if sorted(order) != list(range(len(order))):
        raise InvalidInputError(f"mirror must be a permutation of the class indices 0 .. "
                         f"{len(order) - 1}, got {order}")
    return order
