"""Pseudo-MRI from CT (spec D1-D4): the switches, unpaired data, training, resume, conversion,
and the ``autocontour pseudo-mri`` commands end to end and on bad input.

Everything runs on tiny head-and-neck phantoms (8 slices of 32x32) with 4-channel networks.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import torch
from torch import nn

from autocontour.cli import main
from autocontour.errors import (
    InvalidInputError,
    JobCancelled,
    OutputExistsError,
    UnknownOptionError,
)
from autocontour.io import read_volume, write_volume
from autocontour.io.volume import Geometry, Volume
from autocontour.models.cyclegan import ImprovedResnetGenerator, ResnetGenerator, count_layers
from autocontour.phantoms.export import write_cases
from autocontour.synthesis.pseudo_mri import (
    Normalisation,
    PseudoMRIConfig,
    adversarial_loss,
    build_networks,
    check_is_ct,
    ct_to_pseudo_mri,
    load_pseudo_mri_model,
    phantom_split,
    read_pseudo_mri_file,
    train_cyclegan,
)

SHAPE = (8, 32, 32)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 tiny head-and-neck phantoms, with DICOM CT series."""
    root = tmp_path_factory.mktemp("pm") / "phantoms"
    write_cases("head-neck", 4, root, seed=11, shape=SHAPE, dicom=True, progress=False)
    return root


def tiny(out: Path, phantoms: Path, **changes: Any) -> PseudoMRIConfig:
    values: dict[str, Any] = {"out": str(out), "phantoms": str(phantoms), "gen_channels": 4,
                              "disc_channels": 4, "crop_size": 32, "steps": 3, "device": "cpu",
                              "pool_size": 4, "sample_every": 0, "checkpoint_every": 0}
    values.update(changes)
    return PseudoMRIConfig.from_dict(values)


# --- the switches -------------------------------------------------------------------------

def test_switch_a_chooses_the_generator(tmp_path: Path, phantoms: Path) -> None:
    improved = build_networks(tiny(tmp_path, phantoms))
    original = build_networks(tiny(tmp_path, phantoms, improved_generator=False))
    for nets, cls, blocks, transposed in ((improved, ImprovedResnetGenerator, 2, 1),
                                          (original, ResnetGenerator, 9, 2)):
        for name in ("ct_to_mr", "mr_to_ct"):
            assert type(nets[name]) is cls
            assert nets[name].arch_kwargs["n_blocks"] == blocks
            assert count_layers(nets[name], nn.ConvTranspose2d) == transposed


def test_switch_b_adds_the_denoising_discriminator(tmp_path: Path, phantoms: Path) -> None:
    assert set(build_networks(tiny(tmp_path, phantoms))) == {
        "ct_to_mr", "mr_to_ct", "d_mr", "d_ct", "d_noise"}
    assert "d_noise" not in build_networks(tiny(tmp_path, phantoms,
                                                denoising_discriminator=False))


def test_switch_c_is_mae_or_mse() -> None:
    scores = torch.tensor([0.0, 0.5, 3.0])
    assert adversarial_loss("l1", scores, True).item() == pytest.approx((1 + 0.5 + 2) / 3)
    assert adversarial_loss("mse", scores, True).item() == pytest.approx((1 + 0.25 + 4) / 3)
    assert adversarial_loss("l1", scores, False).item() == pytest.approx(3.5 / 3)


def test_the_switches_change_the_losses_of_a_step(tmp_path: Path, phantoms: Path) -> None:
    runs = {}
    for name, changes in (("base", {}), ("mse", {"adversarial_loss": "mse"}),
                          ("no_noise", {"denoising_discriminator": False}),
                          ("identity", {"identity_weight": 0.5})):
        outcome = train_cyclegan(tiny(tmp_path / name, phantoms, steps=1, **changes))
        runs[name] = outcome.history[0]
    assert runs["base"]["identity"] == 0 and runs["identity"]["identity"] > 0
    assert "d_noise" in runs["base"] and "d_noise" not in runs["no_noise"]
    assert runs["mse"]["g_adversarial"] != pytest.approx(runs["base"]["g_adversarial"])
    # same seed, same first batch: the cycle loss of the first step is the same
    assert runs["mse"]["cycle"] == pytest.approx(runs["base"]["cycle"])


