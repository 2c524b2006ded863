"""Shared pytest fixtures: the lab (real nodes built from kernel parts) and how to use it.

- Tests marked `@pytest.mark.lab` (and every test using `shared_lab` / `make_lab`) are
  skipped when the lab cannot run here (not root, a tool missing) -- except when
  CI=true, where they FAIL instead, so a green CI means the lab really ran.
- `shared_lab`: one session-wide lab (2 nodes, vxlan, a few pods, kube-dns + web + two
  more Services). Tests only READ it; build your own with `make_lab` to change things.
- `run_podpath(lab, node, *args)`: runs `python -m podpath ARGS` inside a lab node.
- XDG_STATE_HOME and XDG_CACHE_HOME point into a temporary directory for the whole
  session (so for every subprocess and lab node) and into each test's own for the test:
  crash reports and captures of a test run never land in the user's ~/.local/state.

podpath.lab is imported lazily so a broken lab never stops unit tests from collecting.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from podpath.lab import Lab, LabSpec

RunPodpath = Callable[..., "subprocess.CompletedProcess[str]"]

# Unique per test run: several sessions (and engineers) share this machine.
RUN_ID = f"t{os.getpid()}"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _real_dir(variable: str, default: str) -> Path:
    return Path(os.environ.get(variable) or Path.home() / default)


# The user's own directories, before this session replaces them.
REAL_STATE = _real_dir("XDG_STATE_HOME", ".local/state") / "podpath"
REAL_CACHE = _real_dir("XDG_CACHE_HOME", ".cache")
# The image build's cache of Debian packages and wheels is meant to be shared (it makes
# later builds offline): it stays where it is.
os.environ.setdefault("PODPATH_IMAGE_CACHE", str(REAL_CACHE / "podpath-image"))
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="podpath-tests-xdg-"))
atexit.register(shutil.rmtree, _SESSION_DIR, True)
os.environ["XDG_STATE_HOME"] = str(_SESSION_DIR / "state")
os.environ["XDG_CACHE_HOME"] = str(_SESSION_DIR / "cache")


@pytest.fixture(autouse=True)
def _private_xdg_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test writes its state and cache files to directories of its own."""
    base = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_STATE_HOME", str(base / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(base / "cache"))


@pytest.fixture(autouse=True)
def _runner_not_left_stopping() -> Iterator[None]:
    """A test that drives the CLI's signal handler in this process makes the command
    runner refuse everything after it (podpath is stopping); the next test starts anew."""
    yield
    # (A test may leave the module half imported: then it has no event yet.)
    stopping = getattr(sys.modules.get("podpath.collectors.commands"), "_STOPPING", None)
    if stopping is not None:
        stopping.clear()


def _naming(directory: Path, text: str) -> dict[str, int]:
    """Files under `directory` whose bytes contain `text`, with their mtimes."""
    found: dict[str, int] = {}
    if not directory.is_dir():
        return found
    for path in directory.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink() and text.encode() in path.read_bytes():
                found[str(path)] = path.stat().st_mtime_ns
        except OSError:
            continue  # another session's file, removed or unreadable meanwhile
    return found


@pytest.fixture(scope="session", autouse=True)
def _real_state_untouched(request: pytest.FixtureRequest) -> Iterator[None]:
    """No test of this checkout writes to the user's real podpath state directory.

    Other sessions on the machine write there too: only files that name this checkout
    (a crash report holds the argv, with this checkout's .venv) are counted.
    """
    checkout = str(request.config.rootpath)
    before = _naming(REAL_STATE, checkout)
    yield
    after = _naming(REAL_STATE, checkout)
    written = sorted(path for path, mtime in after.items() if before.get(path) != mtime)
    assert not written, f"tests wrote to the real {REAL_STATE}: {written}"


def lab_unavailable() -> str | None:
    """Why the lab cannot run here, or None when it can."""
    if sys.platform != "linux":
        return "the lab needs Linux"
    try:
        from podpath.lab import missing_requirements
    except ImportError as exc:  # pragma: no cover - a broken install is a failure in CI
        return f"podpath.lab cannot be imported: {exc}"
    return missing_requirements()


