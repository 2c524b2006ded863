"""kube-proxy's nftables mode, rendered as the `nft -f` input kube-proxy writes.

The layout is kube-proxy's own (the real-world fixture
k8s-nftables-proxier-test-overall-rules-nft-f-dump.txt, from proxier_test.go): a
`table ip kube-proxy` with the cluster-ips and nodeport-ips sets, the service-ips,
service-nodeports, firewall-ips and no-endpoint-* verdict maps, one
service-HASH-ns/name/proto/port chain per Service port (`numgen random mod N vmap`),
one endpoint-HASH-...__IP/PORT chain per endpoint (`dnat to`), external-* chains for
NodePorts, affinity-* sets for ClientIP session affinity, masquerading via the 0x4000
mark, and reject-chain for Services without endpoints. A traffic policy Local adds a
local-HASH-... chain over this node's endpoints; external- then short-circuits pod and
node traffic to the service- chain, and a node without a local endpoint drops the
rest through the no-endpoint-nodeports/no-endpoint-services maps (`drop`, as the
fixture's ns2/svc2 shows). One difference: every chain is
declared before a rule jumps to it, as `nft -f` requires of a fresh table (kube-proxy's
test dump adds some chains after the rule that names them).

kube-proxy runs one proxier per IP family: IPv6 Services go to a `table ip6 kube-proxy`
of the same layout, with ipv6_addr sets, `ip6 saddr`/`ip6 daddr` matches, the IPv6
cluster and Service CIDRs, and endpoints written as net.JoinHostPort writes them.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable

from podpath.lab.kubeproxy import (
    DEFAULT_CONFIG,
    SERVICE_CIDR,
    SERVICE_CIDR6,
    ProxyConfig,
    externally_accessible,
    join_host_port,
    local_endpoints,
)
from podpath.lab.records import ServiceRecord

TABLE = "ip kube-proxy"
TABLE6 = "ip6 kube-proxy"

_HEADER = """\
add table ip kube-proxy { comment "rules for kube-proxy" ; }
flush table ip kube-proxy
add set ip kube-proxy cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }
add set ip kube-proxy nodeport-ips { type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }
add map ip kube-proxy firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }
add map ip kube-proxy no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }
add map ip kube-proxy no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }
add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }
add map ip kube-proxy service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }
add chain ip kube-proxy cluster-ips-check
add chain ip kube-proxy filter-prerouting-pre-dnat { type filter hook prerouting priority -110 ; }
add chain ip kube-proxy filter-output-pre-dnat { type filter hook output priority -110 ; }
add chain ip kube-proxy filter-forward { type filter hook forward priority 0 ; }
add chain ip kube-proxy filter-input { type filter hook input priority 0 ; }
add chain ip kube-proxy filter-output { type filter hook output priority 0 ; }
add chain ip kube-proxy firewall-check
add chain ip kube-proxy mark-for-masquerade
add chain ip kube-proxy masquerading
add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }
add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }
add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }
add chain ip kube-proxy nodeport-endpoints-check
add chain ip kube-proxy reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }
add chain ip kube-proxy services
add chain ip kube-proxy service-endpoints-check
add rule ip kube-proxy cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"
add rule ip kube-proxy cluster-ips-check ip daddr { SERVICE_CIDR } drop comment "Drop traffic to unallocated ClusterIPs"
add rule ip kube-proxy filter-prerouting-pre-dnat ct state new jump firewall-check
add rule ip kube-proxy filter-forward ct state new jump service-endpoints-check
add rule ip kube-proxy filter-forward ct state new jump cluster-ips-check
add rule ip kube-proxy filter-input ct state new jump nodeport-endpoints-check
add rule ip kube-proxy filter-input ct state new jump service-endpoints-check
add rule ip kube-proxy filter-output ct state new jump service-endpoints-check
add rule ip kube-proxy filter-output-pre-dnat ct state new jump firewall-check
add rule ip kube-proxy filter-output ct state new jump cluster-ips-check
add rule ip kube-proxy firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips
add rule ip kube-proxy mark-for-masquerade mark set mark or 0x4000
add rule ip kube-proxy masquerading mark and 0x4000 == 0 return
add rule ip kube-proxy masquerading mark set mark xor 0x4000
add rule ip kube-proxy masquerading masquerade fully-random
add rule ip kube-proxy nat-output jump services
add rule ip kube-proxy nat-postrouting jump masquerading
add rule ip kube-proxy nat-prerouting jump services
add rule ip kube-proxy nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports
add rule ip kube-proxy reject-chain reject
add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip kube-proxy services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports
add rule ip kube-proxy service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services
"""


def chain_hash(text: str) -> str:
    """kube-proxy's hash of a chain name base: base32 of sha256, first 8 characters."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:8]


