"""The packet at one place of a trace branch, with everything the branch has seen so far."""

from __future__ import annotations

from dataclasses import dataclass, replace

from podpath.trace.model import Hop, NatRecord, Packet


@dataclass(frozen=True)
class Flow:
    """The packet at one place, with everything the branch has seen so far."""

    packet: Packet
    node: int
    netns: int
    probability: float = 1.0
    hops: tuple[Hop, ...] = ()
    nat: tuple[NatRecord, ...] = ()
    uncertain: tuple[str, ...] = ()
    steps: int = 0
    # The bridge port a frame addressed to the bridge came in by, and its destination then
    # (node, netns, bridge ifindex, port ifindex, dst): br_netfilter's PREROUTING may DNAT it back
    # out of that same port, which only hairpin mode allows.
    entered: tuple[int, int, int, int, str | None] | None = None
    # Where the request went untracked (Branch.untracked).
    untracked: tuple[tuple[int, int], ...] = ()

    def moved_on(
        self,
        packet: Packet,
        probability: float,
        hops: tuple[Hop, ...],
        nat: tuple[NatRecord, ...],
        uncertain: tuple[str, ...],
    ) -> Flow:
        """This flow as a hook left it (each of a Service's endpoints, at 250 a Service):
        built directly, as dataclasses.replace costs twice as much (~2.5 us, 1.1 us;
        tests/unit/test_trace_copies.py)."""
        return Flow(
            packet,
            self.node,
            self.netns,
            probability,
            hops,
            nat,
            uncertain,
            self.steps,
            self.entered,
            self.untracked,
        )

    def untracked_here(self) -> Flow:
        """This flow, its request left untracked in its namespace (raw NOTRACK)."""
        here = (self.node, self.netns)
        if here in self.untracked or self.packet.direction != "original":
            return self
        return replace(self, untracked=(*self.untracked, here))

    def add(self, *hops: Hop) -> Flow:
        """The flow with more hops; what a hop assumed (data "assumes") makes it uncertain."""
        assumed = tuple(
            str(a)
            for hop in hops
            if isinstance(values := hop.data.get("assumes"), list)
            for a in values
        )
        if assumed:
            return replace(self, hops=self.hops + hops, uncertain=self.uncertain + assumed)
        return replace(self, hops=self.hops + hops)
