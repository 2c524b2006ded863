"""Pure row builders for the IPVS screen: virtual services and their real servers, as ipvsadm -Ln."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from podpath.analysis.index import SnapshotIndex
from podpath.listing import service_type
from podpath.netfilter.ipvs import WEIGHTED, RealServer, VirtualService, parse_ipvs
from podpath.netfilter.kube_proxy import Service
from podpath.tui.rows.model import Cell, Row, cell

# ipvsadm -Ln's two header lines in one: a service's columns, then its servers' under them.
IPVS_COLUMNS = (
    "SERVICE / -> REAL SERVER",
    "SCHED / FWD",
    "WEIGHT",
    "SHARE",
    "ACTIVE",
    "INACTIVE",
    "TYPE, FLAGS / WHERE",
)

# Key of the one row that says why the list is empty.
EMPTY_KEY = "\x00empty"


@dataclass(frozen=True)
class Place:
    """Where a real server's address is: a pod of a loaded node, a node, or elsewhere."""

    node: int | None  # which loaded snapshot (0: the one shown), None: none of them
    pod: str | None  # namespace/name when it is a pod's address
    label: str


def place_of(indexes: Sequence[SnapshotIndex], address: str) -> Place:
    """A pod on one of the loaded nodes, one of their addresses, or somewhere unknown."""
    for i, index in enumerate(indexes):
        pod = index.pods_by_ip.get(address)
        if pod is not None:
            where = f"pod {pod.namespace}/{pod.name}"
            on = f" on {index.snapshot.node.hostname}" if i else ""
            return Place(i, f"{pod.namespace}/{pod.name}", where + on)
    for i, index in enumerate(indexes):
        if any(address in addrs for addrs in index.local_addresses.values()):
            name = index.snapshot.node.hostname
            return Place(i, None, "this node" if i == 0 else f"node {name}")
    return Place(None, None, "outside the loaded nodes")


def empty_reason(index: SnapshotIndex, mode: str | None) -> str | None:
    """Why the node shows no virtual service (one sentence), or None when it has some."""
    ipvs = index.snapshot.ipvs
    mode_text = f"kube-proxy runs in {mode} mode" if mode else "no kube-proxy rules were found"
    if ipvs is None:
        if mode == "ipvs":
            gap = next(
                (g for g in index.snapshot.gaps if "ip_vs" in g.subject or "ipvs" in g.subject),
                None,
            )
            why = f": {gap.subject}: {gap.reason}" if gap else " (ip_vs was not loaded)"
            return (
                "kube-proxy runs in IPVS mode (kube-ipvs0, its ipsets) but /proc/net/ip_vs "
                f"was not read{why}: its virtual services are unknown."
            )
        # Short: it is the one line on the screen, and must fit 120 columns whole.
        return f"No IPVS here: /proc/net/ip_vs is absent (ip_vs not loaded); {mode_text} (:svc)."
    if not parse_ipvs(ipvs.ip_vs):
        return f"ip_vs is loaded but holds no virtual service; {mode_text}."
    return None


def _share(vs: VirtualService, server: RealServer) -> Cell:
    """The real server's share of new connections: knowable for rr and wrr only."""
    usable = [s for s in vs.servers if s.weight > 0]
    if server.weight <= 0:
        return Cell("0 (weight 0)", "dim")
    if vs.scheduler == "wrr":
        return Cell(f"{server.weight / sum(s.weight for s in usable):.0%}", "primary")
    if vs.scheduler in WEIGHTED:
        return Cell(f"{1 / len(usable):.0%}", "primary")
    return Cell("not modelled", "warning")


def find_ipvs_service(services: Sequence[Service], vs: VirtualService) -> Service | None:
    """The Service podpath made of a virtual service (podpath.netfilter.kube_proxy_ipvs)."""
    return next((s for s in services if s.backend == "ipvs" and s.svc_chain == vs.key), None)


def server_key(vs: VirtualService, server: RealServer, n: int) -> str:
    """A real server row's key: its service's key, its number and address ('|' is in none)."""
    return f"rs|{vs.key}|{n}|{server.address}"


def service_key(vs: VirtualService) -> str:
    """A virtual service row's key (its ipvsadm name: unique in the kernel's table)."""
    return f"vs|{vs.key}"


def find_virtual(index: SnapshotIndex, key: str) -> VirtualService | None:
    """The virtual service a row's key names, its own or one of its servers' (see *_key)."""
    ipvs = index.snapshot.ipvs
    kind, _, rest = key.partition("|")
    if ipvs is None or kind not in ("vs", "rs"):
        return None
    vs_key = rest.split("|")[0]
    return next((vs for vs in parse_ipvs(ipvs.ip_vs) if vs.key == vs_key), None)


def ipvs_rows(indexes: Sequence[SnapshotIndex], services: Sequence[Service]) -> list[Row]:
    """One row per virtual service, its real servers indented under it (ipvsadm -Ln's order)."""
    index = indexes[0]
    ipvs = index.snapshot.ipvs
    if ipvs is None:
        return []
    out = []
    for vs in parse_ipvs(ipvs.ip_vs):
        svc = find_ipvs_service(services, vs)
        # How the scheduler shares new connections; lc, sh...: by live state podpath lacks.
        if vs.scheduler in WEIGHTED:
            how = Cell("by weight" if vs.scheduler == "wrr" else "even", "dim")
        else:
            how = Cell("not modelled", "warning")
        persistence = []
        if vs.persistent is not None:
            mask = f" mask {vs.netmask}" if vs.netmask is not None else ""
            persistence.append(f"persistent {vs.persistent}{mask}")
        usable = sum(1 for s in vs.servers if s.weight > 0)
        what = service_type(svc) if svc is not None else ("fwmark" if vs.fwmark else "-")
        if svc is not None and svc.name:
            what += f" {svc.key}"  # the name pods' service-link environment gives it
        if not vs.servers:
            what += ", no real server: refused"
        elif not usable:
            what += ", every weight 0: refused"
        out.append(
            Row(
                service_key(vs),
                (
                    Cell(vs.key, "accent"),
                    Cell(vs.scheduler, "" if vs.scheduler in WEIGHTED else "warning"),
                    Cell(""),
                    how,
                    cell(sum(s.active for s in vs.servers)),
                    cell(sum(s.inactive for s in vs.servers)),
                    Cell(
                        ", ".join((what, *persistence, *vs.flags)), "warning" if not usable else ""
                    ),
                ),
            )
        )
        for n, server in enumerate(vs.servers):
            host = f"[{server.address}]" if ":" in server.address else server.address
            place = place_of(indexes, server.address)
            out.append(
                Row(
                    server_key(vs, server, n),
                    (
                        Cell(f"  -> {host}:{server.port}"),
                        Cell(server.forward, "dim"),
                        cell(server.weight),
                        _share(vs, server),
                        cell(server.active),
                        cell(server.inactive),
                        Cell(place.label, "success" if place.pod else "dim"),
                    ),
                )
            )
    return out


def find_server(index: SnapshotIndex, key: str) -> RealServer | None:
    """The real server a row's key names (see server_key)."""
    parts = key.split("|")
    vs = find_virtual(index, key)
    if vs is None or len(parts) != 4 or parts[0] != "rs" or not parts[2].isdigit():
        return None
    number = int(parts[2])
    return vs.servers[number] if number < len(vs.servers) else None
