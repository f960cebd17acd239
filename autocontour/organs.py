"""Organ sets: TG-263 names, label values, colours, left/right pairs, and an ROI-name matcher.

Label values follow the data sets the sources used (StructSeg 2019 numbering for head & neck), so a
label map from those challenges reads without remapping. The matcher maps the ROI names clinics
really write ("Parotid L", "L_Parotid", "parotid_lt", "PAROTID_LEFT", "左侧腮腺") onto a set and
reports every name it could not map, with the reason, instead of guessing.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

from autocontour.errors import UnknownOptionError, did_you_mean, look_up_option, normalise_name

Side = Literal["L", "R"]


@dataclass(frozen=True)
class Organ:
    """One structure of an organ set.

    Attributes:
        name: TG-263 name, written as the ROI name of an RTSTRUCT.
        label: integer value in a label map (1..255).
        color: display colour (R, G, B), 0..255, written as ROIDisplayColor.
        key: laterality-free anatomical key shared by both members of a pair (e.g. "parotid").
        side: "L" or "R" for paired organs (patient left/right), None otherwise.
        interpreted_type: RTROIInterpretedType ("ORGAN" or "CTV").
        sex: "male" or "female" for an organ only one sex has (the prostate, the cervix CTV);
            None otherwise.
    """

    name: str
    label: int
    color: tuple[int, int, int]
    key: str
    side: Side | None = None
    interpreted_type: str = "ORGAN"
    sex: str | None = None


@dataclass(frozen=True)
class MatchReport:
    """Result of mapping clinic ROI names onto an organ set.

    Attributes:
        mapped: clinic ROI name -> organ name of the set.
        unmapped: clinic ROI name -> why it was not mapped.
        duplicates: organ name -> clinic names that all mapped to it (only the first is kept in
            ``mapped``; the rest are also listed in ``unmapped``).
    """

    mapped: dict[str, str]
    unmapped: dict[str, str]
    duplicates: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"mapped {len(self.mapped)}, unmapped {len(self.unmapped)}"]
        lines += [f"  {src!r} -> {dst}" for src, dst in self.mapped.items()]
        lines += [f"  {src!r}: not mapped ({why})" for src, why in self.unmapped.items()]
        return "\n".join(lines)


@dataclass(frozen=True)
class OrganSet:
    """An ordered set of organs with unique names and label values."""

    name: str
    organs: tuple[Organ, ...]

    def __post_init__(self) -> None:
        names = [o.name for o in self.organs]
        labels = [o.label for o in self.organs]
        if len(set(names)) != len(names) or len(set(labels)) != len(labels):
            raise ValueError(f"organ set {self.name!r}: names and label values must be unique")
        if any(not 0 < lab < 256 for lab in labels):
            raise ValueError(f"organ set {self.name!r}: label values must lie in 1..255")
        sides = {(o.key, o.side) for o in self.organs}
        if len(sides) != len(self.organs):
            raise ValueError(f"organ set {self.name!r}: two organs share key and side")

    def __iter__(self):
        return iter(self.organs)

    def __len__(self) -> int:
        return len(self.organs)

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.organs]

    @property
    def labels(self) -> list[int]:
        return [o.label for o in self.organs]

    def by_name(self, name: str) -> Organ:
        for organ in self.organs:
            if organ.name == name:
                return organ
        raise UnknownOptionError(did_you_mean(f"organ {name!r} is not in set {self.name!r}",
                                               name, self.names))

    def by_label(self, label: int) -> Organ:
        for organ in self.organs:
            if organ.label == label:
                return organ
        raise UnknownOptionError(f"label value {label} is not in organ set {self.name!r}")

    def pairs(self) -> list[tuple[Organ, Organ]]:
        """(left, right) organ pairs, for mirroring that swaps labels instead of mislabelling."""
        left = {o.key: o for o in self.organs if o.side == "L"}
        right = {o.key: o for o in self.organs if o.side == "R"}
        return [(left[k], right[k]) for k in left if k in right]

    def mirror_lookup(self) -> list[int]:
        """A 256-entry table mapping each label to its left/right partner (others to themselves)."""
        table = list(range(256))
        for left, right in self.pairs():
            table[left.label], table[right.label] = right.label, left.label
        return table

    def keep_lookup(self) -> list[int]:
        """A 256-entry table keeping this set's labels and mapping every other value to 0.

        Applied to a label map of a larger set, it leaves only these organs (a network trained
        on a few organs, e.g. the 3-D-small member, sees the others as background).
        """
        table = [0] * 256
        for label in self.labels:
            table[label] = label
        return table

    def subset(self, names: list[str]) -> OrganSet:
        """The organs named, keeping their label values and this set's order."""
        wanted = {self.by_name(n).name for n in names}
        return OrganSet(self.name, tuple(o for o in self.organs if o.name in wanted))

    def to_dict(self) -> dict:
        return {"name": self.name, "organs": [
            {"name": o.name, "label": o.label, "color": list(o.color), "key": o.key,
             "side": o.side, "interpreted_type": o.interpreted_type, "sex": o.sex}
            for o in self.organs]}

    @classmethod
    def from_dict(cls, data: dict) -> OrganSet:
        """Read :meth:`to_dict` output; files written before ``sex`` existed take it from the
        known set of the same name."""
        known = {o.name: o.sex for o in ORGAN_SETS[data["name"]]} \
            if data["name"] in ORGAN_SETS else {}
        organs = tuple(Organ(name=o["name"], label=int(o["label"]), color=tuple(o["color"]),
                             key=o["key"], side=o.get("side"),
                             interpreted_type=o.get("interpreted_type", "ORGAN"),
                             sex=o.get("sex", known.get(o["name"])))
                       for o in data["organs"])
        return cls(data["name"], organs)

    def match(self, roi_names: list[str]) -> MatchReport:
        """Map clinic ROI names onto this set; see :func:`match_roi_name` for the rules."""
        mapped: dict[str, str] = {}
        unmapped: dict[str, str] = {}
        taken: dict[str, list[str]] = {}
        for roi in roi_names:
            organ, why = match_roi_name(roi, self)
            if organ is None:
                unmapped[roi] = why
            elif organ.name in taken:
                taken[organ.name].append(roi)
                unmapped[roi] = f"{organ.name} already given by {taken[organ.name][0]!r}"
            else:
                taken[organ.name] = [roi]
                mapped[roi] = organ.name
        duplicates = {k: v for k, v in taken.items() if len(v) > 1}
        return MatchReport(mapped, unmapped, duplicates)


