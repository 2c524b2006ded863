"""NOTRACK in the raw table: the packet has no conntrack entry in that namespace.

So nat is not consulted for it (a Service's VIP is never DNATed), and its answer meets a
conntrack with no entry for it: a TCP SYN-ACK is INVALID there (nf_conntrack starts no
connection with it), which kube-proxy drops, unless the answer is NOTRACKed too (as
NodeLocal DNSCache does both ways). iptables' `-j CT --notrack` and nftables' `notrack`;
tests/lab/test_doctor_lab.py checks the same with real traffic.
"""

from __future__ import annotations

import nft_real
import pytest
from test_trace_proxy_modes import NODE_IP, PODS, SERVICES, WEB
from trace_factory import NodeSpec, build_node

from podpath.lab.kubeproxy import restore_input
from podpath.lab.kubeproxy_nft import render
from podpath.snapshot.model import Snapshot
from podpath.trace.engine import trace
from podpath.trace.model import Branch
from podpath.trace.probe import Probe

CLIENT, EP1 = "10.244.0.5", "10.244.0.6"
# raw PREROUTING: the client's requests to port 80, and (both=True) their answers. An
# INVALID packet is dropped by kube-proxy's KUBE-FORWARD (iptables), and here by the
# nftables table's own forward chain, as a host firewall's commonly is.
IPT_RAW = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -s {client}/32 -p tcp -m tcp --dport 80 -j CT --notrack
{answer}COMMIT
"""
IPT_ANSWER = "-A PREROUTING -d {client}/32 -p tcp -m tcp --sport 80 -j NOTRACK\n"
NFT_RAW = """
table ip rawtable {{
  chain prerouting {{
    type filter hook prerouting priority raw; policy accept;
    ip saddr {client} tcp dport 80 notrack
    {answer}
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    ct state invalid drop
  }}
}}
"""
NFT_ANSWER = "ip daddr {client} tcp sport 80 notrack"


def _node(mode: str, both: bool) -> Snapshot:
    if mode == "iptables":
        raw = IPT_RAW.format(client=CLIENT, answer=IPT_ANSWER.format(client=CLIENT) if both else "")
        return build_node(NodeSpec(pods=PODS, iptables=restore_input(SERVICES, jumps=True) + raw))
    extra = NFT_RAW.format(client=CLIENT, answer=NFT_ANSWER.format(client=CLIENT) if both else "")
    loaded = nft_real.load(render(SERVICES, (NODE_IP,)) + extra)
    return build_node(NodeSpec(pods=PODS, nft_json=loaded.json))


@pytest.fixture(params=["iptables", "nftables"])
def mode(request: pytest.FixtureRequest) -> str:
    """kube-proxy's mode, and the raw table's with it."""
    return str(request.param)


def _the_answer(mode: str, both: bool) -> Branch:
    """The endpoint's answer to the client's request to a pod, which is delivered."""
    (branch,) = trace(
        [_node(mode, both)], Probe("default/client", f"{EP1}:80"), reply=True
    ).branches
    assert branch.verdict == "delivered", branch.reason
    (back,) = branch.reply
    return back


def test_an_untracked_request_to_a_service_is_never_dnated(mode: str) -> None:
    """The VIP stays the destination: one branch, no DNAT hop, the untracked hop shown."""
    (branch,) = trace(
        [_node(mode, both=True)], Probe("default/client", "default/web:http")
    ).branches
    assert branch.packet.dst == WEB.cluster_ip and branch.verdict != "delivered", branch.reason
    assert not [h for h in branch.hops if h.kind == "nat"], [h.text for h in branch.hops]
    assert [h.text for h in branch.hops if h.data.get("untracked")], [h.text for h in branch.hops]
    assert branch.untracked and branch.packet.ct_state == "UNTRACKED"


def test_the_answer_of_an_untracked_request_is_invalid_and_dropped(mode: str) -> None:
    """Client to a pod: delivered untracked; the SYN-ACK back is INVALID and kube-proxy drops it."""
    back = _the_answer(mode, both=False)
    assert back.verdict == "dropped" and back.packet.ct_state == "INVALID", back.reason
    assert "invalid" in back.reason.lower(), back.reason


def test_an_answer_untracked_too_comes_back(mode: str) -> None:
    """With the answers NOTRACKed as well, the way back passes untracked."""
    back = _the_answer(mode, both=True)
    assert back.verdict == "delivered", back.reason
    assert [h.text for h in back.hops if h.data.get("untracked")], [h.text for h in back.hops]


def test_a_tracked_request_is_unchanged(mode: str) -> None:
    """Another client's packets are tracked: web's VIP is DNATed, the answer comes back."""
    result = trace([_node(mode, both=False)], Probe("default/ep2", "default/web:http"), reply=True)
    assert {b.packet.dst for b in result.branches} == {EP1, "10.244.0.7"}
    for b in result.branches:
        assert b.verdict == "delivered" and not b.untracked, b.reason
        assert all(r.verdict == "delivered" for r in b.reply), [r.reason for r in b.reply]
