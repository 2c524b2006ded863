"""xt_recent lists, IPVS, ipsets and the neighbour tables in a snapshot, against what the
node's kernel and tools show."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from podpath.analysis.index import SnapshotIndex
from podpath.analysis.neighbour_tables import counted_entries
from podpath.netfilter.ipset import parse_ipsets
from podpath.snapshot import codec

if TYPE_CHECKING:
    from podpath.lab import Lab

pytestmark = pytest.mark.lab

# Entries other labs on this machine may add or drop between two readings of the table.
SLACK = 64


def test_xt_recent_lists_equal_proc_and_carry_ages(shared_lab: Lab, run_podpath: Any) -> None:
    """After real connections to web-sticky, each KUBE-SEP list equals /proc/net/xt_recent/NAME."""
    sticky = shared_lab.service("default/web-sticky")[0]
    src = shared_lab.pods_on("node1")[0]
    assert shared_lab.probe(src.ref, sticky.cluster_ip, sticky.port).ok
    done = run_podpath(shared_lab, "node1", "snapshot", "-o", "-")
    assert done.returncode == 0, done.stderr
    snap = codec.loads(done.stdout)
    assert snap.xt_recent is not None
    lists = {r.name: r for r in snap.xt_recent}
    assert set(sticky.sep_chains) <= set(lists)
    for name in sticky.sep_chains:
        proc = shared_lab.exec("node1", ["cat", f"/proc/net/xt_recent/{name}"]).stdout
        want = {line.split()[0].removeprefix("src=") for line in proc.splitlines() if line}
        assert {e.address for e in lists[name].entries} == want
    pinned = [e for name in sticky.sep_chains for e in lists[name].entries if e.address == src.ip]
    assert len(pinned) == 1
    assert pinned[0].age is not None and 0 <= pinned[0].age < 300
    assert not [g for g in snap.gaps if "xt_recent" in g.subject]


def test_no_ip_vs_in_this_kernel_is_no_ipvs_and_no_gap(shared_lab: Lab, run_podpath: Any) -> None:
    """This kernel has no ip_vs: the snapshot says none, and that is not an error."""
    done = run_podpath(shared_lab, "node1", "snapshot", "-o", "-")
    snap = codec.loads(done.stdout)
    assert shared_lab.exec("node1", ["test", "-e", "/proc/net/ip_vs"], check=False).returncode
    assert snap.ipvs is None
    assert not [g for g in snap.gaps if "ip_vs" in g.subject]


def test_ipsets_equal_ipset_list(make_lab: Callable[..., Lab], run_podpath: Any) -> None:
    """kube-proxy IPVS mode's sets made in a node: the snapshot's sets equal `ipset list`."""
    lab = make_lab(nodes=1, pods=1, services=2)
    script = (
        "create KUBE-CLUSTER-IP hash:ip,port comment\n"
        'add KUBE-CLUSTER-IP 10.96.0.10,udp:53 comment "Kubernetes service cluster ip + port"\n'
        "add KUBE-CLUSTER-IP 10.96.0.1,tcp:443\n"
        "create KUBE-LOOP-BACK hash:ip,port,ip\n"
        "add KUBE-LOOP-BACK 10.244.0.5,tcp:80,10.244.0.5\n"
    )
    lab.exec("node1", ["ipset", "restore"], input=script)
    done = run_podpath(lab, "node1", "snapshot", "-o", "-")
    assert done.returncode == 0, done.stderr
    snap = codec.loads(done.stdout)
    assert snap.ipsets is not None and snap.ipsets.command == ("ipset", "save")
    ours = parse_ipsets(snap.ipsets.text)
    theirs = parse_ipsets(lab.exec("node1", ["ipset", "list"]).stdout)
    assert {n: (s.type, set(s.members)) for n, s in ours.items()} == {
        n: (s.type, set(s.members)) for n, s in theirs.items()
    }
    assert set(ours["KUBE-CLUSTER-IP"].members) == {"10.96.0.10,udp:53", "10.96.0.1,tcp:443"}


def test_rule_counters_equal_iptables_save_c(shared_lab: Lab, run_podpath: Any) -> None:
    """Each KUBE-SEP DNAT rule of web carries the packet counter `iptables-save -c` prints."""
    import re

    from podpath.analysis.index import SnapshotIndex

    web = shared_lab.service("default/web")[0]
    src = shared_lab.pods_on("node1")[0]
    assert shared_lab.probe(src.ref, web.cluster_ip, web.port).ok
    done = run_podpath(shared_lab, "node1", "snapshot", "-o", "-")
    assert done.returncode == 0, done.stderr
    saved = shared_lab.exec("node1", ["iptables-save", "-c", "-t", "nat"]).stdout
    ruleset = SnapshotIndex(codec.loads(done.stdout)).ruleset()
    assert ruleset is not None
    total = 0
    for sep in web.sep_chains:
        (want,) = re.findall(rf"^\[(\d+):(\d+)\] -A {sep} .*-j DNAT", saved, re.M)
        (rule,) = [r for r in ruleset.rules("nat", sep) if r.target and r.target.name == "DNAT"]
        assert rule.counters == (int(want[0]), int(want[1]))
        total += rule.counters[0]
    assert total >= 1  # the probe's first packet went through one of them


def _ntables(lab: Lab) -> dict[str, dict[str, Any]]:
    """`ip -s -j ntable show` in node1: each table's own entry (not its devices') by name."""
    done = lab.exec("node1", ["ip", "-s", "-j", "ntable", "show"])
    return {t["name"]: t for t in json.loads(done.stdout) if "thresh3" in t}


def _exempt_entries(lab: Lab, family: int) -> int:
    """PERMANENT and extern_learn neighbour entries of the node's namespaces (`ip -j neigh`)."""
    paths = ["/proc/1/ns/net", *(p.netns_path for p in lab.pods_on("node1"))]
    total = 0
    for path in paths:
        argv = ["nsenter", f"--net={path}", "ip", f"-{family}", "-j", "neigh", "show", "nud", "all"]
        for entry in json.loads(lab.exec("node1", argv).stdout or "[]"):
            if "PERMANENT" in entry.get("state", ()) or "extern_learn" in entry.get("flags", ()):
                total += 1
    return total


