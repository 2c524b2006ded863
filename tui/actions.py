"""Actions that touch the node (shell, capture), injected by the CLI.

The TUI cannot read or enter the node itself; it describes the target and the CLI's
implementation (podpath.collectors.actions) re-checks it (PID + start time + netns
inode, so a reused PID or a re-created namespace is refused) before running util-linux
`nsenter` or `tcpdump`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from podpath.snapshot.model import Pod


@dataclass(frozen=True)
class PodTarget:
    """A pod's network namespace, pinned by the process that holds it."""

    pod: str  # namespace/name, for messages
    pid: int
    start_time: int | None
    netns_inode: int | None
    interface: str = "eth0"


@dataclass(frozen=True)
class ActionResult:
    """What an action did, as one line for a notification."""

    ok: bool
    message: str


class Actions(Protocol):
    """Node-touching actions the CLI provides; every call runs with the app suspended."""

    def shell(self, target: PodTarget) -> ActionResult:
        """Run an interactive shell in the target's network namespace."""
        ...

    def capture(self, target: PodTarget, path: str, count: int, seconds: int) -> ActionResult:
        """Capture packets on the target's interface into a new pcap file (never overwritten)."""
        ...

    def capture_directory(self) -> str | None:
        """Where a capture file name without a directory goes (None: no captures here)."""
        ...


def pod_target(pod: Pod) -> PodTarget | None:
    """The pinned target for a pod, or None when it has no pause process to enter."""
    if pod.pause_pid is None or pod.host_network:
        return None
    return PodTarget(
        pod=f"{pod.namespace}/{pod.name}",
        pid=pod.pause_pid,
        start_time=pod.pause_start_time,
        netns_inode=pod.netns_inode,
    )


class NoActions:
    """Actions for a source that is not a live node: everything is refused politely."""

    def shell(self, target: PodTarget) -> ActionResult:
        """Refuse: there is no live node behind a snapshot."""
        return ActionResult(
            False, f"no shell for {target.pod}: this is a snapshot, not a live node"
        )

    def capture(self, target: PodTarget, path: str, count: int, seconds: int) -> ActionResult:
        """Refuse: there is no live node behind a snapshot."""
        return ActionResult(
            False, f"no capture for {target.pod}: this is a snapshot, not a live node"
        )

    def capture_directory(self) -> str | None:
        """None: a snapshot has nowhere to capture from."""
        return None
