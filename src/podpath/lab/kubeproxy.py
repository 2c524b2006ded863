"""kube-proxy's iptables mode, rendered as the iptables-restore input kube-proxy writes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from podpath.lab.names import ext_chain, port_proto_hash, sep_chain, svc_chain, svl_chain
from podpath.lab.records import ServiceRecord

CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
# The IPv6 family of a dual-stack or IPv6 cluster (kube-proxy runs one proxier per family).
CLUSTER_CIDR6 = "fd00:10:244::/56"
SERVICE_CIDR6 = "fd00:10:96::/112"
MASQ_MARK = "0x4000"


@dataclass(frozen=True)
class ProxyConfig:
    """What of kube-proxy's configuration (KubeProxyConfiguration) the lab's rules depend on.

    `cluster_cidrs` is `clusterCIDR` (comma-separated there, one per family), read with
    detectLocalMode at its default, ClusterCIDR: each family's proxier tells pod traffic
    by that family's CIDR or, when there is none, gets kube-proxy's no-op local detector
    (kubernetes/kubernetes cmd/kube-proxy/app/server_linux.go getLocalDetector: "no cluster
    CIDR defined" -> "Defaulting to no-op detect-local"; pkg/proxy/util/localdetector.go
    NewNoOpLocalDetector). The proxiers write the rules that need a detector only `if
    proxier.localDetector.IsImplemented()` (pkg/proxy/iptables/proxier.go and
    pkg/proxy/nftables/proxier.go): the ClusterIP's `! -s CIDR -j KUBE-MARK-MASQ` and a
    Local external policy's "pod traffic" short-circuit.
    """

    cluster_cidrs: tuple[str, ...] = (CLUSTER_CIDR, CLUSTER_CIDR6)

    def pod_cidr(self, family: int) -> str | None:
        """The family's cluster CIDR (the first, as MapCIDRsByIPFamily's), None: no detector."""
        return next((c for c in self.cluster_cidrs if (":" in c) == (family == 6)), None)


# kubeadm's and kind's clusters: --cluster-cidr is the pod network.
DEFAULT_CONFIG = ProxyConfig()
# EKS: the kube-proxy-config ConfigMap EKS installs says `clusterCIDR: ""` and no
# detectLocalMode, with masqueradeAll false (the ConfigMap quoted in
# https://github.com/aws/containers-roadmap/issues/142); pods have VPC addresses, and
# EKS leaves the CIDR out because the VPC's ranges can change after the cluster is made
# (https://github.com/awslabs/amazon-eks-ami/issues/152). So a pod's traffic to a
# ClusterIP keeps its source: nothing masquerades it but the hairpin rule.
EKS_CONFIG = ProxyConfig(cluster_cidrs=())


def _comment(text: str) -> str:
    # kube-proxy quotes a comment only when it holds spaces (proxier.go writes the
    # quotes itself in those format strings).
    return f'"{text}"' if " " in text else text


def join_host_port(ip: str, port: int) -> str:
    """An endpoint as kube-proxy writes it (net.JoinHostPort): 10.0.0.1:80, [fd00::1]:80."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _pod_cidr(svc: ServiceRecord, config: ProxyConfig) -> str | None:
    """The local detector's CIDR of the Service's family (its proxier's), None: no detector."""
    return config.pod_cidr(6 if ":" in svc.cluster_ip else 4)


def _proto_match(protocol: str) -> str:
    proto = protocol.lower()
    return f"-m {proto} -p {proto}"


def service_chains(svc: ServiceRecord) -> tuple[str, tuple[str, ...]]:
    """The KUBE-SVC chain and KUBE-SEP chains (endpoint order) of a service port."""
    svc_name = svc.port_ref
    seps = tuple(
        sep_chain(svc_name, svc.protocol, join_host_port(ip, port)) for ip, port in svc.endpoints
    )
    return svc_chain(svc_name, svc.protocol), seps


