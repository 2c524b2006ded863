"""The trace's last step on hand-built nodes: who listens, refusals, and when it cannot tell."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from trace_factory import kube_services, pod_inode, root_inode, two_nodes

from podpath.analysis.sockets import Packet, receivers
from podpath.cli import main
from podpath.snapshot import codec
from podpath.snapshot.model import (
    Container,
    IptablesDump,
    IpvsDump,
    Snapshot,
    Socket,
    SocketOwner,
)
from podpath.trace.engine import trace
from podpath.trace.model import Branch
from podpath.trace.probe import Probe
from podpath.trace.render import dumps

POD_B = pod_inode(0, 1)  # default/b, 10.244.0.6
ENDPOINTS = ["10.244.0.6", "10.244.1.5", "10.244.1.6"]
HOSTILE = "e\x1b]0;pwn\x07[red]x"


def listen(
    netns: int,
    port: int,
    *,
    proto: str = "tcp",
    local: str = "0.0.0.0",
    family: int = 4,
    v6only: bool | None = None,
    pid: int = 501,
    comm: str = "nginx",
    dev: int | None = None,
    inode: int = 0,
) -> Socket:
    """A listening (TCP) or unconnected (UDP) socket held by one process."""
    return Socket(
        netns,
        proto,
        family,
        "LISTEN" if proto == "tcp" else "UNCONN",
        local,
        port,
        inode=inode or 9000 + port + pid,
        v6only=v6only,
        bound_dev=dev,
        owners=(SocketOwner(pid, comm, 3),),
    )


def with_sockets(snap: Snapshot, sockets: dict[int, tuple[Socket, ...]]) -> Snapshot:
    """Every namespace of the node gets a socket table (empty unless given)."""
    netns = tuple(replace(ns, sockets=sockets.get(ns.inode, ())) for ns in snap.netns)
    return replace(snap, netns=netns)


def with_container(snap: Snapshot, pod_name: str, name: str, pids: tuple[int, ...]) -> Snapshot:
    """The pod gets an app container holding these PIDs."""
    pods = tuple(
        replace(p, containers=(*p.containers, Container(name, f"id-{name}", "container", pids)))
        if p.name == pod_name
        else p
        for p in snap.pods
    )
    return replace(snap, pods=pods)


def only(branches: tuple[Branch, ...]) -> Branch:
    """The one branch of a trace."""
    assert len(branches) == 1, [b.reason for b in branches]
    return branches[0]


def test_listener_is_named_with_its_process_and_container() -> None:
    """A packet to a port something listens on names the process, PID and container."""
    a, _b = two_nodes()
    a = with_container(with_sockets(a, {POD_B: (listen(POD_B, 8080),)}), "b", "web", (501,))
    branch = only(trace([a], Probe("default/a", "default/b:8080")).branches)
    assert branch.verdict == "delivered"
    assert "accepted by nginx (pid 501) in container web" in branch.reason
    deliver = branch.hops[-1]
    assert deliver.data["listening"] is True
    listeners = deliver.data["listeners"]
    assert isinstance(listeners, list) and len(listeners) == 1
    assert json.loads(json.dumps(listeners))[0]["owners"][0]["container"] == "web"
    assert any("0.0.0.0:8080" in d for d in deliver.details)


def test_nothing_listening_on_tcp_is_refused_with_rst() -> None:
    """A TCP port nothing listens on ends 'refused': RST (connection refused), not delivered."""
    a, _b = two_nodes()
    a = with_sockets(a, {POD_B: (listen(POD_B, 80),)})
    branch = only(trace([a], Probe("default/a", "default/b:8080")).branches)
    assert branch.verdict == "refused"
    assert branch.reason == (
        "delivered to pod default/b, but nothing listens on 10.244.0.6:8080/tcp"
        " → RST (connection refused)"
    )
    assert branch.hops[-1].kind == "deliver" and branch.hops[-1].data["listening"] is False


def test_nothing_listening_on_udp_is_icmp_port_unreachable() -> None:
    """A UDP datagram to a port nothing is bound to is answered with ICMP port unreachable."""
    a, _b = two_nodes()
    a = with_sockets(a, {POD_B: (listen(POD_B, 53, proto="tcp"),)})
    branch = only(trace([a], Probe("default/a", "default/b:53", proto="udp")).branches)
    assert branch.verdict == "refused" and branch.reason.endswith("ICMP port unreachable")


def test_snapshot_without_sockets_says_listeners_unknown() -> None:
    """An older snapshot (no socket table) is delivered with 'listeners unknown', never refused."""
    a, _b = two_nodes()
    branch = only(trace([a], Probe("default/a", "default/b:8080")).branches)
    assert branch.verdict == "delivered"
    deliver = branch.hops[-1]
    assert deliver.data["listening"] is None and deliver.data["listeners"] is None
    assert any(d.startswith("listeners unknown") for d in deliver.details)


def test_service_with_wrong_target_port_is_refused_on_every_endpoint() -> None:
    """The classic targetPort mismatch: every DNATed branch is refused, the verdict in --json too."""
    rules = kube_services("10.96.0.10", 80, ENDPOINTS)  # endpoints on :8080
    a, b = two_nodes("vxlan", rules, rules)
    a = with_sockets(a, {POD_B: (listen(POD_B, 80),)})
    b = with_sockets(b, {pod_inode(1, i): (listen(pod_inode(1, i), 80),) for i in range(2)})
    result = trace([a, b], Probe("default/a", "default/web:80"), reply=True)
    assert {br.verdict for br in result.branches} == {"refused"}
    assert all(":8080/tcp → RST" in br.reason for br in result.branches)
    assert all(br.reply == () for br in result.branches)
    data = json.loads(dumps(result))
    assert {br["verdict"] for br in data["branches"]} == {"refused"}


def test_dual_stack_wildcard_takes_ipv4_and_v6only_does_not() -> None:
    """[::] without IPV6_V6ONLY takes an IPv4 connection; with it, the IPv4 SYN is refused."""
    a, _b = two_nodes()
    dual = with_sockets(a, {POD_B: (listen(POD_B, 80, local="::", family=6, v6only=False),)})
    assert only(trace([dual], Probe("default/a", "default/b:80")).branches).verdict == "delivered"
    v6 = with_sockets(a, {POD_B: (listen(POD_B, 80, local="::", family=6, v6only=True),)})
    assert only(trace([v6], Probe("default/a", "default/b:80")).branches).verdict == "refused"


def test_unknown_v6only_counts_the_socket_in() -> None:
    """A [::] socket read from procfs (v6only unknown) is never turned into a refusal."""
    a, _b = two_nodes()
    a = with_sockets(a, {POD_B: (listen(POD_B, 80, local="::", family=6, v6only=None),)})
    assert only(trace([a], Probe("default/a", "default/b:80")).branches).verdict == "delivered"


def test_v4_mapped_and_exact_binds() -> None:
    """::ffff:10.244.0.6 takes 10.244.0.6; a socket bound to another address does not."""
    mapped = listen(POD_B, 80, local="::ffff:10.244.0.6", family=6, v6only=False)
    other = listen(POD_B, 81, local="10.244.0.99")
    ns = replace(two_nodes()[0].netns[0], inode=POD_B, sockets=(mapped, other))
    assert receivers(ns, Packet("tcp", "10.244.0.6", 80)) == (mapped,)
    assert receivers(ns, Packet("tcp", "10.244.0.6", 81)) == ()
    assert receivers(ns, Packet("tcp", "fd00::6", 80)) == ()


def test_exact_bind_wins_over_wildcard_and_reuseport_group_is_all_named() -> None:
    """An exact bind beats 0.0.0.0; equal sockets are a SO_REUSEPORT group, all of them named."""
    exact = listen(POD_B, 80, local="10.244.0.6", pid=7)
    wild = listen(POD_B, 80, pid=8)
    group = (listen(POD_B, 443, pid=9, comm="worker"), listen(POD_B, 443, pid=10, comm="worker"))
    ns = replace(two_nodes()[0].netns[0], inode=POD_B, sockets=(wild, exact, *group))
    assert receivers(ns, Packet("tcp", "10.244.0.6", 80)) == (exact,)
    assert receivers(ns, Packet("tcp", "10.244.0.6", 443)) == group
    a = with_sockets(two_nodes()[0], {POD_B: group})
    branch = only(trace([a], Probe("default/a", "default/b:443")).branches)
    assert "worker (pid 9)" in branch.reason and "worker (pid 10)" in branch.reason
    assert any("SO_REUSEPORT group of 2" in d for d in branch.hops[-1].details)


def test_socket_bound_to_another_device_does_not_take_the_packet() -> None:
    """SO_BINDTODEVICE: a socket bound to ifindex 9 ignores a packet that came in on eth0 (2)."""
    a, _b = two_nodes()
    a = with_sockets(a, {POD_B: (listen(POD_B, 80, dev=9),)})
    assert only(trace([a], Probe("default/a", "default/b:80")).branches).verdict == "refused"
    a = with_sockets(a, {POD_B: (listen(POD_B, 80, dev=2),)})
    assert only(trace([a], Probe("default/a", "default/b:80")).branches).verdict == "delivered"


def test_connected_udp_socket_takes_only_its_peer() -> None:
    """A connected UDP socket on the port does not take a datagram from someone else."""
    connected = replace(
        listen(POD_B, 53, proto="udp"), state="ESTAB", peer="10.244.0.99", peer_port=53
    )
    ns = replace(two_nodes()[0].netns[0], inode=POD_B, sockets=(connected,))
    assert receivers(ns, Packet("udp", "10.244.0.6", 53, "10.244.0.5", 40000)) == ()
    assert receivers(ns, Packet("udp", "10.244.0.6", 53, "10.244.0.99", 53)) == (connected,)


def test_kernel_socket_without_a_process_still_takes_the_packet() -> None:
    """A VXLAN port (a kernel socket, no owner) receives; the trace says no process holds it."""
    a, _b = two_nodes()
    root = root_inode(0)
    vxlan = replace(listen(root, 8472, proto="udp"), owners=())
    a = with_sockets(a, {root: (vxlan,)})
    branch = only(trace([a], Probe("default/a", "192.168.0.2:8472", proto="udp")).branches)
    assert branch.verdict == "delivered" and "kernel socket" in branch.reason


def test_ipvs_node_is_listeners_unknown_in_the_root_netns() -> None:
    """IPVS mode without IPVS state: 'listeners unknown' in the root netns; with it, refused."""
    a = with_sockets(two_nodes()[0], {})
    assert only(trace([a], Probe("default/a", "192.168.0.2:9999")).branches).verdict == "refused"
    ipvs = (
        "*nat\n:KUBE-SERVICES - [0:0]\n"
        "-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT\nCOMMIT\n"
    )
    a = replace(a, iptables=(IptablesDump("nft", "ipv4", ("iptables-save",), ipvs),))
    branch = only(trace([a], Probe("default/a", "192.168.0.2:9999")).branches)
    assert branch.verdict == "delivered", branch.reason
    assert any("IPVS" in d for d in branch.hops[-1].details)
    # With the IPVS state read (no virtual service on that port), the kernel's answer stands.
    table = "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n"
    a = replace(a, ipvs=IpvsDump(table))
    assert only(trace([a], Probe("default/a", "192.168.0.2:9999")).branches).verdict == "refused"


def test_reply_is_not_checked_against_listeners() -> None:
    """The reply reaches the client's own (ephemeral) socket: no listener lookup, delivered."""
    a, _b = two_nodes()
    a = with_sockets(a, {POD_B: (listen(POD_B, 80),)})
    branch = only(trace([a], Probe("default/a", "default/b:80"), reply=True).branches)
    (reply,) = branch.reply
    assert reply.verdict == "delivered" and reply.hops[-1].data.get("listening") is None


