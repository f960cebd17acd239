"""Every measured figure the README quotes equals, at the README's rounding, its committed source.

Each ``Claim`` is a README phrase with ``{}`` where a number stands (whitespace in the phrase
matches any whitespace, so line wrapping does not matter), the committed file the numbers come
from, and how to get them from it. A claim fails when the phrase is no longer in the README
(reworded: update the table) or when a number differs from the file's value rounded to as many
decimals as the README shows. A source written ``REV:path`` is read from git history.

To add a figure to the README: commit the result file that holds it (with the command that made
it) and add a Claim here.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from statistics import median
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
NUMBER = r"(-?\d[\d,]*(?:\.\d+)?)"


class Source:
    """A committed result file: its text, JSON and Markdown table rows, read on demand."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.path = None if ":" in spec else ROOT / spec

    @cached_property
    def text(self) -> str:
        if self.path is not None:
            return self.path.read_text()
        done = subprocess.run(["git", "show", self.spec], cwd=ROOT, capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"{self.spec} needs the git history: {done.stderr.strip()}")
        return done.stdout

    @cached_property
    def json(self) -> Any:
        return json.loads(self.text)

    def row(self, first_cell: str) -> list[str]:
        """The cells after the first of the Markdown table row whose first cell is given."""
        for line in self.text.splitlines():
            cells = [c.replace("**", "").strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("|") and cells[0] == first_cell:
                return cells[1:]
        raise AssertionError(f"no table row {first_cell!r} in {self.spec}")

    def find(self, pattern: str, index: int = 0) -> list[float]:
        """The numbers the groups of the ``index``-th match of ``pattern`` capture."""
        matches = list(re.finditer(pattern, self.text))
        assert len(matches) > index, f"{pattern!r} not found in {self.spec}"
        return [float(g.replace(",", "")) for g in matches[index].groups()]


@dataclass(frozen=True)
class Claim:
    readme: str  # a README phrase; each {} is a number
    source: str  # a file under the repository root, or REV:path in git history
    extract: Callable[[Source], Sequence[float]]  # the numbers, in the phrase's order


def _num(cell: str) -> float:
    return float(re.match(NUMBER, cell.strip()).group(1).replace(",", ""))


def _dice(summary: Source, model: str = "shipped") -> dict[str, float]:
    return summary.json["models"][model]["organ_dice"]


def _cases(summary: Source) -> list[float]:
    cases = summary.json["models"]["shipped"]["case_mean_dice"].values()
    return [min(cases), max(cases)]


def _organ_cases(summary: Source, organ: str) -> float:
    """How many cases scored ``organ`` (from the scores.csv beside the summary)."""
    import csv

    with (summary.path.parent / "scores.csv").open() as handle:
        return sum(1 for row in csv.DictReader(handle) if row["organ"] == organ)


def _members(model_json: Source) -> dict[str, float]:
    return {m: sum(d.values()) / len(d) for m, d in model_json.json["validation_dice"].items()}


def _parameters(member: str) -> Callable[[Source], list[float]]:
    def count(model_file: Source) -> list[float]:
        import torch

        model = torch.load(model_file.path, map_location="cpu", weights_only=False)
        state = model["members"][member]["state_dict"]
        return [sum(t.numel() for k, t in state.items()
                    if "running_" not in k and "num_batches" not in k) / 1e6]
    return count


def _predict(run: int, *stages: str) -> Callable[[Source], list[float]]:
    return lambda s: [sum(s.json["runs"][run]["seconds"][k] for k in stages)]


def _network(s: Source, run: int) -> float:
    return sum(v for k, v in s.json["runs"][run]["seconds"].items() if k.startswith("network"))


NESTED = "experiments/results/table1_nested"


def _fold_minutes(*folds: int, folder: str = "experiments/results/table1"
                  ) -> Callable[[Source], list[float]]:
    def minutes(_: Source) -> list[float]:
        out = []
        for k in folds:
            budget = Source(f"{folder}/folds/fold_{k}.json").json["budget"]
            out.append(sum(m["seconds"] for m in budget.values()) / 60)
        return out
    return minutes


UNSEEN = "experiments/results/unseen/summary.json"
TEST_SET = "experiments/results/unseen_test/summary.json"
MODEL_JSON = "autocontour/assets/hn_phantom_default.json"
#: The previous shipped head-and-neck model (24 organs), as committed before the 31-organ one.
OLD_MODEL_JSON = "d761171:autocontour/assets/hn_phantom_default.json"
FRESH = "experiments/results/unseen_test_hn31_v2/summary.json"
FRESH_512 = "experiments/results/unseen_test_hn31_v2_512/summary.json"
BUILD = "experiments/results/hn_build/validation.json"
PREDICT = "benchmarks/results/bench_predict.json"
SERVICE = "benchmarks/results/bench_service.txt"
UPLOAD_MEMORY = "benchmarks/results/bench_upload_memory.txt"
STRESS = "benchmarks/results/stress_service.txt"
VIEWER = "benchmarks/results/bench_viewer.txt"
NODE = "benchmarks/results/bench_dicom_node.txt"
SMALL = ["OpticChiasm", "Pituitary", "Lens_L", "Lens_R", "OpticNrv_L", "OpticNrv_R",
         "Ear_Internal_L", "Ear_Internal_R", "Cochlea_L", "Cochlea_R"]
LARGE = ["Brainstem", "Eye_L", "Eye_R", "Lobe_Temporal_L", "Lobe_Temporal_R", "Parotid_L",
         "Parotid_R", "Bone_Mandible_L", "Bone_Mandible_R"]
VOLUMES = {"parotid": ("head-neck", ["Parotid_L", "Parotid_R"]),
           "brainstem": ("head-neck", ["Brainstem"]), "lens": ("head-neck", ["Lens_L", "Lens_R"]),
           "chiasm": ("head-neck", ["OpticChiasm"]), "bladder": ("pelvis", ["Bladder"]),
           "femoral head": ("pelvis", ["Femur_Head_L", "Femur_Head_R"]),
           "CTV": ("pelvis", ["CTV"]), "prostate": ("pelvis", ["Prostate"])}


def _volume_ranges(s: Source) -> list[float]:
    out = []
    for site, organs in VOLUMES.values():
        v = s.json["sites"][site]["volume_cc"]
        out += [min(v[o]["min"] for o in organs), max(v[o]["max"] for o in organs)]
    return out


PELVIS_JSON = "autocontour/assets/pelvis_phantom_default.json"
PELVIS_TEST = "experiments/results/unseen_test_pelvis/summary.json"
SITES = "experiments/results/site_recognition/summary.json"


def _pelvis_models(s: Source) -> list[float]:
    """The Models table's pelvis row: minutes, validation, fresh test, case count, size."""
    test = Source(PELVIS_TEST).json
    return [s.json["seconds"] / 60, _members(s)["combined"],
            test["models"]["shipped"]["mean_dice"], len(test["cases"]), s.json["size_bytes"] / 1e6]


PAIRED = "benchmarks/results/predict_body_paired.txt"
BODY = "benchmarks/results/bench_body.txt"
CLINICAL = "experiments/results/clinical_resolution/summary.json"


def _resolution(s: Source) -> list[float]:
    g = s.json["groups"]
    out = []
    for group in ("all organs", "10 small organs"):
        out += [g[group]["128"] - g[group]["512"], g[group]["128"], g[group]["512"]]
    return out + [g["other organs"]["128"] - g["other organs"]["512"]]

ADDED = ("Larynx", "Esophagus", "Cavity_Oral", "Glnd_Submand_L", "Glnd_Submand_R",
         "Glnd_Thyroid", "Lips")
FINE8 = ("OpticNrv_L", "OpticNrv_R", "OpticChiasm", "Pituitary", "Ear_Internal_L",
         "Ear_Internal_R", "Cochlea_L", "Cochlea_R")


def _mean(dices: dict[str, float], organs: Sequence[str]) -> float:
    return sum(dices[o] for o in organs) / len(organs)


def _group(clinical: Source, group: str) -> float:
    """512 minus 128 mean Dice of a group in the clinical-resolution experiment."""
    values = clinical.json["groups"][group]
    return values["512"] - values["128"]


def _fresh_resolution(s: Source) -> list[float]:
    """Per group: the change from 128x128 to 512x512 (gain, or loss for the others), both."""
    fine = Source(FRESH_512).json["models"]["shipped"]
    coarse = s.json["models"]["shipped"]
    out = []
    for key, sign in (("mean_dice", 1), ("small_organ_dice", 1), ("other_organ_dice", -1)):
        out += [sign * (fine[key] - coarse[key]), coarse[key], fine[key]]
    return out


PREDICT_31 = "benchmarks/results/bench_predict_hn31.json"
OLD_PREDICT_31 = "88bd54d:benchmarks/results/bench_predict_hn31.json"


def _stage(s: Source, stage: str) -> float:
    return float(s.json["runs"][0]["seconds"][stage])


T31 = "experiments/results/table31/table.md"
T31_SETTINGS = {"0 %": ("0 %", "-"), "25 %, 1-8 px": ("25 %", "1-8 px"),
                "50 %, 1-8 px": ("50 %", "1-8 px"), "75 %, 1-8 px": ("75 %", "1-8 px"),
                "25 %, 5-13 px": ("25 %", "5-13 px"), "50 %, 5-13 px": ("50 %", "5-13 px"),
                "75 %, 5-13 px": ("75 %", "5-13 px")}
T31_METHODS = ("baseline", "qam", "qam+ocm")


def _t31(table: Source) -> dict[tuple[str, str, str], list[str]]:
    """(noise, level, method) -> the cells of table.md's main table row (13 columns)."""
    out = {}
    for line in table.text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 13 and cells[2] in T31_METHODS:
            out[(cells[0], cells[1], cells[2])] = cells
    return out


def _t31_row(noise: str, level: str) -> Callable[[Source], list[float]]:
    """README row: mean ± sd of the three methods, then the source's three means."""
    def numbers(table: Source) -> list[float]:
        rows = _t31(table)
        ours = [float(v) for m in T31_METHODS
                for v in rows[(noise, level, m)][6].split(" ± ")]
        return ours + [float(rows[(noise, level, m)][12]) for m in T31_METHODS]
    return numbers


def _t31_cell(column: int, noise: str, level: str, method: str, part: int = 0) -> float:
    cell = _t31(Source(T31))[(noise, level, method)][column]
    return float(re.split(r" ± | / ", cell)[part])


def _t31_high_noise(column: int, part: int, methods: Sequence[str] = ("qam", "qam+ocm")
                    ) -> list[float]:
    return [_t31_cell(column, n, lv, m, part) for n in ("50 %", "75 %")
            for lv in ("1-8 px", "5-13 px") for m in methods]


AUDIT = "experiments/results/audit/table.md"
AUDIT_DEV = "experiments/results/audit_dev/summary.json"
AUDIT_DEV123 = "experiments/results/audit_dev_sets123/summary.json"
AUDIT_ROWS = {"segmenter disagreement, trained without the QAM (the audit's default)":
              "segmenter, trained without the QAM (default)",
              "segmenter disagreement, trained with the QAM": "segmenter, trained with the QAM",
              "QAM gain when the contour is replaced": "QAM gain (`--qam --rank qam`)",
              "QAM plain score": "QAM plain score",
              "volume outliers (baseline)": "volume outliers (`--rank volume`)"}


def _audit_row(name: str) -> Callable[[Source], list[float]]:
    """README row: cases P@10, R@10, AP, then contours AP (each mean ± sd)."""
    def numbers(table: Source) -> list[float]:
        rows = [[c.strip() for c in line.strip().strip("|").split("|")]
                for line in table.text.splitlines() if line.startswith(f"| {name} |")]
        cases, contours = rows[0], rows[1]  # the cases table comes first
        cells = [cases[3], cases[4], cases[7], contours[5]]
        return [float(v) for cell in cells for v in cell.split(" ± ")]
    return numbers


def _audit_ap(summary: Source, ranking: str, sets: Sequence[str]) -> list[float]:
    return [summary.json["sets"][k]["rankings"][ranking]["case_ap"] for k in sets]


PSEUDO_MRI = "experiments/results/pseudo_mri/tables.md"
PSEUDO_MRI_ROWS = {("head-neck", "original CycleGAN"): ("head-neck", "original"),
                   ("head-neck", "improved (a+b+c)"): ("head-neck", "improved"),
                   ("head-neck", "reference: CT as MR"): ("head-neck", "reference: CT as MR"),
                   ("pelvis", "original CycleGAN"): ("pelvis", "original"),
                   ("pelvis", "improved (a+b+c)"): ("pelvis", "improved"),
                   ("pelvis", "reference: CT as MR"): ("pelvis", "reference: CT as MR")}


def _pseudo_mri_quality(site: str, variant: str) -> Callable[[Source], list[float]]:
    """README row (MAE, PSNR, SSIM means) from tables.md's quality row of site and variant."""
    def numbers(table: Source) -> list[float]:
        for line in table.text.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 5 and cells[:2] == [site, variant]:
                return [float(c.split(" ± ")[0]) for c in cells[2:]]
        raise AssertionError(f"no quality row {site} {variant}")
    return numbers


PSEUDO_MRI_ORGANS = {"Bladder": ("pelvis", "Bladder", "| 0.939 | 0.944 (p 0.388) | — |"),
                     "Rectum": ("pelvis", "Rectum", "| 0.740 | 0.779 (p 0.003) | — |"),
                     "Femoral head L": ("pelvis", "Femur_Head_L", "| 0.863 | 0.834 | — |"),
                     "Femoral head R": ("pelvis", "Femur_Head_R", "| 0.866 | 0.845 | — |"),
                     "Lens L": ("head-neck", "Lens_L", "| 0.652 | 0.665 | 0.752 (p 0.010) |"),
                     "Lens R": ("head-neck", "Lens_R", "| 0.637 | 0.622 | 0.671 |"),
                     "Optic chiasm": ("head-neck", "OpticChiasm", "| 0.532 | 0.546 | 0.516 |"),
                     "Optic nerve L": ("head-neck", "OpticNrv_L",
                                       "| 0.664 | 0.681 | 0.710 (p 0.037) |"),
                     "Optic nerve R": ("head-neck", "OpticNrv_R", "| 0.679 | 0.634 | 0.691 |")}


def _pseudo_mri_p(site: str, organ: str, column: int) -> Callable[[Source], list[float]]:
    """A Wilcoxon p of ``organ`` under ``site`` (0: CT vs pMR, 1: CT vs both, 2: pMR vs both)."""
    def number(table: Source) -> float:
        section = table.text.split(f"### {site}\n", 1)[1]
        for line in section.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] == organ:
                return float(cells[4 + column])
        raise AssertionError(f"no row {organ} under {site}")
    return number


