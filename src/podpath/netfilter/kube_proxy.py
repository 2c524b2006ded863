"""The kube-proxy view of a ruleset: Services, their addresses and endpoint shares.

kube-proxy names everything in rule comments (`ns/name:port cluster IP`, `... -> ip:port`,
`portal for ns/name:port` in the 2015 userspace era) and chains (KUBE-SVC-/SVL-/EXT-/FW-/
XLB-/SEP- plus one hash per service port). Services are rebuilt from those, never from the
API server. Works on partial dumps (grep fragments): what is missing stays None/empty.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from podpath.netfilter.iptables_save import Ruleset
from podpath.netfilter.model import Rule

# "ns/name:port cluster IP", "ns/name external IP", "portal for ns/name:", "ns/name:p -> ip:port"
_COMMENT = re.compile(
    r"^(?:portal for )?(?P<ns>[A-Za-z0-9][-A-Za-z0-9.]*)/(?P<name>[A-Za-z0-9][-A-Za-z0-9.]*)"
    r"(?::(?P<port>[-A-Za-z0-9.]*))?(?:\s+(?P<rest>.*))?$"
)
_ARROW = re.compile(r"->\s*\[?([0-9A-Fa-f.:]+?)\]?:(\d+)\s*$")
_HASH_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-XLB-")
_MAX_DEPTH = 4
_T = TypeVar("_T")


@dataclass(frozen=True)
class Endpoint:
    """One backend of a Service port, with the share of new connections it gets."""

    ip: str
    port: int | None
    probability: float
    sep_chain: str  # KUBE-SEP-... (iptables) or endpoint-... (nftables)
    dnat_rule_text: str  # the rule that rewrites the destination, verbatim
    local: bool | None = None  # on this node (KUBE-SVL membership); None when unknown
    weight: int | None = None  # IPVS real server weight


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
    backend: str = "iptables"  # or "nftables", "ipvs"
    evidence: tuple[str, ...] = ()  # the rules/elements this was read from
    affinity_timeout: int | None = None  # ClientIP session affinity: seconds a client stays
    internal_policy: str = "Cluster"  # internalTrafficPolicy, as the rules show it
    external_policy: str = "Cluster"  # externalTrafficPolicy ("Local": no SNAT, local only)
    scheduler: str | None = None  # IPVS: rr, wrr, lc, sh...
    persistent: int | None = None  # IPVS: persistence timeout (ClientIP affinity)

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
    return (
        found.group("ns"),
        found.group("name"),
        found.group("port") or "",
        found.group("rest") or "",
    )


_new_object = object.__new__


def _frozen(cls: type[_T], fields: dict[str, object]) -> _T:
    """An instance of the frozen dataclass `cls` holding `fields` (every field, in field
    order), made without its __init__, which sets each field through object.__setattr__:
    27k Endpoints and 10k Services of a 10k-Service node took ~2x the time that way. A
    test checks each caller against the dataclass's own constructor."""
    made = _new_object(cls)
    made.__dict__.update(fields)
    return made


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
    internal_local: bool = (
        False  # the ClusterIP rule jumps to KUBE-SVL (internalTrafficPolicy Local)
    )
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
            return chain[len(prefix) :]
    return None