# --- data ---------------------------------------------------------------------------------

def test_cts_and_mrs_come_from_different_cases(phantoms: Path) -> None:
    cts, mrs = phantom_split(phantoms)
    assert len(cts) == 2 and len(mrs) == 2
    assert {p.parent for p in cts}.isdisjoint({p.parent for p in mrs})
    assert all(p.name == "ct.nii.gz" for p in cts) and all(p.name == "mr.nii.gz" for p in mrs)


def test_normalisation_round_trips_and_clips() -> None:
    norm = Normalisation((-1000.0, 1000.0), (1.0, 99.0), (0.0, 2.0))
    hu = np.array([-3000, -1000, 0, 500, 4000], np.float32)
    unit = norm.ct_to_unit(hu)
    assert unit.tolist() == pytest.approx([-1, -1, 0, 0.5, 1])
    assert norm.unit_to_ct(unit[1:4]).tolist() == pytest.approx([-1000, 0, 500])
    assert norm.unit_to_mr(np.array([-1.0, 1.0])).tolist() == [0.0, 2.0]
    mr = norm.mr_to_unit(np.linspace(0, 10, 1001))
    assert mr.min() == -1 and mr.max() == 1


# --- training -----------------------------------------------------------------------------

def test_losses_decrease_on_a_toy_case(tmp_path: Path, phantoms: Path) -> None:
    outcome = train_cyclegan(tiny(tmp_path, phantoms, steps=40, lr=2e-3))
    history = outcome.history
    first = {k: np.mean([r[k] for r in history[:5]]) for k in ("cycle", "g_total")}
    last = {k: np.mean([r[k] for r in history[-5:]]) for k in ("cycle", "g_total")}
    assert last["cycle"] < 0.6 * first["cycle"], (first, last)
    assert last["g_total"] < first["g_total"], (first, last)


def test_a_run_writes_checkpoint_model_samples_and_log(tmp_path: Path, phantoms: Path) -> None:
    outcome = train_cyclegan(tiny(tmp_path / "run", phantoms, steps=4, sample_every=2))
    out = tmp_path / "run"
    assert outcome.step == 4 and outcome.model == out / "model.pt"
    assert [p.name for p in outcome.samples] == ["step_000002.png", "step_000004.png"]
    import matplotlib.image
    grid = matplotlib.image.imread(outcome.samples[-1])
    assert grid.shape[:2] == (2 * 32 + 2, 3 * 32 + 4)  # 2 CT slices x (CT | pseudo-MR | cycle)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    saved = read_pseudo_mri_file(out / "checkpoint.pt")
    assert saved["step"] == 4 and set(saved["networks"]) >= {"ct_to_mr", "d_noise"}
    assert saved["config"] == tiny(out, phantoms, steps=4, sample_every=2).to_dict()
    model = load_pseudo_mri_model(out / "model.pt")
    assert model.step == 4 and model.normalisation.ct_window == (-1024.0, 1500.0)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_pseudo_mri_file(path)["networks"]["ct_to_mr"]["state"]


def test_resume_continues_exactly(tmp_path: Path, phantoms: Path) -> None:
    straight = train_cyclegan(tiny(tmp_path / "a", phantoms, steps=4))
    half = tiny(tmp_path / "b", phantoms, steps=2)
    train_cyclegan(half)
    with pytest.raises(OutputExistsError, match="pass --resume"):
        train_cyclegan(half)
    with pytest.raises(InvalidInputError, match="differs from the checkpoint's in lr"):
        train_cyclegan(replace(half, steps=4, lr=1e-3), resume=True)
    resumed = train_cyclegan(replace(half, steps=4), resume=True)
    assert resumed.step == 4
    assert [r["step"] for r in resumed.history] == [1, 2, 3, 4]
    a, b = _weights(tmp_path / "a" / "model.pt"), _weights(tmp_path / "b" / "model.pt")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert straight.history[-1]["cycle"] == pytest.approx(resumed.history[-1]["cycle"], rel=1e-5)
    with pytest.raises(InvalidInputError, match="no checkpoint.pt to resume"):
        train_cyclegan(tiny(tmp_path / "c", phantoms), resume=True)


