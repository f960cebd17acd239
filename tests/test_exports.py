"""Package exports: ``__all__`` resolves, lazy tables match their TYPE_CHECKING imports, and the
lazy packages import nothing heavy.

``autocontour.io``, ``autocontour.inference`` and ``autocontour.evaluation`` export most names
through a module ``__getattr__`` and a ``_LAZY`` table (name -> module), so that the CLI starts
fast; an ``if TYPE_CHECKING:`` block imports the same names for IDEs and type checkers. The tests
here keep the two equal, and ``__all__`` complete.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import autocontour

SOURCE = Path(autocontour.__file__).parent

#: Packages a plain ``import`` of which must not load these (CLI start-up time).
LIGHT_PACKAGES = ("autocontour.io", "autocontour.inference", "autocontour.evaluation")
HEAVY_MODULES = ("torch", "highdicom", "matplotlib", "monai")


def module_name(path: Path) -> str:
    """``autocontour/io/__init__.py`` -> ``autocontour.io``; ``.../io/grid.py`` -> ``...io.grid``."""
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def assigned_names(tree: ast.Module) -> set[str]:
    """Names bound by a top-level assignment (``x = ...``, ``x: T = ...``)."""
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def modules_defining(name: str) -> list[str]:
    """Every module under ``autocontour/`` that assigns ``name`` at its top level."""
    return sorted(module_name(p) for p in SOURCE.rglob("*.py")
                  if name in assigned_names(ast.parse(p.read_text(encoding="utf-8"))))


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def type_checking_imports(package: str) -> dict[str, str]:
    """Name -> module of every ``from M import name`` in the top-level ``if TYPE_CHECKING:``."""
    path = Path(importlib.import_module(package).__file__)
    found: dict[str, str] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if not (isinstance(node, ast.If) and is_type_checking(node.test)):
            continue
        for statement in node.body:
            assert isinstance(statement, ast.ImportFrom), (
                f"{path}:{statement.lineno}: only 'from M import name' belongs in the "
                "TYPE_CHECKING block (one per lazily exported name)")
            source = statement.module or ""
            if statement.level:
                base = package.split(".")[:len(package.split(".")) - statement.level + 1]
                source = ".".join([*base, source] if source else base)
            for alias in statement.names:
                name = alias.asname or alias.name
                assert name not in found, f"{path}: {name} imported twice under TYPE_CHECKING"
                found[name] = source
    return found


WITH_ALL = modules_defining("__all__")
WITH_LAZY = modules_defining("_LAZY")


def test_the_packages_are_found() -> None:
    """The discovery cannot silently find nothing."""
    assert set(LIGHT_PACKAGES) <= set(WITH_LAZY) <= set(WITH_ALL)
    assert {"autocontour.models", "autocontour.phantoms"} <= set(WITH_ALL)


@pytest.mark.parametrize("package", WITH_ALL)
def test_every_name_in_all_resolves(package: str) -> None:
    module = importlib.import_module(package)
    names = list(module.__all__)
    assert len(names) == len(set(names)), f"{package}.__all__ repeats a name"
    missing = [n for n in names if not hasattr(module, n)]  # hasattr runs a lazy __getattr__
    assert missing == [], f"{package}.__all__ names what it does not have: {missing}"
    assert set(names) <= set(dir(module)), f"{package}: __dir__ leaves out part of __all__"


@pytest.mark.parametrize("package", WITH_LAZY)
def test_type_checking_imports_match_the_lazy_table(package: str) -> None:
    module = importlib.import_module(package)
    lazy: dict[str, str] = module._LAZY
    assert type_checking_imports(package) == lazy, (
        f"{package}: the 'if TYPE_CHECKING:' imports and _LAZY must name the same things, "
        "each from the same module")
    assert set(lazy) <= set(module.__all__), (
        f"{package}.__all__ lacks lazy names {sorted(set(lazy) - set(module.__all__))}")
    eager = {n for n in module.__all__ if n not in lazy}
    assert eager <= set(vars(module)), (
        f"{package}.__all__ names neither imported nor lazy: {sorted(eager - set(vars(module)))}")
    assert not set(lazy) & set(vars(module)), f"{package}: a lazy name is also imported eagerly"


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    import autocontour.io
    with pytest.raises(AttributeError, match="autocontour.io.*no_such_name"):
        autocontour.io.no_such_name  # noqa: B018


@pytest.mark.parametrize("package", LIGHT_PACKAGES)
def test_import_loads_nothing_heavy(package: str) -> None:
    code = (f"import sys, {package}; "
            f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=SOURCE.parent, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"import {package} loaded {result.stdout.strip()}"
