"""What pseudo-MRI costs (issue 18): converting a whole CT, and one CycleGAN training step.

1. ``convert``: a head-and-neck phantom CT of ``--shape`` (default 512x512x160, X x Y x Z) is
   turned into a pseudo-MRI by the improved generator at the source's widths (64 channels, 2
   residual blocks; untrained weights: time and memory do not depend on their values), slice by
   slice in batches of ``--batch`` (:func:`autocontour.synthesis.ct_to_pseudo_mri`). Reported:
   wall time of the conversion, and the process's peak resident memory (``ru_maxrss``) against
   its resident memory just before (CT, model and PyTorch loaded).
2. ``train-step``: one full CycleGAN step (both generators, D_MR, D_CT and the denoising
   discriminator, forward + backward + both Adam updates) at the source's size, 256 x 256 slices,
   batch 1, 64-channel networks, for the improved and for the original generator. On CPU its
   memory is the peak RSS over the RSS before the first step; on CUDA
   ``torch.cuda.max_memory_allocated`` (the source's claim: the improved network trains in under
   10 GB of GPU memory). Weights, gradients and Adam states are counted in both.

Each measurement runs in a fresh Python process, so one does not inherit another's peak.

    python benchmarks/bench_pseudo_mri.py [--shape 512x512x160] [--batch 4] [--threads 1]
                                          [--device cpu|cuda] [--only convert|train-step]

Writes a table to stdout and, with ``--out FILE``, the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _rss_mib() -> float:
    """This process's resident memory now (MiB), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_convert(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from autocontour.models.cyclegan import ImprovedResnetGenerator
    from autocontour.phantoms import head_neck_case
    from autocontour.synthesis.pseudo_mri import Normalisation, PseudoMRIModel, ct_to_pseudo_mri

    torch.set_num_threads(args.threads)
    z, y, x = args.shape
    t = time.perf_counter()
    ct = head_neck_case(seed=1, shape=(z, y, x)).ct
    phantom_s = time.perf_counter() - t
    torch.manual_seed(0)
    net = ImprovedResnetGenerator().eval().to(args.device)
    model = PseudoMRIModel(net, Normalisation((-1024.0, 1500.0), (0.5, 99.5)), {}, 0)
    with torch.inference_mode():  # warm-up: the first call initialises oneDNN/cuDNN
        net(torch.zeros(1, 1, 64, 64, device=args.device))
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    before, peak_before = _rss_mib(), _peak_mib()
    t = time.perf_counter()
    mr = ct_to_pseudo_mri(ct, model, batch_slices=args.batch, device=args.device)
    seconds = time.perf_counter() - t
    out = {"what": "convert", "shape_xyz": [x, y, z], "batch_slices": args.batch,
           "threads": args.threads, "device": args.device, "seconds": round(seconds, 2),
           "seconds_per_slice": round(seconds / z, 3), "phantom_seconds": round(phantom_s, 1),
           "rss_before_mib": round(before, 1), "peak_rss_mib": round(_peak_mib(), 1),
           "peak_rss_before_mib": round(peak_before, 1),
           "ct_mib": round(ct.array.nbytes / 2**20, 1),
           "pseudo_mri_mib": round(mr.array.nbytes / 2**20, 1),
           "generator_parameters": sum(p.numel() for p in net.parameters())}
    if args.device == "cuda":
        out["cuda_peak_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def child_train_step(args: argparse.Namespace, improved: bool) -> dict[str, Any]:
    import torch

    from autocontour.synthesis.pseudo_mri import CycleGAN, PseudoMRIConfig

    torch.set_num_threads(args.threads)
    size = args.train_size
    config = PseudoMRIConfig(out="unused", ct_images=("ct",), mr_images=("mr",),
                             improved_generator=improved, denoising_discriminator=True,
                             crop_size=size, batch_size=1, pool_size=50, device=args.device)
    gan = CycleGAN(config, torch.device(args.device))
    gen = torch.Generator().manual_seed(0)
    ct = torch.rand(1, 1, size, size) * 2 - 1
    mr = torch.rand(1, 1, size, size) * 2 - 1
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    before = _rss_mib()
    times = []
    for _ in range(args.train_steps):
        t = time.perf_counter()
        gan.step(ct, mr, gen)
        if args.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    params = {k: sum(p.numel() for p in v.parameters()) for k, v in gan.nets.items()}
    out = {"what": "train-step", "generator": "improved" if improved else "original",
           "size": size, "batch": 1, "threads": args.threads, "device": args.device,
           "steps": args.train_steps, "seconds_per_step": round(min(times), 2),
           "rss_before_mib": round(before, 1), "peak_rss_mib": round(_peak_mib(), 1),
           "parameters": params}
    if args.device == "cuda":
        out["cuda_peak_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _shape(text: str) -> tuple[int, int, int]:
    x, y, z = (int(v) for v in text.lower().split("x"))
    return z, y, x


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=_shape, default=(160, 512, 512), help="X x Y x Z of the CT")
    p.add_argument("--batch", type=int, default=4, help="slices per generator call")
    p.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--train-size", type=int, default=256, help="training slice side")
    p.add_argument("--train-steps", type=int, default=2, help="training steps timed")
    p.add_argument("--only", choices=["convert", "train-step"], default=None)
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.child is not None:
        result = (child_convert(args) if args.child == "convert"
                  else child_train_step(args, args.child == "train-improved"))
        print(json.dumps(result))
        return 0
    children = []
    if args.only in (None, "convert"):
        children.append("convert")
    if args.only in (None, "train-step"):
        children += ["train-improved", "train-original"]
    passed = [a for a in (argv if argv is not None else sys.argv[1:])
              if not a.startswith("--out") and a != args.out]
    results = []
    for child in children:
        done = subprocess.run([sys.executable, __file__, *passed, "--child", child],
                              capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = results[-1]
        if r["what"] == "convert":
            x, y, z = r["shape_xyz"]
            print(f"convert {x}x{y}x{z} CT ({r['device']}, {r['threads']} thread(s), batch "
                  f"{r['batch_slices']}): {r['seconds']} s ({r['seconds_per_slice']} s/slice); "
                  f"RSS {r['rss_before_mib']} MiB before, peak {r['peak_rss_mib']} MiB "
                  f"(CT {r['ct_mib']} MiB, pseudo-MRI {r['pseudo_mri_mib']} MiB)")
        else:
            gpu = (f", CUDA peak {r['cuda_peak_allocated_mib']} MiB"
                   if "cuda_peak_allocated_mib" in r else "")
            print(f"train step, {r['generator']} generator, {r['size']}x{r['size']} batch 1 "
                  f"({r['device']}): {r['seconds_per_step']} s/step; RSS {r['rss_before_mib']} "
                  f"MiB before, peak {r['peak_rss_mib']} MiB{gpu}; parameters "
                  f"{sum(r['parameters'].values()):,}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