def _port_path(svc: ServiceRecord) -> str:
    # ns/name/proto/port-name, as servicePortChainNameBase writes it.
    return f"{svc.namespace}/{svc.name}/{svc.protocol.lower()}/{svc.port_name}"


def _named(prefix: str, path: str) -> str:
    return f"{prefix}-{chain_hash(path)}-{path}"


def service_chain(svc: ServiceRecord) -> str:
    """service-HASH-ns/name/proto/port: the Service port's Cluster-policy chain."""
    return _named("service", _port_path(svc))


def external_chain(svc: ServiceRecord) -> str:
    """external-HASH-ns/name/proto/port: where NodePort traffic goes."""
    return f"external-{service_chain(svc).removeprefix('service-')}"


def firewall_chain(svc: ServiceRecord) -> str:
    """firewall-HASH-ns/name/proto/port: drops LB IP traffic from outside the source ranges."""
    return f"firewall-{service_chain(svc).removeprefix('service-')}"


def endpoint_chain(svc: ServiceRecord, ip: str, port: int) -> str:
    """endpoint-HASH-ns/name/proto/port__IP/PORT (an IPv6 address's colons as dots: a
    chain name cannot hold a colon, servicePortEndpointChainNameBase)."""
    return _named("endpoint", f"{_port_path(svc)}__{ip.replace(':', '.')}/{port}")


def affinity_set(svc: ServiceRecord, ip: str, port: int) -> str:
    """affinity-HASH-...__IP/PORT: the clients pinned to one endpoint (ClientIP affinity)."""
    return f"affinity-{endpoint_chain(svc, ip, port).removeprefix('endpoint-')}"


def family_of(svc: ServiceRecord) -> int:
    """4 or 6: which proxier (and table) a Service port belongs to."""
    return 6 if ":" in svc.cluster_ip else 4


def _header(family: int) -> str:
    """The table's fixed part for one family (the IPv4 text with the family's words)."""
    text = _HEADER.replace("SERVICE_CIDR", SERVICE_CIDR if family == 4 else SERVICE_CIDR6)
    if family == 6:
        text = (
            text.replace(" ip kube-proxy", " ip6 kube-proxy")
            .replace("ipv4_addr", "ipv6_addr")
            .replace(" ip daddr ", " ip6 daddr ")
        )
    return text.rstrip("\n")


def local_chain(svc: ServiceRecord) -> str:
    """local-HASH-ns/name/proto/port: the Service port's Local-policy chain."""
    return f"local-{service_chain(svc).removeprefix('service-')}"


def _policy_rules(
    t: str, chain: str, svc: ServiceRecord, endpoints: tuple[tuple[str, int], ...], ip_kw: str
) -> list[str]:
    """A policy chain's rules (service- or local-): affinity, then numgen over its endpoints."""
    eps = [endpoint_chain(svc, ip, port) for ip, port in endpoints]
    lines: list[str] = []
    if svc.affinity is not None:
        lines += [
            f"add rule {t} {chain} {ip_kw} saddr @{affinity_set(svc, ip, port)} goto {ep}"
            for (ip, port), ep in zip(endpoints, eps, strict=True)
        ]
    vmap = " , ".join(f"{i} : goto {ep}" for i, ep in enumerate(eps))
    lines.append(f"add rule {t} {chain} numgen random mod {len(eps)} vmap {{ {vmap} }}")
    return lines