def test_hostile_process_name_is_kept_verbatim_in_data_and_made_visible_in_text() -> None:
    """A process name with escapes and markup travels as data; the rendered text escapes it."""
    from podpath.trace.render import render_text

    a, _b = two_nodes()
    a = with_sockets(a, {POD_B: (listen(POD_B, 80, comm=HOSTILE),)})
    result = trace([a], Probe("default/a", "default/b:80"))
    assert HOSTILE in only(result.branches).reason
    text = render_text(result)
    assert "\x1b" not in text and "\x07" not in text and "\\x1b]0;pwn" in text


def test_icmp_is_not_checked() -> None:
    """ICMP echo is answered by the kernel: no socket lookup."""
    a, _b = two_nodes()
    a = with_sockets(a, {})
    branch = only(trace([a], Probe("default/a", "default/b", proto="icmp")).branches)
    assert branch.verdict == "delivered"


def test_host_network_pod_listener_in_the_node_namespace_names_its_pod() -> None:
    """A hostNetwork pod's process listening in the root netns: the trace names that pod too."""
    a, _b = two_nodes()
    root = root_inode(0)
    agent = replace(a.pods[0], name="agent", host_network=True, netns_inode=root)
    a = replace(a, pods=(*a.pods, agent))
    a = with_container(
        with_sockets(a, {root: (listen(root, 9100, pid=77),)}), "agent", "exporter", (77,)
    )
    branch = only(trace([a], Probe("default/b", "192.168.0.2:9100")).branches)
    assert branch.verdict == "delivered"
    assert "nginx (pid 77) in container exporter of pod default/agent" in branch.reason


def test_refused_branch_draws(tmp_path: Path) -> None:
    """`trace --svg` draws a refused branch like any other (its verdict in the caption)."""
    if shutil.which("dot") is None:
        pytest.skip("graphviz dot is not installed")
    a = with_sockets(two_nodes()[0], {POD_B: (listen(POD_B, 80),)})
    snap = tmp_path / "a.json"
    snap.write_text(codec.dumps(a))
    out = tmp_path / "refused.svg"
    argv = ["trace", "--snapshot", str(snap), "--from", "default/a", "--to", "default/b:8080"]
    assert main([*argv, "--svg", str(out)]) == 0
    assert "REFUSED" in out.read_text()
