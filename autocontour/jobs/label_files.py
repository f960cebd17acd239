"""Label-map files of ``autocontour evaluate``: which files a path holds and how they pair.

Kept apart from the evaluate job (which imports MONAI's metrics and matplotlib) so that the
command line can refuse a path that holds no label map, or two sides whose cases do not pair, in
well under a second, before anything heavy is imported (:mod:`autocontour.jobs.checks`).
"""

from __future__ import annotations

from pathlib import Path

from autocontour.errors import InvalidInputError

LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".h5", ".hdf5")

__all__ = ["LABEL_SUFFIXES", "check_evaluate_inputs", "find_label_maps", "pair_cases"]


def _case_name(path: Path) -> str | None:
    """The case a label file names (its name without the label suffix), or None."""
    name = path.name
    for suffix in LABEL_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def _labels_in(folder: Path) -> list[Path]:
    """The ``label.<suffix>`` files directly inside a folder."""
    return [f for f in sorted(folder.iterdir()) if f.is_file() and _case_name(f) == "label"]


def find_label_maps(path: str | Path) -> dict[str, Path]:
    """Case name -> label-map file, sorted by case.

    A file is one case named after the file; a folder holding ``label.<suffix>`` is one case
    named after the folder; any other folder holds cases as ``<case>.<suffix>`` files and
    ``<case>/label.<suffix>`` sub-folders (hidden files and other sub-folders are ignored).

    Raises:
        InvalidInputError: the path does not exist, is not a label-map file, holds no label maps,
            or holds one case twice (e.g. ``a.nii.gz`` and ``a/label.nii.gz``).
    """
    path = Path(path)
    if path.is_file():
        case = _case_name(path)
        if case is None:
            raise InvalidInputError(f"{path}: not a label-map file (expected one of "
                                    f"{', '.join(LABEL_SUFFIXES)}) or a folder of them")
        return {case: path}
    if not path.is_dir():
        raise InvalidInputError(f"{path}: no such file or folder")
    found: dict[str, list[Path]] = {}
    if own := _labels_in(path):
        found[path.name] = own
    else:
        for child in sorted(path.iterdir()):
            if child.name.startswith("."):
                continue
            if child.is_file() and (case := _case_name(child)) is not None:
                found.setdefault(case, []).append(child)
            elif child.is_dir() and (labels := _labels_in(child)):
                found.setdefault(child.name, []).extend(labels)
    if not found:
        raise InvalidInputError(f"{path}: no label maps found (expected <case>.nii.gz files or "
                                "<case>/label.nii.gz folders)")
    for case, files in found.items():
        if len(files) > 1:
            raise InvalidInputError(f"{path}: case {case!r} has {len(files)} label maps: "
                                    f"{', '.join(str(f) for f in files)}")
    return {case: files[0] for case, files in sorted(found.items())}


def pair_cases(pred: str | Path, truth: str | Path) -> dict[str, tuple[Path, Path]]:
    """Case name -> (prediction file, truth file); two single files make one case.

    Raises:
        InvalidInputError: one path is a file and the other a folder, a case is missing on
            either side (all missing cases are named), or ``find_label_maps`` fails.
    """
    pred, truth = Path(pred), Path(truth)
    if pred.is_file() != truth.is_file() and pred.exists() and truth.exists():
        raise InvalidInputError(f"{pred} and {truth}: give two label-map files or two folders")
    pred_maps, truth_maps = find_label_maps(pred), find_label_maps(truth)
    if pred.is_file():
        case = next(iter(truth_maps))
        return {case: (pred, truth)}
    problems = []
    if missing := sorted(set(truth_maps) - set(pred_maps)):
        problems.append(f"{pred}: no prediction for case(s) {', '.join(missing)}")
    if missing := sorted(set(pred_maps) - set(truth_maps)):
        problems.append(f"{truth}: no truth for case(s) {', '.join(missing)}")
    if problems:
        raise InvalidInputError("; ".join(problems))
    return {case: (pred_maps[case], truth_maps[case]) for case in truth_maps}


def check_evaluate_inputs(pred: str | Path, truth: str | Path, compare: str | Path | None = None,
                          organs: str | None = None) -> None:
    """The evaluate job's cheap refusals, in its order: an unknown organ set, a path that holds
    no label map, two sides whose cases do not pair (``compare`` against the truth too).

    Raises:
        InvalidInputError, UnknownOptionError: the first problem, naming the path or the set.
    """
    if organs is not None:
        from autocontour.organs import get_organ_set
        get_organ_set(organs)
    pair_cases(pred, truth)
    if compare is not None:
        pair_cases(compare, truth)
