"""The boundaries of the house, checked: who may import whom, and what the wheel holds."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UI_AND_NODE_LIBRARIES = ("textual", "rich", "pyroute2", "psutil")

# Source folder -> the import name it installs as (see pyproject's package-dir).
PACKAGE_DIRS = {
    REPO / "src" / "podpath": "podpath",
    REPO / "collectors": "podpath.collectors",
    REPO / "tui": "podpath.tui",
}


# The layers, lowest first: a module may import its own layer and the ones below it,
# never one above (docs/architecture.md). The snapshot model at the bottom; the
# parsers, protocol clients (CRI) and the collectors that fill the model; the analysis drawn from a snapshot;
# the trace engine built on it; then what only front ends use; the front ends on top.
# A package not listed is a front end: nothing below may import it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("podpath.snapshot", "podpath.dataclass_code"),
    (
        "podpath.netfilter",
        "podpath.conntrack",
        "podpath.safe_text",
        "podpath.by_identity",
        "podpath.forked",
        "podpath.wording",
        "podpath.safe_files",
        "podpath.progress",
        "podpath.cri",
        "podpath.kubelet_env",
        "podpath.collectors",
    ),
    ("podpath.analysis",),
    ("podpath.trace",),
    (
        "podpath.listing",
        "podpath.table",
        "podpath.namespace_listing",
        "podpath.lab",
        "podpath.draw",
        "podpath.doctor",
    ),
)
TOP = len(LAYERS)


def layer_of(module: str) -> int:
    """The layer a module is in (the root package `podpath` itself is the lowest)."""
    if module == "podpath":
        return -1
    for number, packages in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in packages):
            return number
    return TOP


def _modules(folder: Path, package: str) -> dict[str, Path]:
    found = {}
    for path in sorted(folder.rglob("*.py")):
        rel = path.relative_to(folder).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        found[".".join([package, *parts])] = path
    return found


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _all_modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for folder, package in PACKAGE_DIRS.items():
        out.update(_modules(folder, package))
    # src/podpath would otherwise claim the mapped sub-packages' names wrongly.
    return out


def _is_core(module: str) -> bool:
    return not module.startswith(("podpath.collectors", "podpath.tui", "podpath.cli"))


def _violations(predicate: str) -> list[str]:
    bad = []
    for module, path in _all_modules().items():
        for imported in _imports(path):
            top = imported.split(".")[0]
            if predicate == "core" and _is_core(module) and top in UI_AND_NODE_LIBRARIES:
                bad.append(f"{module} imports {imported}")
            if (
                predicate == "core-layers"
                and _is_core(module)
                and imported.startswith(("podpath.collectors", "podpath.tui"))
            ):
                bad.append(f"{module} imports {imported}")
            if (
                predicate == "collectors"
                and module.startswith("podpath.collectors")
                and imported.startswith("podpath.tui")
            ):
                bad.append(f"{module} imports {imported}")
            if (
                predicate == "tui"
                and module.startswith("podpath.tui")
                and imported.startswith("podpath.collectors")
            ):
                bad.append(f"{module} imports {imported}")
            if top in ("collectors", "tui"):
                bad.append(f"{module} imports the bare name {imported}")
    return bad


@pytest.mark.parametrize("contract", ["core", "core-layers", "collectors", "tui"])
def test_import_contract(contract: str) -> None:
    """Core imports no UI/netlink library nor collectors/tui; collectors and tui never meet."""
    assert _violations(contract) == []


def _layer_violations(modules: dict[str, Path]) -> list[str]:
    bad = []
    for module, path in modules.items():
        for imported in _imports(path):
            if imported.split(".")[0] != "podpath":
                continue
            if layer_of(imported) > layer_of(module):
                bad.append(
                    f"{module} (layer {layer_of(module)}) imports {imported} (layer {layer_of(imported)})"
                )
            if module.startswith("podpath.tui") and imported.startswith("podpath.cli"):
                bad.append(f"{module} imports {imported}: the CLI gives the TUI what it needs")
    return bad


def test_layers_import_only_downwards() -> None:
    """snapshot < parsers and collectors < analysis < trace < listing, lab, draw, doctor < cli and tui."""
    assert _layer_violations(_all_modules()) == []


def test_the_layer_check_sees_a_violation(tmp_path: Path) -> None:
    """A parser that imports the analysis, or a TUI module the CLI, is reported."""
    parser = tmp_path / "parser.py"
    parser.write_text(
        "from podpath.analysis.problems import problems\nimport podpath.snapshot.model\n"
    )
    screen = tmp_path / "screen.py"
    screen.write_text("if True:\n    from podpath.cli.tui import run_app\n")
    found = _layer_violations({"podpath.netfilter.bad": parser, "podpath.tui.screens.bad": screen})
    assert found == [
        "podpath.netfilter.bad (layer 1) imports podpath.analysis.problems (layer 2)",
        "podpath.tui.screens.bad imports podpath.cli.tui: the CLI gives the TUI what it needs",
    ]


def test_core_import_pulls_no_ui_or_netlink_library() -> None:
    """Importing every core module at runtime loads none of textual, rich, pyroute2, psutil."""
    core = [m for m in _all_modules() if _is_core(m) and not m.endswith("__main__")]
    code = (
        "import importlib, sys\n"
        f"for m in {core!r}: importlib.import_module(m)\n"
        f"print(sorted(n for n in sys.modules if n.split('.')[0] in {UI_AND_NODE_LIBRARIES!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_listings_load_no_rule_parser() -> None:
    """`podpath.listing` (every `ls`, `ls namespaces` first) loads no iptables or nft
    parser and no kube-proxy model until a listing of rules asks: ~20 ms of a 0.24 s
    `ls namespaces` (BENCHMARKS.md, figure 2), nor hashlib."""
    code = (
        "import sys, podpath.listing\n"
        "print(sorted(n for n in sys.modules if n.startswith('podpath.netfilter.')))\n"
        "print('hashlib' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # Nor hashlib (OpenSSL: 3-4 ms), which only `trace --cache` needs (codec.digest_path).
    assert out.stdout.split("\n")[:2] == ["['podpath.netfilter.owners']", "False"]


def test_ls_namespaces_loads_no_other_listing() -> None:
    """`podpath ls namespaces` (which competes with lsns) imports the namespaces' listing
    only: not the other kinds', the index they need, nor pickle (~6 ms,
    docs/performance.md, "ls namespaces: only what it lists")."""
    code = (
        "import sys\n"
        "from podpath.cli import main\n"
        "main(['ls', 'namespaces', '--json'])\n"
        "names = ('podpath.listing', 'podpath.analysis', 'pickle', 'podpath.namespace_listing')\n"
        "sys.stderr.write(repr(sorted(n for n in sys.modules if n.startswith(names))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.splitlines()[-1] == "['podpath.namespace_listing']"
    assert '"namespaces": [' in out.stdout


def test_every_listing_kind_is_named_for_the_command_line() -> None:
    """`podpath ls`'s choices (podpath.table, known without the listings) are the kinds."""
    from podpath.listing import KINDS
    from podpath.table import LISTING_KINDS

    assert tuple(KINDS) == LISTING_KINDS


