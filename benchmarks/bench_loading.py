"""Training-data loading: cache patch reads vs NIfTI, and whether the loader keeps a 3-D U-Net fed.

Builds head-and-neck phantom cases into a temporary HDF5 cache and as NIfTI files, then measures

(a) random-patch reads per second from the cache against what a naive loader does with NIfTI
    (``read_volume`` of image and labels, then crop), for the same patches;
(b) a DataLoader with 2 workers (batches of 2 patches, intensity scaling + the default
    augmentation) against one forward+backward+Adam step of a 3-D U-Net with seed 002's defaults
    (channels 16/32/64/96/128, 3x3x3 conv, BatchNorm, ELU). Our own 3-D U-Net is issue 5's; until
    it lands the stand-in is ``monai.networks.nets.UNet`` (4 strided down-samplings).

The requirement: loader time per batch (2 workers, no training competing) below the step time.
The time the training loop actually waits for the loader, with both sharing the CPU, is printed
as well.

    python benchmarks/bench_loading.py [--cases 8] [--shape 96 256 256] [--patch 64 128 128]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.networks.nets import UNet
from monai.transforms import Compose, ScaleIntensityRanged
from torch.utils.data import DataLoader

from autocontour.data.augment import AugmentConfig, build_augmentation
from autocontour.data.cache import CaseCache, write_cache
from autocontour.data.folder import DatasetFolder
from autocontour.data.patches import PatchDataset
from autocontour.io import read_volume, write_volume
from autocontour.organs import HEAD_NECK
from autocontour.phantoms import head_neck_case


def build(folder: Path, n_cases: int, shape: tuple[int, int, int]) -> CaseCache:
    """Phantom cases into ``folder``: a training cache plus <id>_ct.nii.gz / <id>_label.nii.gz."""
    cases = []
    for seed in range(n_cases):
        case = head_neck_case(seed, shape)
        write_volume(case.ct, folder / f"{case.case_id}_ct.nii.gz")
        write_volume(case.labels, folder / f"{case.case_id}_label.nii.gz")
        cases.append((case.case_id, case.ct, case.labels))
    return write_cache(DatasetFolder(folder).cache_path, cases, HEAD_NECK)


def crop(array: np.ndarray, start: tuple[int, ...], size: tuple[int, ...], fill: float
         ) -> np.ndarray:
    """The patch a naive loader cuts from a whole volume, padded like the cache pads."""
    out = np.full(size, fill, array.dtype)
    lo = [max(0, s) for s in start]
    hi = [min(n, s + w) for n, s, w in zip(array.shape, start, size, strict=True)]
    src = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    dst = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start, strict=True))
    out[dst] = array[src]
    return out


def patch_reads(cache: CaseCache, folder: Path, patch: tuple[int, int, int], n_cache: int,
                n_nifti: int) -> tuple[float, float]:
    """(cache patches/s, NIfTI patches/s) over the same PatchDataset draws."""
    ds = PatchDataset(cache, patch_size=patch, samples_per_epoch=n_cache, seed=1)
    draws = [(item["case_id"], tuple(item["start"].tolist())) for item in map(ds.__getitem__,
                                                                              range(n_cache))]
    t = time.perf_counter()
    for case_id, start in draws:
        cache.read_patch(case_id, start, patch)
    cache_rate = n_cache / (time.perf_counter() - t)
    t = time.perf_counter()
    for case_id, start in draws[:n_nifti]:
        image = read_volume(folder / f"{case_id}_ct.nii.gz").array
        label = read_volume(folder / f"{case_id}_label.nii.gz").array
        crop(image, start, patch, float(image.min()))
        crop(label, start, patch, 0)
    return cache_rate, n_nifti / (time.perf_counter() - t)


def make_loader(cache: CaseCache, patch: tuple[int, int, int], batches: int) -> DataLoader:
    transform = Compose([ScaleIntensityRanged("image", -1000.0, 1000.0, 0.0, 1.0, clip=True),
                         build_augmentation(AugmentConfig(), HEAD_NECK, spatial_dims=3)])
    ds = PatchDataset(cache, patch_size=patch, samples_per_epoch=2 * batches, transform=transform,
                      seed=0)
    return DataLoader(ds, batch_size=2, num_workers=2)


def loader_time(loader: DataLoader) -> float:
    """Seconds per batch of the loader alone, after its first batch (worker start-up)."""
    it = iter(loader)
    next(it)
    t = time.perf_counter()
    n = sum(1 for _ in it)
    return (time.perf_counter() - t) / n


def train_step(net: torch.nn.Module, opt: torch.optim.Optimizer, loss_fn: torch.nn.Module,
               batch: dict) -> None:
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(net(batch["image"]), batch["label"].long())
    loss.backward()
    opt.step()


def training(loader: DataLoader, steps_alone: int) -> tuple[float, float]:
    """(step s, wait-for-loader s per batch while training); one warm-up step first."""
    net = UNet(spatial_dims=3, in_channels=1, out_channels=len(HEAD_NECK) + 1,
               channels=(16, 32, 64, 96, 128), strides=(2, 2, 2, 2), act="ELU", norm="BATCH")
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    it = iter(loader)
    batch = next(it)
    train_step(net, opt, loss_fn, batch)
    step = []
    for _ in range(steps_alone):
        t = time.perf_counter()
        train_step(net, opt, loss_fn, batch)
        step.append(time.perf_counter() - t)
    waits = []
    while True:
        t = time.perf_counter()
        batch = next(it, None)
        if batch is None:
            break
        waits.append(time.perf_counter() - t)
        train_step(net, opt, loss_fn, batch)
    return statistics.median(step), statistics.mean(waits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--shape", type=int, nargs=3, default=(96, 256, 256), help="z y x")
    parser.add_argument("--patch", type=int, nargs=3, default=(64, 128, 128), help="z y x")
    parser.add_argument("--batches", type=int, default=8, help="batches per loader run")
    args = parser.parse_args()
    shape, patch = tuple(args.shape), tuple(args.patch)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        cache = build(Path(tmp), args.cases, shape)
        print(f"built {args.cases} phantom cases {shape} (cache + NIfTI) in "
              f"{time.perf_counter() - t:.0f} s; torch threads {torch.get_num_threads()}")
        cache_rate, nifti_rate = patch_reads(cache, Path(tmp), patch, 60, 12)
        per_batch = loader_time(make_loader(cache, patch, args.batches))
        step, wait = training(make_loader(cache, patch, args.batches + 1), steps_alone=3)
    print("3-D U-Net stand-in: monai.networks.nets.UNet(channels=(16, 32, 64, 96, 128), "
          "strides=(2, 2, 2, 2), act='ELU', norm='BATCH'), DiceCE, Adam 1e-4 (issue 5 replaces it)")
    print(f"\n| measurement ({patch[0]}x{patch[1]}x{patch[2]} patches) | value |")
    print("|---|---|")
    print(f"| cache read_patch | {cache_rate:.1f} patches/s |")
    print(f"| NIfTI (.nii.gz) read_volume image+labels, crop | {nifti_rate:.2f} patches/s |")
    print(f"| cache / NIfTI | {cache_rate / nifti_rate:.0f}x |")
    print(f"| loader alone, 2 workers, batch 2, with augmentation | {per_batch:.2f} s/batch |")
    print(f"| U-Net forward+backward+Adam step, batch 2 | {step:.2f} s/step |")
    print(f"| wait for the loader inside the training loop | {wait:.2f} s/batch |")
    verdict = "PASS" if per_batch < step else "FAIL"
    print(f"\nloader time per batch {per_batch:.2f} s < step time {step:.2f} s: {verdict}")


if __name__ == "__main__":
    main()
