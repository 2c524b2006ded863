"""A ClusterIP a packet leaves the node for untranslated: what the trace should say of it.

A ClusterIP is no host's address. In iptables mode kube-proxy's nat KUBE-SERVICES DNATs
it for the Service's ports only; anything else sent to it -- a ping, another port -- is
routed as to any address, out by the default route, and nothing answers. The trace's
verdict (leaves the node) is the kernel's; without a word on the address a user reads
it as a routing fault. nftables mode rejects such a packet by its own rule
(cluster-ips-check) and IPVS mode owns the addresses (kube-ipvs0): their traces say so.

The addresses come from KUBE-SERVICES' dispatch index (podpath.netfilter.iptables_save.
Dispatch), which a trace through the nat table has built already; only the asked
address's rules are parsed, for the names in kube-proxy's comments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from podpath.netfilter.iptables_save import Ruleset, normalize_ip
from podpath.trace.model import Packet

CHAIN = ("nat", "KUBE-SERVICES")
# kube-proxy's comment on a ClusterIP's rule: "default/web:http cluster IP".
_CLUSTER_IP_COMMENT = re.compile(r"^(\S+) cluster IP$")


@dataclass(frozen=True)
class ServedPort:
    """One (protocol, port) KUBE-SERVICES sends on for an address, by rule position."""

    proto: str | None
    port: int | None
    positions: tuple[int, ...]


class ClusterIps:
    """The addresses one ruleset's KUBE-SERVICES matches, with the ports it serves them on."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self._by_address: dict[str, list[ServedPort]] | None = None

    def _served(self, address: str) -> list[ServedPort]:
        if self._by_address is None:
            by_address: dict[str, list[ServedPort]] = {}
            if self.ruleset.has_chain(*CHAIN):
                dispatch = self.ruleset.dispatch(*CHAIN)
                for (ip, proto, port), positions in dispatch.by_key.items():
                    by_address.setdefault(ip, []).append(ServedPort(proto, port, positions))
            self._by_address = by_address
        return self._by_address.get(address, [])

    def untranslated(self, packet: Packet) -> str:
        """Why `packet`, leaving the node for a ClusterIP of these rules that none of them
        translated, goes unanswered; "" for any other address, or a port the ClusterIP
        serves (then something else kept the packet from kube-proxy's rules)."""
        served = self._served(normalize_ip(packet.dst))
        if not served or any(_serves(s, packet) for s in served):
            return ""
        names = {
            found.group(1)
            for s in served
            for position in s.positions
            if (rule := self.ruleset.rule(*CHAIN, position)) is not None
            and (found := _CLUSTER_IP_COMMENT.match(rule.comment or ""))
        }
        if not names:
            return ""  # an external or load-balancer IP: a real host may hold it
        ports = sorted({f"{s.port}/{s.proto.upper()}" for s in served if s.proto and s.port})
        what = f"{packet.proto}/{packet.dport}" if packet.dport is not None else packet.proto
        return (
            f"{packet.dst} is the ClusterIP of {', '.join(sorted(names))}, which kube-proxy "
            f"translates for {', '.join(ports) or 'its ports'} only: nothing answers {what} "
            "for the address itself"
        )


def _serves(served: ServedPort, packet: Packet) -> bool:
    """Whether a KUBE-SERVICES key takes this packet (an address-only key takes any)."""
    if served.proto is None:
        return True
    return served.proto == packet.proto and served.port in (None, packet.dport)
