"""kube-proxy's nftables mode, rendered as the `nft -f` input kube-proxy writes.

The shape follows kube-proxy's proxier (see the realworld fixture
k8s-nftables-proxier-test-overall-rules-nft-f-dump.txt): a `table ip kube-proxy`
with the service-ips verdict map, one service-HASH-ns/name/proto/port chain per
Service port (numgen dispatch), one endpoint-HASH-...__IP/PORT chain per endpoint,
and no-endpoint-services entries that go to reject-chain.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable

from podpath.lab import ServiceRecord

CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"

_HEADER = """\
add table ip kube-proxy { comment "rules for kube-proxy" ; }
flush table ip kube-proxy
add set ip kube-proxy cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }
add set ip kube-proxy nodeport-ips { type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }
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
add rule ip kube-proxy filter-forward ct state new jump service-endpoints-check
add rule ip kube-proxy filter-forward ct state new jump cluster-ips-check
add rule ip kube-proxy filter-input ct state new jump nodeport-endpoints-check
add rule ip kube-proxy filter-input ct state new jump service-endpoints-check
add rule ip kube-proxy filter-output ct state new jump service-endpoints-check
add rule ip kube-proxy filter-output ct state new jump cluster-ips-check
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
    """kube-proxy's hashAndTruncate: base32 of sha256, first 8 characters."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:8]


def _port_path(svc: ServiceRecord) -> str:
    # ns/name/proto/port-name, as servicePortChainNameBase writes it.
    return f"{svc.namespace}/{svc.name}/{svc.protocol.lower()}/{svc.port_name}"


def service_chain(svc: ServiceRecord) -> str:
    """service-HASH-ns/name/proto/port."""
    path = _port_path(svc)
    return f"service-{chain_hash(path)}-{path}"


def endpoint_chain(svc: ServiceRecord, ip: str, port: int) -> str:
    """endpoint-HASH-ns/name/proto/port__IP/PORT."""
    path = f"{_port_path(svc)}__{ip}/{port}"
    return f"endpoint-{chain_hash(path)}-{path}"


def _service_lines(svc: ServiceRecord) -> list[str]:
    t = "ip kube-proxy"
    proto = svc.protocol.lower()
    key = f"{svc.cluster_ip} . {proto} . {svc.port}"
    lines = [f"# {svc.port_ref}", f"add element {t} cluster-ips {{ {svc.cluster_ip} }}"]
    if not svc.endpoints:
        lines.append(
            f'add element {t} no-endpoint-services {{ {key} comment "{svc.port_ref}" '
            ": goto reject-chain }"
        )
        return lines
    chain = service_chain(svc)
    eps = [endpoint_chain(svc, ip, port) for ip, port in svc.endpoints]
    vmap = " , ".join(f"{i} : goto {ep}" for i, ep in enumerate(eps))
    # Every chain is declared before a rule jumps to it: nft -f resolves goto targets.
    lines += [f"add chain {t} {chain}", *(f"add chain {t} {ep}" for ep in eps)]
    lines += [
        f"add rule {t} {chain} ip daddr {svc.cluster_ip} ip saddr != {CLUSTER_CIDR} "
        "jump mark-for-masquerade",
        f"add rule {t} {chain} numgen random mod {len(eps)} vmap {{ {vmap} }}",
    ]
    for (ip, port), ep in zip(svc.endpoints, eps, strict=True):
        lines += [
            f"add rule {t} {ep} ip saddr {ip} jump mark-for-masquerade",
            f"add rule {t} {ep} meta l4proto {proto} dnat to {ip}:{port}",
        ]
    lines.append(f"add element {t} service-ips {{ {key} : goto {chain} }}")
    return lines


def render(services: Iterable[ServiceRecord]) -> str:
    """The full `nft -f` input for these Service ports."""
    lines = [_HEADER.replace("SERVICE_CIDR", SERVICE_CIDR).rstrip("\n")]
    for svc in services:
        lines += _service_lines(svc)
    return "\n".join(lines) + "\n"
