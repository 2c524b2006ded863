"""The kube-proxy view of a ruleset: Services, their addresses and endpoint shares.

kube-proxy names everything in rule comments (`ns/name:port cluster IP`, `... -> ip:port`,
`portal for ns/name:port` in the 2015 userspace era) and chains (KUBE-SVC-/SVL-/EXT-/FW-/
XLB-/SEP- plus one hash per service port). Services are rebuilt from those, never from the
API server. Works on partial dumps (grep fragments): what is missing stays None/empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from podpath.netfilter.iptables_save import Ruleset
from podpath.netfilter.model import Rule

# "ns/name:port cluster IP", "ns/name external IP", "portal for ns/name:", "ns/name:p -> ip:port"
_COMMENT = re.compile(
    r"^(?:portal for )?(?P<ns>[A-Za-z0-9][-A-Za-z0-9.]*)/(?P<name>[A-Za-z0-9][-A-Za-z0-9.]*)"
    r"(?::(?P<port>[-A-Za-z0-9.]*))?(?:\s+(?P<rest>.*))?$")
_ARROW = re.compile(r"->\s*\[?([0-9A-Fa-f.:]+?)\]?:(\d+)\s*$")
_HASH_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-XLB-")
_MAX_DEPTH = 4


@dataclass(frozen=True)
class Endpoint:
    """One backend of a Service port, with the share of new connections it gets."""

    ip: str
    port: int | None
    probability: float
    sep_chain: str  # KUBE-SEP-... (iptables) or endpoint-... (nftables)
    dnat_rule_text: str  # the rule that rewrites the destination, verbatim
    local: bool | None = None  # on this node (KUBE-SVL membership); None when unknown


@dataclass(frozen=True)
class Service:
    """One Service port as kube-proxy programmed it on this node."""

    namespace: str
    name: str
    port_name: str
    protocol: str
    cluster_ip: str | None
    port: int | None
    node_port: int | None = None
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    svc_chain: str | None = None
    endpoints: tuple[Endpoint, ...] = ()
    masquerade: str = "none"  # "all", "none", or "when source not in 10.244.0.0/16"...
    ext_chain: str | None = None
    fw_chain: str | None = None
    local_chain: str | None = None  # KUBE-SVL-/KUBE-XLB- (traffic policy Local)
    health_check_node_port: int | None = None
    source_ranges: tuple[str, ...] = ()  # loadBalancerSourceRanges from KUBE-FW-
    no_endpoints: str | None = None  # "REJECT"/"DROP" when kube-proxy rejects the port
    no_local_endpoints: str | None = None  # "DROP" for externalTrafficPolicy Local
    backend: str = "iptables"  # or "nftables"
    evidence: tuple[str, ...] = ()  # the rules/elements this was read from

    @property
    def key(self) -> str:
        """`ns/name:port` as kube-proxy writes it."""
        return f"{self.namespace}/{self.name}" + (f":{self.port_name}" if self.port_name else "")


@dataclass(frozen=True)
class KubeProxyMode:
    """Which mode and netfilter backend kube-proxy uses on this node, and why we think so."""

    mode: str | None  # "iptables", "ipvs", "nftables", or None (not found)
    backend: str | None  # "iptables-legacy", "iptables-nft", "nftables" (label of the ruleset)
    evidence: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def parse_service_comment(comment: str) -> tuple[str, str, str, str] | None:
    """(namespace, name, port name, remainder) from a kube-proxy rule comment."""
    found = _COMMENT.match(comment.strip())
    if not found:
        return None
    return (found.group("ns"), found.group("name"), found.group("port") or "",
            found.group("rest") or "")


def endpoint_shares(probabilities: Iterable[float | None]) -> tuple[float, ...]:
    """Each endpoint's share from chained `statistic` probabilities (None: no statistic).

    Rule k sees what rules 1..k-1 let through: share_k = p_k * prod(1 - p_i). A rule
    without `statistic` takes everything left.
    """
    shares: list[float] = []
    remaining = 1.0
    for p in probabilities:
        take = remaining if p is None else remaining * p
        shares.append(take)
        remaining -= take
    return tuple(shares)


@dataclass
class _Draft:
    """A Service being assembled from rules scattered over several chains."""

    namespace: str
    name: str
    port_name: str
    protocol: str = ""
    cluster_ip: str | None = None
    port: int | None = None
    node_port: int | None = None
    external_ips: list[str] = field(default_factory=list)
    lb_ips: list[str] = field(default_factory=list)
    svc_chain: str | None = None
    ext_chain: str | None = None
    fw_chain: str | None = None
    local_chain: str | None = None
    health: int | None = None
    no_endpoints: str | None = None
    no_local: str | None = None
    no_local_ips: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)


def _dst(rule: Rule) -> str | None:
    """The rule's exact positive destination address, without a /32 or /128."""
    for m in rule.matches_of("", "destination"):
        if not m.negated:
            addr, _, mask = m.value.partition("/")
            if mask in ("", "32", "128"):
                return addr
    return None