def fw_chain(svc: ServiceRecord) -> str:
    """KUBE-FW-<hash>: a LoadBalancer IP's source-range check (servicePortFirewallChainName)."""
    return "KUBE-FW-" + port_proto_hash(svc.port_ref, svc.protocol)


def externally_accessible(svc: ServiceRecord) -> bool:
    """A NodePort, external IP or LoadBalancer IP: kube-proxy gives it a KUBE-EXT chain."""
    return svc.node_port is not None or bool(svc.external_ips or svc.lb_ips)


def _probability(index: int, count: int) -> str:
    # kube-proxy: fmt.Sprintf("%0.10f", 1.0/float64(n-i)); the last endpoint has none.
    return f"{1.0 / float(count - index):0.10f}"


def local_endpoints(svc: ServiceRecord, local_ips: Iterable[str]) -> tuple[tuple[str, int], ...]:
    """The endpoints of a Service port that are pods of this node (`local_ips`)."""
    mine = set(local_ips)
    return tuple((ip, port) for ip, port in svc.endpoints if ip in mine)


def _balance(
    chain: str, svc: ServiceRecord, endpoints: tuple[tuple[str, int], ...], pm: str
) -> list[str]:
    """A policy chain's rules (KUBE-SVC- or KUBE-SVL-): affinity, then one jump per endpoint."""
    name = svc.port_ref
    seps = dict(zip(svc.endpoints, svc.sep_chains, strict=True))
    rules: list[str] = []
    if svc.affinity is not None:
        # ClientIP affinity: a client seen within the timeout goes back to its endpoint.
        for ip, port in endpoints:
            endpoint = join_host_port(ip, port)
            rules.append(
                f"-A {chain} -m comment --comment {_comment(f'{name} -> {endpoint}')} "
                f"-m recent --name {seps[(ip, port)]} --rcheck --seconds {svc.affinity} --reap "
                f"-j {seps[(ip, port)]}"
            )
    count = len(endpoints)
    for index, (ip, port) in enumerate(endpoints):
        stat = (
            f" -m statistic --mode random --probability {_probability(index, count)}"
            if index < count - 1
            else ""
        )
        rules.append(
            f"-A {chain} -m comment --comment {_comment(f'{name} -> {join_host_port(ip, port)}')}"
            f"{stat} -j {seps[(ip, port)]}"
        )
    return rules


def _ext_rules(svc: ServiceRecord, ext: str, has_external: bool, pod_cidr: str | None) -> list[str]:
    """KUBE-EXT-: masquerade (Cluster), or short-circuit pod and node traffic (Local).

    Without a cluster CIDR (`pod_cidr` None) there is no pod short-circuit: pods' traffic
    to an external destination then takes the Local policy, as outside clients' does.
    """
    name = svc.port_ref
    if not svc.external_local:
        return [
            f"-A {ext} -m comment --comment "
            f"{_comment(f'masquerade traffic for {name} external destinations')} -j KUBE-MARK-MASQ",
            f"-A {ext} -j {svc.svc_chain}",
        ]
    # Pods (when kube-proxy can tell them) and the node itself may use any endpoint
    # (kube-proxy's short-circuit); the rest (outside clients, source kept) only this
    # node's, through KUBE-SVL.
    pods = (
        f"-A {ext} -m comment --comment "
        f"{_comment(f'pod traffic for {name} external destinations')} "
        f"-s {pod_cidr} -j {svc.svc_chain}"
    )
    rules = [pods] if pod_cidr is not None else []
    rules += [
        f"-A {ext} -m comment --comment "
        f"{_comment(f'masquerade LOCAL traffic for {name} external destinations')} "
        "-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
        f"-A {ext} -m comment --comment "
        f"{_comment(f'route LOCAL traffic for {name} external destinations')} "
        f"-m addrtype --src-type LOCAL -j {svc.svc_chain}",
    ]
    if has_external:
        rules.append(f"-A {ext} -j {svl_chain(name, svc.protocol)}")
    return rules


