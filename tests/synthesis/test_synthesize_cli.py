"""``autocontour synthesize`` end to end on a tiny model (train a few steps, write 3 tuples, load
them as a data set), the job's cancellation, and the table of bad invocations: one line on
stderr, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from autocontour.cli import main
from autocontour.data.multimodal import load_multimodal_folder
from autocontour.errors import JobCancelled
from autocontour.jobs.synthesis import (
    SynthesisTrainRequest,
    SynthesizeRequest,
    synthesize,
    train_synthesis_model,
)
from autocontour.phantoms.brain_lesion import write_lesion_cases
from autocontour.synthesis.multimodal.generate import generate_tuple, load_synthesis_model

MODS = ["T1", "T2", "FLAIR"]
TINY = {"modalities": MODS, "width": 4, "depth": 2, "structure_width": 4,
        "structure_pools": 2, "latent_channels": 2, "disc_width": 4, "disc_pools": 2,
        "batch_size": 2, "lr": 1e-3, "device": "cpu", "structure_steps": 2, "lesion_steps": 1,
        "converter_steps": 1, "pretrain_steps": 1, "adversarial_steps": 1}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained through the CLI; returns its run folder."""
    root = tmp_path_factory.mktemp("synthesize")
    write_lesion_cases(root / "brain", 3, seed=0, size=32, modalities=MODS)
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump({"data": str(root / "brain"), "out": str(root / "run"),
                                      **TINY}))
    assert main(["synthesize", "train", str(config), "--quiet"]) == 0
    return root / "run"


def _run(capsys: pytest.CaptureFixture, argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_train_then_synthesize_then_load(trained: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    assert (trained / "model.pt").is_file() and (trained / "samples.png").is_file()
    out = tmp_path / "synthetic"
    code, stdout, err = _run(capsys, ["synthesize", "--model", str(trained / "model.pt"),
                                      "--count", "3", "-o", str(out), "--quiet"])
    assert code == 0, err
    assert "wrote 3 synthetic tuple(s) (T1, T2, FLAIR" in stdout
    cases = load_multimodal_folder(out)
    assert [c.case_id for c in cases] == ["synth_00000", "synth_00001", "synth_00002"]
    for case in cases:
        assert list(case.images) == MODS
        for volume in case.images.values():
            assert volume.shape == (1, 32, 32)
            assert 0 <= volume.array.min() and volume.array.max() <= 1
        assert case.lesion is not None and case.mask is not None
        lesion, organ = case.lesion.array > 0, case.mask.array > 0
        assert not (lesion & ~organ).any()  # the model was trained with mask_filter
        folder = out / case.case_id
        assert (folder / "structure.nii.gz").is_file()
        assert (folder / f"{case.case_id}.png").is_file()
    # the same model, seed and index give the same tuple, whatever the count
    model = load_synthesis_model(trained / "model.pt")
    again = generate_tuple(model, 2, seed=0)
    assert np.allclose(again.images["T2"], cases[2].images["T2"].array[0], atol=1e-6)
    other = generate_tuple(model, 2, seed=1)
    assert not np.array_equal(other.images["T2"], again.images["T2"])
    assert not list(tmp_path.glob(".*partial*"))


def test_cancelled_synthesis_writes_nothing(trained: Path, tmp_path: Path) -> None:
    calls: list[int] = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) >= 2
    with pytest.raises(JobCancelled, match="nothing was written"):
        synthesize(SynthesizeRequest(trained / "model.pt", tmp_path / "s", 3), cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_cancelled_training_resumes(trained: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    config = yaml.safe_load((trained.parent / "tiny.yaml").read_text())
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**config, "out": str(tmp_path / "run")}))
    calls: list[int] = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) >= 3  # asked once before training, then after each step
    with pytest.raises(JobCancelled, match="cancelled at step 2; the checkpoint .* stays"):
        train_synthesis_model(SynthesisTrainRequest(path), cancel=cancel)
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    assert not (tmp_path / "run" / "model.pt").exists()
    code, out, err = _run(capsys, ["synthesize", "train", str(path), "--resume", "--quiet"])
    assert code == 0, err
    assert "trained 6 step(s)" in out and "(ablation model F)" in out
    assert (tmp_path / "run" / "model.pt").is_file()


BAD = [
    ("synthesize --model {d}/missing.pt --count 3 -o {d}/s", "missing.pt: no such synthesis model"),
    ("synthesize --model {d}/notes.txt --count 3 -o {d}/s",
     "notes.txt: not a readable synthesis model (not a PyTorch file)"),
    ("synthesize --model {d}/folder --count 3 -o {d}/s", "folder: is a folder, not a synthesis"),
    ("synthesize --model {d}/other.pt --count 3 -o {d}/s",
     "other.pt: not a synthesis model (it is a pseudo-MRI model)"),
    ("synthesize --model {m} --count 3 -o {d}/notes.txt", "notes.txt: is a file, not a folder"),
    ("synthesize --model {m} --count 3 -o {d}/folder", "folder: already holds files"),
    ("synthesize --model {m} --count 0 -o {d}/s", "--count: must be at least 1, got 0"),
    ("synthesize --model {m} --count many -o {d}/s", "expected a whole number, got 'many'"),
    ("synthesize --model {m} -o {d}/s", "the following arguments are required: --count"),
    ("synthesize --count 2", "required: --model, -o/--out"),
    ("synthesize --model {m} --count 2 -o {d}/s --device tpu", "invalid choice: 'tpu'"),
    ("synthesize train {d}/missing.yaml", "missing.yaml: no such synthesis config"),
    ("synthesize train {d}/bad.yaml", "bad.yaml: not valid YAML"),
    ("synthesize train {d}/unknown.yaml", "unknown option widht; did you mean 'width'"),
    ("synthesize train {d}/nodata.yaml", "nodata: no such folder"),
]


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_input(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture, argv: str,
                   message: str) -> None:
    d = tmp_path
    (d / "notes.txt").write_text("an earlier result")
    (d / "folder").mkdir()
    (d / "folder" / "old.txt").write_text("keep me")
    (d / "bad.yaml").write_text("data: [unclosed\n")
    torch.save({"format": "autocontour-pseudo-mri", "version": 1}, d / "other.pt")
    (d / "unknown.yaml").write_text(f"data: {d}\nout: {d}/r\nwidht: 4\n")
    (d / "nodata.yaml").write_text(f"data: {d}/nodata\nout: {d}/r\n")
    before = {p: p.stat().st_mtime_ns for p in d.rglob("*")}
    args = argv.format(d=d, m=trained / "model.pt").split()
    code, out, err = _run(capsys, args)
    assert code == 2
    assert out == ""
    assert err.startswith("autocontour: error: ") and err.count("\n") == 1, err
    assert message in err
    assert {p: p.stat().st_mtime_ns for p in d.rglob("*")} == before