def _pseudo_mri_all(site: str) -> Callable[[Source], list[float]]:
    """The "all organs" means (CT, pseudo-MRI, both) of a site in tables.md."""
    return _pseudo_mri_dice(site, "all organs")


def _pseudo_mri_dice(site: str, organ: str) -> Callable[[Source], list[float]]:
    """Mean Dice of CT, pseudo-MRI and both from tables.md's row of ``organ`` under ``site``."""
    def numbers(table: Source) -> list[float]:
        section = table.text.split(f"### {site}\n", 1)[1]
        for line in section.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] == organ:
                return [float(c.split(" ± ")[0]) for c in cells[1:4]]
        raise AssertionError(f"no Dice row {organ} under {site}")
    return numbers


PRECISION = "experiments/results/precision/{}/summary.json"


def _precision(s: Source) -> list[float]:
    """fp32 and bfloat16 mean Dice, the largest organ change, seconds per case of each."""
    full, low = (Source(PRECISION.format(p)).json["models"]["shipped"] for p in ("fp32", "auto"))
    assert Source(PRECISION.format("auto")).json["meta"]["precision"]["shipped"] == "bfloat16"
    change = max(abs(full["organ_dice"][o] - low["organ_dice"][o]) for o in full["organ_dice"])
    return [full["mean_dice"], low["mean_dice"], change, low["seconds_per_case"],
            full["seconds_per_case"]]


