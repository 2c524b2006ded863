"""A bridge port in an STP state other than forwarding passes no frame, either way.

br_handle_frame() drops what comes in by such a port (a learning port after learning its
source MAC), and should_deliver() sends nothing out by it: a pod behind it reaches no
one and no one reaches it, its node's own stack included. An older snapshot (no state)
is not judged. The lab test in tests/lab/test_doctor_lab.py builds the states for real
(STP on, a port disabled) and sends traffic.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from trace_factory import NodeSpec, PodSpec, build_node, with_root

from podpath.analysis.index import SnapshotIndex
from podpath.snapshot.model import Snapshot
from podpath.trace.engine import trace
from podpath.trace.probe import Probe

PODS = [PodSpec("web-0", "10.244.0.2"), PodSpec("web-1", "10.244.0.3")]


def _node(port: str, state: str | None) -> Snapshot:
    """Two pods on cni0; `port`'s STP state is `state`."""
    snap = build_node(NodeSpec(pods=PODS))
    root = next(ns for ns in snap.netns if ns.inode == snap.root_netns)
    links = tuple(
        replace(link, port_state=state) if link.name == port else link for link in root.links
    )
    return with_root(snap, links=links)


def _one(snap: Snapshot, source: str, to: str) -> tuple[str, str]:
    (branch,) = trace([SnapshotIndex(snap)], Probe(source, to)).branches
    return branch.verdict, branch.reason


@pytest.mark.parametrize("state", ["disabled", "listening", "learning", "blocking"])
def test_nothing_comes_in_by_a_port_that_does_not_forward(state: str) -> None:
    """web-0's own port: neither the other pod nor the node's stack gets its frames."""
    learns = ", after learning its source MAC" if state == "learning" else ""
    for to in ("10.244.0.3:80", "192.168.0.1:80"):
        verdict, reason = _one(_node("veth0000", state), "default/web-0", to)
        assert verdict == "dropped", reason
        assert reason == (
            f"bridge port veth0000 is in STP state {state}: bridge cni0 takes no frame in "
            f"by it{learns}"
        )


@pytest.mark.parametrize("state", ["disabled", "listening", "learning", "blocking"])
def test_nothing_goes_out_by_a_port_that_does_not_forward(state: str) -> None:
    """web-1's port: web-0's frames for web-1 are not sent out by it."""
    verdict, reason = _one(_node("veth0001", state), "default/web-0", "10.244.0.3:80")
    assert verdict == "dropped", reason
    assert reason == (
        f"bridge port veth0001 is in STP state {state}: the bridge sends no frame out by it"
    )


@pytest.mark.parametrize("state", ["forwarding", None])
def test_a_forwarding_port_or_an_unread_state_passes_frames(state: str | None) -> None:
    verdict, reason = _one(_node("veth0001", state), "default/web-0", "10.244.0.3:80")
    assert verdict == "delivered", reason
