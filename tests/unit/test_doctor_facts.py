"""The doctor's fact checks (podpath.analysis.problems): what a node's facts show, without a trace."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from trace_factory import NodeSpec, PodSpec, build_node, kube_services

from podpath.analysis.findings import Finding
from podpath.analysis.index import SnapshotIndex
from podpath.analysis.parsed import ParsedSnapshot
from podpath.analysis.problems import problems
from podpath.snapshot.codec import load_path
from podpath.snapshot.model import (
    CniConfig,
    CniState,
    ConntrackDump,
    Gap,
    IpamAllocation,
    IptablesDump,
    Snapshot,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "tui" / "fixtures" / "snapshot.json"
PODS = [PodSpec("web-0", "10.244.0.2"), PodSpec("web-1", "10.244.0.3")]


def _parsed(snapshot: Snapshot) -> ParsedSnapshot:
    return ParsedSnapshot(SnapshotIndex(snapshot))


def _node(**changes: object) -> Snapshot:
    """A built node (pods on cni0) with kube-proxy rules for one Service, then `changes`."""
    snap = build_node(NodeSpec(pods=PODS, iptables=kube_services("10.96.0.10", 80, ["10.244.0.2"])))
    return dataclasses.replace(snap, **changes)  # type: ignore[arg-type]


def _facts(snap: Snapshot, **changes: object) -> Snapshot:
    return dataclasses.replace(snap, node=dataclasses.replace(snap.node, **changes))  # type: ignore[arg-type]


def _checks(found: tuple[Finding, ...]) -> list[tuple[str, str]]:
    return [(f.grade, f.check) for f in found]


def test_the_healthy_built_node_has_no_finding() -> None:
    """Forwarding on, bridge-nf-call-iptables on, nothing leaked, nothing stale: nothing."""
    assert problems(_parsed(_node())) == ()


def test_the_fixture_leaks_an_address_and_keeps_a_stale_entry() -> None:
    """The TUI fixture leaks 10.244.0.9 in IPAM and has one conntrack entry DNAT'd to it."""
    found = problems(_parsed(load_path(str(FIXTURE))))
    assert _checks(found) == [("warning", "ipam-leaked"), ("warning", "stale-conntrack")]
    stale = found[1]
    assert stale.cause.startswith("1 conntrack entry still DNATs a Service to an address")
    assert "10.244.0.9:80/tcp" in stale.cause
    assert stale.fix.endswith("conntrack -D -p tcp --orig-dst 10.96.0.20 --reply-src 10.244.0.9")
    assert stale.evidence == (
        "tcp 10.244.0.8:51002 -> 10.96.0.20:80 (reply from 10.244.0.9:80) ESTABLISHED",
    )


def test_gaps_are_warnings_when_wrong_info_when_missing_and_skipped_parts_are_none() -> None:
    """An inconsistent dump is a warning first; a permission gap info naming its capability."""
    gaps = (
        Gap("links of netns x", "the dump was interrupted", "inconsistent"),
        Gap("conntrack", "not collected for this listing", "skipped"),
        Gap("/proc/4242/environ", "permission denied", "permission", "CAP_SYS_PTRACE"),
    )
    found = problems(_parsed(_node(gaps=gaps)))
    assert [(f.grade, f.subject) for f in found] == [
        ("warning", "links of netns x"),
        ("info", "/proc/4242/environ"),
    ]
    assert "permission denied (needs CAP_SYS_PTRACE)" in found[1].cause
    assert found[1].fix == "run podpath with CAP_SYS_PTRACE"


def test_two_backends_holding_rules_are_one_warning() -> None:
    """Rules in two iptables backends give detect_mode's warning, once, with its evidence."""
    legacy = IptablesDump(
        "legacy",
        "ipv4",
        ("iptables-legacy-save",),
        "*filter\n:INPUT ACCEPT\n-A INPUT -j ACCEPT\nCOMMIT\n",
    )
    snap = _node()
    snap = dataclasses.replace(snap, iptables=(*snap.iptables, legacy))
    found = [f for f in problems(_parsed(snap)) if f.check == "netfilter-backends"]
    assert len(found) == 1 and "several iptables backends" in found[0].cause
    assert found[0].grade == "warning" and found[0].evidence