SYNTH = "experiments/results/synthesis_short/{}.csv"
SYNTH_ROWS = {"A (noise, no switches)": "A", "B (+ structure, lesion loss)": "B",
              "C (+ mask filter)": "C", "D (+ noise fusion)": "D",
              "E (+ registration loss)": "E", "F (full)": "F"}


def _csv_rows(name: str) -> dict[str, dict[str, str]]:
    import csv

    with (ROOT / SYNTH.format(name)).open() as f:
        return {row[next(iter(row))]: row for row in csv.DictReader(f)}


def _synthesis_row(model: str) -> Callable[[Source], list[float]]:
    """MS-SSIM, FD, lesion-region FD, lesion share outside the organ (%), validity Dice."""
    def numbers(_: Source) -> list[float]:
        a, v = _csv_rows("ablation")[model], _csv_rows("validity")[f"synthetic, model {model}"]
        return [float(a["ms_ssim"]), float(a["fd"]), float(a["fd_lesion"]),
                100 * float(a["lesion_outside_organ"]), float(v["dice"])]
    return numbers


def _usefulness(s: Source) -> list[float]:
    rows = _csv_rows("usefulness")
    return [float(rows[k]["dice"]) for k in ("real x1", "synthetic x1", "real x1 + synthetic x0.5",
                                             "real x10% + synthetic x1",
                                             "real x1 + augmented x1")]


