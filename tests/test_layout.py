"""The package's layout: no import cycle, and every module small, documented and with ``__all__``.

The import graph is read from the source with ``ast``, not by importing: every ``import`` and
``from ... import`` statement counts, at module level and inside functions alike (an import
inside a function still ties the two modules together, it only hides the tie until the function
runs). Relative imports (``from .x import y``, ``from . import x``) and absolute ones
(``from zfkit.x import y``, ``import zfkit.x``) both count. ``from . import name`` is an import of
the module ``zfkit/name.py`` when there is one, else of the package itself (``zfkit/__init__.py``).
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "zfkit"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py"))
INIT = "__init__"
MAX_LINES = 400


def _parse(module: str) -> ast.Module:
    return ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))


def _target(parts: list[str], names: list[str]) -> set[str]:
    """The zfkit modules that ``from zfkit<.parts> import <names>`` loads."""
    if parts:
        return {parts[0]}                        # zfkit.x or zfkit.x.y: the module x
    return {name if name in MODULES else INIT for name in names}


def imports_of(module: str) -> set[str]:
    """The zfkit modules that ``zfkit/<module>.py`` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(_parse(module)):
        if isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names]
            parts = node.module.split(".") if node.module else []
            if node.level == 1:                  # from . import x / from .x import y
                found |= _target(parts, names)
            elif node.level == 0 and parts and parts[0] == "zfkit":
                found |= _target(parts[1:], names)
            elif node.level > 1:
                raise AssertionError(f"zfkit/{module}.py imports from outside the package "
                                     f"(level {node.level})")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "zfkit":
                    found |= {parts[1]} if len(parts) > 1 else {INIT}
    found.discard(module)
    unknown = found - set(MODULES)
    assert not unknown, f"zfkit/{module}.py imports modules that do not exist: {sorted(unknown)}"
    return found


def import_graph() -> dict[str, set[str]]:
    return {module: imports_of(module) for module in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as ``[a, b, ..., a]``, or ``None`` when it has none."""
    state: dict[str, str] = {}                   # "open" while on the path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def _names(cycle: list[str]) -> str:
    return " -> ".join(f"zfkit/{m}.py" for m in cycle)


def test_the_cycle_finder_finds_cycles_and_only_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None      # a diamond
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"y"}, "y": {"z"}, "z": {"y"}}) == ["y", "z", "y"]


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    # __main__ imports its commands lazily (inside functions), to keep start-up light
    assert {"train", "voc"} <= graph["__main__"]
    assert "models" in graph[INIT]


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, f"import cycle: {_names(cycle)}"


@pytest.mark.parametrize("module", MODULES)
def test_module_is_documented_small_and_declares_its_names(module):
    path = PACKAGE / f"{module}.py"
    tree = _parse(module)
    assert ast.get_docstring(tree), f"{path} has no module docstring"
    assigned = {target.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                if isinstance(target, ast.Name)}
    assert "__all__" in assigned, f"{path} has no __all__"
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path} has {lines} lines, more than {MAX_LINES}: split it"


@pytest.mark.parametrize("module", [m for m in MODULES if m != "__main__"])
def test_every_name_in_all_exists(module):
    loaded = importlib.import_module("zfkit" if module == INIT else f"zfkit.{module}")
    missing = [name for name in loaded.__all__ if not hasattr(loaded, name)]
    assert not missing, f"zfkit/{module}.py lists {missing} in __all__ but does not define them"