def test_cancel_keeps_a_checkpoint_that_resumes(tmp_path: Path, phantoms: Path) -> None:
    from autocontour.jobs.pseudo_mri import PseudoMRITrainRequest, train_pseudo_mri
    config = tiny(tmp_path / "run", phantoms, steps=5)
    reports = []
    with pytest.raises(JobCancelled, match="cancelled at step 2"):
        train_pseudo_mri(PseudoMRITrainRequest(config), progress=reports.append,
                         cancel=lambda: len(reports) >= 2)
    assert read_pseudo_mri_file(tmp_path / "run" / "checkpoint.pt")["step"] == 2
    assert not (tmp_path / "run" / "model.pt").exists()
    result = train_pseudo_mri(PseudoMRITrainRequest(config, resume=True),
                              progress=reports.append)
    assert result.outcome.step == 5 and (tmp_path / "run" / "model.pt").is_file()
    fractions = [r.fraction for r in reports]
    assert fractions[-1] == 1.0 and fractions[2:] == sorted(fractions[2:])


# --- conversion ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory, phantoms: Path) -> Path:
    out = tmp_path_factory.mktemp("model") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a module fixture runs before conftest's one-thread fixture
    try:
        return train_cyclegan(tiny(out, phantoms, steps=2)).model
    finally:
        torch.set_num_threads(threads)


def test_convert_keeps_the_geometry(model_file: Path) -> None:
    rng = np.random.default_rng(0)
    c, s = np.cos(0.3), np.sin(0.3)
    geometry = Geometry((5, 30, 34), (0.9, 1.1, 2.5), (-12.0, 40.0, 7.5),
                        (c, -s, 0, s, c, 0, 0, 0, 1), frame_of_reference_uid="1.2.3.4")
    ct = Volume(rng.integers(-1024, 1200, (5, 30, 34)).astype(np.int16), geometry,
                modality="CT")
    model = load_pseudo_mri_model(model_file)
    mr = ct_to_pseudo_mri(ct, model, batch_slices=2)
    assert mr.geometry == ct.geometry and mr.modality == "MR" and mr.array.dtype == np.float32
    lo, hi = model.normalisation.mr_range
    assert np.all(np.isfinite(mr.array)) and lo - 1e-5 <= mr.array.min() <= mr.array.max() <= hi + 1e-5
    # slice by slice: a slice's result does not depend on the others
    one = ct_to_pseudo_mri(ct.with_array(ct.array[2:3], geometry=replace(geometry, shape=(1, 30, 34))),
                           model)
    assert np.allclose(one.array[0], mr.array[2], atol=1e-5)


def test_an_mr_is_not_a_ct(phantoms: Path) -> None:
    mr = read_volume(phantoms / "hn_s0012" / "mr.nii.gz")
    with pytest.raises(InvalidInputError, match="does not look like a CT"):
        check_is_ct(mr, "mr.nii.gz")
    with pytest.raises(InvalidInputError, match="not a CT \\(modality MR\\)"):
        check_is_ct(mr.with_array(mr.array - 1000, modality="MR"), "x")