CLAIMS = [
    Claim("| head-neck, 11 organs | {} | {} | {} |", PSEUDO_MRI, _pseudo_mri_all("head-neck")),
    Claim("| pelvis, 6 organs | {} | {} | {} |", PSEUDO_MRI, _pseudo_mri_all("pelvis")),
    Claim("loses on the bladder ({} -> {}, p {})", PSEUDO_MRI,
          lambda s: [*_pseudo_mri_dice("pelvis", "Bladder")(s)[::2],
                     _pseudo_mri_p("pelvis", "Bladder", 1)(s)]),
    Claim("has the best mean ({} against {})", PSEUDO_MRI,
          lambda s: _pseudo_mri_all("head-neck")(s)[::-2]),
    Claim("missed the right optic nerve in every case ({} against {})", PSEUDO_MRI,
          lambda s: _pseudo_mri_dice("head-neck", "OpticNrv_R")(s)[::2]),
    Claim("the chiasm\n  gains ({} -> {}, p {}), the spinal cord gains ({} -> {}, p {})", PSEUDO_MRI,
          lambda s: [v for o in ("OpticChiasm", "SpinalCord")
                     for v in (*_pseudo_mri_dice("head-neck", o)(s)[::2],
                               _pseudo_mri_p("head-neck", o, 1)(s))]),
    Claim("(CT {},\n  CT + pseudo-MRI {}: the second channel helped", "0df1279:" + PSEUDO_MRI,
          lambda s: _pseudo_mri_all("pelvis")(s)[::2]),
    Claim("(0.711 against 0.657) and lost on pelvis phantoms ({} against {})", PSEUDO_MRI,
          lambda s: _pseudo_mri_all("pelvis")(s)[::-2]),
    *[Claim(f"| {label} | {{}} | {{}} | {{}} | {{}} % | {{}} |", SYNTH.format("ablation"),
            _synthesis_row(model)) for label, model in SYNTH_ROWS.items()],
    Claim("| real (train vs test) | {} | {} | {} | | {} (real test images) |",
          SYNTH.format("ablation"),
          lambda s: [float(_csv_rows("ablation")["real (train vs test)"][k])
                     for k in ("ms_ssim", "fd", "fd_lesion")]
          + [float(_csv_rows("validity")["real (test phantoms)"]["dice"])]),
    Claim("scores Dice\n  {} on real test images; on synthetic images alone {}; real + synthetic "
          "(random mixing)\n  {}; 10 % real after synthetic pre-training {}; real + classical "
          "augmentation {}", SYNTH.format("usefulness"), _usefulness),
    Claim("moved the mean Dice\n   from {} to {} (no organ by more than {}) and took {} instead "
          "of {} s per case", PRECISION.format("fp32"), _precision),
    *[Claim(f"| {label} {source} {{}} | {{}} | {{}} |", PSEUDO_MRI, _pseudo_mri_dice(site, organ))
      for label, (site, organ, source) in PSEUDO_MRI_ORGANS.items()],
    Claim("+{} %\nin 2-D (batch 8 of 128x128 slices, {} s plain against {} s with the QAM",
          "benchmarks/results/bench_qam.txt",
          lambda s: [*s.find(r"overhead of the QAM per step: \+([\d.]+) %"),
                     *s.find(r"\| plain \| [\d,]+ \| ([\d.]+) \|"),
                     *s.find(r"\| qam \| [\d,]+ \| ([\d.]+) \|")]),
    Claim("and +{} % in 3-D (batch 2 of 16x64x64 patches)", "benchmarks/results/bench_qam.txt",
          lambda s: s.find(r"overhead of the QAM per step: \+([\d.]+) %", 1)),
    *[Claim(f"| {site} | {label} | {{}} | {{}} | {{}} |", PSEUDO_MRI, _pseudo_mri_quality(*row))
      for (site, label), row in PSEUDO_MRI_ROWS.items()],
    *[Claim(f"| {label} | {{}} ± {{}} | {{}} ± {{}} | {{}} ± {{}} | {{}} ± {{}} |", AUDIT,
            _audit_row(name)) for name, label in AUDIT_ROWS.items()],
    Claim("no\n  better than chance (AP {}), below the volume baseline ({}), while the\n"
          "  disagreement of the QAM-trained segmenter found nearly all of them ({})", AUDIT_DEV,
          lambda s: _audit_ap(s, "qam_plain", "0") + _audit_ap(s, "volume", "0")
          + _audit_ap(s, "model", "0")),
    Claim("and Φ's measure the counterfactual gain\n  ({})", AUDIT_DEV,
          lambda s: _audit_ap(s, "qam", "0")),
    Claim("in every set (AP {}/{}/{} against {}/{}/{})", AUDIT_DEV123,
          lambda s: _audit_ap(s, "model_no_qam", "123") + _audit_ap(s, "model", "123")),
    *[Claim(f"| {label} | {{}} ± {{}} | {{}} ± {{}} | {{}} ± {{}} | {{}} / {{}} / {{}} |", T31,
            _t31_row(*setting)) for label, setting in T31_SETTINGS.items()],
    Claim("Run on 2 CPU cores ({} min:", T31, lambda s: s.find(r"this call ([\d.]+) min")),
    Claim("QAM+OCM beats the baseline by\n  +{} ± {} (1-8 px) and +{} ± {} (5-13 px)", T31,
          lambda s: [_t31_cell(7, "25 %", lv, "qam+ocm", k) for lv in ("1-8 px", "5-13 px")
                     for k in (0, 1)]),
    Claim("the clean cases get a\n  mean normalised weight of {} and {}, the noisy ones {} and {}",
          T31, lambda s: [*(_t31_cell(8, "25 %", lv, "qam+ocm", 0) for lv in ("1-8 px", "5-13 px")),
                          *(_t31_cell(8, "25 %", lv, "qam+ocm", 1)
                            for lv in ("1-8 px", "5-13 px"))]),
    Claim("(QAM+OCM −{} to\n  −{} mean Dice, except +{} at 50 % 1-8 px)", T31,
          lambda s: [-max(v := [_t31_cell(7, n, lv, "qam+ocm") for n, lv in
                               [("75 %", "1-8 px"), ("50 %", "5-13 px"), ("75 %", "5-13 px")]]),
                     -min(v), _t31_cell(7, "50 %", "1-8 px", "qam+ocm")]),
    Claim("*eroded* noisy cases (mean weight {}-{}) and turns the clean ones down ({}-{}; only\n"
          "  QAM+OCM at 50 % 1-8 px keeps them at {}", T31,
          lambda s: [min(e := _t31_high_noise(8, 3)), max(e),
                     min(c := [v for v in _t31_high_noise(8, 0)
                               if v != _t31_cell(8, "50 %", "1-8 px", "qam+ocm", 0)]), max(c),
                     _t31_cell(8, "50 %", "1-8 px", "qam+ocm", 0)]),
    Claim("much stronger under noise than the source's** ({}-{} against\n  {}-{})", T31,
          lambda s: [min(b := [_t31_cell(6, n, lv, "baseline") for n in ("25 %", "50 %", "75 %")
                               for lv in ("1-8 px", "5-13 px")]), max(b),
                     min(src := [_t31_cell(12, n, lv, "baseline")
                                 for n in ("25 %", "50 %", "75 %") for lv in ("1-8 px", "5-13 px")]),
                     max(src)]),
    Claim("our baseline is below the source's ({} against {}:", T31,
          lambda s: [_t31_cell(6, "0 %", "-", "baseline"), _t31_cell(12, "0 %", "-", "baseline")]),
    Claim("and QAM alone costs\n  {} there", T31,
          lambda s: [-_t31_cell(7, "0 %", "-", "qam")]),
    Claim("160-slice CT takes {} s as a cold process and {} s in process (targets {} s and {} s: "
          "both\nmet), with a mean Dice of {}", PREDICT_31,
          lambda s: [s.json["runs"][0]["cold_cli_s"], s.json["runs"][0]["warm_job_s"],
                     s.json["targets_s"]["cold_cli"], s.json["targets_s"]["warm_job"],
                     s.json["runs"][0]["mean_dice"]]),
    Claim("model from the CT itself (no `--model`: site recognition) takes {} s", PREDICT_31,
          lambda s: [s.json["runs"][0]["cold_cli_chosen_s"]]),
    Claim("imports {} s, read {} s, preprocess {} s, network 2d {} s, network 3d_fine {} s,\n"
          "regrid {} s, body {} s, write {} s", PREDICT_31,
          lambda s: [_stage(s, k) for k in ("imports", "read", "preprocess", "network 2d",
                                            "network 3d_fine", "regrid", "body", "write")]),
    Claim("cold process {} s (target {} s), in-process {} s (target {} s), both met",
          PREDICT_31, lambda s: [s.json["runs"][0]["cold_cli_s"], s.json["targets_s"]["cold_cli"],
                                 s.json["runs"][0]["warm_job_s"],
                                 s.json["targets_s"]["warm_job"]]),
    Claim("measured {} s and {} s; what changed", OLD_PREDICT_31,
          lambda s: [s.json["runs"][0]["cold_cli_s"], s.json["runs"][0]["warm_job_s"]]),
    Claim("which was most of the 1 mm member's {} s", OLD_PREDICT_31,
          lambda s: [_stage(s, "network 3d_fine")]),
    Claim("(3d_fine {} -> {} s, with the next change)", OLD_PREDICT_31,
          lambda s: [_stage(s, "network 3d_fine"), _stage(Source(PREDICT_31), "network 3d_fine")]),
    Claim("2d {} -> {} s;", OLD_PREDICT_31,
          lambda s: [_stage(s, "network 2d"), _stage(Source(PREDICT_31), "network 2d")]),
    Claim("instead of 128x128\n(2.03 mm) lost {} mean Dice ({} to {}): the ten small organs {} "
          "({} to {}),\noptic nerves and inner ears most, the others {}",
          CLINICAL, _resolution),
    Claim("Finding it takes a median\n{} s at this size", BODY,
          lambda s: s.find(r"body_outline: median ([\d.]+) s")),
    Claim("On the 512x512x160 benchmark CT it takes a median {} s", BODY,
          lambda s: s.find(r"body_outline: median ([\d.]+) s")),
    Claim("median wall {} s after against {} s before, ratio {} ({}-{}), CPU time ratio {}.",
          PAIRED, lambda s: [s.find(r"A wall s\s+[\d.]+\s+([\d.]+)")[0],
                             s.find(r"B wall s\s+[\d.]+\s+([\d.]+)")[0],
                             s.find(r"A/B wall\s+[\d.]+\s+([\d.]+)")[0],
                             *s.find(r"A/B wall\s+([\d.]+)\s+[\d.]+\s+([\d.]+)"),
                             s.find(r"A/B cpu\s+[\d.]+\s+([\d.]+)")[0]]),
    # --- Models: the table, the pelvis model, its fresh test, site recognition
    Claim("| `head-neck` | the 22 StructSeg OARs, the cochleae, Larynx, Esophagus, Cavity_Oral, "
          "Glnd_Submand_L/R, Glnd_Thyroid, Lips (31) | 32 phantoms (seeds 1000-1039, 8 for "
          "validation; also rendered at 1 mm), {} min | {} (8 cases) | {} (10 cases, seeds "
          "98001-98010); {} at 512x512 | {} MB |", MODEL_JSON,
          lambda s: [(s.json["seconds"] + sum(s.json["info"]["training_seconds"].values())) / 60,
                     _members(s)["combined"],
                     Source(FRESH).json["models"]["shipped"]["mean_dice"],
                     Source(FRESH_512).json["models"]["shipped"]["mean_dice"],
                     s.json["size_bytes"] / 1e6]),
    Claim("32 phantoms of both sexes (seeds 2000-2039, 8 for validation), {} min | {} (8 cases) | "
          "{} ({} cases, seeds 95001-95020) | {} MB |", PELVIS_JSON, _pelvis_models),
    Claim("in {} min (2d {} min, 3d {} min; the rest validation and the rule); the file is {} MB. "
          "On the 8 validation cases the 2-D member wins every organ (mean Dice 2d {}, 3d {})",
          PELVIS_JSON, lambda s: [s.json["seconds"] / 60,
                                  s.json["info"]["training_seconds"]["2d"] / 60,
                                  s.json["info"]["training_seconds"]["3d"] / 60,
                                  s.json["size_bytes"] / 1e6, _members(s)["2d"],
                                  _members(s)["3d"]]),
    Claim("the 3-D CTV network reached {} on the CTV against {} for the 2-D one", PELVIS_JSON,
          lambda s: [s.json["validation_dice"]["3d"]["CTV"],
                     s.json["validation_dice"]["2d"]["CTV"]]),
    Claim("mean Dice **{}** over the six organs (per case {}-{}); organs-at-risk **{}** (bladder "
          "{}, rectum {}, femoral heads {}/{}), CTV **{}** ({} women), prostate **{}** ({} men); "
          "HD95 {} mm on average", PELVIS_TEST,
          lambda s: [s.json["models"]["shipped"]["mean_dice"], *_cases(s),
                     s.json["models"]["shipped"]["oar_mean_dice"],
                     *[_dice(s)[o] for o in ("Bladder", "Rectum", "Femur_Head_L",
                                             "Femur_Head_R", "CTV")],
                     _organ_cases(s, "CTV"), _dice(s)["Prostate"], _organ_cases(s, "Prostate"),
                     s.json["models"]["shipped"]["mean_hd95_mm"]]),
    Claim("{} of {} CTs got the right answer: 50 fresh phantoms per site", SITES,
          lambda s: [s.json["right"], s.json["total"]]),
    Claim("chest), 150 of 150 each ({} min, no network involved)", SITES,
          lambda s: [s.json["seconds"] / 60]),
    # --- the status table: the predict speed targets
    # --- the safety checks: the shipped model's training record
    Claim("shipped model: head-neck on {} % of the slices, at least {} mm)", MODEL_JSON,
          lambda s: [s.json["training_record"]["regions"]["head-neck"] * 100,
                     s.json["training_record"]["extent_mm"][0]]),
    Claim("the shipped head-and-neck model's from its {} training phantoms", MODEL_JSON,
          lambda s: [s.json["training_record"]["cases"]]),
    # --- the top: test suite time, status table, "what the shipped model reaches"
    Claim("the test suite (about {} min on 2 cores: {}m{}s measured",
          "benchmarks/results/test_suite.txt",
          lambda s: [(t := s.find(r"real\s+(\d+)m([\d.]+)s"))[0] + t[1] / 60, *t]),
    Claim("31 organs, mean Dice {} on 10 fresh test phantoms (seeds 98001-98010) and {} on the "
          "same phantoms at 512x512", FRESH,
          lambda s: [s.json["models"]["shipped"]["mean_dice"],
                     Source(FRESH_512).json["models"]["shipped"]["mean_dice"]]),
    Claim("the added organs {} on fresh phantoms; at 512x512 the model gains {} mean Dice (the "
          "previous one lost {}) and the ten small organs score {} against {} at 2 mm; the aims "
          "(0.85) are met; the lenses ({}/{})", FRESH,
          lambda s: [_mean(_dice(s), ADDED), Source(FRESH_512).json["models"]["shipped"]
                     ["mean_dice"] - s.json["models"]["shipped"]["mean_dice"],
                     -_group(Source(CLINICAL), "all organs"),
                     Source(FRESH_512).json["models"]["shipped"]["small_organ_dice"],
                     s.json["models"]["shipped"]["small_organ_dice"],
                     _dice(s)["Lens_L"], _dice(s)["Lens_R"]]),
    Claim("**{} over the 31 organs on 10\nfresh test phantoms** (seeds 98001-98010, per case "
          "{}-{}, no organ missed", FRESH,
          lambda s: [s.json["models"]["shipped"]["mean_dice"], *_cases(s)]),
    Claim("the 24 StructSeg organs and cochleae {}, the seven added organs {} (larynx {}, "
          "oesophagus {}, oral cavity {}, submandibular glands {}/{}, thyroid {}, lips {})", FRESH,
          lambda s: [_mean(_dice(s), [o for o in _dice(s) if o not in ADDED]),
                     _mean(_dice(s), ADDED), *[_dice(s)[o] for o in ADDED]]),
    Claim("rendered at 512x512 (0.51 mm pixels, as a clinic's CT): **{}**", FRESH_512,
          lambda s: [s.json["models"]["shipped"]["mean_dice"]]),
    Claim("lenses ({}/{} at 2 mm)", FRESH, lambda s: [_dice(s)["Lens_L"], _dice(s)["Lens_R"]]),
    Claim("members, its 1 mm member trained 1000 instead of 3000 steps) scored {} and {} on seeds\n"
          "97001-97010", "experiments/results/unseen_test_hn31/summary.json",
          lambda s: [s.json["models"]["shipped"]["mean_dice"],
                     Source("experiments/results/unseen_test_hn31_512/summary.json").json
                     ["models"]["shipped"]["mean_dice"]]),
    Claim("the shipped model now gains {} at 512x512 ({} to\n{}): the ten small organs gain {} "
          "({} to {}), the others lose {} ({} to\n{})", FRESH, _fresh_resolution),
    Claim("(optic chiasm\n{} to {}, pituitary {} to {}, right optic nerve {} to {}, inner ears\n"
          "{}/{} to {}/{})", FRESH,
          lambda s: [v for o in ("OpticChiasm", "Pituitary", "OpticNrv_R")
                     for v in (_dice(s)[o], _dice(Source(FRESH_512))[o])]
          + [_dice(s)["Ear_Internal_L"], _dice(s)["Ear_Internal_R"],
             _dice(Source(FRESH_512))["Ear_Internal_L"],
             _dice(Source(FRESH_512))["Ear_Internal_R"]]),
    Claim("The lenses, from the 2-D member, lose a little ({}/{} to {}/{})", FRESH,
          lambda s: [_dice(s)["Lens_L"], _dice(s)["Lens_R"],
                     _dice(Source(FRESH_512))["Lens_L"], _dice(Source(FRESH_512))["Lens_R"]]),
    Claim("the previous 24-organ model {} (seeds 95001-95010; {} on the development "
          "phantoms 90001-90010", TEST_SET,
          lambda s: [s.json["models"]["shipped"]["mean_dice"],
                     Source(UNSEEN).json["models"]["shipped"]["mean_dice"]]),
    Claim("mean Dice **{} over the 24 organs on 10 fresh test phantoms** (seeds 95001-95010, "
          "per case {}-{},", TEST_SET,
          lambda s: [s.json["models"]["shipped"]["mean_dice"], *_cases(s)]),
    Claim("Brainstem, eyes, temporal lobes, parotids and mandible {}-{};", TEST_SET,
          lambda s: [min(_dice(s)[o] for o in LARGE), max(_dice(s)[o] for o in LARGE)]),
    Claim("the smallest: optic chiasm {}, pituitary {}, lenses {}/{}, optic nerves {}/{}, inner "
          "ears {}/{}, cochleae {}/{};", TEST_SET, lambda s: [_dice(s)[o] for o in SMALL]),
    Claim("HD95 {}-{} mm per organ", "experiments/results/unseen_test/table.md",
          lambda s: [min(hd := [_num(s.row(o)[1]) for o in LARGE + SMALL]), max(hd)]),
    Claim("a development set: {} there too (per case {}-{}), {} on the demo case (seed 90001)",
          UNSEEN, lambda s: [s.json["models"]["shipped"]["mean_dice"], *_cases(s),
                             s.json["models"]["shipped"]["case_mean_dice"]["hn_s90001"]]),
    Claim("On its 8 validation phantoms the combined\nmodel scored {}", OLD_MODEL_JSON,
          lambda s: [_members(s)["combined"]]),
    Claim("the batch-Dice model {}; the 3-D-small member trained on chiasm and pituitary alone "
          "(below) {}, with the chiasm going from {} to {}.", UNSEEN,
          lambda s: [s.json["models"]["previous_d1e8bcd"]["mean_dice"],
                     s.json["models"]["shipped"]["mean_dice"],
                     _dice(s, "previous_d1e8bcd")["OpticChiasm"], _dice(s)["OpticChiasm"]]),
    # --- the demo
    Claim("It takes about {} s on this\n2-core CPU", "benchmarks/results/bench_demo.txt",
          lambda s: s.find(r"median ([\d.]+) s")),
    # --- phantoms
    Claim("Generation takes about {} s per 128x128x64 case (the former default) and about {} s "
          "at 512x512x160.", "experiments/results/phantoms/summary.json",
          lambda s: [s.json["sites"]["head-neck"]["seconds_per_case"],
                     median(s.json["big_head_neck"]["seconds"])]),
    Claim("Typical volumes (cm³) over 20 seeds: parotid {}–{}, brainstem {}–{}, lens {}–{}, "
          "chiasm {}–{}, bladder {}–{}, femoral head {}–{}, CTV {}–{}, prostate {}–{}",
          "experiments/results/phantoms/summary.json", _volume_ranges),
    # --- predict and the shipped model
    Claim("about {}x the network time (`benchmarks/bench_predict.py`", PREDICT,
          lambda s: [_network(s, 2) / _network(s, 0)]),
    Claim("| `ResUNet2D` 16/32/64/128/192 | {} M |", "autocontour/assets/hn_phantom_default.pt",
          _parameters("2d")),
    Claim("| `UNet3D` 8/16/32/48/64 | {} M |", "autocontour/assets/hn_phantom_default.pt",
          _parameters("3d")),
    Claim("| `UNet3D` 8/16/32/48, box 16x64x64 | {} M |",
          "autocontour/assets/hn_phantom_default.pt", _parameters("3d_small")),
    Claim("| 14 x 100 steps, Adam 2e-3 | {} min |", MODEL_JSON,
          lambda s: [s.json["info"]["training_seconds"]["2d"] / 60]),
    Claim("| 4 x 100 steps | {} min |", MODEL_JSON,
          lambda s: [s.json["info"]["training_seconds"]["3d"] / 60]),
    Claim("| 8 x 100 steps | {} min |", MODEL_JSON,
          lambda s: [s.json["info"]["training_seconds"]["3d_small"] / 60]),
    Claim("| 30 x 100 steps | {} min |", MODEL_JSON,
          lambda s: [s.json["info"]["training_seconds"]["3d_fine"] / 60]),
    Claim("Its {} min of wall time", MODEL_JSON,
          lambda s: [s.json["info"]["training_seconds"]["3d_fine"] / 60]),
    Claim("the last build (members\nre-used, validation, the rule and the file) took {} min",
          MODEL_JSON, lambda s: [s.json["seconds"] / 60]),
    Claim("2d for {} organs, 3d_fine for eight", MODEL_JSON,
          lambda s: [sum(m == "2d" for m in s.json["rule"].values())]),
    Claim("took {} min with `--threads 1`", OLD_MODEL_JSON, lambda s: [s.json["seconds"] / 60]),
    Claim("(mean Dice on the model grid: 2d {}, 3d {}, 3d_small\n{} on its two organs, combined {})",
          MODEL_JSON,
          lambda s: [_members(s)[m] for m in ("2d", "3d", "3d_small", "combined")]),
    Claim("(on the validation cases at 1.02 mm: optic nerves {}/{}, chiasm {}, pituitary {},\n"
          "inner ears {}/{}, cochleae {}/{}, against {}/{}, {}, {}, {}/{},\n{}/{} for the members",
          BUILD, lambda s: [s.json["own_grid"]["3d_fine"]["dice"][o][k]
                            for k in ("own", "rule") for o in FINE8]),
    Claim("The file is {} MB", "autocontour/assets/hn_phantom_default.pt",
          lambda s: [s.path.stat().st_size / 1e6]),
    Claim("(mean Dice on 8\nvalidation cases: 2d {}, 3d {}, 3d_small {} on its two organs, combined {})",
          OLD_MODEL_JSON,
          lambda s: [_members(s)[m] for m in ("2d", "3d", "3d_small", "combined")]),
    Claim("3d_small for the optic chiasm ({} against {} for the 2-D model)", OLD_MODEL_JSON,
          lambda s: [s.json["validation_dice"][m]["OpticChiasm"] for m in ("3d_small", "2d")]),
    Claim("(the pituitary too: {} against 3d_small's {})", OLD_MODEL_JSON,
          lambda s: [s.json["validation_dice"][m]["Pituitary"] for m in ("2d", "3d_small")]),
    # --- training: batch Dice
    Claim("mean validation Dice {} with it, {} without; cochleae {}/{} against {};",
          "experiments/results/batch_dice/table.md",
          lambda s: [_num(s.row("mean")[3]), _num(s.row("mean")[1]),
                     _num(s.row("Cochlea_L")[3]), _num(s.row("Cochlea_R")[3]),
                     max(_num(s.row("Cochlea_L")[1]), _num(s.row("Cochlea_R")[1]))]),
    # --- benchmarks
    Claim("| `autocontour.io.read_volume` (with every check above) | {} |",
          "benchmarks/results/bench_read.txt", lambda s: s.find(r"autocontour read_volume\s+([\d.]+)")),
    Claim("| SimpleITK `ImageSeriesReader` (GDCM) alone | {} |",
          "benchmarks/results/bench_read.txt",
          lambda s: s.find(r"SimpleITK ImageSeriesReader\s+([\d.]+)")),
    Claim("| ratio | **{}x** (target ≤ 1.3x)", "benchmarks/results/bench_read.txt",
          lambda s: s.find(r"ratio ours/SimpleITK = ([\d.]+)")),
    Claim("| series reference (our header-only read / `RTStructBuilder.create_new`) | {} | {} | "
          "{}x |", "benchmarks/results/bench_rtstruct.txt",
          lambda s: s.find(r"series reference \(headers / create_new\)\s+([\d.]+)\s+([\d.]+)\s+"
                           r"([\d.]+)x")),
    Claim("| contours + write, CT in memory (`write_rtstruct` / `add_roi` x 22 + `save`) | {} | "
          "{} | {}x |", "benchmarks/results/bench_rtstruct.txt",
          lambda s: s.find(r"contours \+ write, CT in memory\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x")),
    Claim("| DICOM folder in → RTSTRUCT file out | **{}** | {} | **{}x** |",
          "benchmarks/results/bench_rtstruct.txt",
          lambda s: s.find(r"DICOM folder in -> RTSTRUCT file out\s+([\d.]+)\s+([\d.]+)\s+"
                           r"([\d.]+)x")),
    Claim("On 22 noise-surfaced synthetic organs with {} contours the ratios are {}x and {}x.",
          "benchmarks/results/bench_rtstruct.txt",
          lambda s: [*s.find(r"22 organs, (\d+) contours", 1),
                     *s.find(r"CT in memory\s+[\d.]+\s+[\d.]+\s+([\d.]+)x", 1),
                     *s.find(r"RTSTRUCT file out\s+[\d.]+\s+[\d.]+\s+([\d.]+)x", 1)]),
    Claim("| `CaseCache.read_patch` | {} patches/s |", "benchmarks/results/bench_loading.txt",
          lambda s: s.find(r"cache read_patch \| ([\d.]+)")),
    Claim("| {} patches/s (the cache is {}x faster) |", "benchmarks/results/bench_loading.txt",
          lambda s: [*s.find(r"crop \| ([\d.]+) patches/s"), *s.find(r"cache / NIfTI \| (\d+)x")]),
    Claim("DataLoader with 2 workers, batch 2 | {} s per batch |",
          "benchmarks/results/bench_loading.txt",
          lambda s: s.find(r"with augmentation \| ([\d.]+) s/batch")),
    Claim("see below) | {} s |", "benchmarks/results/bench_loading.txt",
          lambda s: s.find(r"Adam step, batch 2 \| ([\d.]+) s/step")),
    Claim("| {} s per batch: the loader keeps the step fed |",
          "benchmarks/results/bench_loading.txt",
          lambda s: s.find(r"training loop \| ([\d.]+) s/batch")),
    Claim("ours takes {} s for a 16×128×128 patch", "benchmarks/results/bench_training.txt",
          lambda s: s.find(r"\| unet3d \| [\d,]+ \| ([\d.]+) \|")),
    *[Claim(f"| {name} | {{}} | {{}} | {{}} | {{}} |", "benchmarks/results/bench_training.txt",
            lambda s, key=key: [_num(c) for c in s.row(key)])
      for name, key in [("`UNet3D` (seed 002 defaults)", "unet3d"),
                        ("`UNet3D` residual + SE + 1 recurrent pass", "unet3d-full"),
                        ("MONAI `DynUNet`, same channels per stage", "dynunet")]],
    Claim("train at the same speed ({}x). The full ablation model costs {}x",
          "benchmarks/results/bench_training.txt",
          lambda s: [*s.find(r"dynunet: ([\d.]+)x"),
                     _num(s.row("unet3d-full")[1]) / _num(s.row("unet3d")[1])]),
    Claim("| imports (PyTorch, MONAI, the package) | {} s | {} s | {} s |", PREDICT,
          lambda s: [r["seconds"]["imports"] for r in s.json["runs"]]),
    Claim("| load the model | {} s | {} s | {} s |", PREDICT,
          lambda s: [r["seconds"]["load model"] for r in s.json["runs"]]),
    Claim("| read DICOM | {} s | {} s | {} s |", PREDICT,
          lambda s: [r["seconds"]["read"] for r in s.json["runs"]]),
    Claim("| check + anatomy + preprocess (resample to 2 mm, body crop) | {} s | {} s | {} s |",
          PREDICT,
          lambda s: [_predict(i, "check", "anatomy", "preprocess")(s)[0] for i in range(3)]),
    Claim("| networks (2d + 3d + 3d_small) | {} s | {} s ({}x) | {} s ({}x) |", PREDICT,
          lambda s: [_network(s, 0), _network(s, 1), _network(s, 1) / _network(s, 0),
                     _network(s, 2), _network(s, 2) / _network(s, 0)]),
    Claim("| of which 3d_small (16x64x64 box) | {} s | {} s | {} s |", PREDICT,
          lambda s: [r["seconds"]["network 3d_small"] for r in s.json["runs"]]),
    Claim("| regrid onto 512x512 + largest component | {} s | {} s | {} s |", PREDICT,
          lambda s: [_predict(i, "regrid", "postprocess")(s)[0] for i in range(3)]),
    Claim("| organ checks (sides, volumes, heights) | {} s | {} s | {} s |", PREDICT,
          lambda s: [r["seconds"]["organ checks"] for r in s.json["runs"]]),
    Claim("| write RTSTRUCT, SEG, NIfTI, PNG, report | {} s | {} s | {} s |", PREDICT,
          lambda s: [r["seconds"]["write"] for r in s.json["runs"]]),
    Claim("| **total** (imports .. write) | **{} s** | {} s | {} s |", PREDICT,
          lambda s: [r["seconds"]["total"] for r in s.json["runs"]]),
    Claim("| **cold `autocontour predict` process** (target <= {} s) | **{} s** | {} s | {} s |",
          PREDICT, lambda s: [s.json["targets_s"]["cold_cli"],
                              *(r["cold_cli_s"] for r in s.json["runs"])]),
    Claim("| **in-process job, model loaded** (target <= {} s) | **{} s** | {} s | {} s |",
          PREDICT, lambda s: [s.json["targets_s"]["warm_job"],
                              *(r["warm_job_s"] for r in s.json["runs"])]),
    Claim("| peak RSS | {} MB | {} MB | {} MB |", PREDICT,
          lambda s: [r["peak_rss_mb"] for r in s.json["runs"]]),
    Claim("| mean Dice vs the phantom's truth | {} | {} | {} |", PREDICT,
          lambda s: [r["mean_dice"] for r in s.json["runs"]]),
    Claim("of its\n{} s, the imports of PyTorch and MONAI take {} s", PREDICT,
          lambda s: [s.json["runs"][0]["cold_cli_s"], s.json["runs"][0]["seconds"]["imports"]]),
    Claim("from 160 to 320 ({}x)", PREDICT, lambda s: [_network(s, 1) / _network(s, 0)]),
    Claim("TTA adds {}x to the network time and lifts Dice from\n{} to {} here", PREDICT,
          lambda s: [_network(s, 2) / _network(s, 0), s.json["runs"][0]["mean_dice"],
                     s.json["runs"][2]["mean_dice"]]),
    Claim("model measured\n{} s / {} s / {} s \"total\" on another day",
          "d1e8bcd:benchmarks/results/bench_predict.txt",
          lambda s: [_num(c) for c in s.row("total (load .. write)")[:3]]),
    # --- experiments
    Claim("`python experiments/table21_ablation.py` ({} min on this 2-core CPU",
          "experiments/results/table21/table21_run.json", lambda s: [s.json["seconds"] / 60]),
    Claim("baseline {}, +residual {}, +residual+SE {}, +cycle {}, +Dice loss {}.",
          "experiments/results/table21/table21.md",
          lambda s: [_num(s.row(m)[4]) for m in (
              "U-Net (baseline, CE)", "+residual", "+residual+SE", "+residual+SE+cycle",
              "+residual+SE+cycle+Dice loss")]),
    Claim("the source's monotone {} to {}.", "experiments/results/table21/table21.md",
          lambda s: [_num(s.row("U-Net (baseline, CE)")[6]),
                     _num(s.row("+residual+SE+cycle+Dice loss")[6])]),
    Claim("(one thread each: {} / {} / {} min of member training), then folds 3-4 ({} / {} min)",
          f"{NESTED}/folds/fold_0.json", _fold_minutes(0, 1, 2, 3, 4, folder=NESTED)),
    Claim("the {} organs: **2D {}, 3D {}, combined {}** (HD95 {} / {} / {} mm)",
          f"{NESTED}/table1.md",
          lambda s: [len([line for line in s.text.splitlines() if line.startswith("| ")
                          and "Dice" not in line and "mean " not in line and ":---" not in line]),
                     *[_num(s.row("mean over organs")[i]) for i in (0, 1, 3, 4, 5, 7)]]),
    Claim("the pituitary in {} of 5 (from 2D in fold {})", f"{NESTED}/rules.json",
          lambda s: [sum(f["rule"]["Pituitary"] == "3d_small" for f in s.json.values()),
                     *[int(k) for k, f in s.json.items() if f["rule"]["Pituitary"] == "2d"]]),
    Claim("3D-small **{} / {}** against 2D {} / {};", f"{NESTED}/table1.md",
          lambda s: [_num(s.row(o)[i]) for i in (2, 0) for o in ("OpticChiasm", "Pituitary")]),
    Claim("best or within 0.001 of the best member for {} of {} organs. The chosen epochs",
          f"{NESTED}/README.md",
          lambda s: s.find(r"within 0.001 of the best member\) for (\d+) of (\d+) organs")),
    Claim("fold 0 to 4: 2D {}, {}, {}, {}, {} of 14; 3D {}, {}, {}, {}, {} of 4",
          f"{NESTED}/folds/fold_0.json",
          lambda s: [Source(f"{NESTED}/folds/fold_{k}.json").json["budget"][m]["chosen_epoch"]
                     for m in ("2d", "3d") for k in range(5)]),
    Claim("how the source scores) reach **{}**, against **{}** on the test cases (difference +{})",
          f"{NESTED}/README.md",
          lambda s: s.find(r"the source's way of scoring\): mean ([\d.]+); on the test cases, "
                           r"which chose nothing: ([\d.]+) \(difference ([-+\d.]+)")),
    Claim("Dice) gives {} against {} (difference +{})", f"{NESTED}/README.md",
          lambda s: s.find(r"largest-component step\): mean ([\d.]+), against ([\d.]+) for "
                           r"the combined model with the rule chosen on the inner cases "
                           r"\(difference ([-+\d.]+)")),
    Claim("nested selection: combined {} on 40 test phantoms, {} where its choices were made",
          f"{NESTED}/README.md",
          lambda s: [_num(Source(f"{NESTED}/table1.md").row("mean over organs")[3]),
                     s.find(r"the source's way of scoring\): mean ([\d.]+)")[0]]),
    Claim("(one thread each; {}, {} and {} min of member training) and then folds 3-4 ({} and {} "
          "min)", "experiments/results/table1/folds/fold_0.json", _fold_minutes(0, 1, 2, 3, 4)),
    Claim("the 24 organs **2D {}, 3D {}, combined {}** (HD95 {} / {} / {} mm)",
          "experiments/results/table1/table1.md",
          lambda s: [_num(s.row("mean over organs")[i]) for i in (0, 1, 3, 4, 5, 7)]),
    Claim("**3D-small {} / {}** against 2D {} / {} and 3D {} / {},",
          "experiments/results/table1/table1.md",
          lambda s: [_num(s.row(o)[i]) for i in (2, 0, 1) for o in ("OpticChiasm", "Pituitary")]),
    Claim("the pituitary in {} of 5 (the source's final pituitary: {})",
          "experiments/results/table1/rules.json",
          lambda s: [sum(f["rule"]["Pituitary"] == "3d_small" for f in s.json.values()),
                     *Source("experiments/results/table1/table1.md").find(
                         r"\| Pituitary \|.*final ([\d.]+)")]),
    Claim("best or within 0.001 of the best member for {} of 24 organs",
          "experiments/results/table1/README.md",
          lambda s: s.find(r"within 0.001 of the best member\) for (\d+) of 24")),
    Claim("member's own Dice) gives {}, i.e. the selection bias is about {} here",
          "experiments/results/table1/README.md",
          lambda s: [(m := s.find(r"mean ([\d.]+), against ([\d.]+)"))[0], m[1] - m[0]]),
    Claim("Committed run (10 cases, {} min with one thread", UNSEEN,
          lambda s: [s.json["meta"]["seconds"] / 60]),
    Claim("model **{}** mean Dice (per case {}-{}, HD95 {} mm on average, no organ missed) "
          "against **{}** for the previous shipped model", UNSEEN,
          lambda s: [s.json["models"]["shipped"]["mean_dice"], *_cases(s),
                     s.json["models"]["shipped"]["mean_hd95_mm"],
                     s.json["models"]["previous_d1e8bcd"]["mean_dice"]]),
    Claim("better for {} organs at p < 0.05 (uncorrected)", UNSEEN,
          lambda s: [sum(t["p"] < 0.05 and t["diff"] > 0 for t in s.json["paired_dice"])]),
    Claim("optic chiasm {} to {} (now from the 3-D-small member), left optic nerve {} to {}, left "
          "inner ear {} to {}, cochlea L {} to {}, eyes +{}/+{}.", UNSEEN,
          lambda s: [*[_dice(s, m)[o] for o in ("OpticChiasm", "OpticNrv_L", "Ear_Internal_L",
                                                 "Cochlea_L")
                       for m in ("previous_d1e8bcd", "shipped")],
                     *[_dice(s)[o] - _dice(s, "previous_d1e8bcd")[o] for o in ("Eye_L", "Eye_R")]]),
    Claim("which scored {} on validation this time against {} with the same plan and seed",
          OLD_MODEL_JSON, lambda s: [_members(s)["2d"],
                                 _members(Source(f"d1e8bcd:{MODEL_JSON}"))["2d"]]),
    Claim("3-D-small, {} against the 2-D model's {} on validation).", OLD_MODEL_JSON,
          lambda s: [s.json["validation_dice"][m]["OpticChiasm"] for m in ("3d_small", "2d")]),
    Claim("(the third command, {} min with 2 threads", TEST_SET,
          lambda s: [s.json["meta"]["seconds"] / 60]),
    Claim("mean Dice **{}** (per case {}-{}, HD95 {} mm on average, no organ missed), the figure "
          "quoted at the top", TEST_SET,
          lambda s: [s.json["models"]["shipped"]["mean_dice"], *_cases(s),
                     s.json["models"]["shipped"]["mean_hd95_mm"]]),
    # the clinical service (benchmarks/results/bench_service.txt and friends)
    Claim("then the RTSTRUCT downloaded when the `end` event arrives): {} s against {} s",
          SERVICE, lambda s: [_num(c) for c in
                              s.row("upload start -> RTSTRUCT downloaded / predict call")[::2]]),
    Claim("median difference +{} s, within", SERVICE,
          lambda s: [_num(s.row("median service - median in-process")[0].lstrip("+"))]),
    Claim("(upload, queue wait, notification) is {} s against the job's {} s", SERVICE,
          lambda s: [_num(c) for c in s.row("of which everything else (total - pipeline)")[::2]]),
    Claim("RSS grew by +{} MB during a 2048 MiB raw upload and +{} MB during a 2048 MiB "
          "multipart", UPLOAD_MEMORY,
          lambda s: [_num(s.row("raw PUT")[6].lstrip("+")),
                     _num(s.row("multipart POST")[6].lstrip("+"))]),
    Claim("(the client got to send {} MiB of 256)", UPLOAD_MEMORY,
          lambda s: [_num(s.row("raw PUT, no login")[2])]),
    Claim("with one worker thread, {} requests/s and {} jobs per minute", STRESS,
          lambda s: s.find(r"([\d.]+) requests/s, 20 jobs done \(([\d.]+) per minute\), 0 "
                           r"errors", 0)),
    Claim("two worker processes, {} requests/s and {} jobs per minute", STRESS,
          lambda s: s.find(r"([\d.]+) requests/s, 20 jobs done \(([\d.]+) per minute\), 0 "
                           r"errors", 1)),
    Claim("a slice PNG p95 {} ms, its contours p95 {} ms, both together p95 {} ms", VIEWER,
          lambda s: [s.find(r"axial PNG +\d+ +[\d.]+ +([\d.]+)")[0],
                     s.find(r"axial contours +\d+ +[\d.]+ +([\d.]+)")[0],
                     s.find(r"axial slice: PNG \+ contours +\d+ +[\d.]+ +([\d.]+)")[0]]),
    Claim("with the reference's contours too {} ms", VIEWER,
          lambda s: s.find(r"axial slice: all 3 +\d+ +[\d.]+ +([\d.]+)")),
    Claim("upload to RTSTRUCT within {} s of the in-process job", SERVICE,
          lambda s: [_num(s.row("median service - median in-process")[0].lstrip("+"))]),
    Claim("tested in Debian's Chromium; a slice with its contours p95 {} ms", VIEWER,
          lambda s: s.find(r"axial slice: PNG \+ contours +\d+ +[\d.]+ +([\d.]+)")),
    # the DICOM node (benchmarks/results/bench_dicom_node.txt)
    Claim("| last slice received → RTSTRUCT stored at dcmtk storescp (median of 3) | {} s |",
          NODE, lambda s: s.find(r"median latency ([\d.]+) s")),
    Claim("| the in-process predict job on the same CT, model loaded | {} s |", NODE,
          lambda s: s.find(r"model loaded \(second of two runs\): ([\d.]+) s")),
    Claim("| difference (target: within 3 s) | **{} s: PASS**", NODE,
          lambda s: s.find(r"= predict \+ ([\d.]+) s")),
    Claim("last slice to RTSTRUCT stored within {} s of the in-process job", NODE,
          lambda s: s.find(r"= predict \+ ([\d.]+) s")),
    Claim("every instance fsync'd before its answer) | {} slices/s", NODE,
          lambda s: [_num(s.row("autocontour dicom-node (fsync each)")[2])]),
    Claim("| receive rate, storescu → dcmtk storescp | {} slices/s ({} s): the node receives at "
          "{}x", NODE, lambda s: [_num(s.row("dcmtk storescp")[2]), _num(s.row("dcmtk storescp")[1]),
                                  s.find(r"receives at ([\d.]+)x")[0]]),
    Claim("({} s for the structures)", VIEWER,
          lambda s: [s.find(r"structures \(parses and rasterises the RTSTRUCT\) +([\d.]+)")[0]
                     / 1000]),
]


