"""DDP under torchrun on CPU (gloo): two ranks sample different patches, end with equal weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from autocontour.errors import InvalidInputError
from autocontour.training.distributed import env_from_environment

SCRIPT = '''
import hashlib, json, sys
from pathlib import Path
from autocontour.training import Callback, TrainConfig, Trainer
from autocontour.training.distributed import distributed_session

class Report(Callback):
    def on_fit_start(self, trainer):
        item = trainer.dataset[0]
        self.first = [item["case_id"], item["start"].tolist()]

    def on_fit_end(self, trainer):
        Path(sys.argv[2], f"rank{trainer.env.rank}.json").write_text(json.dumps({
            "hash": digest(trainer.network), "world": trainer.env.world_size, "first": self.first,
            "seed": trainer.dataset.seed,
            "extra": {n: digest(e.module) for n, e in trainer.extra.items()}}))

def digest(module):
    sha = hashlib.sha256()
    for p in module.parameters():
        sha.update(p.detach().cpu().numpy().tobytes())
    return sha.hexdigest()

with distributed_session():
    Trainer(TrainConfig.from_yaml(sys.argv[1]), callbacks=[Report()], progress=False).fit()
'''


def _torchrun(values: dict, tmp_path: Path) -> list[dict]:
    """Train ``values`` on two CPU ranks; each rank's report."""
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(values))
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    reports = tmp_path / "reports"
    reports.mkdir()
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
         str(script), str(config), str(reports)],
        check=False, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((reports / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_torchrun_two_ranks_agree(tiny_values: Callable[..., dict], tmp_path: Path) -> None:
    ranks = _torchrun(tiny_values(tmp_path / "run"), tmp_path)
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["hash"] == ranks[1]["hash"]  # DDP kept the weights in step
    assert [r["seed"] for r in ranks] == [0, 1] and ranks[0]["first"] != ranks[1]["first"]
    run = tmp_path / "run"  # rank 0 alone wrote the run folder
    assert (run / "last.pt").is_file() and (run / "metrics.jsonl").is_file()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2


def test_torchrun_two_ranks_with_qam(tiny_values: Callable[..., dict], tmp_path: Path) -> None:
    """Each rank weighs its own batch; Φ stays in step; the log holds both ranks' samples."""
    values = tiny_values(tmp_path / "run", epochs=1, sample_weighting={"channels": [4]})
    ranks = _torchrun(values, tmp_path)
    assert ranks[0]["hash"] == ranks[1]["hash"]
    assert ranks[0]["extra"]["qam"] == ranks[1]["extra"]["qam"]
    rows = [json.loads(line) for line in
            (tmp_path / "run" / "sample_weights.jsonl").read_text().splitlines()]
    assert sum(r["count"] for r in rows) == 2 * 2 * 2  # steps x batch x ranks
    assert sum(r["mean_weight"] * r["count"] for r in rows) == pytest.approx(8.0)
    assert "distrusted_cases" in json.loads((tmp_path / "run" / "result.json").read_text())


def test_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    env = env_from_environment()
    assert (env.rank, env.world_size, env.is_main, env.distributed) == (0, 1, True, False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    env = env_from_environment()
    assert (env.rank, env.is_main, env.distributed) == (1, False, True)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(InvalidInputError, match="rank 2 does not fit world size 2"):
        env_from_environment()