def test_neighbour_tables_equal_ip_ntable(shared_lab: Lab, run_podpath: Any) -> None:
    """The kernel's ARP and NDP tables as `ip -s ntable show` prints them: thresholds and
    counters equal, the entries between two readings around the snapshot (other labs may
    add some meanwhile: the table is the whole machine's), and the PERMANENT entries the
    node holds (flannel.1's far VTEPs) taken off the count as the kernel does."""
    before = _ntables(shared_lab)
    done = run_podpath(shared_lab, "node1", "snapshot", "-o", "-")
    after = _ntables(shared_lab)
    snap = codec.loads(done.stdout)
    assert snap.node.neighbour_tables is not None
    tables = {t.name: t for t in snap.node.neighbour_tables}
    assert sorted(t.name for t in snap.node.neighbour_tables) == ["arp_cache", "ndisc_cache"]
    index = SnapshotIndex(snap)
    for name, family in (("arp_cache", 4), ("ndisc_cache", 6)):
        got, ip = tables[name], after[name]
        assert got.family == family
        limits = ("thresh1", "thresh2", "thresh3")
        assert [getattr(got, k) for k in limits] == [ip[k] for k in limits]
        assert got.table_fulls == ip["table_fulls"]
        assert before[name]["forced_gc_runs"] <= got.forced_gc_runs <= ip["forced_gc_runs"]
        low = min(before[name]["entries"], ip["entries"])
        high = max(before[name]["entries"], ip["entries"])
        assert low - SLACK <= got.entries <= high + SLACK
        counted, exempt = counted_entries(index, got)
        assert exempt == _exempt_entries(shared_lab, family)
        assert counted == max(got.entries - exempt, 0)
    assert _exempt_entries(shared_lab, 4), "flannel.1 holds a PERMANENT entry for node2's VTEP"
    assert not [g for g in snap.gaps if g.subject == "neighbour tables"]
