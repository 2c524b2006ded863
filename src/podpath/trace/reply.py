"""The way back: the endpoint's reply, with conntrack's reverse translations.

Conntrack stores both tuples of a connection. For a reply the kernel undoes a SNAT
(MASQUERADE) on the destination before routing (nf_nat_ipv4_in at PREROUTING) and a
DNAT on the source on the way out (nf_nat_ipv4_out at POSTROUTING, or at INPUT when the
client is local) — so the client sees the Service VIP and port answering.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from podpath.trace.flow import Flow
from podpath.trace.model import Branch, Hop, Packet
from podpath.trace.probe import hostport


class Engine(Protocol):
    """What the way back needs of the engine (which imports this module, not the reverse)."""

    def is_root(self, flow: Flow) -> bool:
        """True in a node's own namespace."""
        ...

    def hostname(self, node: int) -> str:
        """The hostname of a node."""
        ...

    def output(self, flow: Flow) -> list[Branch]:
        """Trace a packet sent from the flow's namespace."""
        ...


def _ap(addr: str | None, port: int | None) -> str:
    return hostport(addr, port)


def reverse(engine: Engine, flow: Flow, kind: str) -> Flow:
    """Apply conntrack's reverse translation of one kind (SNAT or DNAT) recorded on this node."""
    # Conntrack entries live in the node's root namespace (pods' own tables are not collected).
    if flow.packet.direction != "reply" or not engine.is_root(flow):
        return flow
    for record in flow.nat:
        if record.node != flow.node or record.kind != kind:
            continue
        p = flow.packet
        after_addr, after_port = record.after
        before_addr, before_port = record.before
        if kind == "SNAT":
            if p.dst != after_addr or (after_port is not None and p.dport != after_port):
                continue
            new = p.with_(
                dst=before_addr, dport=before_port if before_port is not None else p.dport
            )
            text = f"conntrack: reply to a SNAT: destination {_ap(p.dst, p.dport)} -> {_ap(new.dst, new.dport)}"
            old_s, new_s = _ap(p.dst, p.dport), _ap(new.dst, new.dport)
        else:
            if p.src != after_addr or (after_port is not None and p.sport != after_port):
                continue
            new = p.with_(
                src=before_addr, sport=before_port if before_port is not None else p.sport
            )
            text = f"conntrack: reply to a DNAT: source {_ap(p.src, p.sport)} -> {_ap(new.src, new.sport)}"
            old_s, new_s = _ap(p.src, p.sport), _ap(new.src, new.sport)
        hop = Hop(
            "conntrack",
            engine.hostname(flow.node),
            text,
            (),
            (),
            {
                "from": old_s,
                "to": new_s,
                "type": f"un-{kind}",
                "field": "dst" if kind == "SNAT" else "src",
            },
        )
        remaining = tuple(r for r in flow.nat if r is not record)
        flow = replace(flow, packet=new, nat=remaining, hops=flow.hops + (hop,))
    return flow


def crossed(
    packet: Packet, untracked: tuple[tuple[int, int], ...], place: tuple[int, int]
) -> Packet:
    """The packet as the conntrack of the namespace it enters (`place`: node, netns) sees
    it: its mark cleared (the skb is scrubbed) and its state that namespace's own. A
    request is NEW there, whatever a NOTRACK made it where it was. A reply is ESTABLISHED,
    but where its request went untracked it belongs to no connection: nf_conntrack starts
    none for a TCP SYN-ACK or an ICMP echo reply (INVALID: kube-proxy's KUBE-FORWARD drops
    it), and a NEW one for UDP (whose nat, run for a new entry, is not modelled)."""
    if packet.direction == "original":
        state = "NEW"
    elif place in untracked:
        state = "NEW" if packet.proto == "udp" else "INVALID"
    else:
        state = "ESTABLISHED"
    return Packet(
        packet.src, packet.dst, packet.proto, packet.sport, packet.dport, 0, state, packet.direction
    )


def reply_packet(forward: Packet) -> Packet:
    """The endpoint's answer to the packet as it arrived: addresses and ports swapped."""
    return Packet(
        src=forward.dst,
        dst=forward.src or "",
        proto=forward.proto,
        sport=forward.dport,
        dport=forward.sport,
        mark=0,
        ct_state="ESTABLISHED",
        direction="reply",
    )


def trace_reply(engine: Engine, branch: Branch) -> list[Branch]:
    """Trace the reply of a delivered branch from where it was delivered."""
    delivered = branch.verdict == "delivered" or branch.outcome == "delivered"
    if not delivered or branch.end is None or branch.packet.src is None:
        return []
    node, netns = branch.end
    packet = crossed(reply_packet(branch.packet), branch.untracked, branch.end)
    flow = Flow(packet, node, netns, 1.0, (), branch.nat, untracked=branch.untracked)
    return engine.output(flow)
