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

    def add(self, *hops: Hop) -> Flow:
        """The flow with more hops."""
        return replace(self, hops=self.hops + hops)