@cache
def _readme() -> str:
    return README.read_text()


def _pattern(phrase: str) -> str:
    """``phrase`` as a regex: literal text, any whitespace for whitespace, NUMBER for {}."""
    literal = [r"\s+".join(re.escape(w) for w in re.split(r"\s+", part))
               for part in phrase.split("{}")]
    return NUMBER.join(literal)


def _agrees(quoted: str, value: float) -> bool:
    """``value`` printed with as many decimals as ``quoted`` shows reads the same."""
    quoted = quoted.replace(",", "")
    decimals = len(quoted.partition(".")[2])
    return f"{value:.{decimals}f}" == quoted


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: re.sub(r"\W+", " ", c.readme)[:60])
def test_readme_figure_matches_its_committed_source(claim: Claim) -> None:
    match = re.search(_pattern(claim.readme), _readme())
    assert match, f"README no longer says {claim.readme!r}: reword the claim with the README"
    source = Source(claim.source)
    assert source.path is None or source.path.is_file(), f"{claim.source} is not committed"
    values = list(claim.extract(source))
    quoted = list(match.groups())
    assert len(values) == len(quoted), (quoted, values)
    wrong = [f"README {q} vs {v:.6g}" for q, v in zip(quoted, values, strict=True)
             if not _agrees(q, v)]
    assert not wrong, f"{claim.readme!r} disagrees with {claim.source}: {'; '.join(wrong)}"


