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
from podpath.trace.model import Branch, Hop, JsonValue, Packet
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
    asked = asked_of(branch)
    return [unasked(reply, asked) for reply in engine.output(flow)]


def asked_of(branch: Branch) -> tuple[str | None, int | None]:
    """What the client sent its request to: the destination before the first DNAT."""
    for record in branch.nat:
        if record.kind == "DNAT":
            return record.before
    return branch.packet.dst, branch.packet.dport


def unasked(reply: Branch, asked: tuple[str | None, int | None]) -> Branch:
    """A TCP or UDP answer delivered to the client from an address or port it never sent
    to (it bypassed the node that DNATed the request, whose conntrack would have
    translated it back) is no answer to it: TCP finds no connection for it and resets,
    and a connected UDP socket, as most clients' are, does not take it. Such a reply is
    dropped there, its last hop saying so (`answer_from`, `asked`, and where it was
    `delivered`)."""
    p = reply.packet
    if reply.verdict != "delivered" or p.proto not in ("tcp", "udp"):
        return reply
    address, port = asked
    if p.src == address and (port is None or p.sport == port):
        return reply
    got, wanted = hostport(p.src, p.sport), hostport(address, port)
    fate = (
        "its TCP has no connection for it and answers with a reset"
        if p.proto == "tcp"
        else "its UDP socket, connected as most clients' are, does not take it"
    )
    reason = f"the answer comes from {got}, not from {wanted}, which the client sent to: {fate}"
    node = reply.hops[-1].node if reply.hops else ""
    data: dict[str, JsonValue] = {"reason": reason, "by": "client", "answer_from": got}
    data.update(asked=wanted, delivered=reply.reason)
    hop = Hop("drop", node, f"dropped: {reason}", (), (), data)
    return replace(reply, verdict="dropped", reason=reason, hops=(*reply.hops, hop))


def answered_unasked(reply: Branch) -> bool:
    """Whether a reply was dropped by its client as an answer it never asked (`unasked`)."""
    return bool(reply.hops) and "asked" in reply.hops[-1].data
