"""kube-proxy's nftables mode read back into Services, from the rules' structure.

kube-proxy's `table ip kube-proxy` (and `ip6 kube-proxy`) names every Service port in
its chains (`service-HASH-ns/name/proto/port`, `local-`, `external-`, `firewall-`,
`endpoint-...__IP/PORT`) and keys its maps by address, protocol and port:
service-ips / service-nodeports send a packet to a Service's chain; no-endpoint-services
/ no-endpoint-nodeports reject or drop it; firewall-ips checks LoadBalancerSourceRanges.
Chains are read through their nft -j statements (numgen vmaps, dnat, jumps to
mark-for-masquerade, affinity set lookups), never through the rules' text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from podpath.netfilter.kube_proxy import Endpoint, Service
from podpath.netfilter.nft import NftRuleset, gc_paused, render_expr

# kube-proxy names each Service port's chains; the name says whose they are.
KP_CHAIN = re.compile(
    r"^(?P<kind>service|local|external|endpoint|firewall)-(?P<hash>[A-Z0-9]+)-(?P<ns>[^/]+)/"
    r"(?P<name>[^/]+)/(?P<proto>[a-z]+)/(?P<port>[^_/]*)(?:__(?P<ip>[^/]+)/(?P<eport>\d+))?$"
)

# What kube-proxy writes as a map element's comment: the Service port, `ns/name[:port]`.
_ELEMENT_COMMENT = re.compile(r"^[a-z0-9][-a-z0-9.]*/[a-z0-9][-a-z0-9.]*(?::[-a-z0-9.]*)?$")


def element_service(comment: str | None) -> str | None:
    """The Service port (`ns/name:port`) a kube-proxy map element's comment names, if any."""
    if comment is None or not _ELEMENT_COMMENT.match(comment):
        return None
    return comment.rstrip(":")


@gc_paused
def nft_services(ruleset: NftRuleset) -> tuple[Service, ...]:
    """Every Service port in kube-proxy's nftables tables (ip and ip6 kube-proxy)."""
    out: list[Service] = []
    for table in ruleset.tables:
        if table.name == "kube-proxy":
            out.extend(_table_services(ruleset, table.family, table.name))
    return tuple(sorted(out, key=lambda s: (s.namespace, s.name, s.port_name, s.protocol)))


@dataclass
class _Draft:
    """A Service port assembled from map elements and chains."""

    ns: str
    name: str
    port_name: str
    proto: str
    svc_chain: str | None = None
    local_chain: str | None = None
    ext_chain: str | None = None
    fw_chain: str | None = None
    cluster_ip: str | None = None
    internal_local: bool = False
    port: int | None = None
    node_port: int | None = None
    external: list[str] = field(default_factory=list)
    # LoadBalancer IPs: keys of firewall-ips. An LB IP without source ranges is only a
    # service-ips element to external-, as an external IP is: the rules cannot tell them apart.
    lb: list[str] = field(default_factory=list)
    no_endpoints: str | None = None
    no_local: str | None = None
    evidence: list[str] = field(default_factory=list)


def _verdict_chain(value: str | None) -> str | None:
    """The chain of a `goto X` / `jump X` map value."""
    if value and value.split(" ", 1)[0] in ("goto", "jump"):
        return value.split(" ", 1)[1].strip()
    return None


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


