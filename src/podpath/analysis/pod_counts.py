"""A pod's READY x/y and RESTARTS, counted the way `kubectl get pods` users read them.

A pod's containers in a snapshot are the sandbox plus every attempt CRI still keeps
(`crictl ps -a`: a restarted container is an exited attempt 0 and a running attempt 1).
kubectl counts neither: y is the pod's app containers (by name), x those whose newest
attempt runs, and RESTARTS is kubelet's restart count of each newest attempt, summed.
Readiness probes are kubelet's, not the runtime's: a node shows whether a container
runs, so x counts running containers.
"""

from __future__ import annotations

from dataclasses import dataclass

from podpath.snapshot.model import Container, Pod


@dataclass(frozen=True)
class PodCounts:
    """Running app containers, app containers, and restarts (None when not known)."""

    running: int
    containers: int
    restarts: int | None

    @property
    def ready(self) -> str:
        """`1/2`, as kubectl's READY column prints it."""
        return f"{self.running}/{self.containers}"


def newest_attempts(pod: Pod) -> list[Container]:
    """Each app container's newest attempt, by name (sandbox left out)."""
    newest: dict[str, Container] = {}
    for c in pod.containers:
        if c.kind == "sandbox":
            continue
        seen = newest.get(c.name)
        if seen is None or _order(c) > _order(seen):
            newest[c.name] = c
    return [newest[name] for name in sorted(newest)]


def _order(c: Container) -> tuple[int, int]:
    # CRI's attempt counts up per restart; the creation time breaks ties (both unknown: 0).
    return (c.attempt if c.attempt is not None else -1, c.created_at or 0)


def is_running(c: Container) -> bool:
    """Running as CRI says, or (a fallback that knows no state) with live processes."""
    return c.state == "running" if c.state is not None else bool(c.pids)


def pod_counts(pod: Pod) -> PodCounts:
    """READY and RESTARTS of a pod from its containers' newest attempts."""
    newest = newest_attempts(pod)
    restarts: int | None = 0
    for c in newest:
        # kubelet's annotation when CRI gave it; else the attempt, which kubelet sets to it.
        count = c.restart_count if c.restart_count is not None else c.attempt
        restarts = None if count is None or restarts is None else restarts + count
    return PodCounts(sum(1 for c in newest if is_running(c)), len(newest), restarts)
