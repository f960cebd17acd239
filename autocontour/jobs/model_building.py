"""The build-model job: train a combined model's members, choose its rule, write the model file.

Used by ``scripts/train_default_model.py`` (the shipped model) and by the table-1 experiment
(``experiments/table1_combined.py``), one fold each (:func:`build_model`):

1. each member (:class:`MemberPlan`) is trained by the training engine into ``out/<member>/``
   on the data set's fold (a finished member is re-used, so an interrupted build continues);
2. every validation case is contoured by each member alone on the model grid; a region member
   (3-D-small) is placed by its centring member's prediction, as at inference;
3. the rule (organ -> member) and the fall-backs take the best mean validation Dice
   (:func:`~autocontour.inference.combined.choose_rule`); then the largest-component switch per
   organ is chosen on the combined predictions (nnU-Net's rule: keep it unless it lowers Dice);
4. the model file and ``out/validation.json`` (per case, member and organ: Dice and HD95) are
   written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autocontour import __version__
from autocontour.artifacts.config import TrainConfig
from autocontour.artifacts.files import load_trained_network
from autocontour.data.cache import CaseCache
from autocontour.data.folder import DatasetFolder, write_json
from autocontour.data.steps_grid import Resample
from autocontour.errors import InvalidInputError
from autocontour.evaluation.overlap import dice
from autocontour.evaluation.surface import surface_scores
from autocontour.inference.anatomy import record_training_data
from autocontour.inference.checks import InputExpectations
from autocontour.inference.combined import (
    ContourModel,
    Member,
    RoiSpec,
    choose_rule,
    combined_probabilities,
)
from autocontour.inference.model_file import load_model, save_model
from autocontour.inference.pipeline import contour_on_grid
from autocontour.inference.postprocess import choose_largest_component, keep_largest_component
from autocontour.io.grid import canonical
from autocontour.jobs.base import CancelCheck, ProgressCallback, Reporter
from autocontour.training.callbacks import Callback
from autocontour.training.engine import Trainer


@dataclass(frozen=True)
class MemberPlan:
    """How to train one member.

    Attributes:
        name: the member's name ("2d", "3d", "3d_small").
        config: the training config as a dict (``TrainConfig.from_dict``; ``dataset``, ``out``,
            ``fold`` and ``folds`` are filled in by :func:`train_member`).
        roi: for a region member, where it runs at inference.
        dataset: the member's own data set (None: the build's). A member whose data set has
            another recipe (a finer grid: the same cases rendered or scanned finer) keeps that
            recipe as its own; it needs a bounding-box region (``roi.margin_mm``), and is
            validated on its data set's validation cases at their own resolution.
    """

    name: str
    config: dict[str, Any]
    roi: RoiSpec | None = None
    dataset: str | Path | None = None


@dataclass
class BuildResult:
    """A built model and how it scored on its validation cases."""

    model: ContourModel
    path: Path
    validation: dict[str, Any] = field(default_factory=dict)


def train_member(plan: MemberPlan, dataset: Path, out: Path, fold: int, folds: int,
                 callbacks: Sequence[Callback] = (), test_fold: int | None = None) -> Path:
    """Train one member (or re-use a finished run); returns its checkpoint.

    The best-validation checkpoint is used for whole-volume members; a region member's
    validation (whole cases) says little about its box, so its last checkpoint is used.
    ``test_fold``: that fold's validation cases are kept out of the run (nested CV).
    """
    run = out / plan.name
    where = {"dataset": str(plan.dataset or dataset), "out": str(run), "fold": fold,
             "folds": folds, **({} if test_fold is None else {"test_fold": test_fold})}
    config = TrainConfig.from_dict({**plan.config, **where})
    if not (run / "result.json").is_file():
        Trainer(config, callbacks=list(callbacks), progress=False).fit(
            resume=(run / "last.pt").is_file())
    best = run / "best.pt"
    return best if plan.roi is None and best.is_file() else run / "last.pt"


def load_members(plans: Sequence[MemberPlan], checkpoints: Mapping[str, Path]
                 ) -> tuple[dict[str, Member], Any, Any, dict[str, Any]]:
    """The trained members, with the recipe and organ set they share."""
    members, recipe, organs, seconds = {}, None, None, {}
    for plan in plans:
        trained = load_trained_network(checkpoints[plan.name])
        r, o = trained.recipe, trained.organs
        if organs is not None and o.names != organs.names:
            raise ValueError(f"member {plan.name} was trained with another organ set")
        own = None
        if recipe is not None and r.to_dict() != recipe.to_dict():
            if plan.roi is None or plan.roi.margin_mm is None:
                raise ValueError(f"member {plan.name} was trained with another recipe, and is "
                                 "not a region member on its own grid (roi.margin_mm)")
            own = r
        recipe, organs = (recipe or r), o
        members[plan.name] = Member(plan.name, trained.net, trained.config.patch_size, plan.roi,
                                    own)
        seconds[plan.name] = _training_seconds(checkpoints[plan.name].parent)
    return members, recipe, organs, seconds


def _training_seconds(run: Path) -> float | None:
    """Training seconds of a run, from the last row of its metrics log."""
    log = run / "metrics.jsonl"
    if not log.is_file():
        return None
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return round(float(rows[-1]["seconds"]), 1) if rows else None


def member_predictions(model: ContourModel, image: torch.Tensor, member: str,
                       device: str | torch.device) -> tuple[np.ndarray, list[str]]:
    """Labels (model grid) of one member alone, and the organs it scores.

    A region member contours its region's organs (placed by its centring member, which
    supplies every other organ); a whole-volume member contours every organ.
    """
    m = model.members[member]
    if m.roi is None:
        rule, scored = {o: member for o in model.organs.names}, list(model.organs.names)
    else:
        scored = list(m.roi.organs)
        rule = {o: (member if o in scored else m.roi.centre_from) for o in model.organs.names}
    view = replace(model, rule=rule, largest_component={})
    probs = combined_probabilities(view, image, organs=model.organs.names,
                                   device=device).probabilities
    return probs.argmax(0).numpy().astype(np.uint8), scored


def validate(model: ContourModel, cache: CaseCache, case_ids: Sequence[str],
             device: str | torch.device = "cpu", progress: Callable[[str], None] | None = None
             ) -> dict[str, Any]:
    """Dice and HD95 per case, member and organ on the model grid; combined with the rule.

    Returns:
        {"cases": {case: {member: {organ: {"dice", "hd95_mm"}}}}, "member_dice": {member:
        {organ: mean Dice}}} plus, after :func:`finish_rule`, the combined rows.
    """
    cases: dict[str, Any] = {}
    truths, images = {}, {}
    for cid in case_ids:
        volume, labels = cache.load(cid)
        pre = model.recipe.apply(volume, labels)
        image = torch.from_numpy(np.asarray(pre.image.array, np.float32))[None, None]
        truth = pre.labels.array
        spacing = pre.image.geometry.spacing
        images[cid], truths[cid] = (image, spacing), truth
        cases[cid] = {}
        for name in _model_grid_members(model):
            pred, scored = member_predictions(model, image, name, device)
            cases[cid][name] = _scores(model, pred, truth, scored, spacing)
        if progress:
            progress(cid)
    member_dice = {name: _mean_dice(cases, name) for name in _model_grid_members(model)}
    return {"cases": cases, "member_dice": member_dice, "_images": images, "_truths": truths}


def _scores(model: ContourModel, pred: np.ndarray, truth: np.ndarray, organs: Sequence[str],
            spacing: Sequence[float]) -> dict[str, dict[str, float | None]]:
    """Dice and HD95 of each organ present in the prediction or the truth."""
    out: dict[str, dict[str, float | None]] = {}
    for organ in organs:
        label = model.organs.by_name(organ).label
        p, t = pred == label, truth == label
        if not (p.any() or t.any()):
            continue
        hd = surface_scores(p, t, spacing).hd95_mm
        out[organ] = {"dice": dice(p, t), "hd95_mm": None if np.isnan(hd) else float(hd)}
    return out


def _model_grid_members(model: ContourModel) -> list[str]:
    """The members that work on the model grid (those with their own grid are scored apart)."""
    return [n for n, m in model.members.items() if m.recipe is None]


def validate_own_grid(model: ContourModel, member: str, cache: CaseCache,
                      case_ids: Sequence[str], device: str | torch.device = "cpu",
                      progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Score a member on its own grid against the model's rule, at the cases' own resolution.

    Each case (from the member's data set: e.g. the validation phantoms rendered at 1 mm) is
    contoured twice by the whole inference path (:func:`contour_on_grid`): with the member's
    organs from the member, and from the member the rule gives them on the model grid. Both
    are scored on the case's own grid, which is where a finer grid can show what it gains.

    Returns:
        {"cases": {case: {"own": {organ: {"dice", "hd95_mm"}}, "rule": {...}}},
        "dice": {organ: {"own": mean, "rule": mean, "rule_member": name}}}
    """
    m = model.members[member]
    assert m.roi is not None
    organs = list(m.roi.organs)
    coarse = {o: (model.fallback.get(o) or m.roi.centre_from)
              if model.rule.get(o) == member else model.member_for(o) for o in organs}
    views = {"own": replace(model, rule={**model.rule, **{o: member for o in organs}}),
             "rule": replace(model, rule={**model.rule, **coarse})}
    cases: dict[str, Any] = {}
    for cid in case_ids:
        volume, truth = cache.load(cid)
        canon = canonical(volume, model.expect.orientation)
        truth_canon = canonical(truth, model.expect.orientation)
        spacing = canon.geometry.spacing
        cases[cid] = {}
        for kind, view in views.items():
            labels, _ = contour_on_grid(view, canon, canon.geometry, organs, device=device)
            cases[cid][kind] = _scores(model, labels, truth_canon.array, organs, spacing)
        if progress:
            progress(cid)
    means = {kind: _mean_dice(cases, kind) for kind in views}
    return {"cases": cases, "dice": {
        o: {"own": means["own"].get(o), "rule": means["rule"].get(o), "rule_member": coarse[o]}
        for o in organs}}


