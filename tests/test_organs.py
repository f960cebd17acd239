"""Organ sets and the ROI-name matcher: names clinics write map, everything else is reported."""

from __future__ import annotations

import pytest

from autocontour.errors import UnknownOptionError
from autocontour.organs import (
    _SYNONYMS,
    CHEST,
    HEAD_NECK,
    PELVIS,
    OrganSet,
    get_organ_set,
    match_roi_name,
)

ADDED_HN = {"Larynx": 25, "Esophagus": 26, "Cavity_Oral": 27, "Glnd_Submand_L": 28,
            "Glnd_Submand_R": 29, "Glnd_Thyroid": 30, "Lips": 31}


def test_head_neck_has_structseg_numbering_and_cochleae():
    assert len(HEAD_NECK) == 31
    assert HEAD_NECK.by_label(1).name == "Brainstem"
    assert HEAD_NECK.by_label(9).name == "Lobe_Temporal_L"
    assert HEAD_NECK.by_label(11).name == "Pituitary"
    assert HEAD_NECK.by_label(21).name == "Bone_Mandible_L"
    assert {o.name for o in HEAD_NECK if o.key == "cochlea"} == {"Cochlea_L", "Cochlea_R"}
    assert HEAD_NECK.labels[:24] == list(range(1, 25))  # StructSeg reads without remapping


def test_head_neck_added_organs_after_structseg():
    """Seven TG-263 organs StructSeg lacks, on 25..31, each with its own colour."""
    assert {o.name: o.label for o in HEAD_NECK if o.label > 24} == ADDED_HN
    assert HEAD_NECK.by_name("Glnd_Submand_L").side == "L"
    assert HEAD_NECK.by_name("Glnd_Submand_R").side == "R"
    assert all(HEAD_NECK.by_name(n).side is None for n in ADDED_HN if "Submand" not in n)
    assert len({o.color for o in HEAD_NECK}) == len(HEAD_NECK)


def test_synonyms_are_unambiguous():
    """No word set names two organs (the matcher compares names as sorted word sets)."""
    keys: dict[tuple[str, ...], set[str]] = {}
    for key, syns in _SYNONYMS.items():
        for syn in syns:
            keys.setdefault(tuple(sorted(syn.split())), set()).add(key)
    assert {p: k for p, k in keys.items() if len(k) > 1} == {}


def test_pairs_and_mirror_table():
    pairs = {(l.name, r.name) for l, r in HEAD_NECK.pairs()}
    assert ("Parotid_L", "Parotid_R") in pairs and len(pairs) == 11
    assert ("Glnd_Submand_L", "Glnd_Submand_R") in pairs
    table = HEAD_NECK.mirror_lookup()
    assert table[HEAD_NECK.by_name("Lens_L").label] == HEAD_NECK.by_name("Lens_R").label
    assert table[HEAD_NECK.by_name("Brainstem").label] == HEAD_NECK.by_name("Brainstem").label
    assert [table[table[v]] for v in range(256)] == list(range(256))


@pytest.mark.parametrize("organ_set", [HEAD_NECK, PELVIS, CHEST])
def test_round_trip_through_dict(organ_set):
    assert OrganSet.from_dict(organ_set.to_dict()) == organ_set