# printable ASCII but space, `!`, `"` and `\`: a value both parsers read verbatim.
_VAL = r"[\x23-\x5b\x5d-\x7e]"
# kube-proxy's rules exactly as iptables-save prints them (nft and legacy backends print
# options in this fixed order). A line that matches is read by this one regex, 10x faster
# than building its Rule; any other line goes through the parser. `_line_facts` and
# `_rule_facts` give equal answers for every matching line (a tested property).
_CANON = re.compile(
    r"-A (?P<chain>[\x21-\x7e]+)"
    r"(?: (?P<sneg>! )?-s (?P<src>[0-9A-Fa-f.:/]+))?+"
    r"(?: (?P<dneg>! )?-d (?P<dst>[0-9A-Fa-f.:/]+))?+"
    r"(?: -p (?P<proto>tcp|udp|sctp))?+"
    r"(?: -m comment --comment (?:\"(?P<qc>[^\"\\]*)\"|(?P<c>[\x23-\x2c\x2e-\x5b\x5d-\x7e]"
    + _VAL
    + r"*)))?+"
    r"(?: -m (?:tcp|udp|sctp)(?: --dport (?P<dport>[0-9]+))?)?+"
    r"(?: -m statistic --mode random --probability (?P<prob>[0-9.]+))?+"
    r" -j (?P<target>[A-Za-z0-9_-]+)"
    r"(?: --(?P<topt>to-destination|reject-with) (?P<tval>[\x23-\x2c\x2e-\x5b\x5d-\x7e]"
    + _VAL
    + r"*))?+"
)
# A KUBE-SEP chain's DNAT rule as kube-proxy writes it: the one value an endpoint needs
# (group 1, --to-destination) by a match ~3x cheaper than `_CANON`'s, which reads every
# line this one does the same way (27k of them at 10k Services). An IPv4 `a.b.c.d:port`
# also comes split (groups 2 and 3): no whitespace, one ":", a port of digits only, so
# exactly what split_host_port reads from it (a tested property).
_SEP_DNAT = re.compile(
    r"-A [\x21-\x7e]+(?: -p (?:tcp|udp|sctp))?+"
    r'(?: -m comment --comment "[^"\\]*")?+'
    r"(?: -m (?:tcp|udp|sctp))?+"
    r" -j DNAT --to-destination (([0-9.]+):([0-9]+)|[\x23-\x2c\x2e-\x5b\x5d-\x7e]" + _VAL + r"*)"
)
# Set to False to read every line through the parser (the reference, used by tests).
USE_LINE_REGEX = True


class _Facts:
    """What the Service model needs from one rule (plain slots: built 100k times)."""

    __slots__ = (
        "chain",
        "text",
        "target",
        "to",
        "comments",
        "dst",
        "dport",
        "proto",
        "prob",
        "rcheck",
        "sources",
        "masq",
    )

    def __init__(
        self,
        chain: str,
        text: str,
        target: str | None,
        to: str,
        comments: tuple[str, ...],
        dst: str | None,
        dport: int | None,
        proto: str,
        prob: str | None,
        rcheck: bool,
        sources: tuple[str, ...],
        masq: str,
    ) -> None:
        self.chain = chain
        self.text = text
        self.target = target  # None: a rule without -j
        self.to = to  # the target's --to-destination ("" when none)
        self.comments = comments
        self.dst = dst  # as _dst
        self.dport = dport  # as _dport
        self.proto = proto  # as _proto
        self.prob = prob  # the first --probability value, verbatim
        self.rcheck = rcheck  # session affinity's `-m recent --rcheck`
        self.sources = sources  # positive -s values, in order
        self.masq = masq  # describe_masquerade() of a KUBE-MARK-MASQ rule, else ""

    def astuple(self) -> tuple[object, ...]:
        """Every field, for comparisons in tests."""
        return tuple(getattr(self, name) for name in self.__slots__)


def _rule_facts(rule: Rule) -> _Facts:
    """The facts of a parsed rule (the reference path)."""
    target = rule.target
    prob = rule.first("probability")
    name = target.name if target else None
    return _Facts(
        rule.chain,
        rule.text,
        name,
        target.options.get("to-destination", "") if target else "",
        rule.comments,
        _dst(rule),
        _dport(rule),
        _proto(rule),
        prob.value if prob else None,
        any(m.option == "rcheck" for m in rule.matches),
        tuple(m.value for m in rule.matches_of("", "source") if not m.negated),
        describe_masquerade(rule) if name == "KUBE-MARK-MASQ" else "",
    )


def _line_facts(line: str) -> _Facts | None:
    """The facts of a canonical kube-proxy line read by one regex; None for other lines."""
    found = _CANON.fullmatch(line)
    if found is None:
        return None
    (chain, sneg, src, dneg, dst, proto, qc, c, dport, prob, target, topt, tval) = found.groups()
    comment = qc if qc is not None else c
    exact = None
    if dst is not None and not dneg:
        addr, _, mask = dst.partition("/")
        exact = addr if mask in ("", "32", "128") else None
    masq = ""
    if target == "KUBE-MARK-MASQ":
        masq = f"when source {'not ' if sneg else ''}in {src}" if src is not None else "all"
    return _Facts(
        chain,
        line,
        target,
        tval if topt == "to-destination" else "",
        (comment,) if comment is not None else (),
        exact,
        int(dport) if dport is not None else None,
        proto.upper() if proto else "",
        prob,
        False,
        (src,) if src is not None and not sneg else (),
        masq,
    )