def test_wheel_contains_every_module(tmp_path: Path) -> None:
    """The built wheel ships every module of src/podpath, collectors/ and tui/ under podpath."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("podpath-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "/".join(module.split(".")) + ("/__init__.py" if path.name == "__init__.py" else ".py")
        for module, path in _all_modules().items()
    }
    assert expected - names == set()
    assert "podpath/py.typed" in names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports a module runs when it is loaded (not in functions, not for the type checker)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _module_level_imports(node.body)
            yield from _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _module_level_imports(block)


def _import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the podpath modules it imports at load time.

    `from a.b import c` counts as importing the package `a.b` too: it runs a.b's
    __init__, and a package that imports its modules back is a cycle through it.
    """
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found: set[str] = set()
        for node in _module_level_imports(ast.parse(path.read_text(), str(path)).body):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
                continue
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        graph[module] = {m for m in found if m in modules and m != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_level_import_cycle() -> None:
    """No podpath modules import each other in a circle when they are loaded."""
    assert _cycles(_import_graph(_all_modules())) == []


def test_the_cycle_check_sees_a_cycle_through_a_package(tmp_path: Path) -> None:
    """A package __init__ that imports a module which imports a sibling through the package is a cycle."""
    (tmp_path / "pkg").mkdir()
    init = tmp_path / "pkg" / "__init__.py"
    init.write_text("from podpath.x.main import run\n")
    main = tmp_path / "pkg" / "main.py"
    main.write_text("from . import helper\n")
    helper = tmp_path / "pkg" / "helper.py"
    helper.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import podpath.x\n")
    lone = tmp_path / "pkg" / "lone.py"
    lone.write_text("def late() -> None:\n    import podpath.x.main\n")
    modules = {
        "podpath.x": init,
        "podpath.x.main": main,
        "podpath.x.helper": helper,
        "podpath.x.lone": lone,
    }
    assert _cycles(_import_graph(modules)) == [["podpath.x", "podpath.x.main"]]
