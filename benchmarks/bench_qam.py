"""What the QAM costs per training step (issue 17): the segmenter alone against segmenter + QAM.

Both variants train on the same input, a batch of random ``1 x Y x X`` slices (2-D, default) or
``1 x Z x Y x X`` patches (3-D) with random labels of ``--classes`` classes, with the engine's
per-sample loss (``SegmentationLoss``, Dice + CE) and Adam: "plain" takes the mean of the
per-sample losses, "qam" the QAM + OCM weights of ``Trainer`` (``QualityAwareness`` built from
the default ``SampleWeightingConfig``: Φ of channels 8/16/32/32, its own Adam). After
``--warmup`` steps, ``--steps`` forward + backward + optimiser steps are timed one by one; a
variant's time is the median step of its fastest round (``--rounds``, the variants alternating,
so a busy spell of the machine hits both). The overhead is qam / plain - 1 (the issue's aim: under
30 % in 2-D). Run it on a quiet machine: other processes on the CPU distort the ratio.

    python benchmarks/bench_qam.py [--device cpu|cuda] [--amp] [--dims 2|3] [--batch 8]
                                   [--size 128 128] [--classes 6] [--steps 10] [--warmup 2]
                                   [--rounds 3]

The issue's experiment trains at batch 32 on 256 x 256 slices: ``--batch 32 --size 256 256``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch

from autocontour.artifacts.config import SampleWeightingConfig
from autocontour.models import ResUNet2D, UNet3D, strides_for
from autocontour.training.losses import SegmentationLoss
from autocontour.training.qam import QualityAwareness

VARIANTS = ("plain", "qam")


def make_step(variant: str, args: argparse.Namespace) -> tuple[Callable[[], float], dict]:
    """A closure doing one training step of ``variant``, and its parameter counts."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    shape = tuple(args.size)
    if args.dims == 2:
        net = ResUNet2D(1, args.classes)
    else:
        shape = (args.depth, *shape)
        net = UNet3D(1, args.classes, strides=strides_for(shape, 5))
    net = net.to(device).train()
    optimisers = [torch.optim.Adam(net.parameters(), lr=1e-4)]
    qam = None
    if variant == "qam":
        qam = QualityAwareness.from_config(SampleWeightingConfig(), args.dims, 1, args.classes)
        qam = qam.to(device).train()
        optimisers.append(torch.optim.Adam(qam.parameters(), lr=1e-4))
    loss_fn = SegmentationLoss("dicece", reduction="none")
    amp = args.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    batch = {"image": torch.randn(args.batch, 1, *shape, device=device),
             "label": torch.randint(0, args.classes, (args.batch, 1, *shape), device=device,
                                    dtype=torch.uint8)}

    def step() -> float:
        with torch.autocast("cuda") if amp else nullcontext():
            per_sample = loss_fn.per_sample(net(batch["image"]), batch["label"])
            loss = (per_sample.mean() if qam is None
                    else (qam.weights(batch, per_sample) * per_sample).sum())
        for opt in optimisers:
            opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        for opt in optimisers:
            scaler.step(opt)
        scaler.update()
        return float(loss.detach())

    counts = {"segmenter": sum(p.numel() for p in net.parameters()),
              "phi": 0 if qam is None else sum(p.numel() for p in qam.parameters())}
    return step, counts


def time_round(step: Callable[[], float], args: argparse.Namespace) -> float:
    """Median seconds of ``--steps`` timed steps after ``--warmup`` untimed ones."""
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        step()
    sync()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    parser.add_argument("--dims", type=int, default=2, choices=[2, 3])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=[128, 128], metavar=("Y", "X"))
    parser.add_argument("--depth", type=int, default=16, help="patch depth Z (3-D only)")
    parser.add_argument("--classes", type=int, default=6,
                        help="label classes, background included (default: a chest phantom's "
                             "lungs, heart and clavicles + background)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if min(args.batch - 1, args.steps, args.rounds, args.classes - 1, *args.size) < 1 \
            or args.warmup < 0:
        parser.error("--batch and --classes must be >= 2, --steps, --rounds and --size >= 1, "
                     "--warmup >= 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")

    steps = {v: make_step(v, args) for v in VARIANTS}
    best = {v: float("inf") for v in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            best[variant] = min(best[variant], time_round(steps[variant][0], args))
    grid = " x ".join(map(str, ([args.depth] if args.dims == 3 else []) + args.size))
    print(f"QAM overhead: {args.dims}-D, batch {args.batch} x 1 x {grid}, {args.classes} classes, "
          f"Dice + CE + Adam, {args.warmup} warm-up + {args.steps} timed steps, "
          f"{args.device}{' (amp)' if args.amp and args.device == 'cuda' else ''}, "
          f"{args.rounds} round(s), torch threads {torch.get_num_threads()}")
    counts = steps["qam"][1]
    print("\n| variant | parameters | s/step | samples/s |\n|---|---|---|---|")
    for variant in VARIANTS:
        params = counts["segmenter"] + (counts["phi"] if variant == "qam" else 0)
        print(f"| {variant} | {params:,} | {best[variant]:.4f} | "
              f"{args.batch / best[variant]:.1f} |")
    print(f"Φ: {counts['phi']:,} parameters ({100 * counts['phi'] / counts['segmenter']:.2f} % "
          f"of the segmenter's {counts['segmenter']:,})")
    print(f"overhead of the QAM per step: {100 * (best['qam'] / best['plain'] - 1):+.1f} %")


if __name__ == "__main__":
    main()