class _Table:
    """One kube-proxy table being read."""

    def __init__(self, rs: NftRuleset, family: str, table: str) -> None:
        self.rs, self.family, self.table = rs, family, table
        self.drafts: dict[tuple[str, str, str, str], _Draft] = {}

    def draft(self, chain: str) -> _Draft | None:
        """The draft a kube-proxy chain name belongs to (created on first sight)."""
        found = KP_CHAIN.match(chain)
        if not found:
            return None
        key = (found["ns"], found["name"], found["port"], found["proto"].upper())
        d = self.drafts.get(key)
        if d is None:
            d = self.drafts[key] = _Draft(*key)
        kind = found["kind"]
        if kind == "service":
            d.svc_chain = chain
        elif kind == "local":
            d.local_chain = chain
        elif kind == "external":
            d.ext_chain = chain
        elif kind == "firewall":
            d.fw_chain = chain
        return d

    def elements(self, name: str) -> tuple[Any, ...]:
        s = self.rs.get_set(self.family, self.table, name)
        return s.elements if s else ()

    def statements(self, chain: str | None) -> list[tuple[Any, ...]]:
        """The statements of each rule of a chain (nothing for no chain)."""
        if chain is None:
            return []
        return [rule.expr for rule in self.rs.chain_rules(self.family, self.table, chain)]

    def read(self) -> list[Service]:
        cluster_ips = {e.key[0] for e in self.elements("cluster-ips")}
        for chain in self.rs.chains:
            if chain.family == self.family and chain.table == self.table:
                self.draft(chain.name)
        for elem in self.elements("service-ips"):
            target = _verdict_chain(elem.value)
            d = self.draft(target) if target else None
            if d is None or len(elem.key) < 3:
                continue
            ip, port = elem.key[0], _int(elem.key[2])
            d.evidence.append(f"service-ips: {' . '.join(elem.key)} : {elem.value}")
            internal = target is not None and target.startswith(("service-", "local-"))
            if internal and (ip in cluster_ips or not cluster_ips):
                d.cluster_ip, d.port = ip, port
                d.internal_local = target is not None and target.startswith("local-")
            elif ip not in d.external:
                d.external.append(ip)
                d.port = d.port if d.port is not None else port
        for elem in self.elements("service-nodeports"):
            target = _verdict_chain(elem.value)
            d = self.draft(target) if target else None
            if d is not None and len(elem.key) >= 2 and elem.key[1].isdigit():
                d.node_port = int(elem.key[1])
                d.evidence.append(f"service-nodeports: {' . '.join(elem.key)} : {elem.value}")
        self._no_endpoints(cluster_ips)
        for elem in self.elements("firewall-ips"):
            target = _verdict_chain(elem.value)
            d = self.draft(target) if target else None
            if d is not None and elem.key and elem.key[0] not in d.lb:
                d.lb.append(elem.key[0])
        return [self.finish(d) for d in self.drafts.values()]

    def _no_endpoints(self, cluster_ips: set[str]) -> None:
        """Ports kube-proxy drops or rejects (no-endpoint-* maps; element comments name them)."""
        for name in ("no-endpoint-services", "no-endpoint-nodeports"):
            for elem in self.elements(name):
                if not elem.comment or len(elem.key) < 2:
                    continue
                ns_name, _, port_name = elem.comment.partition(":")
                ns, _, svc_name = ns_name.partition("/")
                proto = (elem.key[1] if name == "no-endpoint-services" else elem.key[0]).upper()
                key = (ns, svc_name, port_name, proto)
                d = self.drafts.setdefault(key, _Draft(*key))
                value = elem.value or ""
                verdict = "REJECT" if value.endswith("reject-chain") else (value.upper() or None)
                d.evidence.append(f"{name}: {' . '.join(elem.key)} : {elem.value}")
                if name == "no-endpoint-nodeports":
                    d.node_port = _int(elem.key[1]) if d.node_port is None else d.node_port
                    d.no_local = d.no_local or (verdict if verdict == "DROP" else None)
                    if verdict == "REJECT":
                        d.no_endpoints = verdict
                    continue
                ip, port = elem.key[0], _int(elem.key[2]) if len(elem.key) > 2 else None
                if ip in cluster_ips:
                    d.cluster_ip = ip
                    d.port = port if port is not None else d.port
                    # DROP for a ClusterIP: internalTrafficPolicy Local without local endpoints.
                    d.no_endpoints = verdict
                    d.internal_local = d.internal_local or verdict == "DROP"
                else:
                    if ip not in d.external:
                        d.external.append(ip)
                    d.port = d.port if d.port is not None else port
                    if verdict == "DROP":
                        d.no_local = "DROP"
                    else:
                        d.no_endpoints = d.no_endpoints or verdict

    def finish(self, d: _Draft) -> Service:
        """Endpoints, shares, masquerading, affinity and policies from the chains."""
        masquerade = "none"
        affinity: int | None = None
        for stmts in self.statements(d.svc_chain or d.local_chain):
            if _jumps(stmts, "mark-for-masquerade"):
                masquerade = _masquerade_condition(stmts) if masquerade == "none" else masquerade
            set_name = _affinity_lookup(stmts)
            if set_name is not None:
                aff = self.rs.get_set(self.family, self.table, set_name)
                affinity = aff.timeout if aff is not None and aff.timeout else affinity
        endpoints = self._endpoints(d.svc_chain)
        if d.local_chain is not None:
            local = {e.sep_chain for e in self._endpoints(d.local_chain)}
            if not endpoints:
                endpoints = self._endpoints(d.local_chain)
            endpoints = tuple(
                Endpoint(
                    e.ip, e.port, e.probability, e.sep_chain, e.dnat_rule_text, e.sep_chain in local
                )
                for e in endpoints
            )
        external_local = d.no_local == "DROP" or any(
            _short_circuit(stmts) for stmts in self.statements(d.ext_chain)
        )
        return Service(
            namespace=d.ns,
            name=d.name,
            port_name=d.port_name,
            protocol=d.proto,
            cluster_ip=d.cluster_ip,
            port=d.port,
            node_port=d.node_port,
            external_ips=tuple(ip for ip in d.external if ip not in d.lb),
            load_balancer_ips=tuple(d.lb),
            svc_chain=d.svc_chain,
            endpoints=endpoints,
            masquerade=masquerade,
            ext_chain=d.ext_chain,
            fw_chain=d.fw_chain,
            local_chain=d.local_chain,
            source_ranges=self._source_ranges(d.fw_chain),
            no_endpoints=d.no_endpoints,
            no_local_endpoints=d.no_local,
            backend="nftables",
            evidence=tuple(d.evidence),
            affinity_timeout=affinity,
            internal_policy="Local" if d.internal_local else "Cluster",
            external_policy="Local" if external_local else "Cluster",
        )

    def _endpoints(self, chain: str | None) -> tuple[Endpoint, ...]:
        """The endpoints a `numgen random mod N vmap {...}` rule spreads connections over."""
        out: list[Endpoint] = []
        for stmts in self.statements(chain):
            picks = _numgen_picks(stmts)
            if picks is None:
                continue
            mod, targets = picks
            counts: dict[str, int] = {}
            for target in targets:
                counts[target] = counts.get(target, 0) + 1
            out.extend(self._endpoint(t, n / mod) for t, n in counts.items())
        return tuple(out)

    def _endpoint(self, chain: str, share: float) -> Endpoint:
        """One endpoint-* chain: its dnat statement, else what its name says."""
        for rule in self.rs.chain_rules(self.family, self.table, chain):
            for stmt in rule.expr:
                dnat = stmt.get("dnat") if isinstance(stmt, dict) else None
                if isinstance(dnat, dict) and isinstance(dnat.get("addr"), str):
                    port = dnat.get("port")
                    return Endpoint(
                        dnat["addr"],
                        port if isinstance(port, int) else None,
                        share,
                        chain,
                        rule.text,
                    )
        named = KP_CHAIN.match(chain)
        if named and named["ip"]:
            return Endpoint(named["ip"], int(named["eport"]), share, chain, "")
        return Endpoint("", None, share, chain, "")

    def _source_ranges(self, chain: str | None) -> tuple[str, ...]:
        """LoadBalancerSourceRanges: the firewall chain's `ip saddr != {...} drop`."""
        for stmts in self.statements(chain):
            if not any(isinstance(s, dict) and "drop" in s for s in stmts):
                continue
            for match in _matches(stmts):
                if match.get("op") == "!=" and _field(match.get("left")) == "saddr":
                    right = match.get("right")
                    items = right["set"] if isinstance(right, dict) and "set" in right else [right]
                    return tuple(render_expr(i) for i in items)
        return ()


