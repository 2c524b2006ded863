"""What to trace: parsing `--from`/`--to` and resolving them against node snapshots.

A source is a pod (`NAMESPACE/NAME`), a pod IP, a node (`node`, its hostname or one
of its addresses), or any network namespace: `netns:NAME` (a bind mount such as
/run/netns/NAME), its path, its inode, or an address that only it holds (a pod the
runtime does not know, a namespace made by hand). A destination is an address, a
pod, a network namespace, a Service `NAMESPACE/NAME[:PORT]` (found in kube-proxy's
rules), or a node address with a NodePort. Ports are numbers; a Service port may also
be given by its name. The address family follows the destination: a dual-stack pod
sends to an IPv6 destination from its IPv6 address; `family` picks one for names.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from podpath.analysis.index import SnapshotIndex
from podpath.trace.model import JsonValue

if TYPE_CHECKING:
    from podpath.trace.nft import NftIndex

PROTOCOLS = ("tcp", "udp", "icmp")


class ProbeError(ValueError):
    """A probe that cannot be resolved, with a one-sentence reason."""


@dataclass(frozen=True)
class Probe:
    """A packet to trace, as the user asked for it."""

    source: str
    destination: str
    proto: str = "tcp"
    sport: int | None = None
    family: int | None = None  # 4 or 6: which address a pod, node or netns name stands for

    def as_json(self) -> dict[str, JsonValue]:
        """The probe as the JSON contract's `probe` object."""
        return {
            "from": self.source,
            "to": self.destination,
            "proto": self.proto,
            "sport": self.sport,
            "family": self.family,
        }


@dataclass(frozen=True)
class Source:
    """A resolved source: where the packet is born."""

    node: int  # index into the snapshots
    netns: int
    address: str | None  # None: the route lookup picks it (node sources)
    label: str


@dataclass(frozen=True)
class Destination:
    """A resolved destination address and port."""

    address: str
    port: int | None
    label: str


def hostport(address: str | None, port: int | None) -> str:
    """`10.0.0.1:80`, `[fd00::5]:80`, or the bare address when there is no port."""
    if port is None:
        return str(address)
    return f"[{address}]:{port}" if address and ":" in address else f"{address}:{port}"


def split_port(spec: str) -> tuple[str, str | None]:
    """Split `HOST:PORT`, `[V6]:PORT`, `NS/NAME:PORT` or `netns:NAME:PORT`; a bare IPv6 address has no port."""
    if spec.startswith("netns:"):
        host, sep, port = spec.rpartition(":")
        return (host, port) if sep and host != "netns" and port.isdigit() else (spec, None)
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    if spec.count(":") > 1:  # a bare IPv6 address
        return spec, None
    host, sep, port = spec.partition(":")
    return (host, port) if sep else (spec, None)


def is_address(text: str) -> bool:
    """True when the text is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_port(text: str | None) -> int | None:
    """A port number, or raise ProbeError."""
    if text is None or text == "":
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ProbeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def family_of(address: str) -> int:
    """4 or 6."""
    return 6 if ":" in address else 4


def _of_family(addresses: Sequence[str], family: int | None) -> str | None:
    for a in addresses:
        if family is None or family_of(a) == family:
            return a
    return None


def node_address(index: SnapshotIndex, family: int = 4) -> str | None:
    """The node's main address: the preferred source of its default route, else the
    address of that route's device, else its first global address."""
    root = index.root_netns
    if root is None:
        return None
    default = "0.0.0.0/0" if family == 4 else "::/0"
    defaults = [r for r in root.routes if r.table == 254 and r.dst in (default, "default")]
    for route in defaults:
        if route.prefsrc:
            return route.prefsrc
    for route in defaults:
        # The kernel's source for a default route without one: its device's address
        # (a veth or bridge too: kind, VMs and labs reach the world through one).
        dev = index.link(root.inode, route.dev) if route.dev is not None else None
        for address in dev.addresses if dev is not None else ():
            if address.family == family and address.scope == "global":
                return address.address
    for link in root.links:
        if link.kind in ("bridge", "vxlan", "veth") or link.name == "lo":
            continue
        for address in link.addresses:
            if address.family == family and address.scope == "global":
                return address.address
    return None


def netns_addresses(index: SnapshotIndex, inode: int) -> list[str]:
    """Global addresses of a namespace's interfaces (lo excluded), IPv4 first."""
    ns = index.netns_by_inode.get(inode)
    if ns is None:
        return []
    found = [
        a.address
        for link in ns.links
        if link.name != "lo"
        for a in link.addresses
        if a.scope == "global" and a.usable
    ]
    return sorted(found, key=family_of)