class _Builder:
    """Collect Services from the nat (and filter) tables of one iptables ruleset."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.rs = ruleset
        self.drafts: dict[tuple[str, str, str, str], _Draft] = {}
        self.by_name: dict[tuple[str, str, str], _Draft] = {}  # ignoring the protocol
        self.by_hash: dict[str, _Draft] = {}
        self._services_masq: dict[str, _Facts] | None = None
        self._facts: dict[tuple[str, str], tuple[_Facts, ...]] = {}
        self._nat_names: frozenset[str] | None = None

    def facts(self, table: str, chain: str) -> tuple[_Facts, ...]:
        """The facts of every rule of a chain, cached."""
        key = (table, chain)
        found = self._facts.get(key)
        if found is None:
            out = []
            for pos, line in enumerate(self.rs.lines_of(table, chain), 1):
                fast = _line_facts(line) if USE_LINE_REGEX else None
                out.append(fast if fast is not None else self._parsed(table, chain, pos))
            found = self._facts[key] = tuple(out)
        return found

    def _parsed(self, table: str, chain: str, position: int) -> _Facts:
        """One rule's facts from the parser (lines the regex does not read)."""
        rule = self.rs.rule(table, chain, position)
        assert rule is not None  # position comes from the chain's own lines
        return _rule_facts(rule)

    def nat_names(self) -> frozenset[str]:
        """Every chain the nat table declares or uses (set lookups beat 4 calls a Service)."""
        if self._nat_names is None:
            self._nat_names = frozenset(self.rs.chain_names("nat"))
        return self._nat_names

    def dnat_endpoint(self, chain: str, share: float) -> Endpoint | None:
        """The endpoint named by the first DNAT rule of a nat chain (a KUBE-SEP), reading
        only lines that can be one; None when it has none.

        One call per endpoint (27k at 10k Services), where reading the rule, splitting its
        destination and building the Endpoint took 4 calls and ~8% of services()."""
        cached = self._facts.get(("nat", chain))
        if cached is not None:
            dnat = next((f for f in cached if f.target == "DNAT"), None)
            return _endpoint_to(dnat.to, dnat.text, share, chain) if dnat else None
        for pos, line in enumerate(self.rs.lines_of("nat", chain), 1):
            # The parsed target name is the line's text with only quotes and backslashes
            # taken out: a line without DNAT even then cannot jump to DNAT.
            if "DNAT" in line or (
                ('"' in line or "\\" in line) and "DNAT" in line.replace('"', "").replace("\\", "")
            ):
                sep = _SEP_DNAT.fullmatch(line) if USE_LINE_REGEX else None
                if sep is not None:
                    to, ip, port = sep.groups()
                    if ip is not None:
                        return _endpoint_of(ip, int(port), share, chain, line)
                    return _endpoint_to(to, line, share, chain)
                fast = _line_facts(line) if USE_LINE_REGEX else None
                found = fast if fast is not None else self._parsed("nat", chain, pos)
                if found.target == "DNAT":
                    return _endpoint_to(found.to, found.text, share, chain)
        return None

    def draft(self, rule: _Facts, hint_chain: str | None = None) -> _Draft | None:
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
        proto = rule.proto
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
        for rule in self.facts(table, chain):
            target = rule.target or ""
            if target == "KUBE-MARK-MASQ":
                continue  # old kube-proxy put the masquerade rule here; read in masq()
            draft = self.draft(rule, target)
            if draft is None:
                continue
            rest = " ".join(rule.comments)
            dst, port = rule.dst, rule.dport
            draft.evidence.append(rule.text)
            if "has no endpoints" in rest:
                draft.no_endpoints = target or draft.no_endpoints
                draft.cluster_ip = draft.cluster_ip or dst
                draft.port = draft.port or port
            elif "has no local endpoints" in rest and chain == "KUBE-SERVICES":
                # filter/KUBE-SERVICES: internalTrafficPolicy Local with no endpoint on
                # this node drops the ClusterIP (external traffic is dropped in
                # KUBE-EXTERNAL-SERVICES); no nat rule names the VIP then.
                draft.internal_local = True
                draft.cluster_ip = draft.cluster_ip or dst
                draft.port = draft.port if draft.port is not None else port
                continue
            elif "has no local endpoints" in rest:
                draft.no_local = target
                if not dst:  # the NodePort's DROP: its --dport is no Service port
                    continue
                draft.no_local_ips.append(dst)  # external or LB: the comment does not say which
            elif "external IP" in rest:
                self._external(draft, dst, rest)
            elif "loadbalancer IP" in rest:
                if dst and dst not in draft.lb_ips:
                    draft.lb_ips.append(dst)
            elif "cluster IP" in rest or chain.startswith("KUBE-PORTALS-"):
                draft.cluster_ip = dst or draft.cluster_ip
                draft.port = port if port is not None else draft.port
                draft.internal_local = draft.internal_local or target.startswith("KUBE-SVL-")
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
        for rule in self.facts(table, chain):
            target = rule.target or ""
            draft = self.draft(rule, target)
            port = rule.dport
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
            names = self.nat_names()
            if draft.svc_chain is None and "KUBE-SVC-" + hashed in names:
                draft.svc_chain = "KUBE-SVC-" + hashed
            if draft.ext_chain is None and "KUBE-EXT-" + hashed in names:
                draft.ext_chain = "KUBE-EXT-" + hashed
            if draft.fw_chain is None and "KUBE-FW-" + hashed in names:
                draft.fw_chain = "KUBE-FW-" + hashed
            for prefix in ("KUBE-SVL-", "KUBE-XLB-"):
                if (
                    draft.local_chain is None
                    and prefix + hashed in names
                    and (self.rs.rule_count_of(nat, prefix + hashed))
                ):
                    draft.local_chain = prefix + hashed
        self._cluster_ip_from_chains(draft)
        for ip in draft.no_local_ips:
            if ip not in draft.lb_ips and ip not in draft.external_ips:
                draft.external_ips.append(ip)
        local_seps = (
            {e.sep_chain for e in self.endpoints(draft.local_chain)}
            if (draft.local_chain)
            else None
        )
        endpoints = self.endpoints(draft.svc_chain or draft.local_chain)
        if local_seps is not None:
            endpoints = tuple(replace(e, local=e.sep_chain in local_seps) for e in endpoints)
        source_ranges = tuple(
            src
            for r in (self.facts(nat, draft.fw_chain) if draft.fw_chain else ())
            for src in r.sources
        )
        return _frozen(
            Service,
            {
                "namespace": draft.namespace,
                "name": draft.name,
                "port_name": draft.port_name,
                "protocol": draft.protocol or "TCP",
                "cluster_ip": draft.cluster_ip,
                "port": draft.port,
                "node_port": draft.node_port,
                "external_ips": tuple(draft.external_ips),
                "load_balancer_ips": tuple(draft.lb_ips),
                "svc_chain": draft.svc_chain,
                "endpoints": endpoints,
                "masquerade": self.masquerade(draft),
                "ext_chain": draft.ext_chain,
                "fw_chain": draft.fw_chain,
                "local_chain": draft.local_chain,
                "health_check_node_port": draft.health,
                "source_ranges": source_ranges,
                "no_endpoints": draft.no_endpoints,
                "no_local_endpoints": draft.no_local,
                "backend": "iptables",
                "evidence": tuple(dict.fromkeys(draft.evidence)),
                "affinity_timeout": self.affinity(draft.svc_chain or draft.local_chain),
                "internal_policy": "Local"
                if draft.internal_local or self._int_local(draft)
                else "Cluster",
                "external_policy": "Local"
                if draft.no_local or self._ext_local(draft)
                else "Cluster",
                "scheduler": None,
                "persistent": None,
            },
        )

    def affinity(self, chain: str | None) -> int | None:
        """ClientIP affinity: the `-m recent --rcheck --seconds N` of the Service chain."""
        for pos, rule in enumerate(self.facts("nat", chain) if chain else (), 1):
            if not rule.rcheck:
                continue
            parsed = self.rs.rule("nat", rule.chain, pos)
            seconds = parsed.first("seconds") if parsed is not None else None
            if seconds is not None and seconds.value.isdigit():
                return int(seconds.value)
        return None

    def _int_local(self, draft: _Draft) -> bool:
        """internalTrafficPolicy Local: the ClusterIP's masquerade rule is in KUBE-SVL.

        kube-proxy writes the "cluster IP" rule into the chain ClusterIP traffic uses.
        """
        return draft.local_chain is not None and any(
            "cluster IP" in " ".join(r.comments) for r in self.facts("nat", draft.local_chain)
        )

    def _ext_local(self, draft: _Draft) -> bool:
        """externalTrafficPolicy Local: KUBE-EXT hands external traffic to KUBE-SVL, pod
        traffic is short-circuited to KUBE-SVC, and a health check node port exists."""
        if draft.health is not None:
            return True
        return draft.ext_chain is not None and any(
            (r.target or "").startswith(("KUBE-SVL-", "KUBE-XLB-"))
            or any(c.startswith("pod traffic for ") for c in r.comments)
            for r in self.facts("nat", draft.ext_chain)
        )

    def _cluster_ip_from_chains(self, draft: _Draft) -> None:
        """Fill a missing cluster IP from the KUBE-SVC/SVL "cluster IP" masquerade rule."""
        if draft.cluster_ip is not None:
            return
        for chain in (draft.svc_chain, draft.local_chain):
            for rule in self.facts("nat", chain) if chain else ():
                if "cluster IP" in " ".join(rule.comments) and rule.dst:
                    draft.cluster_ip = rule.dst
                    draft.port = draft.port if draft.port is not None else rule.dport
                    return

    def endpoints(self, chain: str | None, depth: int = 0) -> tuple[Endpoint, ...]:
        """Endpoints reached from a KUBE-SVC-like chain, with their shares."""
        if chain is None or depth > _MAX_DEPTH:
            return ()
        picks: list[tuple[_Facts, float | None]] = []
        for rule in self.facts("nat", chain):
            target = rule.target
            if target is None or target in ("KUBE-MARK-MASQ", "KUBE-MARK-DROP", "RETURN"):
                continue
            if rule.rcheck:
                continue  # session affinity: repeats an endpoint for known clients
            try:
                p = float(rule.prob) if rule.prob is not None else None
            except ValueError:
                p = None
            picks.append((rule, p))
        shares = endpoint_shares(p for _, p in picks)
        out: list[Endpoint] = []
        for (rule, _), share in zip(picks, shares, strict=True):
            out.extend(self._endpoint(rule, share, depth))
        return tuple(out)

    def _endpoint(self, rule: _Facts, share: float, depth: int) -> tuple[Endpoint, ...]:
        """The endpoint(s) one KUBE-SVC rule leads to."""
        target = rule.target
        assert target is not None
        if target == "DNAT":
            return (_dnat_endpoint(rule, share, rule.chain),)
        dnat = self.dnat_endpoint(target, share)
        if dnat is not None:
            return (dnat,)
        if self.rs.rule_count_of("nat", target):
            # an intermediate chain (2015: KUBE-SVC -> KUBE-SVC -> DNAT)
            return tuple(
                replace(e, probability=e.probability * share)
                for e in self.endpoints(target, depth + 1)
            )
        # A fragment without the SEP chain: the comment still says "-> ip:port".
        for comment in rule.comments:
            arrow = _ARROW.search(comment)
            if arrow:
                return (Endpoint(arrow.group(1), int(arrow.group(2)), share, target, ""),)
        return ()

    def masquerade(self, draft: _Draft) -> str:
        """How kube-proxy masquerades traffic to this Service's cluster IP."""
        candidates = [
            r for r in self.facts("nat", draft.svc_chain or "") if r.target == "KUBE-MARK-MASQ"
        ]
        if draft.cluster_ip:
            if self._services_masq is None:
                # Old kube-proxy: the masquerade rule sits in KUBE-SERVICES; index it once
                # (scanning 10k rules per Service would be quadratic).
                self._services_masq = {}
                for rule in self.facts("nat", "KUBE-SERVICES"):
                    if rule.dst and rule.target == "KUBE-MARK-MASQ":
                        self._services_masq.setdefault(rule.dst, rule)
            old = self._services_masq.get(draft.cluster_ip)
            if old is not None:
                candidates.append(old)
        if not candidates:
            return "none"
        return candidates[0].masq


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


