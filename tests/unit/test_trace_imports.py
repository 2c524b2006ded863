"""The trace package's modules import one another without cycles (type-only imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

TRACE = Path(__file__).resolve().parents[2] / "src" / "podpath" / "trace"


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in TRACE.glob("*.py"):
        name = f"podpath.trace.{path.stem}"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "podpath.trace":
                    deps.update(f"podpath.trace.{a.name}" for a in node.names)
                elif node.module.startswith("podpath.trace."):
                    deps.add(node.module)
        graph[name] = deps
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_trace_modules_form_no_import_cycle() -> None:
    """engine -> reply (the way back) and every other trace import point one way only."""
    graph = _graph()
    assert "podpath.trace.reply" in graph["podpath.trace.engine"]
    assert _cycle(graph) is None