def _external_destinations(svc: ServiceRecord, ext: str, pm: str) -> list[str]:
    """KUBE-SERVICES rules of external IPs (to KUBE-EXT) and LB IPs (KUBE-FW with ranges)."""
    name = svc.port_ref
    lb_target = fw_chain(svc) if svc.source_ranges else ext
    rules = [
        f"-A KUBE-SERVICES -m comment --comment {_comment(name + ' external IP')} {pm} "
        f"-d {ip} --dport {svc.port} -j {ext}"
        for ip in svc.external_ips
    ]
    rules += [
        f"-A KUBE-SERVICES -m comment --comment {_comment(name + ' loadbalancer IP')} {pm} "
        f"-d {ip} --dport {svc.port} -j {lb_target}"
        for ip in svc.lb_ips
    ]
    return rules


def _firewall_drops(svc: ServiceRecord, pm: str) -> list[str]:
    """KUBE-PROXY-FIREWALL (filter): what KUBE-FW did not DNAT still has the LB IP: drop it."""
    if not svc.source_ranges:
        return []
    comment = _comment(f"{svc.port_ref} traffic not accepted by {fw_chain(svc)}")
    return [
        f"-A KUBE-PROXY-FIREWALL -m comment --comment {comment} {pm} "
        f"-d {ip} --dport {svc.port} -j DROP"
        for ip in svc.lb_ips
    ]


def _fw_rules(svc: ServiceRecord, ext: str) -> list[str]:
    """KUBE-FW-: an allowed source range goes on to KUBE-EXT; the rest falls through."""
    name = svc.port_ref
    fw = fw_chain(svc)
    head = f"-A {fw} -m comment --comment {_comment(name + ' loadbalancer IP')}"
    # The lab's source ranges hold no node address, so kube-proxy's allow-from-node
    # rules (-s LB-IP) are not written.
    rules = [f"{head} -s {cidr} -j {ext}" for cidr in svc.source_ranges]
    rules.append(
        f"-A {fw} -m comment --comment "
        f"{_comment(f'other traffic to {name} will be dropped by KUBE-PROXY-FIREWALL')}"
    )
    return rules


def _off_cluster_masq(svc: ServiceRecord, chain: str, pm: str, pod_cidr: str | None) -> list[str]:
    """The ClusterIP's masquerade of sources outside the cluster CIDR (proxier.go: for a
    static route to the Service range through any node), written only with a local detector."""
    if pod_cidr is None:
        return []
    return [
        f"-A {chain} -m comment --comment {_comment(svc.port_ref + ' cluster IP')} {pm} "
        f"-d {svc.cluster_ip} --dport {svc.port} ! -s {pod_cidr} -j KUBE-MARK-MASQ"
    ]


