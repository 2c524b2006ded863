"""The lab's kube-router rendering: its names, its spec checks, and the trace's policy notes."""

from __future__ import annotations

from pathlib import Path

import pytest

from podpath.lab.kube_router import LAB_POLICIES, NetworkPolicy, ipset_input, policy_chain
from podpath.lab.records import LabError, LabSpec, PodRecord
from podpath.netfilter.iptables_save import parse_ruleset
from podpath.trace import policy
from podpath.trace.matches import MatchEnv
from podpath.trace.model import Packet
from podpath.trace.netfilter import NfEnv, walk_table

REALWORLD = Path(__file__).resolve().parents[1] / "fixtures" / "realworld"


def _pod(name: str, ip: str, app: str = "web", namespace: str = "default") -> PodRecord:
    return PodRecord(
        "node1",
        namespace,
        name,
        "uid",
        "sb",
        1,
        1,
        ip,
        "/run/netns/x",
        "veth",
        (),
        app,
        "besteffort",
    )


def test_policy_chain_names_hash_like_kube_router() -> None:
    """networkPolicyChainName(nsA, simple-egress, version 1, IPv4) is the chain of kube-router's own test."""
    dump = (REALWORLD / "iptables" / "kube-router-netpol-builder-expected-rules.txt").read_text()
    name = policy_chain(NetworkPolicy("nsA", "simple-egress", ()), version="1")
    assert name == "KUBE-NWPLCY-C23KD7UE4TAT3Y5M" and f"-A {name} " in dump


def test_ipsets_hold_selected_pods_and_the_client() -> None:
    """The allow policy's source set holds only the access=web pod; its target set every web pod."""
    pods = [
        _pod("dns", "10.244.0.2", "dns", "kube-system"),
        _pod("c", "10.244.0.3"),
        _pod("w", "10.244.0.4"),
    ]
    text = ipset_input(pods, LAB_POLICIES)
    src = [line for line in text.splitlines() if line.startswith("add KUBE-SRC-")]
    assert src == [line for line in src if "10.244.0.3 timeout 0" in line] and len(src) == 1
    assert "10.244.0.2" not in text and text.count("create ") == 3


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"policy": "calico"}, "--policy must be one of"),
        ({"policy": "kube-router", "ip_family": "dual"}, "IPv4"),
    ],
)
def test_spec_refuses_what_is_not_built(kwargs: dict[str, str], words: str) -> None:
    """An unknown engine, or kube-router on an IPv6 lab, is one sentence before anything is built."""
    with pytest.raises(LabError, match=words):
        LabSpec("w", **kwargs).validate()  # type: ignore[arg-type]


def test_a_rejected_packet_names_the_policies_the_pod_firewall_ran() -> None:
    """The REJECT names only the pod; the drop reason adds each policy run on the way."""
    text = (
        "*filter\n:FORWARD ACCEPT [0:0]\n:KUBE-POD-FW-AAAA - [0:0]\n:KUBE-NWPLCY-BBBB - [0:0]\n"
        ":KUBE-NWPLCY-CCCC - [0:0]\n"
        '-A FORWARD -d 10.244.0.5/32 -m comment --comment "rule to jump traffic destined to POD '
        'name:web namespace: nsA to chain KUBE-POD-FW-AAAA" -j KUBE-POD-FW-AAAA\n'
        '-A KUBE-POD-FW-AAAA -d 10.244.0.5/32 -m comment --comment "run through nw policy allow" -j KUBE-NWPLCY-CCCC\n'
        '-A KUBE-POD-FW-AAAA -d 10.244.0.5/32 -m comment --comment "run through nw policy deny-all" -j KUBE-NWPLCY-BBBB\n'
        '-A KUBE-NWPLCY-CCCC -s 10.244.0.7/32 -p tcp -m comment --comment "rule to ACCEPT traffic from source pods '
        'to dest pods selected by policy name allow namespace nsA" -j MARK --set-xmark 0x10000/0x10000\n'
        '-A KUBE-POD-FW-AAAA -m comment --comment "rule to REJECT traffic destined for POD name:web namespace: nsA" '
        "-m mark ! --mark 0x10000/0x10000 -j REJECT --reject-with icmp-port-unreachable\n"
        "COMMIT\n"
    )
    env = NfEnv(0, "node", "nft", MatchEnv(local_addresses=frozenset()))
    rules = parse_ruleset(text)
    (denied,) = walk_table(
        rules, "filter", "FORWARD", Packet("10.244.0.9", "10.244.0.5", "tcp", 1, 80), env
    )
    assert denied.verdict == "REJECT"
    assert policy.denial(denied.hops) == (
        "; NetworkPolicies selecting nsA/web: nsA/allow, nsA/deny-all (kube-router); none allows this packet"
    )
    (allowed,) = walk_table(
        rules, "filter", "FORWARD", Packet("10.244.0.7", "10.244.0.5", "tcp", 1, 80), env
    )
    assert allowed.verdict == "ACCEPT" and policy.denial(allowed.hops) == ""
    notes = [d for hop in allowed.hops for d in hop.details]
    assert "NetworkPolicy nsA/allow (kube-router) allows this packet" in notes