def test_unprivileged_collection_and_each_leaked_address_are_named() -> None:
    """A non-root collector and every stale IPAM reservation are listed, live ones not."""
    cni = CniState(
        allocations=(
            IpamAllocation("cbr0", "10.244.0.9", "9e4dab12cd34aa", stale=True),
            IpamAllocation("cbr0", "10.244.0.10", "live", stale=False),
        )
    )
    found = problems(_parsed(_facts(_node(cni=cni), euid=65534)))
    assert [(f.check, f.subject) for f in found] == [
        ("ipam-leaked", "IPAM cbr0 10.244.0.9"),
        ("unread", "unprivileged"),
    ]
    assert found[0].fix.startswith("remove /var/lib/cni/networks/cbr0/10.244.0.9")


def test_a_parser_failure_is_one_note_and_one_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parser that raises on a dump leaves that view empty and is listed as unread."""
    import podpath.netfilter.kube_proxy as kube_proxy

    def broken(ruleset: object) -> tuple[()]:
        raise ValueError("unexpected token")

    monkeypatch.setattr(kube_proxy, "services", broken)
    parsed = _parsed(_node())
    assert parsed.services() == ()
    assert (
        "warning",
        "parser",
        "Services: could not be parsed (ValueError: unexpected token)",
    ) in [(f.grade, f.subject, f.cause) for f in problems(parsed)]


@pytest.mark.parametrize(
    ("count", "limit", "expected"),
    [
        (None, None, []),
        (100, None, []),
        (79, 100, []),
        (80, 100, [("warning", "conntrack-full")]),
        (94, 100, [("warning", "conntrack-full")]),
        (95, 100, [("critical", "conntrack-full")]),
        (262144, 262144, [("critical", "conntrack-full")]),
    ],
)
def test_conntrack_fill_is_a_warning_from_80_percent_and_critical_from_95(
    count: int | None, limit: int | None, expected: list[tuple[str, str]]
) -> None:
    """nf_conntrack_count against nf_conntrack_max; unknown (module not loaded) is nothing."""
    found = problems(_parsed(_facts(_node(), conntrack_count=count, conntrack_max=limit)))
    assert _checks(found) == expected
    if count == limit == 262144:
        assert found[0].cause.startswith("the conntrack table is full: 262144 of 262144 entries")
        assert found[0].evidence == (
            "net.netfilter.nf_conntrack_count = 262144",
            "net.netfilter.nf_conntrack_max = 262144",
        )


@pytest.mark.parametrize(
    ("value", "said"), [(0, "0"), (None, "absent (br_netfilter is not loaded)")]
)
def test_bridge_nf_call_iptables_off_on_a_bridge_with_kube_proxy(
    value: int | None, said: str
) -> None:
    """Pods on cni0, kube-proxy in iptables mode, and br_netfilter off or absent: a warning."""
    found = problems(_parsed(_facts(_node(), bridge_nf_call_iptables=value)))
    assert _checks(found) == [("warning", "bridge-nf-off")]
    assert found[0].cause.startswith(f"net.bridge.bridge-nf-call-iptables is {said} while pods")
    assert "bridge cni0" in found[0].cause and "iptables mode" in found[0].cause


def test_bridge_nf_call_ip6tables_off_matters_where_pods_have_ipv6_addresses() -> None:
    """bridge-nf-call-ip6tables 0: a finding of its own (key node:ipv6) on a node whose pods
    have IPv6 addresses, nothing on an IPv4-only node; unread (older snapshots), nothing."""
    snap = _facts(_node(), bridge_nf_call_ip6tables=0)
    assert problems(_parsed(snap)) == ()
    dual = tuple(
        dataclasses.replace(pod, ips=(*pod.ips, f"fd00:10:244::{n}"))
        for n, pod in enumerate(snap.pods, start=2)
    )
    found = problems(_parsed(dataclasses.replace(snap, pods=dual)))
    assert _checks(found) == [("warning", "bridge-nf-off")]
    assert found[0].id == "bridge-nf-off:node-a:ipv6"
    assert found[0].evidence == ("net.bridge.bridge-nf-call-ip6tables = 0",)
    unread = _facts(dataclasses.replace(snap, pods=dual), bridge_nf_call_ip6tables=None)
    assert problems(_parsed(unread)) == ()


def test_bridge_nf_call_iptables_off_without_kube_proxy_is_nothing() -> None:
    """Without kube-proxy's rules nothing needs bridged traffic to pass iptables."""
    snap = build_node(NodeSpec(pods=PODS, bridge_nf_call_iptables=0))
    assert problems(_parsed(snap)) == ()


