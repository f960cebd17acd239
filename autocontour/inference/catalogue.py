"""The models shipped inside the package, and which one fits a CT.

Each shipped model is a pair of files in ``autocontour/assets/``: ``<file>.pt`` (weights, rule,
recipe, training record) and ``<file>.json`` written beside it by
``scripts/train_default_model.py`` (its organs, training data, validation Dice, the full
training record, and the fresh-test Dice once ``experiments/unseen_phantoms.py`` has scored it).
The catalogue reads only the JSON: listing the models and choosing one needs no PyTorch.

**Choosing a model for a CT** (``autocontour predict`` without ``--model``): the CT's slices are
sorted into body regions once (:func:`~autocontour.inference.anatomy.slice_regions`), and each
shipped model's anatomy check (the same check that refuses a pelvis CT given to the head-and-neck
model) is run against its training record. The models the check accepts are candidates; the one
whose regions cover most of the CT wins. A CT no model accepts (a chest CT) is refused, naming
what the CT shows and what each model was trained on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from autocontour.errors import InvalidInputError, look_up_option, normalise_name
from autocontour.inference.anatomy import (
    AnatomyCheck,
    AnatomyError,
    TrainingRecord,
    check_anatomy,
    slice_regions,
)
from autocontour.io.grid import canonical
from autocontour.io.volume import Volume

ASSETS = Path(__file__).resolve().parent.parent / "assets"
#: Short name -> file stem in ``ASSETS``; the first is the default where a model must be named.
SHIPPED: dict[str, str] = {"head-neck": "hn_phantom_default", "pelvis": "pelvis_phantom_default"}
#: The model used where no CT tells which (a service warming up, ``autocontour model``).
DEFAULT_MODEL = ASSETS / f"{SHIPPED['head-neck']}.pt"
_ALIASES = {"hn": "head-neck", "headneck": "head-neck", "head-and-neck": "head-neck",
            "pv": "pelvis"}


@dataclass(frozen=True)
class ShippedModel:
    """One shipped model, as its JSON describes it."""

    name: str
    path: Path
    info: dict[str, Any]

    @property
    def site(self) -> str:
        return str(self.info.get("site") or self.record.site)

    @cached_property
    def record(self) -> TrainingRecord:
        return TrainingRecord.from_dict(self.info["training_record"]["record"])

    @property
    def organs(self) -> list[str]:
        return list(self.info.get("organs") or self.info.get("rule", {}))

    def validation_dice(self) -> float | None:
        """Mean over organs of the combined model's Dice on the validation cases."""
        dice = self.info.get("validation_dice", {}).get("combined", {})
        values = [float(v) for v in dice.values() if v is not None]
        return sum(values) / len(values) if values else None

    def test_dice(self) -> float | None:
        """Mean Dice over organs on fresh phantoms no decision touched (None: not scored)."""
        test = self.info.get("fresh_test")
        return None if not test else float(test["mean_dice"])

    def summary(self) -> dict[str, Any]:
        """What ``autocontour model list`` shows (and prints as JSON)."""
        record = self.record
        info = self.info.get("info", {})
        return {"name": self.name, "file": self.path.name, "site": self.site,
                "organs": self.organs, "training_cases": len(info.get("train_cases", [])),
                "validation_cases": len(info.get("val_cases", [])),
                "phantom_seeds": info.get("phantom_seeds"),
                "regions": record.model_regions(),
                "validation_dice": _round(self.validation_dice()),
                "fresh_test": self.info.get("fresh_test"),
                "size_mb": round(self.path.stat().st_size / 1e6, 1),
                "command": info.get("command")}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def shipped_models(assets: Path = ASSETS) -> list[ShippedModel]:
    """The shipped models whose files are present, in :data:`SHIPPED` order.

    Raises:
        InvalidInputError: a model's JSON is unreadable or lacks its training record (a broken
            installation).
    """
    models = []
    for name, stem in SHIPPED.items():
        path = assets / f"{stem}.pt"
        if not path.is_file():
            continue
        summary = path.with_suffix(".json")
        try:
            info = json.loads(summary.read_text())
            TrainingRecord.from_dict(info["training_record"]["record"])
        except (OSError, ValueError, KeyError, TypeError, InvalidInputError) as exc:
            raise InvalidInputError(f"{summary}: not a readable model description ({exc}); "
                                    "reinstall autocontour or rebuild the model with "
                                    "scripts/train_default_model.py") from None
        models.append(ShippedModel(name, path, info))
    return models


def shipped_model(name: str, assets: Path = ASSETS) -> ShippedModel:
    """A shipped model by its short name ("head-neck", "pelvis"; "hn" works too).

    Raises:
        UnknownOptionError: no shipped model of that name (with the closest).
    """
    models = {m.name: m for m in shipped_models(assets)}
    key = look_up_option("shipped model", name, models,
                         normalise=lambda n: _ALIASES.get(normalise_name(n), normalise_name(n)))
    return models[key]


def is_model_name(model: str | Path) -> bool:
    """A bare word (no folder, no suffix) that is not a file: a shipped model's name."""
    path = Path(model)
    return not (path.suffix or len(path.parts) > 1 or path.exists())


def resolve_model(model: str | Path | None) -> Path:
    """The file of a shipped model's name, or ``model`` itself as a path (None: the default,
    head and neck, for callers without a CT to choose by).

    Raises:
        UnknownOptionError: a bare name (no folder, no suffix, no such file) that is no shipped
            model (with the closest name).
    """
    if model is None:
        return DEFAULT_MODEL
    return shipped_model(str(model)).path if is_model_name(model) else Path(model)


@dataclass(frozen=True)
class ModelChoice:
    """The model chosen for a CT, and why."""

    model: ShippedModel
    reason: str
    checks: dict[str, AnatomyCheck]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model.name, "file": self.model.path.name, "reason": self.reason,
                "candidates": {n: {"extent_mm": round(c.extent_mm, 1), "refusal": c.refusal}
                               for n, c in self.checks.items()}}


def choose_model(ct: Volume, name: str = "input",
                 models: Sequence[ShippedModel] | None = None) -> ModelChoice:
    """The shipped model for this CT (module docstring).

    Raises:
        AnatomyError: no shipped model accepts the CT (the message says what it shows).
        InvalidInputError: no shipped model is installed.
    """
    models = list(models if models is not None else shipped_models())
    if not models:
        raise InvalidInputError(f"{name}: no shipped model is installed: pass --model FILE")
    canon = canonical(ct, "LPS")
    regions = slice_regions(canon)
    checks = {m.name: check_anatomy(canon, m.site, m.record, m.name, name, regions)
              for m in models}
    fits = [m for m in models if checks[m.name].refusal is None]
    if not fits:
        trained = "; ".join(f"{m.name} ({' / '.join(checks[m.name].model_regions)})"
                            for m in models)
        raise AnatomyError(f"{name}: no shipped model fits this CT: it shows "
                           f"{regions.describe()} of its slices; the models are for {trained}. "
                           "Pass --model to choose one anyway (with --force)")
    best = max(fits, key=lambda m: checks[m.name].extent_mm)
    check = checks[best.name]
    others = [m.name for m in fits if m is not best]
    reason = (f"the CT shows {regions.describe()} of its slices: {check.extent_mm:.0f} mm of "
              f"{' / '.join(check.model_regions)} anatomy, what model {best.name} was trained on")
    if others:
        reason += f" (also fits: {', '.join(others)}; pass --model to use it)"
    return ModelChoice(best, reason, checks)