def test_no_organ_missed_on_either_phantom_set() -> None:
    for summary in (UNSEEN, TEST_SET):
        assert Source(summary).json["models"]["shipped"]["organs_missed"] == 0, summary
    assert "worse for none" in " ".join(_readme().split())
    assert not any(t["p"] < 0.05 and t["diff"] < 0 for t in Source(UNSEEN).json["paired_dice"])


def test_demo_transcript_is_the_committed_demo_output() -> None:
    """Every line of the README's demo transcript (bar the elision) is in bench_demo.txt."""
    block = re.search(r"```text\n\$ autocontour demo\n(.*?)```", _readme(), re.DOTALL)
    assert block, "the README has no demo transcript"
    committed = set(Source("benchmarks/results/bench_demo.txt").text.splitlines())
    lines = [line for line in block.group(1).splitlines() if not line.startswith("...")]
    missing = [line for line in lines if line not in committed]
    assert not missing, f"not in benchmarks/results/bench_demo.txt: {missing}"


def test_the_claim_checker_catches_a_changed_number() -> None:
    assert _agrees("0.853", 0.85255) and _agrees("4,962,274", 4962274) and _agrees("0", 0.0)
    assert not _agrees("0.225", 0.232) and not _agrees("71", 71.6)
    assert re.search(_pattern("per case {}-{},"), "per\n  case 0.826-0.887,").groups() == (
        "0.826", "0.887")
