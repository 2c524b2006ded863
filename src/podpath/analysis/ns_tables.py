"""Lookup tables of one network namespace, built once per namespace object.

A trace asks the same namespace for links, routes, bridge FDB entries, ports and
sysctls at every step, and each answer walked the whole namespace: every route, link, address and
FDB entry. In a root namespace with a veth per pod that is quadratic in the pods: a
trace to a Service with 250 endpoints made ~1,500 route lookups there, each over ~500
routes (docs/performance.md). Snapshots are immutable, so the tables are kept for as
long as their namespace object lives, and dropped with it (a TUI refresh replaces it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

from podpath.by_identity import ByIdentity
from podpath.snapshot.model import FdbEntry, Link, NetConf, NetNamespace, Route

# A table's routes of one IP version: per prefix length, longest first, with its mask,
# the routes by their network's address (an int), in the namespace's route order.
Prefixes = tuple[tuple[int, int, dict[int, list[Route]]], ...]


@dataclass(frozen=True)
class NsTables:
    """What lookups in one namespace read, indexed once."""

    links: dict[int, Link]  # by ifindex
    vrf: bool  # a VRF device exists (l3mdev rules apply)
    addresses: frozenset[str]  # every address of every link
    routes: dict[tuple[int, int], Prefixes]  # (table, IP version) -> prefixes
    fdb: dict[str, tuple[FdbEntry, ...]]  # by lower-case MAC, in dump order
    netconf: dict[tuple[int, int], NetConf]  # (family, ifindex) -> its first entry
    ports: dict[int, tuple[Link, ...]]  # a master's ifindex -> its links, in link order


@lru_cache(maxsize=65536)
def network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A parsed network (cached: the same prefixes are tested on every lookup)."""
    if cidr == "default":
        cidr = "0.0.0.0/0"
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None


# Each namespace object's tables, dropped with it.
_TABLES: ByIdentity[NetNamespace, NsTables] = ByIdentity()


def ns_tables(ns: NetNamespace) -> NsTables:
    """The namespace's tables, built on its first lookup."""
    found = _TABLES.get(ns)
    if found is None:
        found = _build(ns)
        _TABLES.put(ns, found)
    return found


def _build(ns: NetNamespace) -> NsTables:
    fdb: dict[str, list[FdbEntry]] = {}
    for entry in ns.fdb:
        fdb.setdefault(entry.mac.lower(), []).append(entry)
    netconf: dict[tuple[int, int], NetConf] = {}
    for conf in ns.netconf:
        netconf.setdefault((conf.family, conf.ifindex), conf)
    ports: dict[int, list[Link]] = {}
    for link in ns.links:
        if link.master is not None:
            ports.setdefault(link.master, []).append(link)
    return NsTables(
        links={link.ifindex: link for link in ns.links},
        vrf=any(link.kind == "vrf" for link in ns.links),
        addresses=frozenset(a.address for link in ns.links for a in link.addresses),
        routes=_routes(ns),
        fdb={mac: tuple(entries) for mac, entries in fdb.items()},
        netconf=netconf,
        ports={master: tuple(links) for master, links in ports.items()},
    )


def _routes(ns: NetNamespace) -> dict[tuple[int, int], Prefixes]:
    by_length: dict[tuple[int, int], dict[int, dict[int, list[Route]]]] = {}
    for route in ns.routes:
        net = network(route.dst)
        if net is None:
            continue
        lengths = by_length.setdefault((route.table, net.version), {})
        by_address = lengths.setdefault(net.prefixlen, {})
        by_address.setdefault(int(net.network_address), []).append(route)
    return {
        key: tuple((n, _mask(key[1], n), lengths[n]) for n in sorted(lengths, reverse=True))
        for key, lengths in by_length.items()
    }


def _mask(version: int, prefixlen: int) -> int:
    bits = 32 if version == 4 else 128
    return ((1 << prefixlen) - 1) << (bits - prefixlen)
