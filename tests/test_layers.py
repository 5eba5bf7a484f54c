"""Imports run one way, down the layers: tools -> trainers -> eval -> core (docs/design.md §3).

Every module of lrt_bench, trainers and tasks is parsed (ast, nothing is imported) and each of its
imports, function-local ones included, is checked against the layer of the module it names. The
shared modules (errors, io, provenance, cpu_isa, the package itself) sit below every layer and import none;
tiny may use core and eval; tasks (the lm-eval task hooks) sit with eval; cli sits above everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# rank: a module may import modules of its own rank or lower
SHARED, CORE, EVAL, TINY, TRAINERS, TOOLS, CLI = range(7)
LAYER_NAMES = ["shared", "core", "eval", "tiny", "trainers", "tools", "cli"]
SHARED_MODULES = {"lrt_bench", "lrt_bench.errors", "lrt_bench.io", "lrt_bench.provenance", "lrt_bench.cpu_isa"}

# Known upward imports, each with the reason it stays: (importer, imported) -> why. None today.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def layer_of(module: str) -> int | None:
    """The rank of a first-party module; None for anything else (the standard library, torch, ...)."""
    if module in SHARED_MODULES:
        return SHARED
    parts = module.split(".")
    if parts[0] == "trainers":
        return TRAINERS
    if parts[0] == "tasks":
        return EVAL
    if parts[0] != "lrt_bench":
        return None
    sub = parts[1]
    ranks = {"core": CORE, "eval": EVAL, "tasks": EVAL, "tiny": TINY, "tools": TOOLS, "cli": CLI}
    if sub not in ranks:
        raise AssertionError(f"{module}: lrt_bench.{sub} belongs to no layer: put it in core/, eval/, tools/ "
                             f"or tiny/, or add it to the shared modules in {Path(__file__).name}")
    return ranks[sub]


def module_files() -> dict[str, Path]:
    files = {}
    for top in ("lrt_bench", "trainers", "tasks"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join(parts)] = path
    return files


MODULES = module_files()


def is_package(module: str) -> bool:
    return MODULES.get(module, Path()).name == "__init__.py"


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file; `from pkg import name` names pkg.name when
    that is a module of ours, else pkg."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if is_package(module) else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.append((node.lineno, sub if sub in MODULES else target))
    return out


def upward_imports() -> list[str]:
    found = []
    for module, path in MODULES.items():
        own = layer_of(module)
        for line, target in imports_of(module, path):
            theirs = layer_of(target)
            if theirs is None or theirs <= own or (module, target) in EXCEPTIONS:
                continue
            where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            found.append(f"{where}:{line}: {module} ({LAYER_NAMES[own]}) imports {target} "
                         f"({LAYER_NAMES[theirs]})")
    return found


def test_every_module_has_a_layer():
    assert "lrt_bench.core.generation" in MODULES and "trainers.grpo" in MODULES
    for module in MODULES:
        assert layer_of(module) is not None, module


def test_no_upward_imports():
    bad = upward_imports()
    assert not bad, "imports that run up the layers (tools -> trainers -> eval -> core):\n" + "\n".join(bad)


def test_exceptions_are_still_needed():
    """A listed exception that the code no longer has is removed from the list."""
    seen = {(m, t) for m, p in MODULES.items() for _, t in imports_of(m, p)}
    stale = [f"{m} -> {t}" for m, t in EXCEPTIONS if (m, t) not in seen]
    assert not stale, "remove from EXCEPTIONS: " + ", ".join(stale)


@pytest.mark.parametrize("source, expected", [
    ("from lrt_bench.tools import bench\n", "lrt_bench.core.layout (core) imports lrt_bench.tools.bench (tools)"),
    ("import trainers.cli\n", "lrt_bench.core.layout (core) imports trainers.cli (trainers)"),
    ("def f():\n    from lrt_bench.eval.grading import grade_math\n",
     "lrt_bench.core.layout (core) imports lrt_bench.eval.grading (eval)"),
    ("from ..eval import data\n", "lrt_bench.core.layout (core) imports lrt_bench.eval.data (eval)"),
])
def test_an_upward_import_is_caught(tmp_path, monkeypatch, source, expected):
    """The check itself can fail: an upward import written into a core module is reported by name."""
    fake = tmp_path / "layout.py"
    fake.write_text(MODULES["lrt_bench.core.layout"].read_text() + "\n" + source)
    monkeypatch.setitem(MODULES, "lrt_bench.core.layout", fake)
    bad = upward_imports()
    assert len(bad) == 1 and bad[0].endswith(expected), bad
