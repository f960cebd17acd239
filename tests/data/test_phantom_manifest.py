"""Importing our own phantom folders needs no ``--organs``: ``phantoms.json`` records the set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autocontour.cli import main
from autocontour.data.importer import import_dataset
from autocontour.data.sources import PHANTOM_MANIFEST, find_cases, recorded_organs
from autocontour.errors import InvalidInputError, UnknownOptionError
from autocontour.organs import OrganSet, get_organ_set
from autocontour.phantoms.export import write_cases

TINY = (12, 40, 40)


@pytest.fixture(scope="module")
def pelvis_nifti(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two female pelvis phantoms as NIfTI pairs only (label values, no names)."""
    out = tmp_path_factory.mktemp("manifest") / "pelvis"
    write_cases("pelvis", 2, out, seed=4, shape=TINY, sex="female", dicom=False, progress=False)
    return out


def test_nifti_phantoms_import_with_the_recorded_organ_set(pelvis_nifti: Path,
                                                           tmp_path: Path) -> None:
    manifest = json.loads((pelvis_nifti / PHANTOM_MANIFEST).read_text())
    layout, organs, sources = find_cases(pelvis_nifti, None)
    assert layout == "nifti" and len(sources) == 2
    assert organs.to_dict() == manifest["organ_set"] and organs.name == "pelvis"
    report = import_dataset(pelvis_nifti, tmp_path / "ds", progress=False, fingerprint=False)
    assert report.organ_set == "pelvis" and len(report.imported) == 2


def test_a_given_organ_set_wins_over_the_manifest(pelvis_nifti: Path) -> None:
    given = OrganSet("mine", get_organ_set("pelvis").organs)
    assert find_cases(pelvis_nifti, given)[1] is given


def test_without_a_manifest_nifti_pairs_still_need_organs(pelvis_nifti: Path,
                                                          tmp_path: Path) -> None:
    case = next(p for p in pelvis_nifti.iterdir() if p.is_dir())
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / case.name).symlink_to(case)
    with pytest.raises(UnknownOptionError, match="--organs"):
        find_cases(tmp_path / "src", None)


def test_a_manifest_with_only_a_site_or_a_broken_one(tmp_path: Path) -> None:
    (tmp_path / PHANTOM_MANIFEST).write_text(json.dumps({"site": "head-neck", "cases": []}))
    assert recorded_organs(tmp_path) == get_organ_set("head-neck")
    (tmp_path / PHANTOM_MANIFEST).write_text("{not json")
    with pytest.raises(InvalidInputError, match=r"phantoms\.json.*--organs"):
        recorded_organs(tmp_path)
    (tmp_path / PHANTOM_MANIFEST).unlink()
    assert recorded_organs(tmp_path) is None


def test_cli_dataset_import_of_phantoms_without_organs(pelvis_nifti: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    code = main(["dataset", "import", str(pelvis_nifti), "--out", str(tmp_path / "ds"),
                 "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "pelvis" in out