def _unusable(index: SnapshotIndex, inode: int) -> frozenset[str]:
    """A namespace's addresses the kernel does not use (tentative, dadfailed)."""
    ns = index.netns_by_inode.get(inode)
    if ns is None:
        return frozenset()
    return frozenset(a.address for link in ns.links for a in link.addresses if not a.usable)


def find_netns(index: SnapshotIndex, spec: str) -> int | None:
    """A network namespace by `netns:NAME|PATH|INODE`, a path, or an inode number."""
    key = spec[len("netns:") :] if spec.startswith("netns:") else spec
    if not spec.startswith(("netns:", "/")) and not spec.isdigit():
        return None
    if key.isdigit() and int(key) in index.netns_by_inode:
        return int(key)
    for ns in index.snapshot.netns:
        for path in ns.paths:
            if key in (path, path.rsplit("/", 1)[-1]):
                return ns.inode
    return None


def _netns_holding(index: SnapshotIndex, address: str) -> int | None:
    """The one non-root namespace whose interfaces hold this address."""
    root = index.snapshot.root_netns
    holders = [
        ino for ino, addrs in index.local_addresses.items() if address in addrs and ino != root
    ]
    return holders[0] if len(holders) == 1 else None


def _netns_label(index: SnapshotIndex, inode: int) -> str:
    ns = index.netns_by_inode.get(inode)
    return f"netns {ns.paths[0]}" if ns is not None and ns.paths else f"netns {inode}"


def _pick(addresses: Sequence[str], family: int | None, what: str) -> str:
    found = _of_family(addresses, family)
    if found is None:
        fam = f"IPv{family} address" if family else "address"
        raise ProbeError(f"{what} has no {fam}")
    return found


def resolve_source(
    indexes: Sequence[SnapshotIndex], spec: str, family: int | None = None
) -> Source:
    """Find where a source lives: which node, which network namespace, which address."""
    for i, index in enumerate(indexes):
        pod = index.pods_by_name.get(spec)
        if pod is None and is_address(spec):
            pod = index.pods_by_ip.get(spec)
        if pod is not None:
            label = f"pod {pod.namespace}/{pod.name}"
            if pod.host_network:
                return Source(i, index.snapshot.root_netns, None, f"pod {spec} (hostNetwork)")
            if pod.netns_inode is None:
                raise ProbeError(f"pod {spec} has no known network namespace")
            if is_address(spec):
                if family is not None and family_of(spec) != family:
                    raise ProbeError(f"{spec} is not an IPv{family} address")
                return Source(i, pod.netns_inode, spec, label)
            # A pod known only by its pause process has no IPs of its own: its
            # namespace's addresses stand in, and without any the kernel picks the source.
            held = tuple(netns_addresses(index, pod.netns_inode))
            # An IP the pod was given but its namespace cannot use (failed duplicate
            # address detection) is no source: the kernel picks another.
            unusable = _unusable(index, pod.netns_inode)
            addresses = tuple(ip for ip in pod.ips if ip not in unusable) or held
            if not addresses and family is None:
                return Source(i, pod.netns_inode, None, label)
            if family is not None and _of_family(addresses, family) is None:
                if _of_family(held, family) is not None or _of_family(tuple(unusable), family):
                    # No pod IP of the family, but the pod's namespace holds an address of
                    # it that Kubernetes never calls the pod's (the AWS VPC CNI's IPv6 pods:
                    # egress-cni's 169.254.172.0/22 on v4if0), or its only one of the family
                    # failed duplicate address detection: the kernel picks the source.
                    return Source(i, pod.netns_inode, None, label)
            return Source(i, pod.netns_inode, _pick(addresses, family, label), label)
    for i, index in enumerate(indexes):
        facts = index.snapshot.node
        if spec in ("node", facts.hostname) and (spec != "node" or i == 0):
            return Source(i, index.snapshot.root_netns, None, f"node {facts.hostname}")
        if is_address(spec) and spec in index.local_addresses.get(index.snapshot.root_netns, ()):
            return Source(i, index.snapshot.root_netns, spec, f"node {facts.hostname}")
    for i, index in enumerate(indexes):
        inode = find_netns(index, spec)
        if inode is None and is_address(spec):
            inode = _netns_holding(index, spec)
            if inode is not None:
                return Source(i, inode, spec, _netns_label(index, inode))
        if inode is not None:
            label = _netns_label(index, inode)
            if inode == index.snapshot.root_netns:
                return Source(i, inode, None, f"node {index.snapshot.node.hostname}")
            return Source(i, inode, _pick(netns_addresses(index, inode), family, label), label)
    raise ProbeError(f"source {spec!r} is neither a known pod, pod IP, node, nor network namespace")


