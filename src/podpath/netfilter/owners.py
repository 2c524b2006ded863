"""Whose rule is it: the Service, NetworkPolicy, CNI plugin or host firewall that made a rule.

Every agent on a node names its chains and comments its rules in its own way, and
that is all a node shows of who wrote what:

- kube-proxy: KUBE-SVC-/SEP-/EXT-/FW-/SVL-/XLB- chains with `ns/name:port ...`
  comments (iptables); `service-HASH-ns/name/proto/port` and friends in `table ip
  kube-proxy` (nftables); KUBE-SERVICES, KUBE-NODEPORTS, KUBE-LOAD-BALANCER... (IPVS).
- kubelet: KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT.
- NetworkPolicy: Calico `cali-pi-*`/`cali-po-*` (a policy's inbound/outbound rules, the
  policy named by a `Policy NS/NAME ...` comment when Calico writes one), kube-router
  `KUBE-NWPLCY-*` (comments `rule ... for network policy NAME`, and
  KUBE-POD-FW-* for a pod's firewall), kube-network-policies' own nftables table.
- CNI: portmap `CNI-HOSTPORT-*`/`CNI-DN-*`, the bridge plugin's ipMasq `CNI-*` chains
  (comment `name: "NET" id: "..."`), flannel `FLANNEL-*`, ip-masq-agent `IP-MASQ-AGENT`,
  the AWS VPC CNI's `AWS-SNAT-CHAIN-*`/`AWS-CONNMARK-CHAIN-*`, its egress-cni's per-pod
  SNAT chains `CNI-E4-*`/`CNI-E6-*` (the same comment as ipMasq's) and its FORWARD
  reject commented `Block Node Local Pod access via IPv4|IPv6`.
- anything else: the host firewall (or a named product when its prefix says so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_KP_COMMENT = re.compile(
    r"^(?P<ns>[a-z0-9][-a-z0-9.]*)/(?P<name>[a-z0-9][-a-z0-9.]*)(?::(?P<port>[-a-z0-9.]*))?"
    r"(?:\s|$)"
)
# Calico names the policy a rule belongs to in a comment `Policy NS/NAME ingress|egress`
# (newer felix); its per-endpoint chains end in `Drop if no policies passed packet`.
_CALICO_POLICY = re.compile(r"(?:^|\s)Policy (?P<name>\S+)(?: (?P<dir>ingress|egress))?")
# kube-router: "... selected by policy name: NAME namespace NS" (older: no colon),
# "run through nw policy NAME", "... destined for POD name:P namespace: NS".
_KUBE_ROUTER_POLICY = re.compile(
    r"policy name:? (?P<name>\S+) namespace:? (?P<ns>\S+)|nw policy (?P<nw>\S+)"
    r"|network policy (?P<np>\S+)"
)
# kube-router's chain for pods no policy selects (it marks them allowed), and the `how`
# of a pod firewall's jump into one policy's chain (the trace lists those at a drop).
KUBE_ROUTER_DEFAULT = "KUBE-NWPLCY-DEFAULT"
KUBE_ROUTER_UNSELECTED = "default (no policy selects the pod)"
POLICY_JUMP = "jump to the policy's chain from"
_KUBE_ROUTER_POD = re.compile(r"POD name:\s*(?P<pod>\S+) namespace:\s*(?P<ns>\S+)")
_KUBE_PROXY_CHAINS = (
    "KUBE-SVC-",
    "KUBE-SVL-",
    "KUBE-SEP-",
    "KUBE-EXT-",
    "KUBE-FW-",
    "KUBE-XLB-",
)
_KUBE_PROXY_FIXED = frozenset(
    {
        "KUBE-SERVICES",
        "KUBE-EXTERNAL-SERVICES",
        "KUBE-NODEPORTS",
        "KUBE-POSTROUTING",
        "KUBE-MARK-MASQ",
        "KUBE-MARK-DROP",
        "KUBE-FORWARD",
        "KUBE-PROXY-FIREWALL",
        "KUBE-PROXY-CANARY",
        "KUBE-LOAD-BALANCER",
        "KUBE-NODE-PORT",
        "KUBE-SOURCE-RANGES-FIREWALL",
        "KUBE-IPVS-FILTER",
        "KUBE-IPVS-OUT-FILTER",
        "KUBE-IPVS-IPS",
    }
)
_KUBELET = frozenset({"KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT"})
# Chains of kube-proxy's userspace mode (before 1.2): its portals and node ports.
_OLD_KUBE_PROXY_CHAINS = ("KUBE-PORTALS-", "KUBE-NODEPORT-")
_BUILTIN_CHAINS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})
_VERDICT_TARGETS = frozenset(
    {"ACCEPT", "DROP", "REJECT", "RETURN", "MARK", "LOG", "DNAT", "SNAT", "MASQUERADE", "CT"}
)
# Chain-name prefixes of well-known agents that are neither Kubernetes nor a CNI.
_PRODUCTS = (
    ("CILIUM_", "cni", "Cilium"),
    ("cilium", "cni", "Cilium"),
    ("DOCKER", "host-firewall", "Docker"),
    ("ts-", "host-firewall", "Tailscale"),
    ("ufw-", "host-firewall", "ufw"),
    ("f2b-", "host-firewall", "fail2ban"),
    ("nixos-fw", "host-firewall", "NixOS firewall"),
    ("LIBVIRT_", "host-firewall", "libvirt"),
    ("WEAVE", "cni", "Weave Net"),
    ("AWS-SNAT-CHAIN", "cni", "AWS VPC CNI"),
    ("AWS-CONNMARK-CHAIN", "cni", "AWS VPC CNI"),
)
# The AWS VPC CNI's FORWARD rule keeping egress-cni's addresses node-local.
_AWS_BLOCK_LOCAL = "Block Node Local Pod access via IP"


@dataclass(frozen=True)
class Owner:
    """Who made a rule: kind, the agent, what it is for, and how podpath knows."""

    kind: str  # service | kube-proxy | kubelet | network-policy | cni | host-firewall
    agent: str  # kube-proxy, Calico, kube-router, portmap CNI, flannel, ...
    name: str = ""  # the Service (ns/name:port), the policy, the pod interface...
    how: str = ""  # the chain name or comment this was read from

    def as_json(self) -> dict[str, str]:
        """The owner as JSON (a trace hop's `owner` object)."""
        return {"kind": self.kind, "agent": self.agent, "name": self.name, "how": self.how}

    @property
    def text(self) -> str:
        """One phrase: `Service default/web:http (kube-proxy)`."""
        what = {
            "service": "Service",
            "network-policy": "NetworkPolicy",
            "cni": "CNI",
            "kube-proxy": "kube-proxy",
            "kubelet": "kubelet",
            "host-firewall": "host firewall",
        }.get(self.kind, self.kind)
        if self.kind in ("kube-proxy", "kubelet"):
            return what + (f" {self.name}" if self.name else "")
        label = f"{what} {self.name}".strip() if self.name else what
        return f"{label} ({self.agent})" if self.agent and self.agent != what else label


def kube_managed_chain(chain: str) -> bool:
    """A chain kube-proxy or kubelet writes: not a network policy's, a CNI's or the
    host's (kube-router's KUBE-ROUTER-*, KUBE-POD-FW-*, KUBE-NWPLCY-* are not)."""
    return (
        chain.startswith(_KUBE_PROXY_CHAINS)
        or chain.startswith(_OLD_KUBE_PROXY_CHAINS)
        or chain in _KUBE_PROXY_FIXED
        or chain in _KUBELET
    )


# Asked for every rule a trace walks: the doctor's 31 traces at 10k Services asked 8,004
# times about ~1,800 rules. A pure function of strings; the cache is bounded.
@lru_cache(maxsize=16384)
def iptables_owner(
    table: str, chain: str, comments: tuple[str, ...], target: str | None = None
) -> Owner:
    """The owner of an iptables rule, from its chain, `-m comment` texts and target.

    A rule in a built-in chain belongs to whoever it jumps to (`-A FORWARD -j
    cali-FORWARD` is Calico's hook, `-j KUBE-SERVICES` kube-proxy's).
    """
    joined = " ".join(comments)
    builtin = chain in _BUILTIN_CHAINS
    if builtin and target and target not in _VERDICT_TARGETS:
        hooked = iptables_owner(table, target, comments)
        if hooked.kind != "host-firewall":
            return Owner(hooked.kind, hooked.agent, hooked.name, f"jump from {chain} to {target}")
    if builtin and any(c.startswith("cali:") for c in comments):
        return Owner("cni", "Calico", "", f"comment in {chain}")
    if builtin and any(c.startswith(_AWS_BLOCK_LOCAL) for c in comments):
        what = "egress-cni addresses are node-local"
        return Owner("cni", "AWS VPC CNI", what, f"comment in {chain}")
    if chain.startswith(("cali-pi-", "cali-po-")):
        found = _CALICO_POLICY.search(joined)
        way = "inbound" if chain.startswith("cali-pi-") else "outbound"
        name = found["name"] if found else chain
        return Owner("network-policy", "Calico", name, f"{way} policy chain {chain}")
    if chain.startswith("cali-"):
        found = _CALICO_POLICY.search(joined)
        if found:
            return Owner("network-policy", "Calico", found["name"], f"comment in {chain}")
        endpoint = _calico_endpoint(chain)
        if "Drop if no policies passed packet" in joined:
            name = f"policies of {endpoint}: none accepted" if endpoint else "no policy accepted"
            return Owner("network-policy", "Calico", name, f"chain {chain}")
        if "Drop if no profiles matched" in joined:
            name = f"profiles of {endpoint}: none matched" if endpoint else "no profile matched"
            return Owner("network-policy", "Calico", name, f"chain {chain}")
        return Owner("cni", "Calico", endpoint, f"chain {chain}")
    if chain.startswith(("KUBE-NWPLCY-", "KUBE-POD-FW-", "KUBE-ROUTER-")):
        return _kube_router(chain, joined)
    if chain.startswith(_KUBE_PROXY_CHAINS) or chain in _KUBE_PROXY_FIXED:
        service = _service_of(comments)
        if service:
            return Owner("service", "kube-proxy", service, f"comment in {chain}")
        return Owner("kube-proxy", "kube-proxy", "", f"chain {chain}")
    if chain in _KUBELET:
        return Owner("kubelet", "kubelet", "", f"chain {chain}")
    if chain.startswith(("CNI-HOSTPORT-", "CNI-DN-")):
        return Owner("cni", "portmap CNI", _hostport(comments), f"chain {chain}")
    if chain.startswith(("CNI-E4-", "CNI-E6-")):
        # egress-cni's prefixes: ipMasq's chains are CNI- + hex digits only.
        net = re.search(r'name: "([^"]*)"', joined)
        agent = "AWS VPC CNI egress-cni (SNAT)"
        return Owner("cni", agent, net.group(1) if net else "", f"chain {chain}")
    if chain.startswith("CNI-"):
        net = re.search(r'name: "([^"]*)"', joined)
        return Owner("cni", "bridge CNI (ipMasq)", net.group(1) if net else "", f"chain {chain}")
    if chain.startswith("FLANNEL") or "flanneld" in joined:
        return Owner("cni", "flannel", "", f"chain {chain}")
    if chain.startswith("IP-MASQ-AGENT") or "ip-masq-agent" in joined:
        return Owner("cni", "ip-masq-agent", "", f"chain {chain}")
    service = _service_of(comments)
    if service:
        return Owner("service", "kube-proxy", service, f"comment in {chain}")
    for prefix, kind, agent in _PRODUCTS:
        if chain.startswith(prefix):
            return Owner(kind, agent, "", f"chain {chain}")
    return Owner("host-firewall", "", f"{table}/{chain}", f"chain {chain}")


def _kube_router(chain: str, comments: str) -> Owner:
    """kube-router's policy chains (KUBE-NWPLCY-*), pod firewalls (KUBE-POD-FW-*), the rest."""
    if (
        chain == KUBE_ROUTER_DEFAULT
        or "default ingress network policy" in comments
        or ("default egress network policy" in comments)
    ):
        return Owner("network-policy", "kube-router", KUBE_ROUTER_UNSELECTED, f"chain {chain}")
    if chain == "KUBE-NWPLCY-COMMON":
        return Owner(
            "network-policy", "kube-router", "common rules (state, ICMP)", f"chain {chain}"
        )
    found = _KUBE_ROUTER_POLICY.search(comments)
    if found is not None:
        if found["name"]:
            name = f"{found['ns']}/{found['name']}"
        elif found["nw"]:
            # The pod firewall's jump into a policy names it without its namespace.
            return Owner("network-policy", "kube-router", found["nw"], f"{POLICY_JUMP} {chain}")
        else:
            name = found["np"]
        return Owner("network-policy", "kube-router", name, f"chain {chain}")
    pod = _KUBE_ROUTER_POD.search(comments)
    if pod is not None:
        return Owner(
            "network-policy",
            "kube-router",
            f"pod firewall of {pod['ns']}/{pod['pod']}",
            f"chain {chain}",
        )
    kind = "cni" if chain.startswith("KUBE-ROUTER-") else "network-policy"
    return Owner(kind, "kube-router", "" if kind == "cni" else chain, f"chain {chain}")


def nft_owner(family: str, table: str, chain: str, comment: str | None) -> Owner:
    """The owner of a native nftables rule, from its table, chain and comment."""
    if table == "kube-proxy":
        # Imported here: kube-proxy's nftables model (and the nft and iptables parsers it
        # brings, ~20 ms) is not needed by the listings that import this module for
        # their owner column, `ls namespaces` first (BENCHMARKS.md, figure 2).
        from podpath.netfilter.kube_proxy_nft import KP_CHAIN

        found = KP_CHAIN.match(chain)
        if found:
            port = f":{found['port']}" if found["port"] else ""
            return Owner(
                "service", "kube-proxy", f"{found['ns']}/{found['name']}{port}", f"chain {chain}"
            )
        return Owner("kube-proxy", "kube-proxy", "", f"table {family} {table}")
    if table == "kube-network-policies":
        name = _knp_policy(chain, comment)
        return Owner("network-policy", "kube-network-policies", name, f"table {family} {table}")
    if table == "calico" or chain.startswith("cali") or "-cali-" in chain:
        made = iptables_owner(table, _calico_chain(chain), (comment,) if comment else ())
        if made.agent != "Calico":  # Calico's base chains (filter-FORWARD...) of its table
            return Owner("cni", "Calico", "", f"table {family} {table}")
        return made
    return iptables_owner(table, chain, (comment,) if comment else ())


def _calico_chain(chain: str) -> str:
    """Calico's nftables chains carry the iptables table as a prefix: filter-cali-pi-..."""
    for prefix in ("filter-", "nat-", "mangle-", "raw-"):
        if chain.startswith(prefix + "cali-"):
            return chain[len(prefix) :]
    return chain


def _calico_endpoint(chain: str) -> str:
    for prefix in ("cali-tw-", "cali-fw-", "cali-from-", "cali-to-"):
        if chain.startswith(prefix) and not chain.endswith("dispatch"):
            return f"workload endpoint {chain[len(prefix) :]}"
    return ""


def _service_of(comments: tuple[str, ...]) -> str:
    for comment in comments:
        found = _KP_COMMENT.match(comment.strip())
        if found:
            port = f":{found['port']}" if found["port"] else ""
            return f"{found['ns']}/{found['name']}{port}"
    return ""


def _hostport(comments: tuple[str, ...]) -> str:
    for comment in comments:
        found = re.search(r'dnat name: "([^"]*)" id: "([^"]{0,12})', comment)
        if found:
            return f"hostPort of {found.group(1)} container {found.group(2)}"
    return ""


def _knp_policy(chain: str, comment: str | None) -> str:
    """kube-network-policies queues packets to its agent, which evaluates the policies."""
    if comment:
        return comment
    return "policies evaluated by its agent (NFQUEUE)"