# ---------------------------------------------------------------------------------------------
# The sets named by the sources.

def _pair(key: str, base: str, label_l: int, color_l: tuple[int, int, int],
          color_r: tuple[int, int, int]) -> tuple[Organ, Organ]:
    return (Organ(f"{base}_L", label_l, color_l, key, "L"),
            Organ(f"{base}_R", label_l + 1, color_r, key, "R"))


HEAD_NECK = OrganSet("head-neck", (
    Organ("Brainstem", 1, (0, 200, 255), "brainstem"),
    *_pair("eye", "Eye", 2, (255, 255, 0), (255, 220, 0)),
    *_pair("lens", "Lens", 4, (0, 255, 255), (0, 210, 210)),
    *_pair("opticnerve", "OpticNrv", 6, (255, 128, 0), (230, 100, 0)),
    Organ("OpticChiasm", 8, (255, 0, 255), "chiasm"),
    *_pair("temporallobe", "Lobe_Temporal", 9, (150, 100, 255), (120, 70, 230)),
    Organ("Pituitary", 11, (255, 0, 128), "pituitary"),
    *_pair("parotid", "Parotid", 12, (0, 255, 0), (0, 200, 0)),
    *_pair("innerear", "Ear_Internal", 14, (255, 160, 160), (230, 130, 130)),
    *_pair("middleear", "Ear_Middle", 16, (160, 80, 40), (130, 60, 30)),
    *_pair("tmj", "Joint_TM", 18, (200, 200, 120), (170, 170, 90)),
    Organ("SpinalCord", 20, (255, 0, 0), "spinalcord"),
    *_pair("mandible", "Bone_Mandible", 21, (240, 240, 240), (200, 200, 200)),
    *_pair("cochlea", "Cochlea", 23, (128, 255, 128), (100, 220, 100)),
    Organ("Larynx", 25, (0, 150, 150), "larynx"),
    Organ("Esophagus", 26, (140, 200, 0), "esophagus"),
    Organ("Cavity_Oral", 27, (255, 230, 180), "oralcavity"),
    *_pair("submandibular", "Glnd_Submand", 28, (40, 120, 255), (60, 60, 190)),
    Organ("Glnd_Thyroid", 30, (0, 90, 160), "thyroid"),
    Organ("Lips", 31, (255, 80, 80), "lips"),
))
"""The 22 StructSeg 2019 OARs (labels 1..22, StructSeg numbering), the cochleae (23, 24), and
seven organs clinics contour that StructSeg lacks (25..31, TG-263 names): larynx, (cervical)
oesophagus, oral cavity, submandibular glands, thyroid gland and lips."""

