"""xt_recent lists, IPVS and ipsets in a snapshot, against what the node's kernel and tools show."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from podpath.netfilter.ipset import parse_ipsets
from podpath.snapshot import codec

if TYPE_CHECKING:
    from podpath.lab import Lab

pytestmark = pytest.mark.lab


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