def test_forwarding_off_on_a_node_with_pods_is_a_fact_finding() -> None:
    """ip_forward 0 with pods: a warning the paths that fail (podpath.doctor) make critical."""
    found = problems(_parsed(_facts(_node(), ip_forward=0)))
    assert _checks(found) == [("warning", "ip-forward-off")]
    assert found[0].id == "ip-forward-off:node-a"
    assert found[0].evidence == ("net.ipv4.ip_forward = 0",)


def test_pods_whose_mtu_is_not_the_cni_configs_are_named() -> None:
    """The active conflist asks mtu 1400; the pods' eth0 have 1450."""
    text = '{"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": "bridge", "mtu": 1400}]}'
    conf = CniConfig("/etc/cni/net.d/10-net.conflist", text, "net", "1.0.0", ("bridge",))
    cni = CniState(configs=(conf,), active=conf.path)
    found = problems(_parsed(_node(cni=cni)))
    assert _checks(found) == [("warning", "mtu-mismatch")]
    assert "2 pods' eth0 MTU differs from the mtu 1400" in found[0].cause
    assert found[0].evidence == (
        "/etc/cni/net.d/10-net.conflist: mtu 1400",
        "default/web-0 eth0 mtu 1450",
        "default/web-1 eth0 mtu 1450",
    )


def test_a_cni_config_that_asks_the_pods_mtu_is_nothing() -> None:
    """mtu 1450 in the config, 1450 on every eth0."""
    text = '{"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": "bridge", "mtu": 1450}]}'
    conf = CniConfig("/etc/cni/net.d/10-net.conflist", text, "net", "1.0.0", ("bridge",))
    assert problems(_parsed(_node(cni=CniState(configs=(conf,), active=conf.path)))) == ()


def test_stale_entries_are_counted_once_with_a_delete_command_each() -> None:
    """Two entries DNAT'd to a former endpoint: one finding, both in the evidence."""
    lines = "\n".join(
        f"ipv4 2 tcp 6 300 ESTABLISHED src=10.244.0.3 dst=10.96.0.10 sport={p} dport=80 "
        f"src=10.244.0.99 dst=10.244.0.3 sport=8080 dport={p} [ASSURED] mark=0 use=1"
        for p in (40001, 40002)
    )
    found = problems(_parsed(_node(conntrack=ConntrackDump(lines + "\n"))))
    assert _checks(found) == [("warning", "stale-conntrack")]
    assert found[0].cause.startswith("2 conntrack entries still DNAT a Service to an address")
    assert len(found[0].evidence) == 2


def test_forwarding_off_names_each_family_and_what_still_works_on_a_routed_node() -> None:
    """A routed node (Calico) with dual-stack pods and forwarding off in both families: a
    finding per family, each with its own switch; its pods are routed even to each other,
    so nothing is said to still work (on a bridge CNI, pod to pod on the bridge does)."""
    from routed_factory import RoutedNode, RoutedPod, build

    pods = [RoutedPod("a", "10.244.0.5", "fd00:10:244::5")]
    snap = build(RoutedNode(address6="fd00:172:18::2", pods=pods, forwarding=0))
    snap = _facts(snap, ip_forward=0)
    found = {f.id: f for f in problems(_parsed(snap)) if f.check == "ip-forward-off"}
    assert sorted(found) == ["ip-forward-off:calico-a", "ip-forward-off:calico-a:ipv6"]
    four, six = found["ip-forward-off:calico-a"], found["ip-forward-off:calico-a:ipv6"]
    assert "net.ipv4.ip_forward=1" in four.fix and "net.ipv6.conf.all.forwarding=1" in six.fix
    assert six.evidence == ("net.ipv6.conf.all.forwarding = 0",)
    for finding in (four, six):
        assert "pod to pod on this node (its pods are routed" in finding.cause, finding.cause
    bridged = problems(_parsed(_facts(_node(), ip_forward=0)))
    assert "only pod to pod on one bridge works" in bridged[0].cause
