"""kube-proxy's IPVS mode read back into Services: one per virtual service.

IPVS names no Service: a virtual service is an address, a port and a protocol. What
kind of address it is comes from what kube-proxy did with it: a ClusterIP sits on the
dummy kube-ipvs0 and in the KUBE-CLUSTER-IP ipset; a NodePort is served on the node's
own addresses with its port in KUBE-NODE-PORT-TCP/UDP; external and load-balancer IPs
are in KUBE-EXTERNAL-IP / KUBE-LOAD-BALANCER, their source ranges in
KUBE-LOAD-BALANCER-SOURCE-CIDR, and externalTrafficPolicy Local in the *-LOCAL sets
(pkg/proxy/ipvs/README.md). Endpoints are the real servers, each with the share the
scheduler gives it when that is knowable (rr: even, wrr: by weight).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from podpath.netfilter.ipset import IpSet
from podpath.netfilter.ipvs import WEIGHTED, VirtualService
from podpath.netfilter.kube_proxy import Endpoint, Service


def _in_set(sets: Mapping[str, IpSet], name: str, member: str) -> bool:
    found = sets.get(name)
    return found is not None and member in found.members


def ipvs_services(
    services: Collection[VirtualService],
    ipsets: Mapping[str, IpSet],
    ipvs_addresses: Collection[str],
    node_addresses: Collection[str],
) -> tuple[Service, ...]:
    """One Service per virtual service, labelled by what kind of address it serves."""
    out: list[Service] = []
    for vs in services:
        if vs.address is None or vs.port is None:
            continue  # FWM services name no address
        proto = vs.protocol.lower()
        member = f"{vs.address},{proto}:{vs.port}"
        is_cluster = vs.address in ipvs_addresses or _in_set(ipsets, "KUBE-CLUSTER-IP", member)
        # kube-proxy serves a NodePort as one virtual service per node address.
        node_port = vs.port if vs.address in node_addresses and not is_cluster else None
        lb = _in_set(ipsets, "KUBE-LOAD-BALANCER", member)
        external = _in_set(ipsets, "KUBE-EXTERNAL-IP", member)
        local = _in_set(ipsets, "KUBE-LOAD-BALANCER-LOCAL", member) or _in_set(
            ipsets, f"KUBE-NODE-PORT-LOCAL-{vs.protocol}", str(vs.port)
        )
        ranges = tuple(
            m.split(",", 2)[2]
            for m in ipsets.get("KUBE-LOAD-BALANCER-SOURCE-CIDR", IpSet("", "")).members
            if m.startswith(member + ",")
        )
        out.append(
            Service(
                namespace="",
                name="",
                port_name="",
                protocol=vs.protocol,
                cluster_ip=vs.address if is_cluster else None,
                port=vs.port,
                node_port=node_port,
                external_ips=(vs.address,) if external and not lb else (),
                load_balancer_ips=(vs.address,) if lb else (),
                svc_chain=vs.key,
                endpoints=_endpoints(vs),
                masquerade="see KUBE-MARK-MASQ rules (ipset matches)",
                source_ranges=ranges,
                no_endpoints="REJECT" if not any(s.weight > 0 for s in vs.servers) else None,
                backend="ipvs",
                evidence=(f"/proc/net/ip_vs: {vs.key} {vs.scheduler}",),
                affinity_timeout=vs.persistent,
                external_policy="Local" if local else "Cluster",
                scheduler=vs.scheduler,
                persistent=vs.persistent,
            )
        )
    return tuple(out)


def _endpoints(vs: VirtualService) -> tuple[Endpoint, ...]:
    usable = [s for s in vs.servers if s.weight > 0]
    total = sum(s.weight for s in usable)
    out = []
    for s in vs.servers:
        if s.weight <= 0 or not usable:
            share = 0.0
        elif vs.scheduler == "wrr":
            share = s.weight / total
        elif vs.scheduler in WEIGHTED:
            share = 1.0 / len(usable)
        else:
            # lc, sh, ...: the choice is not knowable; the even share is only a placeholder.
            share = 1.0 / len(usable)
        out.append(
            Endpoint(
                s.address,
                s.port,
                share,
                vs.key,
                f"-> {s.address}:{s.port} {s.forward} weight {s.weight} "
                f"active {s.active} inactive {s.inactive}",
                weight=s.weight,
            )
        )
    return tuple(out)
