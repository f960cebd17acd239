"""Per-patch vs batch Dice for the small head & neck organs: the shipped model's 2-D member.

The first shipped model (per-patch Dice + CE) found none of the ten smallest organs (lenses,
optic nerves, chiasm, pituitary, inner ears, cochleae) after 1400 steps. This trains the 2-D
member of ``scripts/train_default_model.py`` twice on fold 0 of its 40 phantoms, for a short
budget, changing only ``loss.batch_dice``, and tabulates the validation Dice per organ:

    python experiments/batch_dice_small_organs.py      # ~7 min per run on 1 core, both at once

Writes ``--out`` (default ``experiments/results/batch_dice``): ``table.md`` (Dice per organ and
validation, both runs), and each run's ``config.yaml`` and ``metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = {"per_patch": False, "batch": True}


def train(name: str, batch_dice: bool, args: argparse.Namespace) -> Path:
    """One 2-D run (the shipped plan, fewer epochs, validation every 2); returns its folder."""
    import torch

    sys.path.insert(0, str(ROOT / "scripts"))
    import train_default_model as recipe

    from autocontour.artifacts.config import TrainConfig
    from autocontour.training.engine import Trainer

    torch.set_num_threads(args.threads)
    plan = next(p for p in recipe.plans() if p.name == "2d")
    run = args.work / name
    config = {**plan.config, "epochs": args.epochs, "val_every": 2,
              "loss": {**plan.config["loss"], "batch_dice": batch_dice},
              "dataset": str(recipe.make_dataset(args.dataset_work, 40)), "out": str(run),
              "fold": 0, "folds": 5}
    if not (run / "result.json").is_file():
        Trainer(TrainConfig.from_dict(config), progress=False).fit(
            resume=(run / "last.pt").is_file())
    return run


def validations(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("val_dice_mean") is not None]


def table(runs: dict[str, Path]) -> str:
    """Organs as rows, (run, epoch) as columns of validation Dice."""
    cols = [(name, row) for name, run in runs.items() for row in validations(run)]
    organs = [k[5:] for k in cols[0][1] if k.startswith("dice_")]
    head = ["organ", *(f"{name}, step {row['step']}" for name, row in cols)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for organ in organs:
        lines.append(f"| {organ} | " + " | ".join(f"{row['dice_' + organ]:.3f}"
                                                  for _, row in cols) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{row['val_dice_mean']:.3f}**"
                                               for _, row in cols) + " |")
    lines.append("| elapsed s | " + " | ".join(f"{row['seconds']:.0f}" for _, row in cols)
                 + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs of 100 steps (batch 16)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--work", type=Path, default=Path("runs/batch-dice"))
    parser.add_argument("--dataset-work", type=Path, default=Path("runs/default-model"),
                        help="where the shipped model's phantom data set is (made if absent)")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments/results/batch_dice")
    args = parser.parse_args()
    with ProcessPoolExecutor(len(RUNS), mp_context=get_context("spawn")) as pool:
        futures = {n: pool.submit(train, n, bd, args) for n, bd in RUNS.items()}
        runs = {n: f.result() for n, f in futures.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    for name, run in runs.items():
        for f in ("config.yaml", "metrics.jsonl"):
            shutil.copyfile(run / f, args.out / f"{name}_{f}")
    text = ("# 2-D member: per-patch Dice vs batch Dice (validation Dice, fold 0, 8 phantoms)\n\n"
            f"Command: `python experiments/batch_dice_small_organs.py --epochs {args.epochs}`"
            "\n\n" + table(runs) + "\n\nOne seed (0), one fold, 8 validation phantoms; the two "
            f"runs shared the 2 cores ({args.threads} torch thread each). Only `loss.batch_dice` "
            "differs (see the config files).\n")
    (args.out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
