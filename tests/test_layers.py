"""The import layers of ``autocontour``: no module imports from a higher layer.

Every module under ``autocontour/`` is parsed (never imported) and each of its imports of an
``autocontour`` module is checked against :data:`LAYERS`: ``import x``, ``from x import y`` and
relative imports, at the top, inside functions and under ``if TYPE_CHECKING:`` alike. (The names a
package loads lazily through a ``_LAZY`` table are imported under ``if TYPE_CHECKING:`` too, and
``tests/test_exports.py`` keeps the two equal, so they are checked here as well.)

A module may import from its own package and from any LOWER layer. Two packages on the same layer
are independent: neither may import the other.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import autocontour

#: The layers, lowest first. A module may import from its own entry and from lower layers only.
#: An entry names a package (with every module in it) or a single module; ``autocontour`` is the
#: package ``__init__`` alone (``__version__``). A module no entry covers fails the test: add it.
LAYERS: tuple[tuple[str, ...], ...] = (
    # 0: what everything may use
    ("autocontour", "autocontour.errors"),
    # 1: pure building blocks, independent of each other
    ("autocontour.organs", "autocontour.evaluation", "autocontour.models", "autocontour.paths",
     "autocontour.config_files"),
    # 2: files in and out
    ("autocontour.io",),
    # 3: data sets and phantoms, independent of each other
    ("autocontour.data", "autocontour.phantoms"),
    # 4: what training makes and inference uses (configs, checkpoints, model files)
    ("autocontour.artifacts",),
    # 5: siblings: none imports another (the store: accounts, uploads, results)
    ("autocontour.training", "autocontour.inference", "autocontour.store"),
    # 5b: synthesis (pseudo-MRI CycleGAN): networks, data, io, and later the training engine
    ("autocontour.synthesis",),
    # 6: user-level jobs (predict, demo, evaluate, train, build a model, import a data set)
    ("autocontour.jobs",),
    # 7: the service (HTTP API, queue, workers)
    ("autocontour.service",),
    # 8: the DICOM node, which hands received series to the service's queue
    ("autocontour.dicom_node",),
    # 9: the command line, which starts them all
    ("autocontour.cli",),
)

SOURCE = Path(autocontour.__file__).parent


@dataclass(frozen=True)
class Violation:
    """One import that breaks the layers."""

    module: str
    line: int
    imported: str
    why: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}: {self.why}"


def layer_of(module: str) -> tuple[int, str] | None:
    """(layer number, entry of :data:`LAYERS`) of a dotted module name, or None if not placed."""
    best: tuple[int, str] | None = None
    for number, entries in enumerate(LAYERS):
        for entry in entries:
            exact = module == entry
            inside = entry != "autocontour" and module.startswith(entry + ".")
            if (exact or inside) and (best is None or len(entry) > len(best[1])):
                best = (number, entry)
    return best


def module_name(path: Path, root: Path) -> str:
    """``root/autocontour/io/__init__.py`` -> ``autocontour.io``."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.Module, module: str, is_package: bool,
                     exists: set[str]) -> list[tuple[int, str]]:
    """(line, module) for every import anywhere in ``tree``, relative ones resolved.

    ``from P import n`` counts as importing ``P.n`` when that is a module in ``exists``, else as
    importing ``P``.
    """
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                parts = package.split(".")
                base = parts[:len(parts) - node.level + 1]
                source = ".".join([*base, source] if source else base)
            for alias in node.names:
                child = f"{source}.{alias.name}"
                found.append((node.lineno, child if child in exists else source))
    return found


