"""The house's shape, read from the source: imports only go down, the two fronts stand apart,
modules stay small, and a private name stays in its module.

Every ``import`` counts, those inside functions too; only imports under ``if TYPE_CHECKING:``
are left out (they never run). ``from package import name`` is an edge to the submodule
when ``name`` is one, else to the package, as import-linter's graph counts it.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

APP = Path(__file__).parent.parent / "app"
MAX_LINES = 400
FRONTS = ("layerscope.cli", "layerscope.tui")
ENTRY = (
    "layerscope.entry",
    "layerscope.__main__",
    "layerscope",
)  # above both fronts: picks one (layerscope: summary, explore)


def module_files() -> dict[str, Path]:
    found = {}
    for path in sorted((APP / "layerscope").rglob("*.py")):
        parts = list(path.relative_to(APP).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = module_files()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for statement in node.body for inner in ast.walk(statement))
    return skipped


def _base_of(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
    package = package[: len(package) - node.level + 1]
    return ".".join([*package, *([node.module] if node.module else [])])


@cache
def imports_of(module: str) -> frozenset[str]:
    """The layerscope modules ``module`` imports, at any depth of its code."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "layerscope")
        elif isinstance(node, ast.ImportFrom):
            base = _base_of(module, node)
            if base.split(".")[0] != "layerscope":
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
    return frozenset(found - {module})


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _cycle_from(start: str) -> list[str] | None:
    """One import path from ``start`` back to itself, if any (depth-first)."""
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        module, path = stack.pop()
        for target in sorted(imports_of(module)):
            if target == start:
                return [*path, start]
            if target in MODULES and target not in seen:
                seen.add(target)
                stack.append((target, [*path, target]))
    return None


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking_ones():
    assert "layerscope.tui.launch" in imports_of("layerscope.entry")  # inside main()
    assert "layerscope.models.loaded" not in imports_of("layerscope.options")  # under TYPE_CHECKING only
    assert "layerscope.models" in imports_of("layerscope.options")  # inside load_from_args
    assert "layerscope.cam.detection" in imports_of("layerscope.cam.core")  # from layerscope.cam import detection


def test_no_import_cycle_among_layerscope_modules():
    cycles = [cycle for module in MODULES if (cycle := _cycle_from(module))]
    assert cycles == [], " ; ".join(" -> ".join(c) for c in cycles[:5])


def test_the_engine_imports_neither_front():
    engine = [m for m in MODULES if not any(_in(m, front) for front in FRONTS) and m not in ENTRY]
    assert "layerscope.models.load" in engine and "layerscope.options" in engine
    wrong = {m: sorted(t for t in imports_of(m) if any(_in(t, front) for front in FRONTS)) for m in engine}
    assert {m: t for m, t in wrong.items() if t} == {}


@pytest.mark.parametrize(("front", "other"), [FRONTS, FRONTS[::-1]])
def test_the_cli_and_the_app_do_not_import_each_other(front, other):
    wrong = {m: sorted(t for t in imports_of(m) if _in(t, other)) for m in MODULES if _in(m, front)}
    assert {m: t for m, t in wrong.items() if t} == {}


def _too_long(modules: list[str]) -> dict[str, int]:
    lines = {m: len(MODULES[m].read_text(encoding="utf-8").splitlines()) for m in modules}
    return {m: n for m, n in lines.items() if n > MAX_LINES}


def test_no_engine_or_cli_module_over_400_lines():
    assert _too_long([m for m in MODULES if not _in(m, "layerscope.tui")]) == {}


def test_no_app_module_over_400_lines():
    """Together with the test above: every module in app/layerscope (split so that each half of
    issue 16, the engine and the app, has its own test)."""
    assert _too_long([m for m in MODULES if _in(m, "layerscope.tui")]) == {}


def _private_uses(module: str) -> list[str]:
    """``from layerscope.x import _name`` and ``x._name`` on an imported layerscope module."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    aliases: dict[str, str] = {}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _base_of(module, node).split(".")[0] == "layerscope":
            base = _base_of(module, node)
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{base}.{alias.name}")
                elif f"{base}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("layerscope") and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{aliases[node.value.id]}.{node.attr}")
    return found


def test_no_private_name_is_used_outside_its_module():
    uses = {m: _private_uses(m) for m in MODULES}
    assert {m: u for m, u in uses.items() if u} == {}
