"""The shapes a trace is made of: the packet, its hops, branches and the whole trace.

A trace is data, like a snapshot: the engine builds it, `render` turns it into text or
the JSON contract, the TUI shows it. Hops carry a `data` mapping with exactly the keys
the JSON contract promises for their kind (README, "Trace output").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# Hop kinds of the JSON contract.
HOP_KINDS = (
    "route",
    "link",
    "bridge",
    "neighbour",
    "netfilter",
    "nat",
    "vxlan",
    "ipip",
    "conntrack",
    "deliver",
    "drop",
    "leave",
    "ebpf",
)
# Branch verdicts of the JSON contract.
# "refused": delivered, but no socket takes it (TCP RST, UDP ICMP port unreachable).
VERDICTS = ("delivered", "refused", "dropped", "leaves-node", "uncertain")

JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]


@dataclass(frozen=True)
class Packet:
    """The header fields the kernel decides on, as they are at one point of the path."""

    src: str | None  # None until the output route lookup picks a source address
    dst: str
    proto: str  # tcp | udp | icmp
    sport: int | None = None
    dport: int | None = None
    mark: int = 0  # skb->mark, cleared when the packet crosses into another netns
    # NEW for the first packet, ESTABLISHED for the reply; UNTRACKED after a NOTRACK in
    # the raw table, INVALID for a reply where its request went untracked (a TCP or ICMP
    # answer to no connection)
    ct_state: str = "NEW"
    direction: str = "original"  # original | reply

    def with_(self, **changes: object) -> Packet:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def to(self, dst: str, dport: int | None) -> Packet:
        """This packet with another destination (each DNAT of a walk); built directly, as
        dataclasses.replace costs twice as much (tests/unit/test_trace_copies.py)."""
        return Packet(
            self.src, dst, self.proto, self.sport, dport, self.mark, self.ct_state, self.direction
        )


@dataclass(frozen=True)
class Hop:
    """One step of the path: a one-line summary, indented decisions, and contract data."""

    kind: str
    node: str  # hostname of the node whose snapshot decided this hop
    text: str
    details: tuple[str, ...] = ()
    # Lines shown only under --explain (the binary AND of a route lookup).
    explain: tuple[str, ...] = ()
    data: dict[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True)
class NatRecord:
    """A translation conntrack remembers, so the reply can be translated back."""

    node: int  # index of the node (snapshot) whose conntrack holds it
    kind: str  # DNAT | SNAT (MASQUERADE is recorded as SNAT)
    before: tuple[str, int | None]  # (address, port) before the rewrite
    after: tuple[str, int | None]  # (address, port) after the rewrite


@dataclass(frozen=True)
class Branch:
    """One way the packet can go, with the probability the kernel gives it."""

    probability: float
    verdict: str  # one of VERDICTS
    reason: str  # delivered to ..., dropped by ..., leaves via ..., uncertain because ...
    hops: tuple[Hop, ...]
    packet: Packet  # the packet as it was at the end of the branch
    # What the branch would end in if the uncertain guesses hold (verdict "uncertain" only).
    outcome: str | None = None
    uncertain: tuple[str, ...] = ()
    nat: tuple[NatRecord, ...] = ()
    # Where the packet ended: (node index, netns inode), for the reply direction.
    end: tuple[int, int] | None = None
    reply: tuple[Branch, ...] = ()
    # The (node index, netns inode) where a raw-table NOTRACK left the packet without a
    # conntrack entry: its reply meets conntrack there as a packet of no connection.
    untracked: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Trace:
    """Every branch of one probe through one or more node snapshots."""

    probe: dict[str, JsonValue]
    branches: tuple[Branch, ...]