def check_sources(sources: dict[str, tuple[str, bool]]) -> tuple[list[Violation], list[str]]:
    """Violations, and modules :data:`LAYERS` does not place.

    Args:
        sources: module name -> (source text, whether it is a package ``__init__``).
    """
    violations, unplaced = [], []
    for module, (text, is_package) in sorted(sources.items()):
        mine = layer_of(module)
        if mine is None:
            unplaced.append(module)
            continue
        for line, target in imported_modules(ast.parse(text), module, is_package, set(sources)):
            if target != "autocontour" and not target.startswith("autocontour."):
                continue  # not ours
            theirs = layer_of(target)
            if theirs is None or theirs[1] == mine[1]:
                continue  # an unplaced module fails on its own; own package is fine
            if theirs[0] > mine[0]:
                why = (f"layer {theirs[0]} ({theirs[1]}) is above layer {mine[0]} ({mine[1]})")
            elif theirs[0] == mine[0]:
                why = f"{theirs[1]} and {mine[1]} share layer {mine[0]} and are independent"
            else:
                continue
            violations.append(Violation(module, line, target, why))
    return violations, unplaced


def package_sources(root: Path) -> dict[str, tuple[str, bool]]:
    """Module name -> (source, is package) of every module under ``root/autocontour``."""
    return {module_name(p, root): (p.read_text(encoding="utf-8"), p.name == "__init__.py")
            for p in sorted((root / "autocontour").rglob("*.py"))}


def test_every_module_is_placed_in_a_layer() -> None:
    _, unplaced = check_sources(package_sources(SOURCE.parent))
    assert unplaced == [], (
        f"modules not placed in the import layers: {unplaced}; add each (or its package) to "
        "LAYERS in tests/test_layers.py")


def test_no_module_imports_from_a_higher_layer() -> None:
    violations, _ = check_sources(package_sources(SOURCE.parent))
    assert not violations, "import layers broken (see LAYERS in tests/test_layers.py):\n" + (
        "\n".join(map(str, violations)))


# ---------------------------------------------------------------------------------------------
# The checker itself, on synthetic sources: it must not pass by finding nothing.

def check(files: dict[str, str]) -> tuple[list[str], list[str]]:
    sources = {name.removesuffix(".__init__"): (text, name.endswith(".__init__"))
               for name, text in files.items()}
    violations, unplaced = check_sources(sources)
    return [f"{v.module} -> {v.imported}" for v in violations], unplaced


BASE = {"autocontour.__init__": "", "autocontour.errors": "", "autocontour.io.__init__": "",
        "autocontour.io.grid": "", "autocontour.organs": "", "autocontour.models.__init__": "",
        "autocontour.training.__init__": "", "autocontour.inference.__init__": "",
        "autocontour.inference.pipeline": ""}
ALLOWED = """\
from . import pipeline
from autocontour.io import grid
import numpy
from autocontour import __version__
from autocontour.errors import UnknownOptionError
"""


@pytest.mark.parametrize("module, source, expected", [
    ("autocontour.io.grid", "from autocontour.inference import pipeline\n",
     ["autocontour.io.grid -> autocontour.inference.pipeline"]),
    ("autocontour.errors", "import autocontour.organs\n", ["autocontour.errors -> autocontour.organs"]),
    ("autocontour.io.grid", "def f():\n    from autocontour.training import x\n",
     ["autocontour.io.grid -> autocontour.training"]),
    ("autocontour.io.grid",
     "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from autocontour.cli import main\n",
     ["autocontour.io.grid -> autocontour.cli"]),
    ("autocontour.inference.pipeline", "from ..training import engine\n",
     ["autocontour.inference.pipeline -> autocontour.training"]),
    ("autocontour.organs", "from autocontour.models import x\n",
     ["autocontour.organs -> autocontour.models"]),
    ("autocontour.inference.pipeline", ALLOWED, []),
])
def test_the_checker_finds_upward_and_sideways_imports(module, source, expected) -> None:
    name = f"{module}.__init__" if f"{module}.__init__" in BASE else module
    assert check({**BASE, name: source}) == (expected, [])


def test_the_checker_names_unplaced_modules() -> None:
    assert check({**BASE, "autocontour.gadgets": "import os\n"}) == ([], ["autocontour.gadgets"])
    assert layer_of("autocontour") == (0, "autocontour")
    assert layer_of("autocontour.io.grid") == (2, "autocontour.io")
    assert layer_of("autocontour.iox") is None