HEAD_NECK_SMALL = ("OpticChiasm", "Pituitary", "Lens_L", "Lens_R", "OpticNrv_L", "OpticNrv_R",
                   "Ear_Internal_L", "Ear_Internal_R", "Cochlea_L", "Cochlea_R")
"""The head-and-neck organs of 9-60 voxels on a 2 mm grid: those a 0.5 mm CT resampled to 2 mm
loses most (the shipped model's 3d_fine member is for them)."""

PELVIS = OrganSet("pelvis", (
    Organ("Bladder", 1, (255, 255, 0), "bladder"),
    Organ("Rectum", 2, (150, 75, 0), "rectum"),
    *_pair("femoralhead", "Femur_Head", 3, (0, 200, 255), (0, 150, 220)),
    Organ("Prostate", 5, (0, 255, 128), "prostate", sex="male"),
    Organ("CTV", 6, (255, 0, 0), "ctv", interpreted_type="CTV", sex="female"),
))
"""Pelvic OARs (seed 000) and the cervical-cancer CTV (seed 002)."""

CHEST = OrganSet("chest", (
    *_pair("lung", "Lung", 1, (0, 160, 255), (0, 120, 220)),
    Organ("Heart", 3, (255, 0, 0), "heart"),
    *_pair("clavicle", "Clavicle", 4, (240, 240, 200), (210, 210, 170)),
))
"""The JSRT chest-radiograph structures used for the noisy-label experiments (seed 002 ch. 3)."""

ORGAN_SETS: dict[str, OrganSet] = {s.name: s for s in (HEAD_NECK, PELVIS, CHEST)}
_ORGAN_SET_ALIASES = {"hn": "head-neck", "headneck": "head-neck", "head-and-neck": "head-neck"}


def get_organ_set(name: str) -> OrganSet:
    """Look up an organ set by name ("head-neck", "pelvis", "chest"), with a did-you-mean hint."""
    return ORGAN_SETS[look_up_option("organ set", name, ORGAN_SETS, normalise=_organ_set_key)]


def _organ_set_key(name: str) -> str:
    """The normalised name, aliases resolved (aliases are accepted but never suggested)."""
    key = normalise_name(name)
    return _ORGAN_SET_ALIASES.get(key, key)


# ---------------------------------------------------------------------------------------------
# ROI-name matching.

_SIDE_WORDS: dict[str, Side] = {
    "l": "L", "lt": "L", "left": "L", "lft": "L", "sin": "L", "links": "L", "gauche": "L",
    "r": "R", "rt": "R", "right": "R", "rgt": "R", "dx": "R", "rechts": "R", "droit": "R",
    "droite": "R",
}
# Structures derived from an organ for planning are not the organ: never map them.
_DERIVED_WORDS = {"prv", "ptv", "gtv", "itv", "ring", "opt", "avoid", "avoidance", "expand",
                  "exp", "mm", "cm", "minus", "plus", "sub", "dose", "hot", "cold", "wall",
                  "shell", "margin", "z", "zz", "dummy", "help", "helper", "tmp", "old", "bolus"}