def _external_rules(
    t: str, svc: ServiceRecord, ip_kw: str, pod_cidr: str | None, has_external: bool
) -> list[str]:
    """external-: masquerade (Cluster), or short-circuit pod and node traffic (Local).

    Without a cluster CIDR (`pod_cidr` None: kube-proxy's no-op local detector) there is
    no "short-circuit pod traffic" rule (nftables/proxier.go, `if
    proxier.localDetector.IsImplemented()`).
    """
    ext, chain = external_chain(svc), service_chain(svc)
    if not svc.external_local:
        return [f"add rule {t} {ext} jump mark-for-masquerade", f"add rule {t} {ext} goto {chain}"]
    pods = (
        f"add rule {t} {ext} {ip_kw} saddr {pod_cidr} goto {chain} "
        'comment "short-circuit pod traffic"'
    )
    lines = [pods] if pod_cidr is not None else []
    lines += [
        f"add rule {t} {ext} fib saddr type local jump mark-for-masquerade "
        'comment "masquerade local traffic"',
        f'add rule {t} {ext} fib saddr type local goto {chain} comment "short-circuit local traffic"',
    ]
    if has_external:
        lines.append(f"add rule {t} {ext} goto {local_chain(svc)}")
    return lines


def _service_lines(
    svc: ServiceRecord, local: tuple[tuple[str, int], ...], config: ProxyConfig
) -> list[str]:
    family = family_of(svc)
    t = TABLE if family == 4 else TABLE6
    ip_kw = "ip" if family == 4 else "ip6"
    addr_type = "ipv4_addr" if family == 4 else "ipv6_addr"
    pod_cidr = config.pod_cidr(family)
    proto = svc.protocol.lower()
    key = f"{svc.cluster_ip} . {proto} . {svc.port}"
    lines = [f"# {svc.port_ref}", f"add element {t} cluster-ips {{ {svc.cluster_ip} }}"]
    if not svc.endpoints:
        lines.append(
            f'add element {t} no-endpoint-services {{ {key} comment "{svc.port_ref}" '
            ": goto reject-chain }"
        )
        lines += [
            f"add element {t} no-endpoint-services {{ {ip} . {proto} . {svc.port} "
            f'comment "{svc.port_ref}" : goto reject-chain }}'
            for ip in (*svc.external_ips, *svc.lb_ips)
        ]
        if svc.node_port is not None:
            lines.append(
                f"add element {t} no-endpoint-nodeports {{ {proto} . {svc.node_port} "
                f'comment "{svc.port_ref}" : goto reject-chain }}'
            )
        return lines
    chain, lchain = service_chain(svc), local_chain(svc)
    internal = lchain if svc.internal_local else chain
    # A traffic policy Local without an endpoint on this node: that traffic is dropped.
    has_internal = bool(local) or not svc.internal_local
    has_external = bool(local) or not svc.external_local
    uses_cluster = not svc.internal_local or externally_accessible(svc)
    uses_local = bool(local) and (svc.internal_local or svc.external_local)
    eps = [endpoint_chain(svc, ip, port) for ip, port in svc.endpoints]
    if svc.affinity is not None:
        lines += [
            f"add set {t} {affinity_set(svc, ip, port)} {{ type {addr_type} ; "
            f"flags dynamic,timeout ; timeout {svc.affinity}s ; }}"
            for ip, port in svc.endpoints
        ]
    # Every chain is declared before a rule jumps to it: nft -f resolves goto targets.
    policy = [(chain, svc.endpoints)] if uses_cluster else []
    policy += [(lchain, local)] if uses_local else []
    lines += [f"add chain {t} {c}" for c, _ in policy]
    lines += [f"add chain {t} {ep}" for ep in eps]
    for c, endpoints in policy:
        # The masquerade of off-cluster sources needs a local detector (a cluster CIDR).
        # kube-proxy matches the Service's protocol and port too: kubernetes/kubernetes
        # pkg/proxy/nftables/proxier.go, syncProxyRules, "Set up internal traffic
        # handling", the localDetector.IsImplemented() branch (`ipX daddr ClusterIP
        # protocol dport Port IfNotLocalNFT jump mark-for-masquerade`); its
        # proxier_test.go expects `ip daddr 172.30.0.41 tcp dport 80 ip saddr !=
        # 10.0.0.0/8 jump mark-for-masquerade`. (Older releases had no port match.)
        if c == internal and pod_cidr is not None:
            lines.append(
                f"add rule {t} {c} {ip_kw} daddr {svc.cluster_ip} {proto} dport {svc.port} "
                f"{ip_kw} saddr != {pod_cidr} jump mark-for-masquerade"
            )
        lines += _policy_rules(t, c, svc, endpoints, ip_kw)
    for (ip, port), ep in zip(svc.endpoints, eps, strict=True):
        lines.append(f"add rule {t} {ep} {ip_kw} saddr {ip} jump mark-for-masquerade")
        if svc.affinity is not None:
            lines.append(
                f"add rule {t} {ep} update @{affinity_set(svc, ip, port)} {{ {ip_kw} saddr }}"
            )
        lines.append(f"add rule {t} {ep} meta l4proto {proto} dnat to {join_host_port(ip, port)}")
    if has_internal:
        lines.append(f"add element {t} service-ips {{ {key} : goto {internal} }}")
    else:
        lines.append(
            f'add element {t} no-endpoint-services {{ {key} comment "{svc.port_ref}" : drop }}'
        )
    ext = external_chain(svc)
    if externally_accessible(svc):
        lines += [
            f"add chain {t} {ext}",
            *_external_rules(t, svc, ip_kw, pod_cidr, has_external),
        ]
    # External and LoadBalancer IPs share service-ips with the ClusterIP, to external-.
    lines += [
        f"add element {t} service-ips {{ {ip} . {proto} . {svc.port} : goto {ext} }}"
        for ip in (*svc.external_ips, *svc.lb_ips)
    ]
    if svc.lb_ips and svc.source_ranges:
        # Hooked before DNAT (filter-prerouting-pre-dnat, priority -110): a refused
        # source never reaches service-ips. The ranges hold no node address, so no
        # allow-from-node LB IPs join the set.
        fw = firewall_chain(svc)
        ranges = " , ".join(svc.source_ranges)
        lines += [
            f"add chain {t} {fw}",
            f"add rule {t} {fw} {ip_kw} saddr != {{ {ranges} }} drop",
            *(
                f"add element {t} firewall-ips {{ {ip} . {proto} . {svc.port} : goto {fw} }}"
                for ip in svc.lb_ips
            ),
        ]
    if not has_external:
        lines += [
            f'add element {t} no-endpoint-services {{ {ip} . {proto} . {svc.port} comment "{svc.port_ref}" : drop }}'
            for ip in (*svc.external_ips, *svc.lb_ips)
        ]
    if svc.node_port is not None:
        lines.append(
            f"add element {t} service-nodeports {{ {proto} . {svc.node_port} : goto {ext} }}"
        )
        if not has_external:
            lines.append(
                f"add element {t} no-endpoint-nodeports {{ {proto} . {svc.node_port} "
                f'comment "{svc.port_ref}" : drop }}'
            )
    return lines


def render(
    services: Iterable[ServiceRecord],
    node_ips: Iterable[str] = (),
    family: int = 4,
    local_ips: Iterable[str] = (),
    config: ProxyConfig = DEFAULT_CONFIG,
) -> str:
    """The full `nft -f` input of one family's table for its Service ports and node addresses.

    Service ports and node addresses of the other family are left out: they belong to
    the other proxier's table. `local_ips` (the node's pod IPs) tell which
    endpoints are this node's, for traffic policy Local; `config` is kube-proxy's (its
    cluster CIDRs decide the masquerade of off-cluster sources).
    """
    ips = tuple(local_ips)
    table = TABLE if family == 4 else TABLE6
    lines = [_header(family)]
    lines += [
        f"add element {table} nodeport-ips {{ {ip} }}"
        for ip in node_ips
        if (":" in ip) == (family == 6)
    ]
    for svc in services:
        if family_of(svc) == family:
            lines += _service_lines(svc, local_endpoints(svc, ips), config)
    return "\n".join(lines) + "\n"