def require_lab() -> None:
    """Skip (or, with CI=true, fail) the calling test when the lab cannot run."""
    reason = lab_unavailable()
    if reason is None:
        return
    if _in_ci():
        pytest.fail(f"lab required in CI: {reason}", pytrace=False)
    pytest.skip(f"lab unavailable: {reason}")


# What shares this machine's state: labs (their nodes' /run, mounts and daemons, which
# tests/lab/test_lab_hygiene.py watches), the collectors' own namespaces, and the
# packages and image built from this checkout (two sdist builds in one tree race on its
# egg-info). `./run test` runs the suite in two pytest-xdist workers with `--dist
# loadgroup`: these tests are one group, run one at a time by one worker, beside the rest
# (unit, TUI on bundled snapshots, fuzzing): CPU work the lab's waits leave room for.
MACHINE_DIRS = ("collectors", "lab", "packaging")
LAB_FIXTURES = frozenset({"shared_lab", "make_lab", "run_podpath"})


def _shares_the_machine(item: pytest.Item) -> bool:
    area = item.path.relative_to(Path(__file__).parent).parts[0]
    fixtures = set(getattr(item, "fixturenames", ()))
    return bool(item.get_closest_marker("lab") or fixtures & LAB_FIXTURES or area in MACHINE_DIRS)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group the tests that share the machine (harmless where xdist is not running).

    First: xdist's own hook, which reads the groups, runs before this file's otherwise
    (an initial conftest is registered before xdist's worker plugin)."""
    for item in items:
        if _shares_the_machine(item):
            item.add_marker(pytest.mark.xdist_group("machine"))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Apply the `lab` marker's skip-or-fail rule."""
    if item.get_closest_marker("lab") is not None:
        require_lab()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """In CI, a skipped test is a failed test: a green CI must mean everything really ran.

    This catches every skip (skipif for root, a missing tool or fixture files), not
    only the lab's, so no check can quietly drop out of CI on a machine that lacks it.
    """
    outcome = yield
    report = outcome.get_result()
    if _in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (CI=true), which counts as a failure: {reason}"


def _safe_down(name: str) -> None:
    from podpath.lab import LabError, down, state

    if state.lab_dir(name).exists():
        try:
            down(name)
        except LabError as exc:
            sys.stderr.write(f"conftest: lab {name} teardown: {exc}\n")


def _up(spec: LabSpec) -> Lab:
    from podpath.lab import up

    lab = up(spec)
    # Belt and braces: if pytest dies without running finalizers, still tear down.
    atexit.register(_safe_down, spec.name)
    return lab


@pytest.fixture(scope="session")
def shared_lab() -> Iterator[Lab]:
    """A 2-node vxlan lab shared by the whole session. READ ONLY: never change it."""
    require_lab()
    from podpath.lab import LabSpec

    spec = LabSpec(f"{RUN_ID}-shared", nodes=2, pods=3, services=4, overlay="vxlan")
    lab = _up(spec)
    try:
        yield lab
    finally:
        _safe_down(spec.name)


@pytest.fixture
def make_lab() -> Iterator[Callable[..., Lab]]:
    """Factory for private labs (unique names), torn down after the test."""
    require_lab()
    from podpath.lab import LabSpec

    made: list[str] = []

    def factory(**kwargs: Any) -> Lab:
        name = f"{RUN_ID}-{len(made)}"
        made.append(name)
        return _up(LabSpec(name, **kwargs))

    try:
        yield factory
    finally:
        for name in made:
            _safe_down(name)


def _run_podpath(
    lab: Lab, node: str, *args: str, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m podpath ARGS` inside a lab node; never raises on exit status."""
    return lab.exec(
        node, [sys.executable, "-m", "podpath", *args], input=input, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def run_podpath() -> RunPodpath:
    """run_podpath(lab, node, *args, timeout=120) -> CompletedProcess[str] (podpath in a node)."""
    return _run_podpath
