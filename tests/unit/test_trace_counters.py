"""Interface counters on the trace hops that cross a device (`ip -s link`'s numbers)."""

from __future__ import annotations

from dataclasses import replace

from trace_factory import pod_inode, root_inode, two_nodes

from podpath.snapshot.model import LinkStats, Snapshot
from podpath.trace.engine import trace
from podpath.trace.probe import Probe


def _counted(snapshot: Snapshot) -> Snapshot:
    """Every link gets distinct counters: rx = 100 + ifindex packets, tx = 200 + ifindex, 1 drop."""
    netns = tuple(
        replace(
            ns,
            links=tuple(
                replace(
                    link,
                    stats=LinkStats(
                        rx_packets=100 + link.ifindex,
                        tx_packets=200 + link.ifindex,
                        rx_bytes=1000,
                        tx_bytes=2000,
                        rx_dropped=1,
                    ),
                )
                for link in ns.links
            ),
        )
        for ns in snapshot.netns
    )
    return replace(snapshot, netns=netns)


def test_veth_hop_shows_tx_of_the_sender_and_rx_of_the_receiver() -> None:
    """pod a -> pod b: the veth hop out of a names a's eth0 TX and the host end's RX counters."""
    a, _ = two_nodes()
    a = _counted(a)
    (branch,) = trace([a], Probe("default/a", "default/b:80")).branches
    out = next(
        h for h in branch.hops if h.kind == "link" and h.data["from_netns"] == pod_inode(0, 0)
    )
    pod_eth0 = next(
        link
        for ns in a.netns
        if ns.inode == pod_inode(0, 0)
        for link in ns.links
        if link.name == "eth0"
    )
    host = next(
        link
        for ns in a.netns
        if ns.inode == root_inode(0)
        for link in ns.links
        if link.name == out.data["to"]
    )
    want = (
        f"counters at snapshot time: eth0 tx {200 + pod_eth0.ifindex} pkts 2000 bytes, 0 errors, "
        f"0 dropped; {host.name} rx {100 + host.ifindex} pkts 1000 bytes, 0 errors, 1 dropped"
    )
    assert out.details[-1] == want
    assert out.data["counters"] == {
        "eth0": {
            "direction": "tx",
            "packets": 200 + pod_eth0.ifindex,
            "bytes": 2000,
            "errors": 0,
            "dropped": 0,
        },
        host.name: {
            "direction": "rx",
            "packets": 100 + host.ifindex,
            "bytes": 1000,
            "errors": 0,
            "dropped": 1,
        },
    }


def test_leaving_hop_shows_the_devices_tx() -> None:
    """Leaving the node: the leave hop carries its device's TX counters."""
    a, _ = two_nodes()
    (branch,) = trace([_counted(a)], Probe("default/a", "8.8.8.8:80")).branches
    leave = branch.hops[-1]
    assert leave.kind == "leave"
    counters = leave.data["counters"]
    assert isinstance(counters, dict) and list(counters) == [leave.data["dev"]]


def test_no_counters_no_line() -> None:
    """Links without collected counters add nothing to the hop."""
    a, _ = two_nodes()
    (branch,) = trace([a], Probe("default/a", "default/b:80")).branches
    assert all("counters" not in h.data for h in branch.hops)
