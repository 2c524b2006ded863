"""Session affinity pins: which client the kernel currently sends to which endpoint.

kube-proxy's ClientIP affinity keeps its state in the kernel, per endpoint: in iptables
mode an xt_recent list named after the endpoint's KUBE-SEP chain, in nftables mode a
timed set `affinity-HASH-...__IP/PORT` next to the endpoint's chain, in IPVS mode a
persistence template in /proc/net/ip_vs_conn. A snapshot holds all three; this module
reads each Service's pins out of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from podpath.netfilter.ipvs import IpvsConnection
from podpath.netfilter.kube_proxy import Service
from podpath.netfilter.nft import NftRuleset
from podpath.snapshot.model import RecentList


@dataclass(frozen=True)
class Pin:
    """A client pinned to one endpoint of a Service."""

    client: str
    endpoint: str  # ip:port
    age: float | None = None  # seconds since its last packet (xt_recent)
    expires: int | None = None  # seconds left (nft sets, IPVS templates)
    source: str = ""  # where the kernel keeps it


def service_pins(
    service: Service,
    recent: Iterable[RecentList] = (),
    nft: NftRuleset | None = None,
    ipvs_connections: Iterable[IpvsConnection] = (),
) -> tuple[Pin, ...]:
    """The Service's current pins (empty without ClientIP affinity)."""
    if service.affinity_timeout is None:
        return ()
    out: list[Pin] = []
    by_chain = {e.sep_chain: _hostport(e.ip, e.port) for e in service.endpoints}
    if service.backend == "iptables":
        for lst in recent:
            endpoint = by_chain.get(lst.name)
            if endpoint is None:
                continue
            for entry in lst.entries:
                if entry.age is None or entry.age <= service.affinity_timeout:
                    out.append(
                        Pin(entry.address, endpoint, entry.age, None, f"xt_recent {lst.name}")
                    )
    elif service.backend == "nftables" and nft is not None:
        for chain, endpoint in by_chain.items():
            name = "affinity-" + chain.removeprefix("endpoint-")
            for table in ("kube-proxy",):
                for family in ("ip", "ip6"):
                    found = nft.get_set(family, table, name)
                    for el in found.elements if found else ():
                        out.append(Pin(el.key[0], endpoint, None, el.expires, f"set {name}"))
    elif service.backend == "ipvs" and service.cluster_ip is not None:
        for conn in ipvs_connections:
            if conn.template and conn.virtual == service.cluster_ip:
                endpoint = _hostport(conn.server, conn.server_port)
                out.append(Pin(conn.client, endpoint, None, conn.expires, "ip_vs_conn template"))
    return tuple(out)


def _hostport(ip: str, port: int | None) -> str:
    """An endpoint as kube-proxy writes it: 10.0.0.1:80, [fd00::1]:80."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
