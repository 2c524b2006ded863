"""Pure row builders for the Services screen and one Service's screen."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from podpath.analysis.affinity import affinity_pins, affinity_text
from podpath.analysis.index import SnapshotIndex
from podpath.analysis.rulesets import RuleDump
from podpath.analysis.services import endpoint_place
from podpath.listing import service_type
from podpath.netfilter.ipvs import SCHEDULERS, WEIGHTED
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


def service_name(svc: Service) -> str:
    """`namespace/name:port`, or a dash for an IPVS virtual service no pod's environment names."""
    if not svc.name:
        return "-"
    return f"{svc.namespace}/{svc.name}" + (f":{svc.port_name}" if svc.port_name else "")


def find_service(services: Iterable[Service], key: str) -> Service | None:
    """The Service port with this key (see service_id)."""
    return next((s for s in services if service_id(s) == key), None)


# As `kubectl get svc` names them, then how kube-proxy programmed the port on this node.
SERVICE_COLUMNS = (
    "SERVICE",
    "TYPE",
    "VIP:PORT",
    "MODE",
    "AFFINITY",
    "POLICY",
    "EPS",
    "ENDPOINTS (probability, where)",
)


def mode_text(svc: Service) -> str:
    """iptables, nftables, or `ipvs rr` (the scheduler IPVS chooses with)."""
    return f"ipvs {svc.scheduler}" if svc.backend == "ipvs" and svc.scheduler else svc.backend


def policy_text(svc: Service) -> str:
    """The traffic policies that are not the default: `int:Local`, `ext:Local`."""
    parts = [
        f"{side}:Local"
        for side, policy in (("int", svc.internal_policy), ("ext", svc.external_policy))
        if policy == "Local"
    ]
    return ",".join(parts)


def endpoint_summary(index: SnapshotIndex, svc: Service) -> str:
    """Endpoints as `33% web-abc (10.244.0.5:80)`, remote ones marked."""
    parts = []
    for ep in svc.endpoints:
        pod = index.pods_by_ip.get(ep.ip)
        where = pod.name if pod else endpoint_place(index, ep.ip).label
        parts.append(f"{ep.probability:.0%} {where} ({ep.ip}:{ep.port})")
    if parts:
        return ", ".join(parts)
    # What kube-proxy does with a packet for it: REJECT (or DROP), else nothing at all.
    return f"no endpoints: {svc.no_endpoints}" if svc.no_endpoints else "no endpoints"


def service_rows(
    index: SnapshotIndex, services: Iterable[Service], tick: Callable[[], object] | None = None
) -> list[Row]:
    """One row per Service port (`tick` is told each one, for progress)."""
    out = []
    for svc in sorted(services, key=lambda s: (s.namespace, s.name, s.port_name)):
        if tick is not None:
            tick()
        out.append(
            row(
                service_id(svc),
                Cell(service_name(svc), "accent" if svc.name else "dim"),
                Cell(service_type(svc), "dim"),
                vip_port(svc),
                Cell(mode_text(svc), "dim"),
                cell(affinity_text(svc.affinity_timeout, len(affinity_pins(index, svc)))),
                cell(policy_text(svc), "warning"),
                Cell(str(len(svc.endpoints)), "primary" if svc.endpoints else "warning"),
                Cell(endpoint_summary(index, svc), "warning" if not svc.endpoints else ""),
            )
        )
    return out


ENDPOINT_COLUMNS = ("ENDPOINT", "PROBABILITY", "WEIGHT", "POD / NODE", "SEP CHAIN / IPVS")


def endpoint_rows(index: SnapshotIndex, svc: Service) -> list[Row]:
    """A Service's endpoints, each resolved to a local pod or a remote node."""
    # IPVS's lc, sh, ... choose by live state podpath does not have: no share is shown.
    modelled = svc.backend != "ipvs" or svc.scheduler in WEIGHTED
    out = []
    for ep in svc.endpoints:
        place = endpoint_place(index, ep.ip)
        share = (
            Cell(f"{ep.probability:.4f}", "primary")
            if modelled
            else Cell(f"not modelled ({svc.scheduler})", "warning")
        )
        out.append(
            row(
                f"ep:{ep.ip}:{ep.port}",
                f"{ep.ip}:{ep.port}",
                share,
                cell(ep.weight),
                Cell(place.label, PLACE_ROLES[place.kind]),
                cell(ep.sep_chain, "dim"),
            )
        )
    return out


FACT_COLUMNS = ("FACT", "VALUE")