def finish_own_grid(model: ContourModel, folder_of: Mapping[str, DatasetFolder], fold: int,
                    folds: int, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Give each own-grid member the organs it contours better at its cases' resolution.

    Changes ``model.rule`` in place and returns {member: :func:`validate_own_grid`}.
    """
    results: dict[str, Any] = {}
    for name, m in model.members.items():
        if m.recipe is None:
            continue
        folder = folder_of[name]
        val = folder.splits(folds)[fold]["val"]
        result = validate_own_grid(model, name, folder.cache(), val, device)
        for organ, scores in result["dice"].items():
            own, ruled = scores["own"], scores["rule"]
            if own is not None and (ruled is None or own > ruled):
                model.rule[organ] = name  # (its fall-back stays the best whole-volume member)
        results[name] = result
    return results


def _mean_dice(cases: Mapping[str, Any], member: str) -> dict[str, float]:
    per: dict[str, list[float]] = {}
    for scores in cases.values():
        for organ, s in scores.get(member, {}).items():
            per.setdefault(organ, []).append(s["dice"])
    return {o: float(np.mean(v)) for o, v in per.items()}


def _combined_labels(model: ContourModel, validation: Mapping[str, Any],
                     device: str | torch.device) -> list[np.ndarray]:
    """The combined model's labels (model grid, before largest-component) of every case."""
    return [combined_probabilities(model, image, organs=model.organs.names, device=device)
            .probabilities.argmax(0).numpy().astype(np.uint8)
            for image, _ in validation["_images"].values()]


def _score_combined(model: ContourModel, validation: dict[str, Any],
                    preds: Sequence[np.ndarray]) -> None:
    """Add the combined model's rows (its largest-component switches applied) to
    ``validation``."""
    chosen = [o.label for o in model.organs if model.largest_component.get(o.name, True)]
    for (cid, (_, spacing)), pred in zip(validation["_images"].items(), preds, strict=True):
        final = keep_largest_component(pred, chosen)
        validation["cases"][cid]["combined"] = _scores(model, final, validation["_truths"][cid],
                                                       model.organs.names, spacing)
    validation["member_dice"]["combined"] = _mean_dice(validation["cases"], "combined")


def finish_rule(model: ContourModel, validation: dict[str, Any],
                device: str | torch.device = "cpu") -> ContourModel:
    """Choose the rule, fall-backs and largest-component switches; score the combined model."""
    rule, fallback = choose_rule(validation["member_dice"], model.organs.names, model.members)
    model = replace(model, rule=rule, fallback=fallback, largest_component={})
    preds = _combined_labels(model, validation, device)
    truths = [validation["_truths"][cid] for cid in validation["_images"]]
    switches = choose_largest_component(preds, truths, model.organs.labels)
    model = replace(model, largest_component={o.name: bool(switches.get(o.label, True))
                                              for o in model.organs})
    _score_combined(model, validation, preds)
    return model


def score_on_test(model: ContourModel, cache: CaseCache, case_ids: Sequence[str],
                  folder_of: Mapping[str, DatasetFolder], device: str | torch.device = "cpu"
                  ) -> dict[str, Any]:
    """Score a finished model (rule and switches already chosen) on cases that chose nothing.

    Every model-grid member alone and the combined model, as :func:`validate`; an own-grid
    member on its data set's rendering of the same cases, as :func:`validate_own_grid`.
    """
    test = validate(model, cache, case_ids, device)
    _score_combined(model, test, _combined_labels(model, test, device))
    test.pop("_images"), test.pop("_truths")
    own = {name: validate_own_grid(model, name, folder_of[name].cache(), case_ids, device)
           for name, m in model.members.items() if m.recipe is not None}
    for name, result in own.items():
        test["member_dice"][name] = {o: d["own"] for o, d in result["dice"].items()
                                     if d["own"] is not None}
    if own:
        test["own_grid"] = own
    return test


@dataclass(frozen=True)
class BuildModelRequest:
    """A combined model to build on one fold of a data set.

    Attributes:
        dataset: the data set folder (``autocontour dataset import``).
        out: the build folder (one run folder per member, ``validation.json``).
        plans: how to train each member.
        name: the model's name.
        model_path: where the model file goes (replaced when it exists: a build is re-run to
            update its model).
        fold, folds: the fold of the k-fold split whose validation cases choose the rule.
        test_fold: nested cross-validation: this fold's validation cases are kept out of every
            member's training and of every choice (checkpoint, learning-rate schedule, rule,
            switches) and the finished model is scored on them (``validation.json``'s
            ``test``). None: no test cases.
        device: where validation runs.
        info: provenance added to the model file (command, seed, ...).
    """

    dataset: str | Path
    out: str | Path
    plans: tuple[MemberPlan, ...]
    name: str
    model_path: str | Path
    fold: int = 0
    folds: int = 5
    test_fold: int | None = None
    device: str = "cpu"
    info: Mapping[str, Any] = field(default_factory=dict)


class _MemberProgress(Callback):
    """A member's training steps as progress reports of the build (and cancellation checks)."""

    def __init__(self, reporter: Reporter, member: str, share: float, start: float) -> None:
        self.reporter, self.member, self.share, self.start = reporter, member, share, start

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        total = trainer.config.epochs * trainer.config.steps_per_epoch
        self.reporter.note(f"train {self.member}", f"step {step} loss {loss:.4f}",
                           self.start + self.share * step / total)
        self.reporter.check()


def build_model(request: BuildModelRequest, progress: ProgressCallback | None = None,
                cancel: CancelCheck | None = None) -> BuildResult:
    """Train (or re-use) the members on one fold, choose the rule, write the model file.

    Raises:
        InvalidInputError: no data set, a bad member config, a fold outside the split.
        JobCancelled: ``cancel`` said stop (finished member runs stay and are re-used).
    """
    dataset, out = Path(request.dataset), Path(request.out)
    plans, fold, folds = request.plans, request.fold, request.folds
    folder = DatasetFolder(dataset)
    folder.require()
    if request.test_fold is not None and (not 0 <= request.test_fold < folds
                                          or request.test_fold == fold):
        raise InvalidInputError(f"test fold {request.test_fold} must be one of folds 0.."
                                f"{folds - 1} other than fold {fold}, whose cases choose the "
                                "rule")
    started = time.perf_counter()
    test_fold = request.test_fold
    stages = [f"train {p.name}" for p in plans] + ["validate", "rule"] + \
        ([] if test_fold is None else ["test"]) + ["write"]
    reporter = Reporter(stages, progress, cancel, job=f"building {request.name}",
                        kept="finished member runs stay and are re-used by the next build")
    reporter.check()
    checkpoints = {}
    for plan in plans:
        if plan.dataset is not None:
            _share_splits(folder, DatasetFolder(plan.dataset), folds, plan.name)
        hook = _MemberProgress(reporter, plan.name, 1.0 / len(stages),
                               reporter.done / len(stages))
        checkpoints[plan.name] = train_member(plan, dataset, out, fold, folds, [hook],
                                              test_fold)
        reporter.finished(f"train {plan.name}")
    members, recipe, organs, seconds = load_members(plans, checkpoints)
    if recipe is None or organs is None:
        raise ValueError("no member to build a model from")
    cache = folder.cache()
    splits = folder.splits(folds)
    split = dict(splits[fold])
    test_ids = [] if test_fold is None else list(splits[test_fold]["val"])
    split["train"] = [c for c in split["train"] if c not in test_ids]
    # the spacing a CT is expected at: the model grid where the recipe resamples to a fixed
    # spacing (training cases of mixed resolutions would give a median that is neither)
    grid = next((st.spacing for st in recipe.steps
                 if isinstance(st, Resample) and st.spacing is not None), None)
    spacing = grid if grid is not None else \
        np.median([cache.geometry(c).spacing for c in split["train"]], 0)
    record = record_training_data((cache.load(c) for c in split["train"]), organs)
    expect = InputExpectations("CT", tuple(float(s) for s in spacing), "LPS", record)
    model = ContourModel(request.name, organs, recipe, expect, members,
                         {o: next(iter(members)) for o in organs.names})
    validation = validate(model, cache, split["val"], request.device)
    reporter.finished("validate", f"{len(split['val'])} validation cases")
    model = finish_rule(model, validation, request.device)
    folders = {p.name: DatasetFolder(p.dataset) for p in plans
               if p.dataset is not None and members[p.name].recipe is not None}
    own_grid = finish_own_grid(model, folders, fold, folds, request.device)
    for name, result in own_grid.items():
        validation["member_dice"][name] = {o: d["own"] for o, d in result["dice"].items()
                                           if d["own"] is not None}
    reporter.finished("rule")
    validation.pop("_images"), validation.pop("_truths")
    if own_grid:
        validation["own_grid"] = own_grid
    nested: dict[str, Any] = {}
    if test_fold is not None:
        nested = {"test_fold": test_fold, "test_cases": test_ids}
        validation["test"] = score_on_test(model, cache, test_ids, folders, request.device)
        reporter.finished("test", f"{len(test_ids)} test cases")
    model.info = {"autocontour_version": __version__, "fold": fold, "folds": folds, **nested,
                  "train_cases": list(split["train"]), "val_cases": list(split["val"]),
                  "training_seconds": seconds,
                  "build_seconds": round(time.perf_counter() - started, 1),
                  "validation_dice": validation["member_dice"], **dict(request.info)}
    path = save_model(model, request.model_path, overwrite=True)
    write_json(out / "validation.json", {"rule": model.rule, "fallback": model.fallback,
                                         "largest_component": model.largest_component,
                                         **validation})
    reporter.finished("write", str(path), last=True)
    return BuildResult(model, path, validation)


def _share_splits(main: DatasetFolder, own: DatasetFolder, folds: int, member: str) -> None:
    """Give a member's own data set the build's splits (same cases, e.g. rendered finer).

    A member trained on another split would have seen the build's validation cases.

    Raises:
        InvalidInputError: the build's data set has no splits yet (train a member on it first),
            the two data sets hold other cases, or the member's data set has other splits.
    """
    own.require()
    if not main.has_splits(folds):
        raise InvalidInputError(f"{main.path}: no {folds}-fold splits yet for member {member!r}"
                                " to share; list a member trained on this data set first")
    splits = main.splits(folds)
    if sorted(own.cache().case_ids) != sorted(main.cache().case_ids):
        raise InvalidInputError(f"{own.path}: member {member!r}'s data set holds other cases "
                                f"than {main.path}; it must hold the same cases")
    if own.has_splits(folds):
        if own.splits(folds) != splits:
            raise InvalidInputError(f"{own.path}: its {folds}-fold splits differ from "
                                    f"{main.path}'s; member {member!r} would train on the "
                                    "build's validation cases")
        return
    own.save_splits(splits)


def update_training_record(model_path: str | Path, dataset: str | Path,
                           case_ids: Sequence[str] | None = None) -> Path:
    """Compute a model's training record from its training cases and save it in the model file.

    For models built before the record existed (model file version 1): the weights, the rule
    and everything else stay as they are; the file is rewritten in the current version with
    ``expect.record`` filled in, so the anatomy checks know the training CTs.

    Args:
        model_path: the model file (rewritten in place, atomically).
        dataset: the data set the model was trained on.
        case_ids: its training cases; None: those the model file names (``info.train_cases``).

    Raises:
        InvalidInputError: an unreadable model file, no data set, or a case the data set lacks.
    """
    half = _stored_half(model_path)
    model = load_model(model_path)
    cache = DatasetFolder(dataset).cache()
    cases = list(case_ids if case_ids is not None else model.info.get("train_cases", []))
    missing = [c for c in cases if c not in cache.case_ids]
    if not cases or missing:
        raise InvalidInputError(f"{dataset}: the model's training cases are not all there "
                                f"(missing: {', '.join(missing[:5]) or 'no case named'})")
    record = record_training_data((cache.load(c) for c in cases), model.organs)
    model.expect = replace(model.expect, record=record)
    return save_model(model, model_path, half=half, overwrite=True)


def _stored_half(path: str | Path) -> bool:
    """Whether a model file stores its weights as float16 (kept so when it is rewritten)."""
    from autocontour.artifacts.files import MODEL, read_file

    data = read_file(path, (MODEL,))
    return all(m["dtype"] == "float16" for m in data["members"].values())