def resolve_destination(
    indexes: Sequence[SnapshotIndex], spec: str, proto: str, family: int | None = None
) -> Destination:
    """Turn a destination into an address and port (Services through kube-proxy's rules)."""
    host, port_text = split_port(spec)
    if proto == "icmp" and port_text is not None:
        raise ProbeError(f"ICMP has no ports: give {host} without ':{port_text}'")
    if is_address(host):
        if family is not None and family_of(host) != family:
            raise ProbeError(f"{host} is not an IPv{family} address")
        return Destination(host, parse_port(port_text), host)
    for index in indexes:
        pod = index.pods_by_name.get(host)
        if pod is not None and pod.ips:
            label = f"pod {host}"
            return Destination(_pick(pod.ips, family, label), parse_port(port_text), label)
        if host == index.snapshot.node.hostname:
            address = node_address(index, family or 4)
            if address is not None:
                return Destination(address, parse_port(port_text), f"node {host}")
    for index in indexes:
        inode = find_netns(index, host)
        if inode is not None:
            label = _netns_label(index, inode)
            address = _pick(netns_addresses(index, inode), family, label)
            return Destination(address, parse_port(port_text), label)
    if "/" in host:
        if port_text and port_text.isdigit():
            parse_port(port_text)  # a number that is no port is the port's fault, not the Service's
        for index in indexes:
            found = find_service(index, host, port_text, proto, family)
            if found is not None and proto == "icmp":  # a ping to the ClusterIP: no port
                return Destination(found.address, None, f"service {host}")
            if found is not None:
                return found
        ports = sorted(
            {(port, pname) for index in indexes for _, port, pname, _ in service_ports(index, host)}
        )
        vips = {vip for index in indexes for vip, _, _, _ in service_ports(index, host)}
        if family is not None and vips and all(family_of(vip) != family for vip in vips):
            raise ProbeError(f"Service {host} has no IPv{family} ClusterIP in kube-proxy's rules")
        if ports:
            listed = ", ".join(f"{port} ({pname})" if pname else str(port) for port, pname in ports)
            raise ProbeError(
                f"Service {host} has no {proto} port {port_text!r} (its ports: {listed})"
            )
        stale = sorted(
            f"{n.link.ip}:{n.link.port}/{n.link.protocol.lower()}"
            for index in indexes
            if index.snapshot.service_links
            for n in index.service_names.stale
            if n.link.service == host
        )
        if stale and any(index.kube_proxy_mode.mode == "ipvs" for index in indexes):
            raise ProbeError(
                f"pods' service-link environment gives {host} only at {', '.join(stale)}, "
                "which IPVS does not serve (the Service was deleted or changed since those "
                "pods started): trace its current ClusterIP:port (podpath ls services lists them)"
            )
        if any(index.kube_proxy_mode.mode == "ipvs" for index in indexes):
            raise ProbeError(
                f"{host!r} is not a known pod, and no pod's service-link environment on this "
                "node names it (kube-proxy runs in IPVS mode, whose rules name no Service; "
                "kubelet gives a pod only the Services of its namespace that existed when it "
                "started): trace its ClusterIP:port instead (podpath ls services lists them)"
            )
        raise ProbeError(f"{host!r} is neither a known pod nor a Service in kube-proxy's rules")
    raise ProbeError(f"destination {spec!r} is not an address, pod, node, netns or Service")


# kube-proxy's KUBE-SERVICES rules: -A KUBE-SERVICES -m comment --comment "NS/NAME:PORT cluster IP"
# ... -d VIP[/32] ... --dport N -j KUBE-SVC-... (and, in the filter table, "... has no
# endpoints" ... -j REJECT for a Service without endpoints).
_SERVICE_RULE = re.compile(
    r'--comment "?(?P<name>[^ ":]+/[^ ":]+)(?::(?P<pname>[^ "]*))? (?:cluster IP|has no endpoints)"'
)
_PROTO = re.compile(r" -p (?P<proto>\w+)")
_DEST = re.compile(r" -d (?P<vip>[0-9a-fA-F.:]+)(?:/\d+)? ")
_DPORT = re.compile(r" --dport (?P<port>\d+)")
# kube-proxy's nftables mode: a service-ips element "VIP . tcp . 80 : goto service-X-NS/NAME/tcp/PNAME".
_NFT_TARGET = re.compile(r"^goto service-\w+-(?P<name>[^/\s]+/[^/\s]+)/\w+/(?P<pname>\S*)$")