@pytest.mark.parametrize("roi, expected", [
    ("Parotid L", "Parotid_L"), ("L_Parotid", "Parotid_L"), ("parotid_lt", "Parotid_L"),
    ("PAROTID_LEFT", "Parotid_L"), ("Parotid_R", "Parotid_R"), ("Rt Parotid Gland", "Parotid_R"),
    ("ParotidL", "Parotid_L"), ("左侧腮腺", "Parotid_L"), ("腮腺右", "Parotid_R"),
    ("Brain Stem", "Brainstem"), ("BrainStem", "Brainstem"), ("脑干", "Brainstem"),
    ("OpticNrv_L", "OpticNrv_L"), ("Optic Nerve R", "OpticNrv_R"), ("ON_L", "OpticNrv_L"),
    ("Chiasm", "OpticChiasm"), ("optic_chiasma", "OpticChiasm"), ("视交叉", "OpticChiasm"),
    ("Lens-Lt", "Lens_L"), ("Eye R", "Eye_R"), ("Globe_L", "Eye_L"),
    ("Lobe_Temporal_L", "Lobe_Temporal_L"), ("Temporal Lobe R", "Lobe_Temporal_R"),
    ("Pituitary", "Pituitary"), ("Ear_Internal_L", "Ear_Internal_L"),
    ("Inner Ear R", "Ear_Internal_R"), ("middle_ear_l", "Ear_Middle_L"),
    ("TMJ_R", "Joint_TM_R"), ("T_M_Joint_L", "Joint_TM_L"), ("SpinalCord", "SpinalCord"),
    ("Spinal_Cord", "SpinalCord"), ("Mandible_L", "Bone_Mandible_L"),
    ("Bone_Mandible_R", "Bone_Mandible_R"), ("Cochlea_R", "Cochlea_R"), ("右侧耳蜗", "Cochlea_R"),
    # the organs added after StructSeg
    ("Larynx", "Larynx"), ("LARYNX", "Larynx"), ("larynx", "Larynx"), ("喉", "Larynx"),
    ("喉部", "Larynx"),
    ("Esophagus", "Esophagus"), ("Oesophagus", "Esophagus"), ("Esoph", "Esophagus"),
    ("Cervical esophagus", "Esophagus"), ("Esophagus_Cervical", "Esophagus"),
    ("食管", "Esophagus"), ("食道", "Esophagus"),
    ("Oral cavity", "Cavity_Oral"), ("OralCavity", "Cavity_Oral"), ("Cavity_Oral", "Cavity_Oral"),
    ("Mouth", "Cavity_Oral"), ("口腔", "Cavity_Oral"),
    ("Submandibular L", "Glnd_Submand_L"), ("Glnd_Submand_L", "Glnd_Submand_L"),
    ("Glnd_Submand_R", "Glnd_Submand_R"), ("SMG_L", "Glnd_Submand_L"),
    ("Submand_R", "Glnd_Submand_R"), ("Rt submandibular gland", "Glnd_Submand_R"),
    ("SubmandibularL", "Glnd_Submand_L"), ("左侧颌下腺", "Glnd_Submand_L"),
    ("颌下腺右", "Glnd_Submand_R"), ("右下颌下腺", "Glnd_Submand_R"),
    ("Thyroid", "Glnd_Thyroid"), ("Thyroid gland", "Glnd_Thyroid"),
    ("Glnd_Thyroid", "Glnd_Thyroid"), ("甲状腺", "Glnd_Thyroid"),
    ("Lips", "Lips"), ("Lip", "Lips"), ("嘴唇", "Lips"), ("唇", "Lips"),
])
def test_matcher_maps_clinic_names(roi, expected):
    organ, why = match_roi_name(roi, HEAD_NECK)
    assert organ is not None, why
    assert organ.name == expected


@pytest.mark.parametrize("roi, reason", [
    ("Parotid_L_PRV5mm", "derived planning structure"), ("PTV70", "derived planning structure"),
    ("Parotid_L-PTV", "derived planning structure"), ("z_opt_parotid", "derived"),
    ("Mandible", "without a side"), ("Parotid", "without a side"), ("Brainstem_L", "not a paired"),
    ("BODY", "unknown structure"), ("External", "unknown structure"),
    ("Parotids L+R", "both sides"), ("Parotid L R", "both sides"), ("Bladder", "not in organ set"),
    ("", "empty name"), ("CTV1", "number"),
    # the organs added after StructSeg: derived, unsided, partial or nearby structures
    ("Larynx_PRV", "derived planning structure"), ("Larynx_PRV5", "derived planning structure"),
    ("Submandibular", "without a side"), ("Glnd_Submand", "without a side"),
    ("颌下腺", "without a side"), ("Thyroid_L", "not a paired"), ("Larynx R", "not a paired"),
    ("Submandibular L R", "both sides"), ("Larynx_Glottic", "unknown structure"),
    ("Larynx_SG", "unknown structure"), ("Thyroid cartilage", "unknown structure"),
    ("Lip_Upper", "unknown structure"), ("Floor of mouth", "unknown structure"),
    ("Esophagus_Wall", "derived planning structure"), ("Glnd", "unknown structure"),
    ("Gland", "unknown structure"),
])
def test_matcher_reports_instead_of_guessing(roi, reason):
    organ, why = match_roi_name(roi, HEAD_NECK)
    assert organ is None
    assert reason in why


def test_match_report_lists_unmapped_and_duplicates():
    report = PELVIS.match(["Bladder", "BLADDER", "Rectum", "Femur_Head_L", "FemoralHead R",
                           "CTV", "PTV", "Body", "prostate"])
    assert report.mapped == {"Bladder": "Bladder", "Rectum": "Rectum",
                             "Femur_Head_L": "Femur_Head_L", "FemoralHead R": "Femur_Head_R",
                             "CTV": "CTV", "prostate": "Prostate"}
    assert set(report.unmapped) == {"BLADDER", "PTV", "Body"}
    assert report.duplicates == {"Bladder": ["Bladder", "BLADDER"]}
    assert "not mapped" in report.summary()


def test_organ_set_lookup_with_did_you_mean():
    assert get_organ_set("Head_Neck") is HEAD_NECK
    assert get_organ_set("hn") is HEAD_NECK
    with pytest.raises(UnknownOptionError, match="did you mean 'pelvis'"):
        get_organ_set("pelvic")
    with pytest.raises(UnknownOptionError, match="did you mean 'Parotid_L'"):
        HEAD_NECK.by_name("Parotid_Left")


def test_invalid_sets_are_refused():
    organ = HEAD_NECK.by_name("Brainstem")
    with pytest.raises(ValueError, match="unique"):
        OrganSet("bad", (organ, organ))
