"""Lookups over one snapshot, built once and shared by the trace engine, CLI and TUI.

A `Snapshot` is plain data; questions like "which pod owns 10.244.0.5" or "what is the
host-side peer of this eth0" need indexes. They are built lazily (each on first use)
so opening a big snapshot costs nothing until a view needs it, and derived views of
the raw dumps (parsed rulesets, Services, conntrack entries) are parsed at most once.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING

from podpath.analysis.ns_tables import ns_tables
from podpath.analysis.sockets import containers_by_pid
from podpath.snapshot.model import (
    Container,
    IptablesDump,
    Link,
    NetNamespace,
    Pod,
    Process,
    Route,
    Snapshot,
)
from podpath.snapshot.packed import PackedSnapshot, addresses_by_netns, macs_by_netns

# A table object in `nft -j` output: {"table": {"family": "ip", "name": "kube-proxy", ...
_NFT_TABLE = re.compile(r'\{"table":\s*\{"family":\s*"(\w+)",\s*"name":\s*"((?:[^"\\]|\\.)*)"')


if TYPE_CHECKING:
    from podpath.analysis.detached_ports import DetachedPort
    from podpath.analysis.service_names import ServiceNames
    from podpath.conntrack import ConntrackEntry
    from podpath.netfilter.iptables_save import Ruleset
    from podpath.netfilter.kube_proxy import KubeProxyMode, Service
    from podpath.netfilter.nft import NftRuleset


class SnapshotIndex:
    """Cached lookups over one immutable snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    # --- namespaces and links -------------------------------------------------------

    @cached_property
    def netns_by_inode(self) -> Mapping[int, NetNamespace]:
        """Network namespaces by nsfs inode (a cached index's: each unpickled when asked for)."""
        if isinstance(self.snapshot, PackedSnapshot):
            return self.snapshot.netns_by_inode()
        return {ns.inode: ns for ns in self.snapshot.netns}

    @property
    def root_netns(self) -> NetNamespace | None:
        """The node's own network namespace, when it was read."""
        return self.netns_by_inode.get(self.snapshot.root_netns)

    def links_in(self, netns: int) -> Mapping[int, Link]:
        """The links of one namespace by ifindex (empty for an unknown namespace), indexed
        when first asked for (a trace reads a few of a node's hundreds)."""
        ns = self.netns_by_inode.get(netns)
        return ns_tables(ns).links if ns is not None else {}

    def link(self, netns: int, ifindex: int | None) -> Link | None:
        """The link with this index in this namespace, if known."""
        if ifindex is None:
            return None
        return self.links_in(netns).get(ifindex)

    def link_by_name(self, netns: int, name: str) -> Link | None:
        """The link with this name in this namespace, if known."""
        ns = self.netns_by_inode.get(netns)
        if ns is None:
            return None
        return next((link for link in ns.links if link.name == name), None)

    def peer(self, link: Link) -> Link | None:
        """The other end of a veth pair, when it was resolved and collected."""
        if link.peer is None:
            return None
        return self.links_in(link.peer.netns).get(link.peer.ifindex)

    def bridge_ports(self, bridge: Link) -> tuple[Link, ...]:
        """Links enslaved to this bridge, in ifindex order."""
        ns = self.netns_by_inode.get(bridge.netns)
        if ns is None:
            return ()
        return ns_tables(ns).ports.get(bridge.ifindex, ())

    def routes(self, netns: int, table: int | None = None) -> tuple[Route, ...]:
        """Routes of one namespace, optionally of one table."""
        ns = self.netns_by_inode.get(netns)
        if ns is None:
            return ()
        return tuple(r for r in ns.routes if table is None or r.table == table)

    @cached_property
    def local_addresses(self) -> dict[int, frozenset[str]]:
        """Addresses configured on each namespace's links (addrtype LOCAL), by netns inode."""
        if isinstance(self.snapshot, PackedSnapshot):
            return self.snapshot.local_addresses()  # kept beside its packed namespaces
        return addresses_by_netns(self.snapshot.netns)

    @cached_property
    def link_macs(self) -> dict[int, dict[int, str]]:
        """The MAC of each namespace's links by ifindex, by netns inode."""
        if isinstance(self.snapshot, PackedSnapshot):
            return self.snapshot.link_macs()  # kept beside its packed namespaces
        return macs_by_netns(self.snapshot.netns)

    def peer_mac(self, link: Link) -> str | None:
        """The MAC of the other end of a veth pair, when it was resolved and collected."""
        if link.peer is None:
            return None
        return self.link_macs.get(link.peer.netns, {}).get(link.peer.ifindex)

    @cached_property
    def shared_addresses(self) -> dict[str, tuple[int, ...]]:
        """Addresses two or more of the node's own namespaces hold, with their inodes: one
        address given out twice (host-local IPAM's state lost, two CNI configs). The
        node's own are its root and the namespaces with a veth into it; loopback and
        link-local addresses are every namespace's own, and a namespace whose veths lead
        elsewhere (a nested node's pods, another cluster's) is not this node's."""
        holders: dict[str, list[int]] = {}
        for inode, addresses in self.local_addresses.items():
            for address in addresses:
                if not _every_namespaces_own(address):
                    holders.setdefault(address, []).append(inode)
        shared = {a: h for a, h in holders.items() if len(h) > 1}
        if not shared:
            return {}  # the usual case: no namespace is unpickled to ask
        root = self.snapshot.root_netns
        attached = {
            inode
            for inode in {i for h in shared.values() for i in h}
            if inode == root
            or any(
                link.peer is not None and link.peer.netns == root
                for link in self.links_in(inode).values()
            )
        }
        kept = {a: tuple(sorted(i for i in h if i in attached)) for a, h in shared.items()}
        return {a: h for a, h in sorted(kept.items()) if len(h) > 1}

    @cached_property
    def failed_addresses(self) -> dict[str, tuple[tuple[int, str], ...]]:
        """IPv6 addresses that failed duplicate address detection (dadfailed), with the
        (netns inode, device) holding each: the kernel does not use them."""
        out: dict[str, list[tuple[int, str]]] = {}
        for ns in self.snapshot.netns:
            for link in ns.links:
                for a in link.addresses:
                    if "dadfailed" in a.flags:
                        out.setdefault(a.address, []).append((ns.inode, link.name))
        return {a: tuple(h) for a, h in sorted(out.items())}

    @cached_property
    def detached_ports(self) -> dict[str, DetachedPort]:
        """Addresses of pods whose host veth is no port of the bridge holding their
        network (podpath.analysis.detached_ports)."""
        from podpath.analysis.detached_ports import detached_ports

        return detached_ports(self)

    @cached_property
    def exempt_neighbours(self) -> dict[int, int]:
        """PERMANENT and extern_learn neighbour entries of every namespace, by family: the
        entries gc_thresh3 does not count since 5.0 (podpath.analysis.neighbour_tables)."""
        counts: dict[int, int] = {}
        for ns in self.snapshot.netns:
            for n in ns.neighbours:
                if "PERMANENT" in n.state or "extern_learn" in n.flags:
                    counts[n.family] = counts.get(n.family, 0) + 1
        return counts

    @cached_property
    def pods_without_eth0(self) -> dict[str, Pod]:
        """Addresses of pods whose network namespace has no eth0 left
        (podpath.analysis.gone_interfaces)."""
        from podpath.analysis.gone_interfaces import gone_interfaces

        return gone_interfaces(self)

    # --- pods and processes ---------------------------------------------------------

    @cached_property
    def pods_by_ip(self) -> dict[str, Pod]:
        """Pods by each of their IPs (hostNetwork pods excluded: their IP is the node's)."""
        return {ip: pod for pod in self.snapshot.pods if not pod.host_network for ip in pod.ips}

    @cached_property
    def pods_by_name(self) -> dict[str, Pod]:
        """Pods by "namespace/name", and by bare name where that name is unique.

        `podpath ls pods` prints namespace and name in two columns, and a pod found
        only by a fallback (a pause process, a cni- netns) has no namespace: any name
        it prints must be accepted back (trace --from/--to, the TUI's jump).
        """
        out = {f"{p.namespace}/{p.name}": p for p in self.snapshot.pods}
        counts = Counter(p.name for p in self.snapshot.pods if p.name)
        for p in self.snapshot.pods:
            if p.name and counts[p.name] == 1:
                out.setdefault(p.name, p)
        return out

    @cached_property
    def pods_by_netns(self) -> dict[int, Pod]:
        """Pods by the inode of their network namespace (hostNetwork pods excluded)."""
        return {
            p.netns_inode: p
            for p in self.snapshot.pods
            if p.netns_inode is not None and not p.host_network
        }

    @cached_property
    def processes_by_pid(self) -> dict[int, Process]:
        """Processes by PID."""
        return {p.pid: p for p in self.snapshot.processes}

    @cached_property
    def containers_by_pid(self) -> dict[int, tuple[Pod, Container]]:
        """Each PID of a pod's containers, with its pod and container (built once: a trace
        names a listener's container at every delivery, ~1,200 of them to a Service with
        250 endpoints)."""
        return containers_by_pid(self.snapshot.pods)

    def pod_interface(self, pod: Pod, name: str = "eth0") -> Link | None:
        """A pod's interface by name (eth0 by default)."""
        if pod.netns_inode is None:
            return None
        return self.link_by_name(pod.netns_inode, name)

    # --- derived views of the raw dumps ---------------------------------------------

    @cached_property
    def rulesets(self) -> tuple[tuple[IptablesDump, Ruleset], ...]:
        """Each iptables dump with its (lazily indexed) parsed ruleset."""
        from podpath.netfilter.iptables_save import parse_ruleset

        return tuple((dump, parse_ruleset(dump.text)) for dump in self.snapshot.iptables)

    def ruleset(self, family: str = "ipv4", backend: str | None = None) -> Ruleset | None:
        """The ruleset kube-proxy most likely programs for a family (nft before legacy)."""
        candidates = [(d, r) for d, r in self.rulesets if d.family == family]
        if backend is not None:
            candidates = [(d, r) for d, r in candidates if d.backend == backend]
        # Prefer the backend that actually holds kube-proxy chains, then nft.
        candidates.sort(key=lambda dr: (not _has_kube_chains(dr[1]), dr[0].backend != "nft"))
        return candidates[0][1] if candidates else None

    @cached_property
    def services(self) -> tuple[Service, ...]:
        """kube-proxy Services derived from the rules of every backend and nftables."""
        from podpath.netfilter.kube_proxy import services as iptables_services

        found: list[Service] = []
        for _dump, ruleset in self.rulesets:
            found.extend(iptables_services(ruleset))
        if self.nft_ruleset is not None:
            from podpath.netfilter.kube_proxy_nft import nft_services

            found.extend(nft_services(self.nft_ruleset))
        if self.snapshot.ipvs is not None:
            found.extend(self._ipvs_services())
        return tuple(found)

    def _ipvs_services(self) -> tuple[Service, ...]:
        """One Service per IPVS virtual service, named where pods' environments tell it."""
        from podpath.netfilter.ipset import parse_ipsets
        from podpath.netfilter.ipvs import parse_ipvs
        from podpath.netfilter.kube_proxy_ipvs import ipvs_services

        assert self.snapshot.ipvs is not None
        sets = parse_ipsets(self.snapshot.ipsets.text) if self.snapshot.ipsets else {}
        root = self.root_netns
        dummy = (
            [a.address for link in root.links if link.name == "kube-ipvs0" for a in link.addresses]
            if root
            else []
        )
        node = [
            a.address
            for link in (root.links if root else ())
            if link.name not in ("kube-ipvs0", "lo")
            for a in link.addresses
        ]
        found = ipvs_services(parse_ipvs(self.snapshot.ipvs.ip_vs), sets, dummy, node)
        if not self.snapshot.service_links:
            return found
        from podpath.analysis.service_names import named_services, served, service_names

        # IPVS names no Service: pods' Service-link variables name the ClusterIPs it serves.
        return named_services(found, service_names(self.snapshot.service_links, served(found)))

    @cached_property
    def service_names(self) -> ServiceNames:
        """What pods' Service-link environment names each served ClusterIP, stale ones apart."""
        from podpath.analysis.service_names import ServiceNames, served, service_names  # noqa: F811

        if not self.snapshot.service_links:
            return ServiceNames()
        return service_names(self.snapshot.service_links, served(self.services))

    @cached_property
    def nft_ruleset(self) -> NftRuleset | None:
        """The native nftables ruleset, parsed once for every view (None when absent)."""
        if self.snapshot.nft is None:
            return None
        from podpath.netfilter.nft import parse_nft

        # JSON from `nft -j`; hand-made snapshots may carry `nft list` text instead.
        return parse_nft(self.snapshot.nft.json_text)

    @cached_property
    def kube_proxy_mode(self) -> KubeProxyMode:
        """kube-proxy's mode and backend, with warnings such as mixed backends."""
        from podpath.netfilter.kube_proxy import detect_mode

        # One ruleset per backend, the IPv4 dump's: the same backend in both families is
        # not a mix. An IPv6-only cluster's kube-proxy writes ip6tables alone, so a
        # backend's IPv6 dump speaks when its IPv4 one has no kube-proxy chains.
        by_backend: dict[str, Ruleset] = {}
        for d, r in sorted(self.rulesets, key=lambda pair: pair[0].family != "ipv4"):
            label = f"iptables-{d.backend}"
            kept = by_backend.get(label)
            if kept is None or (not _has_kube_chains(kept) and _has_kube_chains(r)):
                by_backend[label] = r
        ipvs = self.snapshot.ipvs
        count = (
            sum(
                1
                for line in ipvs.ip_vs.splitlines()
                if line[:4] in ("TCP ", "UDP ", "SCTP", "FWM ")
            )
            if ipvs
            else 0
        )
        root = self.root_netns
        dummy = root is not None and any(link.name == "kube-ipvs0" for link in root.links)
        return detect_mode(by_backend, self.nft_tables, ipvs_services=count, kube_ipvs0=dummy)

    @cached_property
    def nft_tables(self) -> tuple[tuple[str, str], ...]:
        """(family, name) of each native nftables table, without parsing its rules."""
        if self.snapshot.nft is None:
            return ()
        return tuple(dict.fromkeys(_NFT_TABLE.findall(self.snapshot.nft.json_text)))

    @cached_property
    def conntrack(self) -> tuple[ConntrackEntry, ...]:
        """Parsed conntrack entries (empty when the table was not read)."""
        if self.snapshot.conntrack is None:
            return ()
        from podpath.conntrack import parse_conntrack

        return parse_conntrack(self.snapshot.conntrack.text)


def _has_kube_chains(ruleset: Ruleset) -> bool:
    # has_chain looks the name up; chains() would build every Chain header (36k at 10k
    # Services) to compare names.
    return any(ruleset.has_chain(table, "KUBE-SERVICES") for table in ruleset.tables)


def ip_in(address: str, cidr: str) -> bool:
    """True when an address lies inside a CIDR (False for unparsable input)."""
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def _every_namespaces_own(address: str) -> bool:
    """A loopback or link-local address: each namespace has its own."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return True
    return ip.is_loopback or ip.is_link_local