def service_fact_rows(index: SnapshotIndex, svc: Service) -> list[Row]:
    """What kube-proxy made of the Service on this node: type, mode, policies, affinity, pins."""
    pins = affinity_pins(index, svc)
    facts: list[tuple[str, str, str]] = [("type", service_type(svc), "accent")]
    mode = svc.backend
    if svc.backend == "ipvs" and svc.scheduler:
        how = SCHEDULERS.get(svc.scheduler, svc.scheduler)
        known = "" if svc.scheduler in WEIGHTED else ": its choice depends on live state"
        mode = f"ipvs, scheduler {svc.scheduler} ({how}){known}"
    facts.append(("mode", mode, ""))
    reach = [f"ClusterIP {vip_port(svc)}"]
    if svc.node_port is not None:
        reach.append(f"NodePort {svc.node_port}")
    reach += [f"external IP {ip}" for ip in svc.external_ips]
    reach += [f"load balancer {ip}" for ip in svc.load_balancer_ips]
    facts.append(("reached at", ", ".join(reach), ""))
    if svc.source_ranges:
        facts.append(("source ranges", ", ".join(svc.source_ranges), ""))
    policy = f"internal {svc.internal_policy}, external {svc.external_policy}"
    facts.append(("traffic policy", policy, "warning" if policy_text(svc) else ""))
    facts.append(("masquerade", svc.masquerade, "dim"))
    if not svc.endpoints:
        verdict = svc.no_endpoints or "no rule: the packet goes on unchanged"
        facts.append(("no endpoints", verdict, "warning"))
    if svc.no_local_endpoints:
        facts.append(("no local endpoint", svc.no_local_endpoints, "warning"))
    if svc.health_check_node_port is not None:
        facts.append(("health check", f"NodePort {svc.health_check_node_port}", "dim"))
    if svc.affinity_timeout is not None:
        facts.append(("affinity", affinity_text(svc.affinity_timeout, len(pins)), ""))
    rows = [row(f"fact:{k}", Cell(k, "dim"), Cell(v, role)) for k, v, role in facts]
    for i, pin in enumerate(pins):
        when = f"{pin.age:.0f}s ago" if pin.age is not None else f"expires in {pin.expires}s"
        text = f"{pin.client} → {pin.endpoint}  ({when}, {pin.source})"
        rows.append(row(f"pin:{i}", Cell("pinned", "dim"), Cell(text, "success")))
    return rows


WALK_COLUMNS = ("CHAIN", "#", "MATCHES", "TARGET")


def chain_walk_rows(dumps: Iterable[RuleDump], svc: Service) -> list[Row]:
    """KUBE-SERVICES rules that jump to the Service's chain, its rules, and each endpoint chain's."""
    if svc.backend != "iptables":
        return []  # nftables and IPVS modes write no chains of their own in iptables
    wanted = [c for c in (svc.svc_chain, *(e.sep_chain for e in svc.endpoints)) if c]
    out: list[Row] = []
    for dump in dumps:
        if "nat" in dump.tables:
            for r in dump.rules("nat", "KUBE-SERVICES"):
                if r.target is not None and r.target.name in wanted:
                    out.append(_walk_row(dump.label, r, "KUBE-SERVICES"))
            for name in wanted:
                for r in dump.rules("nat", name):
                    out.append(_walk_row(dump.label, r, name))
        if not svc.endpoints and "filter" in dump.tables:
            # Without endpoints kube-proxy rejects in the filter table, by comment:
            # "NS/NAME:PORT has no endpoints" (pkg/proxy/iptables/proxier.go).
            said = f"{service_name(svc)} has no endpoints"
            for chain in NO_ENDPOINT_CHAINS:
                for r in dump.rules("filter", chain):
                    if (r.comment or "").startswith(said):
                        out.append(_walk_row(dump.label, r, f"filter {chain}"))
    return out


# The filter table's chains where kube-proxy rejects traffic to a Service without endpoints.
NO_ENDPOINT_CHAINS = ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES")


def walk_heading(svc: Service) -> str:
    """What the chain walk below shows for this Service, or why it is empty."""
    if svc.backend == "nftables":
        return "Chain walk: none in iptables (nftables mode: :ipt, then nftables, table kube-proxy)"
    if svc.backend == "ipvs":
        return "Chain walk: none (IPVS forwards it: :ipvs lists its real servers)"
    if not svc.endpoints:
        return "Chain walk (the filter table's rule for a Service without endpoints)"
    return "Chain walk (nat table)"


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
