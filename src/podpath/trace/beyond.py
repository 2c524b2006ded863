"""The network beyond a node: what a trace assumes when it hands a packet to a router
that no loaded snapshot holds (a VPC's, a datacenter's) and another loaded node owns
the destination.

The assumption is a sentence on the branch (`Flow.uncertain`): the trace shows it as
said, per packet, and the doctor groups every path that rests on the same stretch of
network (one sender, one receiver, one interface) into one finding, whatever the
addresses (`parse`): a multi-node AWS VPC CNI lab gave 47-112 findings, one per pair of
addresses, that all said the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Beyond:
    """A stretch of network outside the snapshots: from one node to another's interface."""

    sender: str  # hostname of the node the packet leaves
    receiver: str  # hostname of the node assumed to receive it
    device: str  # the receiver's interface it arrives on


def assumption(beyond: Beyond, destination: str, source: str) -> str:
    """The sentence a branch carries for one packet."""
    return (
        f"the network beyond {beyond.sender} (not in the snapshots) delivers {destination} "
        f"to node {beyond.receiver} on {beyond.device}, the interface its route back to "
        f"{source} uses"
    )


_ASSUMPTION = re.compile(
    r"the network beyond (?P<sender>\S+) \(not in the snapshots\) delivers \S+ to node "
    r"(?P<receiver>\S+) on (?P<device>\S+), the interface its route back to \S+ uses"
)


def parse(text: str) -> Beyond | None:
    """The stretch of network an `assumption` sentence is about (None for other text)."""
    found = _ASSUMPTION.fullmatch(text)
    if found is None:
        return None
    return Beyond(found["sender"], found["receiver"], found["device"])