def _nat_service(
    svc: ServiceRecord, local: tuple[tuple[str, int], ...], config: ProxyConfig
) -> tuple[list[str], list[str], list[str], list[str]]:
    """(nat chains, nat KUBE-SERVICES rules, other nat rules, filter rules) of one service port.

    `local` holds the endpoints on this node: with a traffic policy Local, a node
    without any drops that traffic in the filter table ("has no local endpoints").
    """
    name = svc.port_ref
    pm = _proto_match(svc.protocol)
    chains: list[str] = []
    services: list[str] = []
    rules: list[str] = []
    filters: list[str] = []
    if not svc.endpoints:
        return chains, services, rules, filters
    svl = svl_chain(name, svc.protocol)
    internal = svl if svc.internal_local else svc.svc_chain
    has_internal = bool(local) or not svc.internal_local
    has_external = bool(local) or not svc.external_local
    uses_cluster = not svc.internal_local or externally_accessible(svc)
    uses_local = bool(local) and (svc.internal_local or svc.external_local)
    drop = f"-m comment --comment {_comment(name + ' has no local endpoints')}"
    if has_internal:
        services.append(
            f"-A KUBE-SERVICES -m comment --comment {_comment(name + ' cluster IP')} {pm} "
            f"-d {svc.cluster_ip} --dport {svc.port} -j {internal}"
        )
    else:
        filters.append(
            f"-A KUBE-SERVICES {drop} {pm} -d {svc.cluster_ip} --dport {svc.port} -j DROP"
        )
    ext = ext_chain(name, svc.protocol)
    services += _external_destinations(svc, ext, pm)
    filters += _firewall_drops(svc, pm)
    if not has_external:
        # What the EXT chain did not short-circuit (outside clients) has nowhere to go.
        filters += [
            f"-A KUBE-EXTERNAL-SERVICES {drop} {pm} -d {ip} --dport {svc.port} -j DROP"
            for ip in (*svc.external_ips, *svc.lb_ips)
        ]
    pod_cidr = _pod_cidr(svc, config)
    masq = _off_cluster_masq(svc, internal, pm, pod_cidr)
    if uses_cluster:
        chains.append(svc.svc_chain)
        rules += masq if internal == svc.svc_chain else []
        rules += _balance(svc.svc_chain, svc, svc.endpoints, pm)
    if uses_local:
        chains.append(svl)
        rules += masq if internal == svl and has_internal else []
        rules += _balance(svl, svc, local, pm)
    for (ip, port), sep in zip(svc.endpoints, svc.sep_chains, strict=True):
        chains.append(sep)
        rules.append(f"-A {sep} -m comment --comment {_comment(name)} -s {ip} -j KUBE-MARK-MASQ")
        recent = f"-m recent --name {sep} --set " if svc.affinity is not None else ""
        rules.append(
            f"-A {sep} -m comment --comment {_comment(name)} {recent}{pm} "
            f"-j DNAT --to-destination {join_host_port(ip, port)}"
        )
    if externally_accessible(svc):
        chains.append(ext)
        rules += _ext_rules(svc, ext, has_external, pod_cidr)
    if svc.lb_ips and svc.source_ranges:
        chains.append(fw_chain(svc))
        rules += _fw_rules(svc, ext)
    if svc.node_port is not None:
        rules.append(
            f"-A KUBE-NODEPORTS -m comment --comment {_comment(name)} {pm} "
            f"--dport {svc.node_port} -j {ext}"
        )
        if not has_external:
            filters.append(
                f"-A KUBE-EXTERNAL-SERVICES {drop} -m addrtype --dst-type LOCAL {pm} "
                f"--dport {svc.node_port} -j DROP"
            )
    return chains, services, rules, filters


_FILTER_JUMPS = (
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    "-A INPUT -j KUBE-FIREWALL",
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
    '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    "-A OUTPUT -j KUBE-FIREWALL",
)

_FILTER_FIXED = (
    '-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
    "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
    f'-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT',
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
)

_NAT_JUMPS = (
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
)

_NAT_FIXED = (
    f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
    f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
    f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
)


# What kubelet creates in every mode (the backend hint and canaries, pkg/kubelet
# kubelet_network_linux.go): an nftables-mode node still has these iptables chains.
KUBELET_CHAINS = """\
*mangle
:KUBE-IPTABLES-HINT - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
*nat
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
*filter
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
"""


def _chain_decls(chains: Iterable[str]) -> list[str]:
    return [f":{chain} - [0:0]" for chain in chains]


