"""The kernel's side of a trace (podpath.trace.observed): a flow's conntrack entries and the
rule counters that moved, judged against the trace's prediction."""

from __future__ import annotations

import dataclasses

from trace_factory import NodeSpec, PodSpec, build_node, kube_services

from podpath.conntrack import parse_conntrack_line
from podpath.snapshot.model import Snapshot
from podpath.trace.engine import trace
from podpath.trace.observed import entry_line, flow_entries, moved, observed_lines
from podpath.trace.probe import Probe

PODS = [PodSpec("web-0", "10.244.0.2"), PodSpec("web-1", "10.244.0.3")]
VIP = "10.96.0.10"


def _node() -> Snapshot:
    return build_node(NodeSpec(pods=PODS, iptables=kube_services(VIP, 80, ["10.244.0.3"])))


def _entry(src: str, dst: str, sport: int, reply_src: str, state: str = "ESTABLISHED") -> str:
    return (
        f"ipv4     2 tcp      6 431999 {state} src={src} dst={dst} sport={sport} dport=80 "
        f"src={reply_src} dst={src} sport=80 dport={sport} [ASSURED] mark=0 use=1"
    )


def test_the_flows_entries_are_picked_and_judged_against_the_prediction() -> None:
    """Of four entries, the two of web-0 -> VIP:80 are the flow's: one DNATed to the endpoint
    the trace predicts, one to an address it does not; others' flows are left out."""
    result = trace([_node()], Probe("default/web-0", f"{VIP}:80"))
    lines = [
        _entry("10.244.0.2", VIP, 40000, "10.244.0.3"),
        _entry("10.244.0.2", VIP, 40001, "10.244.0.9", "TIME_WAIT"),
        _entry("10.244.0.3", VIP, 40002, "10.244.0.3"),  # another client
        _entry("10.244.0.2", "10.96.0.11", 40003, "10.244.0.3"),  # another Service
    ]
    entries = [e for e in map(parse_conntrack_line, lines) if e is not None]
    found = flow_entries(result, entries)
    assert [e.original.sport for e in found] == [40000, 40001]
    texts = [entry_line(e, {"10.244.0.3:80": 1}) for e in found]
    assert texts[0].startswith(
        "tcp ESTABLISHED 10.244.0.2:40000 -> 10.96.0.10:80  reply 10.244.0.3:80 -> 10.244.0.2:40000"
    )
    assert "DNAT to 10.244.0.3:80 (as predicted by branch 1)" in texts[0]
    assert "DNAT to 10.244.0.9:80 (NOT among the trace's endpoints)" in texts[1]
    shown = observed_lines(result, found, "conntrack -L, live")
    assert shown[0] == "conntrack (conntrack -L, live): 2 entries of this flow"
    assert observed_lines(result, [], "the snapshot of node1")[1].startswith("  none: ")


def test_counters_that_moved_on_the_path_are_named() -> None:
    """Two readings (iptables-save -c) of the node, the second with 3 more packets on the
    endpoint's KUBE-SEP rules: those rules, +3; rules that did not move are not listed."""
    plain = _node()

    def counted(moved_sep: str) -> Snapshot:
        dumps = []
        for d in plain.iptables:
            lines = []
            for line in d.text.splitlines():
                if line.startswith("-A "):
                    line = (moved_sep if line.startswith("-A KUBE-SEP") else "[0:0]") + " " + line
                lines.append(line)
            dumps.append(dataclasses.replace(d, text="\n".join(lines) + "\n"))
        return dataclasses.replace(plain, iptables=tuple(dumps))

    probe = Probe("default/web-0", f"{VIP}:80")
    found = moved(trace([counted("[0:0]")], probe), trace([counted("[3:180]")], probe))
    assert found and all("KUBE-SEP-TESTSEP" in m.where for m in found)
    assert {m.packets for m in found} == {3}
    assert found[0].text.startswith("+3 packets (180 bytes)  [")
    assert moved(trace([counted("[0:0]")], probe), trace([counted("[0:0]")], probe)) == []