def _dnat_endpoint(rule: _Facts, share: float, sep_chain: str) -> Endpoint:
    """An Endpoint from a DNAT rule's --to-destination (ip:port, [v6]:port or ip)."""
    return _endpoint_to(rule.to, rule.text, share, sep_chain)


def _endpoint_to(to: str, text: str, share: float, sep_chain: str) -> Endpoint:
    """An Endpoint from a --to-destination value and its rule's text."""
    first = to.split()[0] if to else ""
    ip, port = split_host_port(first)
    return _endpoint_of(ip, port, share, sep_chain, text)


def _endpoint_of(ip: str, port: int | None, share: float, sep_chain: str, text: str) -> Endpoint:
    """Endpoint(ip, port, share, sep_chain, text), without its __init__ (see _frozen)."""
    return _frozen(
        Endpoint,
        {
            "ip": ip,
            "port": port,
            "probability": share,
            "sep_chain": sep_chain,
            "dnat_rule_text": text,
            "local": None,
            "weight": None,
        },
    )


def split_host_port(text: str) -> tuple[str, int | None]:
    """`10.0.0.1:80` / `[fd00::1]:80` / `10.0.0.1` -> (ip, port or None)."""
    host, _, port = text.partition(":")
    if port.isdigit() and text[:1] != "[":
        # The common `ip:port` (27k endpoints at 10k Services), in one partition: digits
        # hold no ":" or "-", so _split_any would read the same (a tested property).
        return host, int(port)
    return _split_any(text)


