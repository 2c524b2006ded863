"""kube-proxy's iptables mode, rendered as the iptables-restore input kube-proxy writes."""

from __future__ import annotations

from collections.abc import Iterable

from podpath.lab.names import ext_chain, sep_chain, svc_chain
from podpath.lab.records import ServiceRecord

CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
# The IPv6 family of a dual-stack or IPv6 cluster (kube-proxy runs one proxier per family).
CLUSTER_CIDR6 = "fd00:10:244::/56"
SERVICE_CIDR6 = "fd00:10:96::/112"
MASQ_MARK = "0x4000"


def _comment(text: str) -> str:
    # kube-proxy quotes a comment only when it holds spaces (proxier.go writes the
    # quotes itself in those format strings).
    return f'"{text}"' if " " in text else text


def join_host_port(ip: str, port: int) -> str:
    """An endpoint as kube-proxy writes it (net.JoinHostPort): 10.0.0.1:80, [fd00::1]:80."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _cluster_cidr(svc: ServiceRecord) -> str:
    return CLUSTER_CIDR6 if ":" in svc.cluster_ip else CLUSTER_CIDR


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


def _probability(index: int, count: int) -> str:
    # kube-proxy: fmt.Sprintf("%0.10f", 1.0/float64(n-i)); the last endpoint has none.
    return f"{1.0 / float(count - index):0.10f}"


def _nat_service(svc: ServiceRecord) -> tuple[list[str], list[str], list[str]]:
    """(chains, KUBE-SERVICES rules, other rules) of the nat table for one service port."""
    name = svc.port_ref
    pm = _proto_match(svc.protocol)
    chains: list[str] = []
    services: list[str] = []
    rules: list[str] = []
    if not svc.endpoints:
        return chains, services, rules
    chains.append(svc.svc_chain)
    services.append(
        f"-A KUBE-SERVICES -m comment --comment {_comment(name + ' cluster IP')} {pm} "
        f"-d {svc.cluster_ip} --dport {svc.port} -j {svc.svc_chain}"
    )
    rules.append(
        f"-A {svc.svc_chain} -m comment --comment {_comment(name + ' cluster IP')} {pm} "
        f"-d {svc.cluster_ip} --dport {svc.port} ! -s {_cluster_cidr(svc)} -j KUBE-MARK-MASQ"
    )
    if svc.affinity is not None:
        # ClientIP affinity: a client seen within the timeout goes back to its endpoint.
        for (ip, port), sep in zip(svc.endpoints, svc.sep_chains, strict=True):
            endpoint = join_host_port(ip, port)
            rules.append(
                f"-A {svc.svc_chain} -m comment --comment {_comment(f'{name} -> {endpoint}')} "
                f"-m recent --name {sep} --rcheck --seconds {svc.affinity} --reap -j {sep}"
            )
    count = len(svc.endpoints)
    for index, ((ip, port), sep) in enumerate(zip(svc.endpoints, svc.sep_chains, strict=True)):
        stat = (
            f" -m statistic --mode random --probability {_probability(index, count)}"
            if index < count - 1
            else ""
        )
        rules.append(
            f"-A {svc.svc_chain} -m comment --comment {_comment(f'{name} -> {join_host_port(ip, port)}')}"
            f"{stat} -j {sep}"
        )
    for (ip, port), sep in zip(svc.endpoints, svc.sep_chains, strict=True):
        chains.append(sep)
        rules.append(f"-A {sep} -m comment --comment {_comment(name)} -s {ip} -j KUBE-MARK-MASQ")
        recent = f"-m recent --name {sep} --set " if svc.affinity is not None else ""
        rules.append(
            f"-A {sep} -m comment --comment {_comment(name)} {recent}{pm} "
            f"-j DNAT --to-destination {join_host_port(ip, port)}"
        )
    if svc.node_port is not None:
        ext = ext_chain(name, svc.protocol)
        chains.append(ext)
        rules.append(
            f"-A KUBE-NODEPORTS -m comment --comment {_comment(name)} {pm} "
            f"--dport {svc.node_port} -j {ext}"
        )
        rules.append(
            f"-A {ext} -m comment --comment "
            f"{_comment(f'masquerade traffic for {name} external destinations')} -j KUBE-MARK-MASQ"
        )
        rules.append(f"-A {ext} -j {svc.svc_chain}")
    return chains, services, rules


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


def restore_input(services: Iterable[ServiceRecord], *, jumps: bool = True, family: int = 4) -> str:
    """iptables-restore input (for --noflush) programming the given service ports.

    Declared chains are flushed and refilled by each load; the jumps from the built-in
    chains (which kube-proxy inserts once) are written only when `jumps` is true. With
    family 6 it is ip6tables-restore input for the IPv6 Services (pass only those):
    the same chains, bracketed endpoints, and no IPv4 localnet rule.
    """
    svcs = list(services)
    nat_chains: list[str] = []
    nat_services: list[str] = []
    nat_rules: list[str] = []
    reject: list[str] = []
    for svc in svcs:
        chains, kube_services, rules = _nat_service(svc)
        nat_chains += chains
        nat_services += kube_services
        nat_rules += rules
        if not svc.endpoints:
            reject.append(
                f"-A KUBE-SERVICES -m comment --comment {_comment(svc.port_ref + ' has no endpoints')} "
                f"{_proto_match(svc.protocol)} -d {svc.cluster_ip} --dport {svc.port} -j REJECT"
            )
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
        *reject,
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