_FILLER_WORDS = {"gland", "glands", "glnd", "glnds", "oar", "oars", "organ", "the", "of", "and",
                 "bone", "a"}

_SYNONYMS: dict[str, list[str]] = {
    "brainstem": ["brainstem", "brain stem", "stem brain"],
    "eye": ["eye", "eyes", "globe", "eyeball", "eye ball", "bulbus"],
    "lens": ["lens", "lense", "lenses", "crystalline lens"],
    "opticnerve": ["optic nerve", "opticnerve", "optic nrv", "opticnrv", "optnrv", "optic n",
                   "nerve optic", "n opticus", "on"],
    "chiasm": ["optic chiasm", "chiasm", "chiasma", "optic chiasma", "opticchiasm", "chiasmopt",
               "chiasm optic"],
    "temporallobe": ["temporal lobe", "temporal lobes", "lobe temporal", "temporal",
                     "temporallobe", "tlobe", "t lobe"],
    "pituitary": ["pituitary", "hypophysis", "hypophyse", "pit"],
    "parotid": ["parotid", "parotids", "parotis"],
    "innerear": ["inner ear", "ear internal", "internal ear", "innerear", "ear inner"],
    "middleear": ["middle ear", "mid ear", "ear middle", "middleear", "midear"],
    "tmj": ["tmj", "t m joint", "tm joint", "joint tm", "temporomandibular joint",
            "temporo mandibular joint", "tmjoint", "joint temporomandibular"],
    "spinalcord": ["spinal cord", "spinalcord", "cord", "cord spinal", "spinal canal"],
    "mandible": ["mandible", "mandibula", "jaw", "lower jaw"],
    "cochlea": ["cochlea", "cochlear"],
    "larynx": ["larynx"],
    "esophagus": ["esophagus", "oesophagus", "esoph", "oesoph", "cervical esophagus",
                  "cervical oesophagus", "esophagus cervical", "oesophagus cervical"],
    "oralcavity": ["oral cavity", "cavity oral", "oralcavity", "mouth", "oral cav"],
    "submandibular": ["submandibular", "submand", "smg", "submandibular salivary",
                      "salivary submandibular"],
    "thyroid": ["thyroid", "thyroidea", "thyreoidea"],
    "lips": ["lips", "lip"],
    "bladder": ["bladder", "urinary bladder", "vesica", "bladder urinary"],
    "rectum": ["rectum", "rect"],
    "femoralhead": ["femoral head", "femur head", "head femur", "femur", "femoral",
                    "femoralhead", "femurhead", "fem head"],
    "prostate": ["prostate", "prostata"],
    "ctv": ["ctv", "clinical target volume", "ctv cervix", "cervix ctv"],
    "lung": ["lung", "lungs", "pulmo"],
    "heart": ["heart"],
    "clavicle": ["clavicle", "clavicula", "collarbone"],
}
_CHINESE: dict[str, str] = {
    "脑干": "brainstem", "眼球": "eye", "眼睛": "eye", "眼": "eye", "晶状体": "lens",
    "晶体": "lens", "视神经": "opticnerve", "视交叉": "chiasm", "颞叶": "temporallobe",
    "垂体": "pituitary", "脑垂体": "pituitary", "腮腺": "parotid", "内耳": "innerear",
    "中耳": "middleear", "颞下颌关节": "tmj", "脊髓": "spinalcord", "下颌骨": "mandible",
    "下颌": "mandible", "耳蜗": "cochlea", "喉": "larynx", "喉部": "larynx", "食管": "esophagus",
    "食道": "esophagus", "颈段食管": "esophagus", "口腔": "oralcavity", "颌下腺": "submandibular",
    "下颌下腺": "submandibular", "甲状腺": "thyroid", "嘴唇": "lips", "唇": "lips", "口唇": "lips",
    "膀胱": "bladder", "直肠": "rectum",
    "股骨头": "femoralhead", "前列腺": "prostate", "临床靶区": "ctv", "肺": "lung",
    "心脏": "heart", "锁骨": "clavicle",
}
_PHRASES: dict[tuple[str, ...], str] = {
    tuple(sorted(s.split())): key for key, syns in _SYNONYMS.items() for s in syns
}