def _nft_services(index: SnapshotIndex, name: str) -> list[tuple[str, int, str, str]]:
    """(VIP, port, port name, protocol) of each service-ips element of Service `name`."""
    from podpath.trace.nft import nft_index

    nft = nft_index(index)
    if nft is None:
        return []
    if nft.service_names is None:
        # Built on the first Service trace of an index, and kept with it.
        nft.service_names = _kube_proxy_service_ips(nft)
    return nft.service_names.get(name, [])


def _kube_proxy_service_ips(nft: NftIndex) -> dict[str, list[tuple[str, int, str, str]]]:
    by_name: dict[str, list[tuple[str, int, str, str]]] = {}
    for _fam, table, set_name in nft.sets:
        if table != "kube-proxy" or set_name not in ("service-ips", "no-endpoint-services"):
            continue
        s = nft.sets[(_fam, table, set_name)]
        cluster = nft.sets.get((_fam, table, "cluster-ips"))
        cluster_ips = {e.key[0] for e in cluster.elements} if cluster else set()
        for el in s.elements:
            if len(el.key) != 3 or not el.key[2].isdigit():
                continue
            m = _NFT_TARGET.match(el.value or "")
            if m:
                name, pname = m["name"], m["pname"]
            elif set_name == "no-endpoint-services" and el.comment and el.key[0] in cluster_ips:
                # A Service without endpoints: its element's comment names it, ns/name:port.
                name, _, pname = el.comment.partition(":")
            else:
                continue
            by_name.setdefault(name, []).append((el.key[0], int(el.key[2]), pname, el.key[1]))
    return by_name


def _lines_with(text: str, needle: str) -> list[str]:
    """The lines of text that contain needle (str.find: a 16 MB dump is not split into lines)."""
    out: list[str] = []
    pos = text.find(needle)
    while pos >= 0:
        start = text.rfind("\n", 0, pos) + 1
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        out.append(text[start:end])
        pos = text.find(needle, end)
    return out


def find_service(
    index: SnapshotIndex, name: str, port_text: str | None, proto: str, family: int | None = None
) -> Destination | None:
    """A Service's ClusterIP and port from kube-proxy's iptables or nftables rules."""
    for vip, port, pname, cproto in service_ports(index, name):
        if cproto != proto and proto != "icmp":
            continue
        if family is not None and family_of(vip) != family:
            continue
        if port_text is None or port_text in (str(port), pname):
            return Destination(vip, port, f"service {name}:{pname or port}")
    return None


def service_ports(index: SnapshotIndex, name: str) -> list[tuple[str, int, str, str]]:
    """(VIP, port, port name, protocol) of each port of Service `name` in kube-proxy's rules."""
    candidates: list[tuple[str, int, str, str]] = []
    for dump in index.snapshot.iptables:
        for raw in _lines_with(dump.text, name):
            # `iptables-save -c` puts [packets:bytes] before each rule.
            line = raw.split("] ", 1)[1] if raw.startswith("[") and "] " in raw else raw
            if not line.startswith("-A KUBE-SERVICES "):
                continue
            m = _SERVICE_RULE.search(line)
            d, p, pr = _DEST.search(line), _DPORT.search(line), _PROTO.search(line)
            if m and d and p and pr and m["name"] == name:
                candidates.append((d["vip"], int(p["port"]), m["pname"] or "", pr["proto"]))
    if index.snapshot.nft is not None:
        candidates.extend(_nft_services(index, name))
    if index.snapshot.ipvs is not None and index.snapshot.service_links:
        candidates.extend(_ipvs_named_ports(index, name))
    return candidates


def _ipvs_named_ports(index: SnapshotIndex, name: str) -> list[tuple[str, int, str, str]]:
    """(VIP, port, port name, protocol) of IPVS virtual services pods' environment names `name`."""
    out = []
    for named in index.service_names.ports_of(name):
        link = named.link
        # Port names kubelet's variables cannot tell apart (one number, two protocols)
        # are each offered: the number, which they share, is what the trace needs.
        for pname in link.port_names or ("",):
            out.append((link.ip, link.port, pname, link.protocol.lower()))
    return out
