"""READY x/y and RESTARTS count app containers by name, newest attempt, as kubectl does."""

from __future__ import annotations

from podpath.analysis.pod_counts import pod_counts
from podpath.snapshot.model import Container, Pod


def _pod(*containers: Container) -> Pod:
    return Pod("default", "web", "u1", "s1", 10, containers=containers)


SANDBOX = Container("POD", "s1", "sandbox", (10,), state="ready")


def test_restarted_container_is_one_container_with_its_restarts() -> None:
    """Attempt 0 exited and attempt 1 running: 1/1 and 1 restart, the sandbox not counted."""
    old = Container("web", "a", "container", (), state="exited", attempt=0, restart_count=0)
    new = Container("web", "b", "container", (11,), state="running", attempt=1, restart_count=1)
    counts = pod_counts(_pod(SANDBOX, new, old))
    assert (counts.ready, counts.restarts) == ("1/1", 1)


def test_created_and_exited_containers_are_not_ready() -> None:
    """A created sidecar and an exited job next to a running app: 1/3."""
    app = Container("app", "a", "container", (11,), state="running", attempt=0, restart_count=0)
    side = Container("side", "b", "container", (), state="created", attempt=0, restart_count=0)
    job = Container("job", "c", "container", (), state="exited", attempt=2, restart_count=2)
    counts = pod_counts(_pod(SANDBOX, app, side, job))
    assert (counts.ready, counts.restarts) == ("1/3", 2)


def test_a_fallback_without_state_counts_live_processes_and_no_restarts() -> None:
    """Found through cgroups (no state, no attempt): running when it has PIDs; restarts unknown."""
    live = Container("0123456789ab", "a", "container", (11,))
    counts = pod_counts(_pod(SANDBOX, live))
    assert (counts.ready, counts.restarts) == ("1/1", None)


def test_a_pod_with_only_its_sandbox_has_no_containers() -> None:
    """A sandbox whose containers are not made yet: 0/0, 0 restarts."""
    counts = pod_counts(_pod(SANDBOX))
    assert (counts.ready, counts.restarts) == ("0/0", 0)
