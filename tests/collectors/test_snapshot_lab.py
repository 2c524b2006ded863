"""The whole snapshot, taken inside a real lab node, against the node's own tools."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from podpath.analysis.index import SnapshotIndex
from podpath.snapshot import codec
from podpath.snapshot.model import Snapshot

if TYPE_CHECKING:
    from podpath.lab import Lab

pytestmark = pytest.mark.lab

NODE = "node1"


@pytest.fixture(scope="module")
def snapshot(shared_lab: Lab, run_podpath: Any) -> Snapshot:
    """One snapshot of node1, taken by the real CLI inside the node."""
    # Real traffic first, so conntrack has a DNAT'd entry to compare.
    web = shared_lab.service("default/web")[0]
    first = shared_lab.pods_on(NODE)[0]
    shared_lab.probe(first.ref, web.cluster_ip, web.port)
    out = run_podpath(shared_lab, NODE, "snapshot", "-o", "-")
    assert out.returncode == 0, out.stderr
    return codec.loads(out.stdout)


def _node_json(lab: Lab, *argv: str) -> Any:
    return json.loads(lab.exec(NODE, list(argv)).stdout)


def _link_name(index: SnapshotIndex, netns: int, ifindex: int | None) -> str | None:
    link = index.link(netns, ifindex)
    return link.name if link else None


def test_pods_equal_the_labs_record(shared_lab: Lab, run_podpath: Any) -> None:
    """`ls pods --json` shows each pod the lab made: name, uid, sandbox, pause PID, IP, veth."""
    out = run_podpath(shared_lab, NODE, "ls", "pods", "--json")
    assert out.returncode == 0, out.stderr
    listed = {(p["namespace"], p["name"]): p for p in json.loads(out.stdout)["pods"]}
    for want in shared_lab.pods_on(NODE):
        got = listed[(want.namespace, want.name)]
        assert got["uid"] == want.uid
        assert got["sandbox_id"] == want.sandbox_id
        assert got["pause_pid"] == want.pause_pid
        assert want.ip in got["ips"]
        assert got["netns"]["path"] == want.netns_path
        (eth0,) = [i for i in got["interfaces"] if i["name"] == "eth0"]
        assert eth0["peer"]["name"] == want.host_veth
        assert eth0["peer"]["master"] == "cni0"
        assert {c["id"] for c in got["containers"]} >= {cid for _, cid in want.containers}


def test_namespaces_equal_lsns(shared_lab: Lab, snapshot: Snapshot) -> None:
    """Every namespace lsns lists is in the snapshot with the same type and lowest PID."""
    lsns = _node_json(shared_lab, "lsns", "-J", "-o", "NS,TYPE,NPROCS,PID")["namespaces"]
    ours = {(n.type, n.inode): n for n in snapshot.namespaces}
    assert len(lsns) > 0
    for row in lsns:
        ns = ours[(row["type"], int(row["ns"]))]
        assert ns.pid == int(row["pid"]), row


def test_namespace_process_counts_equal_lsns(shared_lab: Lab, run_podpath: Any) -> None:
    """nprocs equals lsns's, read back to back (a probe's client may still be exiting).

    podpath and the tools it runs (its CRI listing child too), and lsns, are processes of the node's own namespaces
    (lowest PID 1), so those counts may differ by a few; every other one must be equal
    in one of three back-to-back readings.
    """
    mismatch: list[dict[str, Any]] = []
    for _ in range(3):
        out = run_podpath(shared_lab, NODE, "ls", "namespaces", "--json")
        assert out.returncode == 0, out.stderr
        lsns = _node_json(shared_lab, "lsns", "-J", "-o", "NS,TYPE,NPROCS,PID")["namespaces"]
        ours = {(n["type"], n["inode"]): n for n in json.loads(out.stdout)["namespaces"]}
        mismatch = [
            row
            for row in lsns
            if abs(ours[(row["type"], int(row["ns"]))]["nprocs"] - int(row["nprocs"]))
            > (6 if int(row["pid"]) == 1 else 0)
        ]
        if not mismatch:
            return
        time.sleep(0.5)
    raise AssertionError(mismatch)


def test_ls_namespaces_json_equals_lsns_json(shared_lab: Lab, run_podpath: Any) -> None:
    """`ls namespaces --json` (the light process scan) agrees with `lsns -J` on pid and command."""
    out = run_podpath(shared_lab, NODE, "ls", "namespaces", "--json")
    assert out.returncode == 0, out.stderr
    ours = {(n["type"], n["inode"]): n for n in json.loads(out.stdout)["namespaces"]}
    lsns = _node_json(shared_lab, "lsns", "-J", "-o", "NS,TYPE,NPROCS,PID,COMMAND")["namespaces"]
    for row in lsns:
        ns = ours[(row["type"], int(row["ns"]))]
        assert ns["pid"] == int(row["pid"]), row
        assert ns["command"] == row["command"], row
        assert set(ns) >= {"inode", "type", "nprocs", "pid", "command", "netnsid", "nsfs"}


def test_named_netns_are_listed_with_their_path(shared_lab: Lab, snapshot: Snapshot) -> None:
    """Every /run/netns entry of the node is a net namespace with its nsfs path."""
    names = shared_lab.exec(NODE, ["ip", "netns", "list"]).stdout.split()
    paths = {n.nsfs for n in snapshot.namespaces if n.type == "net"}
    paths |= {p for ns in snapshot.netns for p in ns.paths}
    for name in names:
        if name.startswith("cni-"):
            assert f"/run/netns/{name}" in paths


def test_veth_pairs_equal_ip_link(shared_lab: Lab, snapshot: Snapshot) -> None:
    """Each pod's eth0 peer ifindex and name equal what `ip -j -d link` says on both sides."""
    index = SnapshotIndex(snapshot)
    host_links = {
        link["ifindex"]: link for link in _node_json(shared_lab, "ip", "-j", "-d", "link")
    }
    for pod in shared_lab.pods_on(NODE):
        netns = pod.netns_path.rsplit("/", 1)[-1]
        (eth0,) = [
            link
            for link in _node_json(shared_lab, "ip", "-n", netns, "-j", "-d", "link")
            if link["ifname"] == "eth0"
        ]
        ours = index.pod_interface(index.pods_by_name[pod.ref])
        assert ours is not None and ours.peer is not None
        assert ours.link == eth0["link_index"]
        assert ours.peer.ifindex == eth0["link_index"]
        assert ours.peer.netns == snapshot.root_netns
        assert host_links[ours.peer.ifindex]["ifname"] == pod.host_veth
        assert host_links[ours.peer.ifindex].get("master") == "cni0"