def _table_services(rs: NftRuleset, family: str, table: str) -> list[Service]:
    """Services of one kube-proxy table."""
    return _Table(rs, family, table).read()


def _matches(stmts: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [s["match"] for s in stmts if isinstance(s, dict) and isinstance(s.get("match"), dict)]


def _field(expr: Any) -> str | None:
    """`saddr` of `ip saddr`, the payload field a selector reads."""
    if isinstance(expr, dict) and isinstance(expr.get("payload"), dict):
        return str(expr["payload"].get("field"))
    return None


def _jumps(stmts: tuple[Any, ...], chain: str) -> bool:
    return any(
        isinstance(s, dict)
        and any(
            kind in ("jump", "goto") and isinstance(v, dict) and v.get("target") == chain
            for kind, v in s.items()
        )
        for s in stmts
    )


def _masquerade_condition(stmts: tuple[Any, ...]) -> str:
    """A `... jump mark-for-masquerade` rule's condition in words ("all" when none)."""
    for match in _matches(stmts):
        if match.get("op") == "!=" and _field(match.get("left")) == "saddr":
            return f"when source not in {render_expr(match.get('right'))}"
    if any(_field(m.get("left")) == "saddr" for m in _matches(stmts)):
        return "when source in " + render_expr(
            next(m for m in _matches(stmts) if _field(m.get("left")) == "saddr").get("right")
        )
    return "all"


def _affinity_lookup(stmts: tuple[Any, ...]) -> str | None:
    """The affinity set of an `ip saddr @affinity-... goto endpoint-...` rule."""
    for match in _matches(stmts):
        right = match.get("right")
        if isinstance(right, str) and right.startswith("@affinity-"):
            return right[1:]
    return None


def _short_circuit(stmts: tuple[Any, ...]) -> bool:
    """externalTrafficPolicy Local: pod and node traffic is sent back to the cluster chain."""
    return any(
        isinstance(s, dict)
        and "goto" in s
        and str(s["goto"].get("target", "")).startswith("service-")
        for s in stmts
    ) and bool(_matches(stmts))


def _numgen_picks(stmts: tuple[Any, ...]) -> tuple[int, list[str]] | None:
    """(modulus, target chain of each value) of a `numgen random mod N vmap {...}` rule."""
    for stmt in stmts:
        vmap = stmt.get("vmap") if isinstance(stmt, dict) else None
        if not isinstance(vmap, dict):
            continue
        key, data = vmap.get("key"), vmap.get("data")
        gen = key.get("numgen") if isinstance(key, dict) else None
        if not isinstance(gen, dict) or not isinstance(gen.get("mod"), int):
            continue
        targets: list[str] = []
        for item in data.get("set", []) if isinstance(data, dict) else []:
            if isinstance(item, list) and len(item) == 2 and isinstance(item[1], dict):
                for kind, body in item[1].items():
                    if kind in ("goto", "jump") and isinstance(body, dict):
                        targets.append(str(body.get("target")))
        return int(gen["mod"]), targets
    return None
