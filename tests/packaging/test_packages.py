"""podpath as users install it: `python -m build`, pip and pipx into clean places, a zipapp.

pip and pipx fetch the dependencies from the package index (or pip's cache), as a
user's install does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from podpath.lab import Lab

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "src" / "podpath" / "data" / "demo-snapshot.json"
PACKAGE_DIRS = {"src/podpath": "podpath", "collectors": "podpath/collectors", "tui": "podpath/tui"}


def _run(*argv: str | Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert done.returncode == 0, f"{argv}: {done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build`: an sdist, and the wheel built from that sdist."""
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, REPO)
    return out


def _wheel(dist: Path) -> Path:
    (wheel,) = dist.glob("podpath-*.whl")
    return wheel


def _expected_pods() -> str:
    return _run(sys.executable, "-m", "podpath", "ls", "pods", "--snapshot", DEMO)


def test_sdist_holds_every_source_and_the_demo(dist: Path) -> None:
    """The sdist (which the wheel is built from) has every module and the bundled snapshots."""
    (sdist,) = dist.glob("podpath-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for folder in PACKAGE_DIRS:
        for path in (REPO / folder).rglob("*.py"):
            assert str(path.relative_to(REPO)) in names
    assert {"src/podpath/data/demo-snapshot.json", "README.md", "pyproject.toml"} <= names


def test_wheel_holds_the_demo_and_both_commands(dist: Path) -> None:
    """The wheel ships the demo snapshots and the podpath and kubectl-podpath scripts."""
    with zipfile.ZipFile(_wheel(dist)) as whl:
        names = set(whl.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = whl.read(entry_points).decode()
    assert {"podpath/data/demo-snapshot.json", "podpath/data/demo-snapshot-node2.json"} <= names
    assert "podpath = podpath.cli:main" in scripts
    assert "kubectl-podpath = podpath.cli.kubectl:main" in scripts


def test_pip_install_into_a_clean_venv(dist: Path, tmp_path: Path) -> None:
    """pip install of the wheel into a new venv: both commands run, the demo is inside."""
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", _wheel(dist))
    assert _run(venv / "bin" / "podpath", "--version").strip() == "podpath 0.1.0"
    assert _run(venv / "bin" / "kubectl-podpath", "--version").strip() == "kubectl-podpath 0.1.0"
    installed = _run(
        venv / "bin" / "python",
        "-c",
        "from importlib import resources; "
        "print(resources.files('podpath').joinpath('data', 'demo-snapshot.json'))",
    ).strip()
    assert installed.startswith(str(venv))
    assert _run(venv / "bin" / "podpath", "ls", "pods", "--snapshot", installed) == _expected_pods()


def test_pipx_install_exposes_both_commands(dist: Path, tmp_path: Path) -> None:
    """pipx install of the wheel puts podpath and kubectl-podpath on its bin directory."""
    env = {
        **os.environ,
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
    }
    _run(sys.executable, "-m", "pipx", "install", "--python", sys.executable, _wheel(dist), env=env)
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == ["kubectl-podpath", "podpath"]
    assert _run(tmp_path / "bin" / "podpath", "--version").strip() == "podpath 0.1.0"
    assert _run(tmp_path / "bin" / "podpath", "ls", "pods", "--snapshot", DEMO) == _expected_pods()


@pytest.fixture(scope="module")
def pyz(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """podpath.pyz made by packaging/build_zipapp.py from the built wheel."""
    out = tmp_path_factory.mktemp("pyz") / "podpath.pyz"
    _run(sys.executable, REPO / "packaging" / "build_zipapp.py", "--wheel", _wheel(dist), "-o", out)
    return out


# Pythons a node may have: this venv's, and Debian's own when it is another build.
PYTHONS = sorted({sys.executable, *(p for p in ("/usr/bin/python3",) if os.path.exists(p))})


@pytest.mark.parametrize("python", PYTHONS)
def test_zipapp_runs_on_a_plain_python(pyz: Path, python: str) -> None:
    """`python3 podpath.pyz`: --version, and `ls pods --snapshot` as the installed podpath."""
    assert _run(python, "-I", pyz, "--version").strip() == "podpath 0.1.0"
    assert _run(python, "-I", pyz, "ls", "pods", "--snapshot", DEMO) == _expected_pods()


def _module_names() -> list[str]:
    names = []
    for folder, package in PACKAGE_DIRS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            names.append(".".join([*package.split("/"), *(p for p in parts if p != "__init__")]))
    return [n for n in names if not n.endswith("__main__")]


def test_every_module_imports_from_the_zipapp(pyz: Path) -> None:
    """All of podpath (collectors, TUI, lab) imports from the zip: no C extension is needed."""
    names = _module_names()
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert module.__file__.startswith({str(pyz)!r}), module.__file__\n"
        "print(len(sys.modules))\n"
    )
    env = {"PYTHONPATH": str(pyz), "PATH": os.environ["PATH"]}
    _run(sys.executable, "-c", code, env=env)


def test_zipapp_draws_the_bundled_demo(pyz: Path, tmp_path: Path) -> None:
    """The TUI (Textual, from the zip) draws the demo snapshot bundled inside the zip."""
    svg = tmp_path / "node.svg"
    _run(sys.executable, "-I", pyz, "screenshot", "-o", svg)
    text = svg.read_text()
    assert text.startswith("<svg") and "node1" in text


@pytest.mark.lab
def test_zipapp_reads_native_nft_tables_in_its_own_child(
    pyz: Path, make_lab: Callable[..., Lab]
) -> None:
    """On a node with a native nft table, the nft reader runs as a child from the zip too."""
    lab = make_lab(nodes=1, pods=1, services=2)
    lab.exec("node1", ["nft", "add", "table", "ip", "pptest"])
    lab.exec("node1", ["nft", "add", "chain", "ip", "pptest", "c"])
    lab.exec(
        "node1", ["nft", "add", "rule", "ip", "pptest", "c", "ip", "daddr", "10.9.9.9", "drop"]
    )
    out = lab.exec("node1", ["/usr/bin/python3", "-I", str(pyz), "ls", "nft"], timeout=300).stdout
    direct = lab.exec("node1", [sys.executable, "-m", "podpath", "ls", "nft"], timeout=300).stdout
    assert "pptest" in out and "10.9.9.9" in out
    assert out == direct
    gaps = lab.exec("node1", ["/usr/bin/python3", "-I", str(pyz), "ls", "gaps"], timeout=300).stdout
    assert gaps.splitlines()[1:] == []