def _split_any(text: str) -> tuple[str, int | None]:
    """split_host_port for every form: `[v6]:port`, a port range, a bare address."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port.split("-")[0]) if port.split("-")[0].isdigit() else None
    return text, None


def services(ruleset: Ruleset) -> tuple[Service, ...]:
    """Every Service port kube-proxy programmed in this iptables ruleset.

    Reads kube-proxy's canonical lines with one regex each and parses the rest, so 10k
    Services (110k rules) take ~0.1 s instead of the ~3 s a full parse would.
    """
    was_enabled = gc.isenabled()
    # ~200k short-lived objects that never form cycles: the cyclic GC would only rescan
    # them (measured 15-20% of the time).
    gc.disable()
    try:
        return _services(ruleset)
    finally:
        if was_enabled:
            gc.enable()


def _services(ruleset: Ruleset) -> tuple[Service, ...]:
    """services() with the GC paused."""
    builder = _Builder(ruleset)
    for table in ("nat", "filter"):
        if table not in ruleset.tables:
            continue
        names = ruleset.chain_names(table)
        for name in names:
            if name in ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-PROXY-FIREWALL") or (
                name.startswith("KUBE-PORTALS-")
            ):
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
    known = {
        _chain_hash(c)
        for d in builder.drafts.values()
        for c in (d.svc_chain, d.ext_chain, d.fw_chain, d.local_chain)
        if c
    }
    for name in builder.rs.chain_names("nat"):
        if not name.startswith(("KUBE-SVC-", "KUBE-SVL-")):
            continue
        hashed = _chain_hash(name)
        if hashed is None or hashed in known:
            continue
        for rule in builder.facts("nat", name):
            draft = builder.draft(rule, name)
            if draft is None:
                continue
            if "cluster IP" in " ".join(rule.comments):
                draft.cluster_ip = draft.cluster_ip or rule.dst
                draft.port = draft.port or rule.dport
                draft.protocol = draft.protocol or rule.proto
            builder._link(draft, name)
            draft.evidence.append(rule.text)
        known.add(hashed)


def detect_mode(
    rulesets: Mapping[str, Ruleset],
    nft_tables: Iterable[tuple[str, str]] = (),
    *,
    ipvs_services: int = 0,
    kube_ipvs0: bool = False,
) -> KubeProxyMode:
    """kube-proxy's mode and backend from each backend's ruleset and the nft table names.

    `rulesets` maps a backend label ("iptables-legacy", "iptables-nft", ...) to its dump;
    `nft_tables` lists native nft (family, table) pairs. kube-proxy creates the chain
    KUBE-PROXY-CANARY in the backend it uses; kubelet creates KUBE-KUBELET-CANARY and
    (since 1.28) KUBE-IPTABLES-HINT in mangle, telling other tools which backend to use.
    IPVS mode is also told by the kernel itself: `ipvs_services` virtual services in
    /proc/net/ip_vs, and the dummy `kube-ipvs0` holding the ClusterIPs.
    """
    evidence: list[str] = []
    warnings: list[str] = []
    if ipvs_services:
        evidence.append(f"/proc/net/ip_vs: {ipvs_services} virtual services")
    if kube_ipvs0:
        evidence.append("link kube-ipvs0 (the dummy holding every ClusterIP)")
    proxy_backends = []
    hint_backends = []
    for label, rs in rulesets.items():
        # Asked of each table's chain index: a set of every chain name cost ~10 ms at
        # 10k Services, and this runs before a trace's first step.
        names = {
            n
            for n in ("KUBE-PROXY-CANARY", "KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY")
            if any(rs.has_chain(t, n) for t in rs.tables)
        }
        if "KUBE-PROXY-CANARY" in names:
            proxy_backends.append(label)
            evidence.append(f"{label}: chain KUBE-PROXY-CANARY")
        if "KUBE-IPTABLES-HINT" in names or "KUBE-KUBELET-CANARY" in names:
            hint_backends.append(label)
            evidence.append(
                f"{label}: kubelet chains "
                f"{', '.join(sorted(names & {'KUBE-IPTABLES-HINT', 'KUBE-KUBELET-CANARY'}))}"
            )
    nft_kube = [f"{fam} {name}" for fam, name in nft_tables if name == "kube-proxy"]
    used = [label for label, rs in rulesets.items() if rs.rule_count() > 0]
    if len(used) > 1:
        warnings.append(
            f"rules in several iptables backends: {', '.join(used)}; the kernel runs all of them"
        )
    if nft_kube:
        evidence.append(f"nftables: table {', '.join(nft_kube)}")
        if proxy_backends:
            warnings.append(
                "kube-proxy nftables table and iptables canary both present "
                "(mode switch leftovers?)"
            )
        return KubeProxyMode("nftables", "nftables", tuple(evidence), tuple(warnings))
    backend = proxy_backends[0] if proxy_backends else None
    if backend is None:
        for label, rs in rulesets.items():
            if rs.chain("nat", "KUBE-SERVICES") is not None:
                backend = label
                evidence.append(f"{label}: chain nat KUBE-SERVICES")
                break
    if backend is None:
        mode = "ipvs" if ipvs_services or kube_ipvs0 else None
        return KubeProxyMode(
            mode, hint_backends[0] if hint_backends else None, tuple(evidence), tuple(warnings)
        )
    if len(proxy_backends) > 1:
        warnings.append(f"KUBE-PROXY-CANARY in several backends: {', '.join(proxy_backends)}")
    rs = rulesets[backend]
    # has_chain, not chains(): building 36k Chain headers took 0.2 s at 10k Services.
    ipvs = any(rs.has_chain("nat", n) for n in ("KUBE-LOAD-BALANCER", "KUBE-NODE-PORT")) or (
        any("KUBE-CLUSTER-IP" in line for line in rs.lines_of("nat", "KUBE-SERVICES"))
    )
    if ipvs:
        evidence.append(f"{backend}: ipset-based KUBE-SERVICES (IPVS mode)")
    ipvs = ipvs or bool(ipvs_services) or kube_ipvs0
    return KubeProxyMode("ipvs" if ipvs else "iptables", backend, tuple(evidence), tuple(warnings))


def detect_backend(
    rulesets: Mapping[str, Ruleset], nft_tables: Iterable[tuple[str, str]] = ()
) -> str | None:
    """The netfilter backend kube-proxy writes to (a key of `rulesets`, or "nftables")."""
    return detect_mode(rulesets, nft_tables).backend