def test_root_routes_equal_ip_route(shared_lab: Lab, snapshot: Snapshot) -> None:
    """The node's routes in every table equal `ip -j route show table all`."""
    theirs = Counter(
        (r.get("table", "main"), r["dst"], r.get("gateway"), r.get("dev"))
        for r in _node_json(shared_lab, "ip", "-j", "route", "show", "table", "all")
        if r.get("family", "inet") != "inet6" and ":" not in r["dst"]
    )
    index = SnapshotIndex(snapshot)
    names = {254: "main", 255: "local"}

    def dst(route_dst: str) -> str:
        return "default" if route_dst == "0.0.0.0/0" else re.sub(r"/32$", "", route_dst)

    ours = Counter(
        (
            names.get(r.table, str(r.table)),
            dst(r.dst),
            r.gateway,
            _link_name(index, r.netns, r.dev),
        )
        for r in index.routes(snapshot.root_netns)
        if r.family == 4
    )
    assert ours == theirs


def test_iptables_chains_and_counts_equal_iptables_save(
    shared_lab: Lab, snapshot: Snapshot
) -> None:
    """Rule counts and chain names per table equal the node's own `iptables-save`."""
    text = shared_lab.exec(NODE, ["iptables-save"]).stdout
    index = SnapshotIndex(snapshot)
    ruleset = index.ruleset("ipv4", "nft")
    assert ruleset is not None
    for table in ("nat", "filter"):
        block = text.split(f"*{table}\n", 1)[1].split("COMMIT", 1)[0]
        chains = {line[1:].split()[0] for line in block.splitlines() if line.startswith(":")}
        rules = sum(1 for line in block.splitlines() if line.startswith("-A "))
        assert {c.name for c in ruleset.chains(table)} == chains
        assert sum(len(ruleset.rules(table, c)) for c in chains) == rules


