"""Shared pytest fixtures: the lab (real nodes built from kernel parts) and how to use it.

- Tests marked `@pytest.mark.lab` (and every test using `shared_lab` / `make_lab`) are
  skipped when the lab cannot run here (not root, a tool missing) -- except when
  CI=true, where they FAIL instead, so a green CI means the lab really ran.
- `shared_lab`: one session-wide lab (2 nodes, vxlan, a few pods, kube-dns + web + two
  more Services). Tests only READ it; build your own with `make_lab` to change things.
- `run_podpath(lab, node, *args)`: runs `python -m podpath ARGS` inside a lab node.

podpath.lab is imported lazily so a broken lab never stops unit tests from collecting.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from podpath.lab import Lab, LabSpec

RunPodpath = Callable[..., "subprocess.CompletedProcess[str]"]

# Unique per test run: several sessions (and engineers) share this machine.
RUN_ID = f"t{os.getpid()}"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


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
