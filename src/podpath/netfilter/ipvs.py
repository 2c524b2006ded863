"""IPVS as a node shows it: /proc/net/ip_vs, `ipvsadm -Ln`, /proc/net/ip_vs_conn.

The kernel lists each virtual service with its scheduler and flags, then its real
servers with forwarding method, weight and connection counts (ip_vs_info_seq_show in
net/netfilter/ipvs/ip_vs_ctl.c). /proc prints addresses and ports in hex
(`0A600001:01BB`, IPv6 as `[2620:0000:...]:0050`); `ipvsadm -Ln` prints them dotted.
Both read into the same structures. kube-proxy's IPVS mode keeps every ClusterIP on
the dummy `kube-ipvs0` so the node accepts it as local, and IPVS (hooked at LOCAL_IN
and LOCAL_OUT) sends the connection to a real server it schedules.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# Schedulers whose choice follows from the configuration alone (shares by weight).
WEIGHTED = frozenset({"rr", "wrr"})
SCHEDULERS = {
    "rr": "round robin",
    "wrr": "weighted round robin",
    "lc": "least connections",
    "wlc": "weighted least connections",
    "lblc": "locality-based least connections",
    "lblcr": "locality-based least connections with replication",
    "dh": "destination hashing",
    "sh": "source hashing",
    "sed": "shortest expected delay",
    "nq": "never queue",
    "fo": "weighted failover",
    "ovf": "weighted overflow",
    "mh": "maglev hashing",
    "twos": "weighted random twos choice",
}

_SERVICE = re.compile(
    r"^(?P<proto>TCP|UDP|SCTP|FWM)\s+(?P<addr>\S+)\s+(?P<sched>[a-z]+)(?P<flags>.*)$"
)
_SERVER = re.compile(
    r"^\s+->\s+(?P<addr>\S+)\s+(?P<fwd>\w+)\s+(?P<weight>-?\d+)\s+(?P<active>\d+)\s+(?P<inactive>\d+)"
)


@dataclass(frozen=True)
class RealServer:
    """One destination of a virtual service."""

    address: str
    port: int | None
    forward: str  # Masq, Route, Tunnel, Local
    weight: int
    active: int
    inactive: int


@dataclass(frozen=True)
class VirtualService:
    """One IPVS virtual service: protocol, address:port (or fwmark), scheduler, servers."""

    protocol: str  # TCP, UDP, SCTP, or FWM
    address: str | None
    port: int | None
    fwmark: int | None
    scheduler: str
    persistent: int | None  # seconds of ClientIP persistence, None when not persistent
    netmask: str | None  # persistence granularity (`mask 0.0.0.0`)
    flags: tuple[str, ...]  # the rest of the line: ops, hashed entries...
    servers: tuple[RealServer, ...]

    @property
    def key(self) -> str:
        """`TCP 10.96.0.1:443` as ipvsadm names it."""
        if self.protocol == "FWM":
            return f"FWM {self.fwmark}"
        host = f"[{self.address}]" if self.address and ":" in self.address else self.address
        return f"{self.protocol} {host}:{self.port}"


def _hex_address(text: str) -> tuple[str, int | None] | None:
    """`0A600001:01BB` or `[2620:0000:...:0001]:0050` (proc's hex) -> (address, port)."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        try:
            addr = str(ipaddress.IPv6Address(host))
        except ValueError:
            return None
        return addr, int(port, 16) if port else None
    host, sep, port = text.partition(":")
    if len(host) != 8 or not re.fullmatch(r"[0-9A-Fa-f]{8}", host):
        return None
    addr = str(ipaddress.IPv4Address(int(host, 16)))
    return addr, int(port, 16) if sep and port else None


def _dotted_address(text: str) -> tuple[str, int | None] | None:
    """`10.96.0.1:443` or `[fd00::1]:443` (ipvsadm -n) -> (address, port)."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    else:
        host, _, port = text.rpartition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host, int(port) if port.isdigit() else None


def _address(text: str) -> tuple[str, int | None] | None:
    return _hex_address(text) or _dotted_address(text)


def parse_ipvs(text: str) -> tuple[VirtualService, ...]:
    """Virtual services from /proc/net/ip_vs or `ipvsadm -Ln` text; unknown lines are skipped."""
    out: list[VirtualService] = []
    current: dict[str, object] | None = None
    servers: list[RealServer] = []

    def close() -> None:
        if current is not None:
            out.append(VirtualService(**current, servers=tuple(servers)))  # type: ignore[arg-type]

    for line in text.splitlines():
        svc = _SERVICE.match(line.rstrip())
        if svc:
            close()
            servers = []
            current = _service_fields(svc)
            continue
        server = _SERVER.match(line)
        if server and current is not None:
            found = _address(server["addr"])
            if found is None:
                continue
            servers.append(
                RealServer(
                    found[0],
                    found[1],
                    server["fwd"],
                    int(server["weight"]),
                    int(server["active"]),
                    int(server["inactive"]),
                )
            )
    close()
    return tuple(out)


def _service_fields(found: re.Match[str]) -> dict[str, object]:
    proto = found["proto"]
    words = found["flags"].split()
    persistent = netmask = None
    rest: list[str] = []
    i = 0
    while i < len(words):
        if words[i] == "persistent" and i + 1 < len(words) and words[i + 1].isdigit():
            persistent, i = int(words[i + 1]), i + 2
        elif words[i] == "mask" and i + 1 < len(words):
            netmask, i = words[i + 1], i + 2
        else:
            rest.append(words[i])
            i += 1
    address: str | None = None
    port: int | None = None
    fwmark: int | None = None
    if proto == "FWM":
        text = found["addr"]
        # /proc prints the mark in hex, ipvsadm -n in decimal.
        fwmark = int(text, 16) if not text.isdigit() or len(text) == 8 else int(text)
    else:
        parsed = _address(found["addr"])
        if parsed is not None:
            address, port = parsed
    return {
        "protocol": proto,
        "address": address,
        "port": port,
        "fwmark": fwmark,
        "scheduler": found["sched"],
        "persistent": persistent,
        "netmask": netmask,
        "flags": tuple(rest),
    }


@dataclass(frozen=True)
class IpvsConnection:
    """One IPVS connection (or persistence template) from /proc/net/ip_vs_conn."""

    protocol: str  # TCP, UDP, IP (a persistence template)...
    client: str
    client_port: int | None
    virtual: str
    virtual_port: int | None
    server: str
    server_port: int | None
    state: str
    expires: int | None

    @property
    def template(self) -> bool:
        """A persistence template: it pins a client to a server (client port 0)."""
        return self.client_port == 0 or self.protocol == "IP"


def parse_ipvs_conn(text: str) -> tuple[IpvsConnection, ...]:
    """/proc/net/ip_vs_conn: `Pro FromIP FPrt ToIP TPrt DestIP DPrt State Expires ...`."""
    out: list[IpvsConnection] = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 9:
            continue
        try:
            client = _conn_address(parts[1], parts[2])
            virtual = _conn_address(parts[3], parts[4])
            server = _conn_address(parts[5], parts[6])
        except ValueError:
            continue
        out.append(
            IpvsConnection(
                parts[0],
                client[0],
                client[1],
                virtual[0],
                virtual[1],
                server[0],
                server[1],
                parts[7],
                int(parts[8]) if parts[8].isdigit() else None,
            )
        )
    return tuple(out)


def _conn_address(addr: str, port: str) -> tuple[str, int]:
    """ip_vs_conn prints an IPv4 address as 8 hex digits, IPv6 as colon groups; ports in hex."""
    if len(addr) == 8 and ":" not in addr:
        host = str(ipaddress.IPv4Address(int(addr, 16)))
    else:
        host = str(ipaddress.IPv6Address(addr))
    return host, int(port, 16)