def _tokens(name: str) -> list[str]:
    text = unicodedata.normalize("NFKC", name)
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)  # ParotidL -> Parotid L
    return re.findall(r"[a-z]+|\d+", text.lower())


def _match_chinese(name: str) -> tuple[str | None, Side | None, str]:
    side: Side | None = None
    if "左" in name and "右" not in name:
        side = "L"
    elif "右" in name and "左" not in name:
        side = "R"
    elif "左" in name and "右" in name:
        return None, None, "names both sides"
    core = re.sub(r"[左右侧\s()（）_\-]", "", unicodedata.normalize("NFKC", name))
    if core in _CHINESE:
        return _CHINESE[core], side, ""
    return None, side, "unknown structure name"


def match_roi_name(roi_name: str, organ_set: OrganSet) -> tuple[Organ | None, str]:
    """Map one clinic ROI name to an organ of ``organ_set``.

    Rules: the side comes from a side word (L, Lt, Left, 左, ...) anywhere in the name; the rest,
    with filler words dropped, must be a known synonym of an organ of the set. Names of derived
    planning structures (PRV, PTV, rings, "opt", margins in mm) are never mapped; neither is a
    paired organ without a side, nor a single organ with one.

    Returns:
        (organ, "") when mapped, else (None, reason).
    """
    if re.search(r"[\u4e00-\u9fff]", roi_name):
        key, side, why = _match_chinese(roi_name)
        if key is None:
            return None, why
        return _find(organ_set, key, side, roi_name)

    tokens = _tokens(roi_name)
    if not tokens:
        return None, "empty name"
    derived = [t for t in tokens if t in _DERIVED_WORDS]
    if derived:
        return None, f"derived planning structure ({derived[0]!r}), not the organ itself"
    if any(t.isdigit() for t in tokens):
        return None, "contains a number (a variant or margin structure?)"
    sides = {_SIDE_WORDS[t] for t in tokens if t in _SIDE_WORDS}
    if len(sides) > 1:
        return None, "names both sides"
    rest = [t for t in tokens if t not in _SIDE_WORDS and t not in _FILLER_WORDS]
    key = _PHRASES.get(tuple(sorted(rest)))
    if key is None and len(rest) == 1:
        # "ParotidLt" arrives as one token; accept a known side word glued to the end.
        for word, side in sorted(_SIDE_WORDS.items(), key=lambda kv: -len(kv[0])):
            stem = rest[0]
            if len(word) > 1 and stem.endswith(word) and (stem[: -len(word)],) in _PHRASES:
                key, sides = _PHRASES[(stem[: -len(word)],)], {side}
                break
    if key is None:
        return None, "unknown structure name"
    return _find(organ_set, key, next(iter(sides)) if sides else None, roi_name)


def _find(organ_set: OrganSet, key: str, side: Side | None, roi_name: str
          ) -> tuple[Organ | None, str]:
    candidates = [o for o in organ_set.organs if o.key == key]
    if not candidates:
        return None, f"recognised as {key!r}, which is not in organ set {organ_set.name!r}"
    paired = any(o.side for o in candidates)
    if paired and side is None:
        return None, "paired organ without a side (L/R)"
    if not paired and side is not None:
        return None, f"a side was given but {candidates[0].name} is not a paired organ"
    for organ in candidates:
        if organ.side == side:
            return organ, ""
    return None, "no organ with that side"
