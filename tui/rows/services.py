"""Pure row builders for the Services screen and one Service's screen."""

from __future__ import annotations

from collections.abc import Iterable

from podpath.analysis.index import SnapshotIndex
from podpath.analysis.rulesets import RuleDump
from podpath.analysis.services import endpoint_place
from podpath.netfilter.kube_proxy import Service
from podpath.netfilter.model import Rule
from podpath.tui.rows.model import Cell, Row, cell, row
from podpath.tui.rows.netfilter import rule_matches, rule_target

# An endpoint's place (analysis.services.Place.kind) -> the role of its cell.
PLACE_ROLES = {"pod": "success", "node": "primary", "remote": "warning"}


def service_id(svc: Service) -> str:
    """A key unique per Service port and backend: namespace/name:port/vip:port/protocol."""
    return (
        f"{svc.namespace}/{svc.name}:{svc.port_name}/{vip(svc)}:{svc.port}/{svc.protocol.lower()}"
    )


def vip(svc: Service) -> str:
    """The Service's ClusterIP, or a dash when it has none (a NodePort-only dump)."""
    return svc.cluster_ip or "-"


def vip_port(svc: Service) -> str:
    """`10.96.0.10:53/udp`."""
    return f"{vip(svc)}:{svc.port}/{svc.protocol.lower()}"


def find_service(services: Iterable[Service], key: str) -> Service | None:
    """The Service port with this key (see service_id)."""
    return next((s for s in services if service_id(s) == key), None)


SERVICE_COLUMNS = ("SERVICE", "VIP:PORT", "EPS", "ENDPOINTS (probability, where)")


def endpoint_summary(index: SnapshotIndex, svc: Service) -> str:
    """Endpoints as `33% web-abc (10.244.0.5:80)`, remote ones marked."""
    parts = []
    for ep in svc.endpoints:
        pod = index.pods_by_ip.get(ep.ip)
        where = pod.name if pod else endpoint_place(index, ep.ip).label
        parts.append(f"{ep.probability:.0%} {where} ({ep.ip}:{ep.port})")
    return ", ".join(parts) if parts else "no endpoints"


def service_rows(index: SnapshotIndex, services: Iterable[Service]) -> list[Row]:
    """One row per Service port."""
    out = []
    for svc in sorted(services, key=lambda s: (s.namespace, s.name, s.port_name)):
        name = f"{svc.namespace}/{svc.name}" + (f":{svc.port_name}" if svc.port_name else "")
        out.append(
            row(
                service_id(svc),
                Cell(name, "accent"),
                vip_port(svc),
                Cell(str(len(svc.endpoints)), "primary" if svc.endpoints else "warning"),
                Cell(endpoint_summary(index, svc), "warning" if not svc.endpoints else ""),
            )
        )
    return out


ENDPOINT_COLUMNS = ("ENDPOINT", "PROBABILITY", "POD / NODE", "SEP CHAIN")


def endpoint_rows(index: SnapshotIndex, svc: Service) -> list[Row]:
    """A Service's endpoints, each resolved to a local pod or a remote node."""
    out = []
    for ep in svc.endpoints:
        place = endpoint_place(index, ep.ip)
        out.append(
            row(
                f"ep:{ep.ip}:{ep.port}",
                f"{ep.ip}:{ep.port}",
                Cell(f"{ep.probability:.4f}", "primary"),
                Cell(place.label, PLACE_ROLES[place.kind]),
                cell(ep.sep_chain, "dim"),
            )
        )
    return out


WALK_COLUMNS = ("CHAIN", "#", "MATCHES", "TARGET")


def chain_walk_rows(dumps: Iterable[RuleDump], svc: Service) -> list[Row]:
    """KUBE-SERVICES rules that jump to the Service's chain, its rules, and each endpoint chain's."""
    wanted = [c for c in (svc.svc_chain, *(e.sep_chain for e in svc.endpoints)) if c]
    out: list[Row] = []
    for dump in dumps:
        if "nat" not in dump.tables:
            continue
        for r in dump.rules("nat", "KUBE-SERVICES"):
            if r.target is not None and r.target.name in wanted:
                out.append(_walk_row(dump.label, r, "KUBE-SERVICES"))
        for name in wanted:
            for r in dump.rules("nat", name):
                out.append(_walk_row(dump.label, r, name))
    return out


def _walk_row(label: str, r: Rule, chain: str) -> Row:
    return Row(
        f"{label}:{chain}:{r.position}",
        (
            Cell(chain, "accent" if chain != "KUBE-SERVICES" else "primary"),
            Cell(str(r.position), "dim"),
            cell(rule_matches(r)),
            Cell(rule_target(r), "primary"),
        ),
    )