def _dport(rule: Rule) -> int | None:
    """The rule's single positive destination port."""
    for m in rule.matches:
        if m.option == "dport" and not m.negated and m.value.isdigit():
            return int(m.value)
    return None


def _proto(rule: Rule) -> str:
    """The rule's positive protocol, upper case as Kubernetes writes it, or ""."""
    for m in rule.matches_of("", "protocol"):
        if not m.negated:
            return m.value.upper()
    return ""


def _chain_hash(chain: str) -> str | None:
    """The per-service-port hash of a KUBE-SVC-/EXT-/FW-/SVL-/XLB- chain."""
    for prefix in _HASH_PREFIXES:
        if chain.startswith(prefix):
            return chain[len(prefix):]
    return None


class _Builder:
    """Collect Services from the nat (and filter) tables of one iptables ruleset."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.rs = ruleset
        self.drafts: dict[tuple[str, str, str, str], _Draft] = {}
        self.by_name: dict[tuple[str, str, str], _Draft] = {}  # ignoring the protocol
        self.by_hash: dict[str, _Draft] = {}
        self._services_masq: dict[str, Rule] | None = None

    def draft(self, rule: Rule, hint_chain: str | None = None) -> _Draft | None:
        """The draft a rule's comment names (created on first sight)."""
        parsed = None
        for comment in rule.comments:
            parsed = parse_service_comment(comment)
            if parsed:
                break
        hashed = _chain_hash(hint_chain) if hint_chain else None
        if parsed is None:
            return self.by_hash.get(hashed) if hashed else None
        ns, name, port_name, _ = parsed
        proto = _proto(rule)
        key = (ns, name, port_name, proto)
        found = self.drafts.get(key)
        if found is None and hashed and hashed in self.by_hash:
            found = self.by_hash[hashed]
        if found is None and not proto:
            # A rule without -p (KUBE-SVC jumps) names the port whatever its protocol.
            found = self.by_name.get((ns, name, port_name))
        if found is None:
            found = self.drafts[key] = _Draft(ns, name, port_name, proto)
            self.by_name.setdefault((ns, name, port_name), found)
        if hashed:
            self.by_hash.setdefault(hashed, found)
        return found

    def scan_services_chain(self, table: str, chain: str) -> None:
        """KUBE-SERVICES / KUBE-PORTALS-*: VIPs, ports and the chains they jump to."""
        for rule in self.rs.rules(table, chain):
            target = rule.target.name if rule.target else ""
            if target == "KUBE-MARK-MASQ":
                continue  # old kube-proxy put the masquerade rule here; read in masq()
            draft = self.draft(rule, target)
            if draft is None:
                continue
            rest = " ".join(rule.comments)
            dst, port = _dst(rule), _dport(rule)
            draft.evidence.append(rule.text)
            if "has no endpoints" in rest:
                draft.no_endpoints = target or draft.no_endpoints
                draft.cluster_ip = draft.cluster_ip or dst
                draft.port = draft.port or port
            elif "has no local endpoints" in rest:
                draft.no_local = target
                if dst:  # external or LB address: the comment does not say which
                    draft.no_local_ips.append(dst)
            elif "external IP" in rest:
                self._external(draft, dst, rest)
            elif "loadbalancer IP" in rest:
                if dst and dst not in draft.lb_ips:
                    draft.lb_ips.append(dst)
            elif "cluster IP" in rest or chain.startswith("KUBE-PORTALS-"):
                draft.cluster_ip = dst or draft.cluster_ip
                draft.port = port if port is not None else draft.port
            else:  # e.g. KUBE-PROXY-FIREWALL's "traffic not accepted by KUBE-FW-..."
                continue
            draft.port = draft.port if draft.port is not None else port
            self._link(draft, target)

    @staticmethod
    def _external(draft: _Draft, dst: str | None, rest: str) -> None:
        """Record an external or load-balancer address (the comment says which)."""
        if dst is None:
            return
        bucket = draft.lb_ips if "loadbalancer" in rest else draft.external_ips
        if dst not in bucket and dst not in draft.lb_ips:
            bucket.append(dst)

    @staticmethod
    def _link(draft: _Draft, target: str) -> None:
        """Remember which per-service chain a rule jumps to."""
        if target.startswith("KUBE-SVC-") and draft.svc_chain is None:
            draft.svc_chain = target
        elif target.startswith("KUBE-EXT-"):
            draft.ext_chain = target
        elif target.startswith("KUBE-FW-"):
            draft.fw_chain = target
        elif target.startswith(("KUBE-SVL-", "KUBE-XLB-")):
            draft.local_chain = target

    def scan_nodeports(self, table: str, chain: str) -> None:
        """KUBE-NODEPORTS / KUBE-NODEPORT-*: node ports and health-check ports."""
        for rule in self.rs.rules(table, chain):
            target = rule.target.name if rule.target else ""
            draft = self.draft(rule, target)
            port = _dport(rule)
            if draft is None or port is None:
                continue
            draft.evidence.append(rule.text)
            if "health check node port" in " ".join(rule.comments):
                draft.health = port
            else:
                draft.node_port = port
                self._link(draft, target)

    def finish(self, draft: _Draft) -> Service:
        """Resolve chains into endpoints and masquerade behaviour."""
        hashed = None
        for chain in (draft.svc_chain, draft.ext_chain, draft.fw_chain, draft.local_chain):
            if chain:
                hashed = _chain_hash(chain)
                break
        nat = "nat"
        if hashed:
            for prefix, attr in (("KUBE-SVC-", "svc_chain"), ("KUBE-EXT-", "ext_chain"),
                                 ("KUBE-FW-", "fw_chain")):
                if getattr(draft, attr) is None and self.rs.has_chain(nat, prefix + hashed):
                    setattr(draft, attr, prefix + hashed)
            for prefix in ("KUBE-SVL-", "KUBE-XLB-"):
                if draft.local_chain is None and self.rs.has_chain(nat, prefix + hashed) and (
                        self.rs.rules(nat, prefix + hashed)):
                    draft.local_chain = prefix + hashed
        self._cluster_ip_from_chains(draft)
        for ip in draft.no_local_ips:
            if ip not in draft.lb_ips and ip not in draft.external_ips:
                draft.external_ips.append(ip)
        local_seps = {e.sep_chain for e in self.endpoints(draft.local_chain)} if (
            draft.local_chain) else None
        endpoints = self.endpoints(draft.svc_chain or draft.local_chain)
        if local_seps is not None:
            endpoints = tuple(replace(e, local=e.sep_chain in local_seps) for e in endpoints)
        source_ranges = tuple(
            m.value for r in (self.rs.rules(nat, draft.fw_chain) if draft.fw_chain else ())
            for m in r.matches_of("", "source") if not m.negated)
        return Service(
            namespace=draft.namespace, name=draft.name, port_name=draft.port_name,
            protocol=draft.protocol or "TCP", cluster_ip=draft.cluster_ip, port=draft.port,
            node_port=draft.node_port, external_ips=tuple(draft.external_ips),
            load_balancer_ips=tuple(draft.lb_ips), svc_chain=draft.svc_chain,
            endpoints=endpoints, masquerade=self.masquerade(draft),
            ext_chain=draft.ext_chain, fw_chain=draft.fw_chain, local_chain=draft.local_chain,
            health_check_node_port=draft.health, source_ranges=source_ranges,
            no_endpoints=draft.no_endpoints, no_local_endpoints=draft.no_local,
            evidence=tuple(dict.fromkeys(draft.evidence)))

    def _cluster_ip_from_chains(self, draft: _Draft) -> None:
        """Fill a missing cluster IP from the KUBE-SVC/SVL "cluster IP" masquerade rule."""
        if draft.cluster_ip is not None:
            return
        for chain in (draft.svc_chain, draft.local_chain):
            for rule in self.rs.rules("nat", chain) if chain else ():
                if "cluster IP" in " ".join(rule.comments) and _dst(rule):
                    draft.cluster_ip = _dst(rule)
                    draft.port = draft.port if draft.port is not None else _dport(rule)
                    return

    def endpoints(self, chain: str | None, depth: int = 0) -> tuple[Endpoint, ...]:
        """Endpoints reached from a KUBE-SVC-like chain, with their shares."""
        if chain is None or depth > _MAX_DEPTH:
            return ()
        picks: list[tuple[Rule, float | None]] = []
        for rule in self.rs.rules("nat", chain):
            target = rule.target
            if target is None or target.name in ("KUBE-MARK-MASQ", "KUBE-MARK-DROP", "RETURN"):
                continue
            if any(m.option == "rcheck" for m in rule.matches):
                continue  # session affinity: repeats an endpoint for known clients
            prob = rule.first("probability")
            try:
                p = float(prob.value) if prob else None
            except ValueError:
                p = None
            picks.append((rule, p))
        shares = endpoint_shares(p for _, p in picks)
        out: list[Endpoint] = []
        for (rule, _), share in zip(picks, shares, strict=True):
            out.extend(self._endpoint(rule, share, depth))
        return tuple(out)

    def _endpoint(self, rule: Rule, share: float, depth: int) -> tuple[Endpoint, ...]:
        """The endpoint(s) one KUBE-SVC rule leads to."""
        target = rule.target
        assert target is not None
        if target.name == "DNAT":
            return (_dnat_endpoint(rule, share, rule.chain),)
        sep_rules = self.rs.rules("nat", target.name)
        dnat = next((r for r in sep_rules if r.target and r.target.name == "DNAT"), None)
        if dnat is not None:
            return (_dnat_endpoint(dnat, share, target.name),)
        if sep_rules:  # an intermediate chain (2015: KUBE-SVC -> KUBE-SVC -> DNAT)
            return tuple(replace(e, probability=e.probability * share)
                         for e in self.endpoints(target.name, depth + 1))
        # A fragment without the SEP chain: the comment still says "-> ip:port".
        for comment in rule.comments:
            arrow = _ARROW.search(comment)
            if arrow:
                return (Endpoint(arrow.group(1), int(arrow.group(2)), share, target.name, ""),)
        return ()

    def masquerade(self, draft: _Draft) -> str:
        """How kube-proxy masquerades traffic to this Service's cluster IP."""
        candidates = [r for r in self.rs.rules("nat", draft.svc_chain or "")
                      if r.target and r.target.name == "KUBE-MARK-MASQ"]
        if draft.cluster_ip:
            if self._services_masq is None:
                # Old kube-proxy: the masquerade rule sits in KUBE-SERVICES; index it once
                # (scanning 10k rules per Service would be quadratic).
                self._services_masq = {}
                for rule in self.rs.rules("nat", "KUBE-SERVICES"):
                    dst = _dst(rule)
                    if dst and rule.target and rule.target.name == "KUBE-MARK-MASQ":
                        self._services_masq.setdefault(dst, rule)
            old = self._services_masq.get(draft.cluster_ip)
            if old is not None:
                candidates.append(old)
        if not candidates:
            return "none"
        return describe_masquerade(candidates[0])