def test_services_equal_the_labs_record(shared_lab: Lab, run_podpath: Any) -> None:
    """`ls services --json` shows every Service port with its endpoints at 1/n each."""
    out = run_podpath(shared_lab, NODE, "ls", "services", "--json")
    assert out.returncode == 0, out.stderr
    listed = {
        (s["namespace"], s["name"], s["port"], s["protocol"].upper()): s
        for s in json.loads(out.stdout)["services"]
    }
    for svc in shared_lab.services:
        got = listed[(svc.namespace, svc.name, svc.port, svc.protocol.upper())]
        assert got["cluster_ip"] == svc.cluster_ip
        assert got["node_port"] == svc.node_port
        assert {(e["ip"], e["port"]) for e in got["endpoints"]} == set(svc.endpoints)
        for e in got["endpoints"]:
            assert e["probability"] == pytest.approx(1 / len(svc.endpoints), abs=1e-6)


def test_conntrack_equals_conntrack_tool(shared_lab: Lab, snapshot: Snapshot) -> None:
    """The snapshot's conntrack entries equal what `conntrack -L` prints in the node."""
    from podpath.conntrack import parse_conntrack

    index = SnapshotIndex(snapshot)
    web = shared_lab.service("default/web")[0]
    dnat = [e for e in index.conntrack if e.original.dst == web.cluster_ip and e.is_dnat]
    assert dnat, "the probe's DNAT'd connection is missing"
    assert {(e.reply.src, e.reply.sport) for e in dnat} <= set(web.endpoints)

    def key(e: Any) -> tuple[object, ...]:
        return (
            e.protocol,
            e.original.src,
            e.original.dst,
            e.original.sport,
            e.original.dport,
            e.reply.src,
            e.reply.dst,
            e.reply.sport,
            e.reply.dport,
        )

    theirs = {
        key(e)
        for e in parse_conntrack(
            shared_lab.exec(NODE, ["conntrack", "-L", "-o", "extended"]).stdout
        )
    }
    ours = {key(e) for e in index.conntrack}
    # Entries only age between the two reads (nothing else sends traffic in the node):
    # the tool may miss some that expired since, never show one the snapshot lacks.
    assert theirs <= ours, sorted(map(str, theirs - ours))
    assert {key(e) for e in dnat} <= theirs, sorted(map(str, {key(e) for e in dnat} - theirs))


# What a reader must never change (reliability row 8): netfilter tables (legacy save
# with -t creates them), named netns (IPRoute(netns=) creates them), mounts, modules.
_STATE_PROBES = (
    ["cat", "/proc/net/ip_tables_names"],
    ["cat", "/proc/net/ip6_tables_names"],
    ["nft", "list", "tables"],
    ["ip", "netns", "list"],
    ["ls", "-la", "/run/netns"],
    ["cat", "/proc/1/mountinfo"],
    ["sh", "-c", "cat /proc/modules 2>/dev/null || true"],
)


def _node_state(lab: Lab) -> list[str]:
    return [lab.exec(NODE, argv, check=False).stdout for argv in _STATE_PROBES]


def test_a_whole_snapshot_changes_nothing(shared_lab: Lab, run_podpath: Any) -> None:
    """Before and after `podpath snapshot` (every collector), the node's state is byte-identical."""
    before = _node_state(shared_lab)
    out = run_podpath(shared_lab, NODE, "snapshot", "-o", "/dev/null")
    assert out.returncode == 0, out.stderr
    assert _node_state(shared_lab) == before


def test_snapshot_has_no_unexpected_gaps(snapshot: Snapshot) -> None:
    """As root inside a node, nothing is unreadable."""
    assert [g for g in snapshot.gaps if g.kind in ("permission", "error")] == []
