"""What a conntrack entry says about NAT: DNAT to an endpoint, SNAT, or a stale DNAT.

An entry is stale when its original destination is a Service's ClusterIP:port but the
address it was DNATed to is no longer one of that Service's endpoints: packets of the
connection keep going to a pod that kube-proxy no longer chooses (until the entry
times out or is deleted, as kube-proxy does for UDP).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from podpath.conntrack import ConntrackEntry, entry_lines, parse_conntrack_line
from podpath.netfilter.kube_proxy import Service


@dataclass(frozen=True)
class ServiceAddresses:
    """The (protocol, address, port) of every Service VIP and of every endpoint."""

    vips: frozenset[tuple[str, str, int | None]]
    endpoints: frozenset[tuple[str, str, int | None]]


def service_addresses(services: Iterable[Service]) -> ServiceAddresses:
    """Index the Services' VIPs and endpoints once, for many entries."""
    vips: set[tuple[str, str, int | None]] = set()
    endpoints: set[tuple[str, str, int | None]] = set()
    for svc in services:
        proto = svc.protocol.lower()
        if svc.cluster_ip:
            vips.add((proto, svc.cluster_ip, svc.port))
        endpoints.update((proto, ep.ip, ep.port) for ep in svc.endpoints)
    return ServiceAddresses(frozenset(vips), frozenset(endpoints))


@dataclass(frozen=True)
class NatNote:
    """What an entry's tuples show: kind is "stale", "dnat", "snat" or "" (no NAT)."""

    kind: str
    text: str


def nat_note(entry: ConntrackEntry, addresses: ServiceAddresses) -> NatNote:
    """The NAT an entry shows, a stale Service DNAT flagged first."""
    o, r = entry.original, entry.reply
    if entry.is_dnat:
        if is_stale(entry, addresses):
            return NatNote("stale", "stale: endpoint no longer in the Service")
        return NatNote("dnat", f"DNAT {o.dst} → {r.src}")
    if entry.is_snat:
        return NatNote("snat", f"SNAT {o.src} → {r.dst}")
    return NatNote("", "")


def is_stale(entry: ConntrackEntry, addresses: ServiceAddresses) -> bool:
    """True for a DNAT from a Service VIP to an address that is not one of its endpoints."""
    o, r = entry.original, entry.reply
    proto = entry.protocol
    return (
        entry.is_dnat
        and (proto, o.dst, o.dport) in addresses.vips
        and (proto, r.src, r.sport) not in addresses.endpoints
    )


def stale_entries(
    entries: Iterable[ConntrackEntry], services: Iterable[Service]
) -> list[ConntrackEntry]:
    """The entries that DNAT a Service VIP to an address no longer among its endpoints."""
    addresses = service_addresses(services)
    return [e for e in entries if is_stale(e, addresses)]


# The five fields `is_stale` reads, where the common line shape (`_COMMON` in
# podpath.conntrack) holds them: protocol, the original destination and port, the reply's
# source and port. Anything else about the line is the full parser's business.
_STALE_FIELDS = re.compile(
    r"(?:ipv[46]\s+\d+\s+)?([a-z]+)\s+\d+\s+\d+\s+(?:[A-Z_]+\s+)?"
    r"src=\S+\s+dst=(\S+)\s+sport=\d+\s+dport=(\d+)"
    r"(?:\s+packets=\d+\s+bytes=\d+)?(?:\s+\[UNREPLIED\])?"
    r"\s+src=(\S+)\s+dst=\S+\s+sport=(\d+)\s"
)


def stale_in_listing(text: str, services: Iterable[Service]) -> list[ConntrackEntry]:
    """`stale_entries` of a conntrack listing's text, parsing only lines that may be stale.

    A line of the common shape whose five fields show it cannot be stale (not to a
    Service VIP, or answered by one of its endpoints) is skipped unparsed; every other
    line is parsed and tested as `stale_entries` does. The doctor asks this of every
    entry: 50k of them cost 0.24 s to parse, ~0.1 s here (docs/performance.md).
    """
    addresses = service_addresses(services)
    vips, endpoints = addresses.vips, addresses.endpoints
    match = _STALE_FIELDS.match
    maybe: list[str] = []
    for line in entry_lines(text):
        found = match(line)
        if found is not None:
            proto, dst, dport, src, sport = found.groups()
            if (proto, dst, int(dport)) not in vips or (proto, src, int(sport)) in endpoints:
                continue
        maybe.append(line)
    entries = (parse_conntrack_line(line) for line in maybe)
    return [e for e in entries if e is not None and is_stale(e, addresses)]


def involves(entry: ConntrackEntry, ips: frozenset[str]) -> bool:
    """True when the original or reply tuple has one of `ips` as source or destination."""
    o, r = entry.original, entry.reply
    return o.src in ips or o.dst in ips or r.src in ips or r.dst in ips