def describe_masquerade(rule: Rule) -> str:
    """A KUBE-MARK-MASQ rule's condition in words ("all" when unconditional)."""
    parts = []
    for m in rule.matches:
        if m.option == "source":
            parts.append(f"source {'not ' if m.negated else ''}in {m.value}")
        elif m.option == "in-interface":
            parts.append(f"{'not ' if m.negated else ''}from interface {m.value}")
        elif m.option in ("src-type", "dst-type"):
            parts.append(f"{m.option} {'not ' if m.negated else ''}{m.value}")
    return "when " + " and ".join(parts) if parts else "all"


def _dnat_endpoint(rule: Rule, share: float, sep_chain: str) -> Endpoint:
    """An Endpoint from a DNAT rule's --to-destination (ip:port, [v6]:port or ip)."""
    to = rule.target.options.get("to-destination", "") if rule.target else ""
    to = to.split()[0] if to else ""
    ip, port = split_host_port(to)
    return Endpoint(ip, port, share, sep_chain, rule.text)


def split_host_port(text: str) -> tuple[str, int | None]:
    """`10.0.0.1:80` / `[fd00::1]:80` / `10.0.0.1` -> (ip, port or None)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port.split("-")[0]) if port.split("-")[0].isdigit() else None
    return text, None


def services(ruleset: Ruleset) -> tuple[Service, ...]:
    """Every Service port kube-proxy programmed in this iptables ruleset."""
    builder = _Builder(ruleset)
    if "nat" in ruleset.tables:
        ruleset.preload("nat")  # nearly every nat rule is kube-proxy's: parse in bulk
    for table in ("nat", "filter"):
        if table not in ruleset.tables:
            continue
        names = [c.name for c in ruleset.chains(table)]
        for name in names:
            if name in ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-PROXY-FIREWALL") or (
                    name.startswith("KUBE-PORTALS-")):
                builder.scan_services_chain(table, name)
        for name in names:
            if name == "KUBE-NODEPORTS" or name.startswith("KUBE-NODEPORT-"):
                builder.scan_nodeports(table, name)
    if "nat" in ruleset.tables:
        _orphan_chains(builder)
    unique: dict[int, _Draft] = {id(d): d for d in builder.drafts.values()}
    found = [builder.finish(d) for d in unique.values()]
    return tuple(sorted(found, key=lambda s: (s.namespace, s.name, s.port_name, s.protocol)))


def _orphan_chains(builder: _Builder) -> None:
    """Services seen only through their KUBE-SVC-/SVL- chains (grep fragments, tails)."""
    known = {_chain_hash(c) for d in builder.drafts.values()
             for c in (d.svc_chain, d.ext_chain, d.fw_chain, d.local_chain) if c}
    for chain in builder.rs.chains("nat"):
        hashed = _chain_hash(chain.name)
        if hashed is None or hashed in known or not chain.name.startswith(
                ("KUBE-SVC-", "KUBE-SVL-")):
            continue
        rules = builder.rs.rules("nat", chain.name)
        for rule in rules:
            draft = builder.draft(rule, chain.name)
            if draft is None:
                continue
            if "cluster IP" in " ".join(rule.comments):
                draft.cluster_ip = draft.cluster_ip or _dst(rule)
                draft.port = draft.port or _dport(rule)
                draft.protocol = draft.protocol or _proto(rule)
            builder._link(draft, chain.name)
            draft.evidence.append(rule.text)
        known.add(hashed)


def detect_mode(rulesets: Mapping[str, Ruleset], nft_tables: Iterable[tuple[str, str]] = ()
                ) -> KubeProxyMode:
    """kube-proxy's mode and backend from each backend's ruleset and the nft table names.

    `rulesets` maps a backend label ("iptables-legacy", "iptables-nft", ...) to its dump;
    `nft_tables` lists native nft (family, table) pairs. kube-proxy creates the chain
    KUBE-PROXY-CANARY in the backend it uses; kubelet creates KUBE-KUBELET-CANARY and
    (since 1.28) KUBE-IPTABLES-HINT in mangle, telling other tools which backend to use.
    """
    evidence: list[str] = []
    warnings: list[str] = []
    proxy_backends = []
    hint_backends = []
    for label, rs in rulesets.items():
        names = {c.name for t in rs.tables for c in rs.chains(t)}
        if "KUBE-PROXY-CANARY" in names:
            proxy_backends.append(label)
            evidence.append(f"{label}: chain KUBE-PROXY-CANARY")
        if "KUBE-IPTABLES-HINT" in names or "KUBE-KUBELET-CANARY" in names:
            hint_backends.append(label)
            evidence.append(f"{label}: kubelet chains "
                            f"{', '.join(sorted(names & {'KUBE-IPTABLES-HINT', 'KUBE-KUBELET-CANARY'}))}")
    nft_kube = [f"{fam} {name}" for fam, name in nft_tables if name == "kube-proxy"]
    used = [label for label, rs in rulesets.items() if rs.rule_count() > 0]
    if len(used) > 1:
        warnings.append(f"rules in several iptables backends: {', '.join(used)}; "
                        "the kernel runs all of them")
    if nft_kube:
        evidence.append(f"nftables: table {', '.join(nft_kube)}")
        if proxy_backends:
            warnings.append("kube-proxy nftables table and iptables canary both present "
                            "(mode switch leftovers?)")
        return KubeProxyMode("nftables", "nftables", tuple(evidence), tuple(warnings))
    backend = proxy_backends[0] if proxy_backends else None
    if backend is None:
        for label, rs in rulesets.items():
            if rs.chain("nat", "KUBE-SERVICES") is not None:
                backend = label
                evidence.append(f"{label}: chain nat KUBE-SERVICES")
                break
    if backend is None:
        return KubeProxyMode(None, hint_backends[0] if hint_backends else None,
                             tuple(evidence), tuple(warnings))
    if len(proxy_backends) > 1:
        warnings.append(f"KUBE-PROXY-CANARY in several backends: {', '.join(proxy_backends)}")
    rs = rulesets[backend]
    ipvs = any(c.name in ("KUBE-LOAD-BALANCER", "KUBE-NODE-PORT") for c in rs.chains("nat")) or (
        any("KUBE-CLUSTER-IP" in line for line in rs.rule_lines("nat", "KUBE-SERVICES")))
    if ipvs:
        evidence.append(f"{backend}: ipset-based KUBE-SERVICES (IPVS mode)")
    return KubeProxyMode("ipvs" if ipvs else "iptables", backend, tuple(evidence),
                         tuple(warnings))


def detect_backend(rulesets: Mapping[str, Ruleset],
                   nft_tables: Iterable[tuple[str, str]] = ()) -> str | None:
    """The netfilter backend kube-proxy writes to (a key of `rulesets`, or "nftables")."""
    return detect_mode(rulesets, nft_tables).backend
