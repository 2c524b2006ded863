"""Service names from pods' Service-link environment: VIP:port/proto -> namespace/name.

IPVS names no Service, but kubelet gave each container the Service-link variables of its
namespace's Services as they were when it was created (podpath.kubelet_env). Those are
facts of the past: a Service deleted, or recreated with another ClusterIP, after a pod
started leaves that pod with an address kube-proxy no longer serves. So a name is
attached only to an address kube-proxy serves now, and only when every pod that names
that address names the same Service; a stale variable and a conflict are reported, never
turned into a name.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from podpath.kubelet_env import ServiceLink, service_links
from podpath.snapshot.model import ServiceLinkEnv

if TYPE_CHECKING:
    from podpath.netfilter.kube_proxy import Service

SOURCE = "pods' service-link environment"

Address = tuple[str, int, str]  # (ClusterIP, port, protocol as TCP/UDP/SCTP)


@dataclass(frozen=True)
class NamedLink:
    """A Service port one or more containers' environment names, with who carries it."""

    link: ServiceLink
    carriers: tuple[str, ...]  # namespace/pod/container of each container holding it


@dataclass(frozen=True)
class ServiceNames:
    """What pods' environments say each served VIP:port is, and what they say wrongly."""

    by_address: dict[Address, NamedLink] = field(default_factory=dict)
    # Addresses several Services are named for: no name is attached to them.
    conflicts: dict[Address, tuple[NamedLink, ...]] = field(default_factory=dict)
    # Variables naming an address kube-proxy does not serve (deleted or recreated Services).
    stale: tuple[NamedLink, ...] = ()

    def name_of(self, ip: str | None, port: int | None, protocol: str) -> NamedLink | None:
        """The Service named for a served address, or None."""
        if ip is None or port is None:
            return None
        return self.by_address.get((ip, port, protocol.upper()))

    def ports_of(self, service: str) -> list[NamedLink]:
        """The served ports of `namespace/name`, as pods' environments name them."""
        return [n for n in self.by_address.values() if n.link.service == service]

    def notes(self) -> list[str]:
        """One sentence per conflict and per stale variable."""
        out = []
        for (ip, port, proto), named in sorted(self.conflicts.items()):
            who = " and ".join(f"{n.link.service} (in {n.carriers[0]})" for n in named)
            out.append(
                f"{ip}:{port}/{proto.lower()} is named {who} by pods' service-link "
                "environment: left unnamed, one of them is out of date"
            )
        for n in self.stale:
            out.append(
                f"{n.carriers[0]} was given {n.link.service} at "
                f"{n.link.ip}:{n.link.port}/{n.link.protocol.lower()}, which kube-proxy does "
                "not serve: the Service (or this port of it) was deleted or changed since the pod started"
            )
        return out


def held_variables(
    envs: Iterable[ServiceLinkEnv],
) -> list[tuple[ServiceLinkEnv, tuple[str, ...]]]:
    """Each record with the variables its container holds: a record written `same_as` an
    earlier one (the set is stored once) holds that one's."""
    envs = tuple(envs)
    first = {f"{e.namespace}/{e.pod}/{e.container}": e.variables for e in envs if not e.same_as}
    return [(e, first.get(e.same_as, ()) if e.same_as else e.variables) for e in envs]


def gather(envs: Iterable[ServiceLinkEnv]) -> list[NamedLink]:
    """Every Service port the containers' variables describe, with the containers carrying it."""
    carriers: dict[ServiceLink, list[str]] = {}
    # The containers of one namespace mostly hold the same variables: each set parsed once.
    parsed: dict[tuple[str, tuple[str, ...]], tuple[ServiceLink, ...]] = {}
    for env, variables in held_variables(envs):
        key = (env.namespace, variables)
        if key not in parsed:
            parsed[key] = service_links(env.namespace, key[1])
        for link in parsed[key]:
            carriers.setdefault(link, []).append(f"{env.namespace}/{env.pod}/{env.container}")
    return [NamedLink(link, tuple(sorted(who))) for link, who in carriers.items()]


def service_names(envs: Iterable[ServiceLinkEnv], served: Collection[Address]) -> ServiceNames:
    """Name each served address from the variables; conflicts and stale ones told apart."""
    by_address: dict[Address, list[NamedLink]] = {}
    stale: list[NamedLink] = []
    for named in gather(envs):
        address = (named.link.ip, named.link.port, named.link.protocol)
        if address in served:
            by_address.setdefault(address, []).append(named)
        else:
            stale.append(named)
    names: dict[Address, NamedLink] = {}
    conflicts: dict[Address, tuple[NamedLink, ...]] = {}
    for address, found in by_address.items():
        services = {n.link.service for n in found}
        if len(services) > 1:
            conflicts[address] = tuple(sorted(found, key=lambda n: n.link.service))
            continue
        # One Service, possibly with port names told differently by different pods.
        names[address] = _merged(found)
    stale.sort(key=lambda n: (n.link.service, n.link.ip, n.link.port))
    return ServiceNames(names, conflicts, tuple(stale))


def _merged(found: list[NamedLink]) -> NamedLink:
    """One Service's port as several containers tell it (port names may have changed)."""
    if len(found) == 1:
        return found[0]
    names = tuple(sorted({p for n in found for p in n.link.port_names}))
    first = found[0].link
    link = ServiceLink(first.namespace, first.name, first.ip, first.port, first.protocol, names)
    return NamedLink(link, tuple(sorted({c for n in found for c in n.carriers})))


def served(services: Iterable[Service]) -> set[Address]:
    """The ClusterIP addresses kube-proxy serves, as (ip, port, PROTO)."""
    return {
        (s.cluster_ip, s.port, s.protocol.upper())
        for s in services
        if s.cluster_ip is not None and s.port is not None
    }


def named_services(services: Iterable[Service], names: ServiceNames) -> tuple[Service, ...]:
    """IPVS Services with the name pods' environments give their ClusterIP (others as they are)."""
    out = []
    for s in services:
        named = names.name_of(s.cluster_ip, s.port, s.protocol) if not s.name else None
        if named is None:
            out.append(s)
            continue
        link = named.link
        where = f"{SOURCE}: {link.service} in {named.carriers[0]}" + (
            f" and {len(named.carriers) - 1} more" if len(named.carriers) > 1 else ""
        )
        out.append(
            replace(
                s,
                namespace=link.namespace,
                name=link.name,
                port_name=link.port_name,
                evidence=(*s.evidence, where),
            )
        )
    return tuple(out)