def restore_input(
    services: Iterable[ServiceRecord],
    *,
    jumps: bool = True,
    family: int = 4,
    local_ips: Iterable[str] = (),
    config: ProxyConfig = DEFAULT_CONFIG,
) -> str:
    """iptables-restore input (for --noflush) programming the given service ports.

    Declared chains are flushed and refilled by each load; the jumps from the built-in
    chains (which kube-proxy inserts once) are written only when `jumps` is true. With
    family 6 it is ip6tables-restore input for the IPv6 Services (pass only those):
    the same chains, bracketed endpoints, and no IPv4 localnet rule. `local_ips`
    (the node's pod IPs) tell which endpoints are this node's, for traffic policy Local;
    `config` is kube-proxy's (its cluster CIDRs decide the masquerade of off-cluster sources).
    """
    svcs = list(services)
    ips = tuple(local_ips)
    nat_chains: list[str] = []
    nat_services: list[str] = []
    nat_rules: list[str] = []
    filter_rules: list[str] = []
    for svc in svcs:
        chains, kube_services, rules, filters = _nat_service(svc, local_endpoints(svc, ips), config)
        nat_chains += chains
        nat_services += kube_services
        nat_rules += rules
        filter_rules += filters
        if not svc.endpoints:
            comment = _comment(svc.port_ref + " has no endpoints")
            pm = _proto_match(svc.protocol)
            filter_rules.append(
                f"-A KUBE-SERVICES -m comment --comment {comment} "
                f"{pm} -d {svc.cluster_ip} --dport {svc.port} -j REJECT"
            )
            filter_rules += [
                f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {comment} "
                f"{pm} -d {ip} --dport {svc.port} -j REJECT"
                for ip in (*svc.external_ips, *svc.lb_ips)
            ]
    nat_services.append(
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be '
        'the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'
    )
    lines = [
        "*mangle",
        *_chain_decls(("KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY")),
        "COMMIT",
        "*filter",
        *_chain_decls(
            (
                "KUBE-EXTERNAL-SERVICES",
                "KUBE-FIREWALL",
                "KUBE-FORWARD",
                "KUBE-KUBELET-CANARY",
                "KUBE-NODEPORTS",
                "KUBE-PROXY-CANARY",
                "KUBE-PROXY-FIREWALL",
                "KUBE-SERVICES",
            )
        ),
        *(_FILTER_JUMPS if jumps else ()),
        *(_FILTER_FIXED if family == 4 else _FILTER_FIXED[1:]),
        *filter_rules,
        "COMMIT",
        "*nat",
        *_chain_decls(
            (
                "KUBE-KUBELET-CANARY",
                "KUBE-MARK-MASQ",
                "KUBE-NODEPORTS",
                "KUBE-POSTROUTING",
                "KUBE-PROXY-CANARY",
                "KUBE-SERVICES",
            )
        ),
        *_chain_decls(nat_chains),
        *(_NAT_JUMPS if jumps else ()),
        *nat_services,
        *_NAT_FIXED,
        *nat_rules,
        "COMMIT",
        "",
    ]
    return "\n".join(lines)


def _tables(text: str) -> dict[str, list[str]]:
    """Lines of each table (*name ... COMMIT) of iptables-save/restore text, comments dropped."""
    tables: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:].strip(), [])
        elif line == "COMMIT" or line.startswith("#") or not line.strip():
            continue
        elif current is not None:
            current.append(line)
    return tables


def _chain_of(line: str) -> str:
    """The chain a declaration (:NAME ...) or rule (-A NAME ...) belongs to."""
    if line.startswith(":"):
        return line[1:].split()[0]
    return line.split()[1]


def merge_for_restore(saved: str, ours: str) -> str:
    """A full (flushing) restore input: `ours`, plus every chain of `saved` that ours omits.

    `iptables-restore --noflush` on the nft backend costs seconds per thousand rules
    once the chains exist; a flushing restore of the merged tables costs about one
    second for 10k Services and keeps what others (CNI portmap) wrote.
    """
    old, new = _tables(saved), _tables(ours)
    lines: list[str] = []
    for table, body in new.items():
        declared = {_chain_of(x) for x in body if x.startswith(":")}
        # Built-in chains (policy not "-") keep their saved rules, e.g. the jumps into
        # KUBE-SERVICES and CNI-HOSTPORT-DNAT.
        builtin = {
            _chain_of(x) for x in old.get(table, []) if x.startswith(":") and x.split()[1] != "-"
        }
        kept = [x for x in old.get(table, []) if _chain_of(x) not in declared]
        decls = [x for x in kept if x.startswith(":")]
        rules = [x for x in kept if not x.startswith(":")]
        ours_decls = [x for x in body if x.startswith(":") and _chain_of(x) not in builtin]
        ours_rules = [x for x in body if not x.startswith(":")]
        lines += [f"*{table}", *decls, *ours_decls, *rules, *ours_rules, "COMMIT"]
    return "\n".join(lines) + "\n"