def test_other_files_are_not_pseudo_mri_models(tmp_path: Path) -> None:
    torch.save({"format": "autocontour-checkpoint", "version": 1}, tmp_path / "seg.pt")
    with pytest.raises(InvalidInputError, match="seg.pt: not a pseudo-MRI model \\(it is a "
                                                "segmentation training checkpoint\\)"):
        load_pseudo_mri_model(tmp_path / "seg.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(InvalidInputError, match="text.pt: not a readable pseudo-MRI model"):
        load_pseudo_mri_model(tmp_path / "text.pt")


@pytest.mark.parametrize("values, error, message", [
    ({"out": "r", "phantoms": "p", "adversarial_los": "l1"}, UnknownOptionError,
     "did you mean 'adversarial_loss'"),
    ({"out": "r", "phantoms": "p", "adversarial_loss": "l3"}, UnknownOptionError,
     "unknown adversarial_loss 'l3'"),
    ({"out": "r"}, InvalidInputError, "needs training images"),
    ({"phantoms": "p"}, InvalidInputError, "needs 'out'"),
    ({"out": "r", "phantoms": "p", "crop_size": 30}, InvalidInputError,
     "multiple of 2**n_down = 4"),
    ({"out": "r", "phantoms": "p", "improved_generator": "yes"}, InvalidInputError,
     "improved_generator must be true or false"),
])
def test_bad_configs(values: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message.replace("(", "\\(").replace("*", "\\*")):
        PseudoMRIConfig.from_dict(values)


# --- the command line ---------------------------------------------------------------------

def _run(capsys: pytest.CaptureFixture, argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_train_then_convert_a_dicom_ct(tmp_path: Path, phantoms: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "pseudo_mri.yaml"
    config.write_text(f"out: {tmp_path / 'run'}\nphantoms: {phantoms}\ngen_channels: 4\n"
                      "disc_channels: 4\ncrop_size: 32\nsteps: 2\ndevice: cpu\n")
    code, out, err = _run(capsys, ["pseudo-mri", "train", str(config), "--quiet"])
    assert code == 0, err
    assert "trained 2 step(s)" in out and (tmp_path / "run" / "model.pt").is_file()
    code, out, err = _run(capsys, ["pseudo-mri", "train", str(config), "--quiet", "--resume",
                                   "--steps", "3"])
    assert code == 0 and "trained 3 step(s)" in out, err

    ct_dir = phantoms / "hn_s0011" / "ct"
    result = tmp_path / "pseudo"
    code, out, err = _run(capsys, ["pseudo-mri", "convert", str(ct_dir), "-o", str(result),
                                   "--model", str(tmp_path / "run" / "model.pt"), "--quiet"])
    assert code == 0, err
    assert "pseudo-MRI 32x32x8 on the CT's grid" in out
    assert sorted(p.name for p in result.iterdir()) == ["dicom", "pseudo_mri.json",
                                                        "pseudo_mri.nii.gz"]
    ct = read_volume(ct_dir)
    nifti = read_volume(result / "pseudo_mri.nii.gz")
    assert nifti.geometry.mismatch(ct.geometry) is None
    series = read_volume(result / "dicom")
    assert series.modality == "MR" and series.geometry.mismatch(ct.geometry) is None
    assert np.allclose(series.array, nifti.array, atol=2e-5 * float(np.ptp(nifti.array)) + 1e-6)
    ct_files = sorted(ct_dir.iterdir())
    mr_files = sorted((result / "dicom").iterdir())
    assert len(mr_files) == len(ct_files) == 8
    for f_ct, f_mr in zip(ct_files, mr_files, strict=True):
        a, b = pydicom.dcmread(f_ct), pydicom.dcmread(f_mr)
        assert b.Modality == "MR" and b.SOPClassUID == pydicom.uid.MRImageStorage
        assert b.FrameOfReferenceUID == a.FrameOfReferenceUID
        assert b.StudyInstanceUID == a.StudyInstanceUID and b.PatientID == a.PatientID
        assert b.SeriesInstanceUID != a.SeriesInstanceUID
        assert [float(v) for v in b.ImagePositionPatient] == pytest.approx(
            [float(v) for v in a.ImagePositionPatient], abs=1e-4)
        assert list(b.ImageOrientationPatient) == list(a.ImageOrientationPatient)
    report = json.loads((result / "pseudo_mri.json").read_text())
    assert report["frame_of_reference_uid"] == ct.geometry.frame_of_reference_uid
    assert report["model_step"] == 3


@pytest.fixture
def bad(tmp_path: Path, phantoms: Path, model_file: Path) -> Path:
    (tmp_path / "afile").write_text("keep me")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.txt").write_text("an earlier result")
    (tmp_path / "text.pt").write_text("not a model")
    torch.save({"format": "autocontour-model", "version": 3}, tmp_path / "seg.pt")
    write_volume(read_volume(phantoms / "hn_s0012" / "mr.nii.gz"), tmp_path / "mr.nii.gz")
    write_volume(read_volume(phantoms / "hn_s0011" / "ct.nii.gz"), tmp_path / "ct.nii.gz")
    (tmp_path / "model.pt").write_bytes(model_file.read_bytes())
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "typo.yaml").write_text(f"out: {tmp_path}/r\nphantoms: {phantoms}\nstep: 3\n")
    (tmp_path / "nodata.yaml").write_text(f"out: {tmp_path}/r\nphantoms: {tmp_path}/none\n")
    return tmp_path


BAD = [
    ("convert {d}/missing -o {d}/out --model {d}/model.pt", "missing: no such file or folder"),
    ("convert {d}/mr.nii.gz -o {d}/out --model {d}/model.pt",
     "mr.nii.gz: does not look like a CT in HU"),
    ("convert {d}/ct.nii.gz -o {d}/out --model {d}/text.pt",
     "text.pt: not a readable pseudo-MRI model"),
    ("convert {d}/ct.nii.gz -o {d}/out --model {d}/seg.pt",
     "seg.pt: not a pseudo-MRI model (it is a segmentation model file)"),
    ("convert {d}/ct.nii.gz -o {d}/out --model {d}/nomodel.pt",
     "nomodel.pt: no such pseudo-MRI model"),
    ("convert {d}/ct.nii.gz -o {d}/afile --model {d}/model.pt", "afile: is a file, not a folder"),
    ("convert {d}/ct.nii.gz -o {d}/full --model {d}/model.pt", "full: already holds files"),
    ("convert {d}/ct.nii.gz -o {d}/out", "the following arguments are required: --model"),
    ("convert {d}/ct.nii.gz -o {d}/out --model {d}/model.pt --batch 0",
     "--batch: must be at least 1"),
    ("train {d}/missing.yaml", "missing.yaml: no such pseudo-MRI config"),
    ("train {d}/list.yaml", "list.yaml: config must be a mapping"),
    ("train {d}/typo.yaml", "typo.yaml: unknown option step; did you mean 'steps'?"),
    ("train {d}/nodata.yaml", "none: not a phantom folder"),
    ("train", "the following arguments are required: config"),
    ("", "the following arguments are required: ACTION"),
]


def _state(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file()
            else (-1, -1) for p in root.rglob("*")}


@pytest.mark.parametrize("template, message", BAD, ids=[row[0] or "(none)" for row in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
        bad: Path, capsys: pytest.CaptureFixture, template: str, message: str) -> None:
    argv = ["pseudo-mri", *template.format(d=bad).split()]
    before = _state(bad)
    code, out, err = _run(capsys, argv)
    assert code == 2, err
    line = err.split("\r")[-1]  # what follows a cleared progress bar, if one was shown
    assert line.startswith("autocontour: error: ") and err.count("\n") == 1, err
    assert message in line and "Traceback" not in err, err
    assert out == ""
    assert _state(bad) == before
    assert not [p for p in bad.iterdir() if "partial" in p.name]


def test_a_refused_convert_never_imports_torch(tmp_path: Path) -> None:
    import subprocess
    import sys
    code = ("import sys\nfrom autocontour.cli import main\n"
            f"assert main(['pseudo-mri', 'convert', {str(tmp_path / 'no-ct')!r}, '-o', "
            f"{str(tmp_path / 'o')!r}, '--model', 'm.pt']) == 2\n"
            f"assert main(['pseudo-mri', 'train', {str(tmp_path / 'no.yaml')!r}]) == 2\n"
            "print(','.join(m for m in ('torch', 'monai') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_convert_job_from_nifti_cancel_and_overwrite(tmp_path: Path, phantoms: Path,
                                                     model_file: Path) -> None:
    from autocontour.jobs.pseudo_mri import PseudoMRIConvertRequest, convert_pseudo_mri
    ct_path = phantoms / "hn_s0013" / "ct.nii.gz"
    out = tmp_path / "out"
    request = PseudoMRIConvertRequest(ct_path, out, model_file, batch_slices=3)
    with pytest.raises(JobCancelled):
        convert_pseudo_mri(request, cancel=lambda: True)
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    reports = []
    result = convert_pseudo_mri(request, progress=reports.append)
    assert [r.stage for r in reports if r.stage != "convert"] == ["model", "read", "write"]
    assert reports[-1].fraction == 1.0
    ct = read_volume(ct_path)
    series = read_volume(out / "dicom")
    # a NIfTI CT has no Frame of Reference: the MR series gets a new one, on the CT's grid
    assert series.geometry.frame_of_reference_uid
    assert series.geometry.mismatch(ct.geometry) is None
    assert result.pseudo_mri.geometry == ct.geometry
    with pytest.raises(OutputExistsError):
        convert_pseudo_mri(request)
    again = convert_pseudo_mri(replace(request, overwrite=True))
    assert np.array_equal(again.pseudo_mri.array, result.pseudo_mri.array)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
