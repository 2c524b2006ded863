"""kube-router's NetworkPolicy controller, rendered as the iptables and ipset input it writes.

`podpath lab up --policy kube-router` enforces the lab's NetworkPolicies the way
kube-router's netpol controller (also embedded in k3s) does in its iptables mode:
KUBE-ROUTER-INPUT/FORWARD/OUTPUT hooked at position 1 of the filter table's built-in
chains, one KUBE-POD-FW-* chain per local pod that runs the policies selecting it
(KUBE-NWPLCY-*, marking 0x10000 when one allows) and REJECTs what none allowed,
hash:ip ipsets (KUBE-SRC-*, KUBE-DST-*) of the pods each policy selects.

Names, hashes, rule order and comments follow cloudnativelabs/kube-router v2.9.0
(c869af25a33ebbd2dc2311e33272f325ad7bedd7): pkg/controllers/netpol/
network_policy_controller.go (ensureTopLevelChains, ensureCommonPolicyChain,
ensureDefaultNetworkPolicyChain, ensureExplicitAccept), pod.go
(syncPodFirewallChains, setupPodNetpolRules, interceptPodInbound/OutboundTraffic),
policy.go (processIngressRules, appendRuleToPolicyChain, the chain and ipset names),
pkg/utils/iptables.go (CommonICMPRules). Only what the lab's policies use is
rendered: pod selectors, ingress from pods, TCP/UDP ports; IPv4 only.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from podpath.lab.kubeproxy import SERVICE_CIDR
from podpath.lab.records import PodRecord

INPUT, FORWARD, OUTPUT = "KUBE-ROUTER-INPUT", "KUBE-ROUTER-FORWARD", "KUBE-ROUTER-OUTPUT"
# kube-router's defaultChains map, in the order the lab writes them (Go's map order varies).
TOP_LEVEL = (("INPUT", INPUT), ("FORWARD", FORWARD), ("OUTPUT", OUTPUT))
DEFAULT_CHAIN = "KUBE-NWPLCY-DEFAULT"
COMMON_CHAIN = "KUBE-NWPLCY-COMMON"
NODE_PORT_RANGE = "30000:32767"  # kube-router's --service-node-port-range default
# The label the lab gives the one pod its policy lets reach the web pods.
CLIENT_LABEL = ("access", "web")
# kube-router's sync version is strconv.FormatInt(time.UnixNano(), 36); the lab's is fixed.
LAB_SYNC_VERSION = "podpathlab"


@dataclass(frozen=True)
class PolicyPort:
    """One `ports` entry of a NetworkPolicy rule."""

    protocol: str  # "TCP" or "UDP", as Kubernetes spells it
    port: int


@dataclass(frozen=True)
class NetworkPolicy:
    """A NetworkPolicy of policyTypes [Ingress]; `ingress_from` None means no ingress rule."""

    namespace: str
    name: str
    pod_selector: tuple[tuple[str, str], ...]  # matchLabels; () selects every pod
    ingress_from: tuple[tuple[str, str], ...] | None = None  # one rule's podSelector
    ports: tuple[PolicyPort, ...] = ()

    @property
    def ref(self) -> str:
        """namespace/name."""
        return f"{self.namespace}/{self.name}"


# What `--policy` enforces: ingress to namespace default denied, except web from the client.
LAB_POLICIES: tuple[NetworkPolicy, ...] = (
    NetworkPolicy("default", "default-deny-ingress", ()),
    NetworkPolicy(
        "default",
        "web-allow-access",
        (("app", "web"),),
        ingress_from=(CLIENT_LABEL,),
        ports=(PolicyPort("TCP", 80),),
    ),
)


def pod_labels(pod: PodRecord, pods: Sequence[PodRecord]) -> dict[str, str]:
    """The labels the lab's pods carry: app, and access=web on the first web pod of node1."""
    labels = {"app": pod.app} if pod.app == "web" else {"k8s-app": "kube-dns"}
    if pod is client_pod(pods):
        labels[CLIENT_LABEL[0]] = CLIENT_LABEL[1]
    return labels


def client_pod(pods: Sequence[PodRecord]) -> PodRecord | None:
    """The pod the lab's allow policy names: node1's first web pod."""
    return next((p for p in pods if p.app == "web" and p.namespace == "default"), None)


def _selects(selector: tuple[tuple[str, str], ...], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector)


def selected(policy: NetworkPolicy, pods: Sequence[PodRecord]) -> list[PodRecord]:
    """The pods of the policy's namespace its podSelector selects."""
    return [
        p
        for p in pods
        if p.namespace == policy.namespace and _selects(policy.pod_selector, pod_labels(p, pods))
    ]


def _peers(policy: NetworkPolicy, pods: Sequence[PodRecord]) -> list[PodRecord]:
    """A rule's `from: podSelector` pods (of the policy's namespace, as the API says)."""
    assert policy.ingress_from is not None
    return [
        p
        for p in pods
        if p.namespace == policy.namespace and _selects(policy.ingress_from, pod_labels(p, pods))
    ]


def _hash16(text: str) -> str:
    """base32(sha256(text))[:16], kube-router's way of naming chains and sets."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def pod_chain(pod: PodRecord, version: str = LAB_SYNC_VERSION) -> str:
    """podFirewallChainName: KUBE-POD-FW- + hash of namespace, name and sync version."""
    return "KUBE-POD-FW-" + _hash16(pod.namespace + pod.name + version)


def policy_chain(policy: NetworkPolicy, version: str = LAB_SYNC_VERSION) -> str:
    """networkPolicyChainName: KUBE-NWPLCY- + hash of namespace, name, version and family."""
    return "KUBE-NWPLCY-" + _hash16(policy.namespace + policy.name + version + "IPv4")


def dst_set(policy: NetworkPolicy) -> str:
    """policyDestinationPodIPSetName: the pods the policy selects."""
    return "KUBE-DST-" + _hash16(policy.namespace + policy.name + "IPv4")


def src_set(policy: NetworkPolicy, rule: int = 0) -> str:
    """policyIndexedSourcePodIPSetName: the pods ingress rule `rule` admits."""
    return "KUBE-SRC-" + _hash16(f"{policy.namespace}{policy.name}ingressrule{rule}IPv4pod")


def _uuid_comment(chain: str, spec: list[str]) -> list[str]:
    """addUUIDForRuleSpec: the comment gets ` - ` and a hash of the chain and the spec."""
    uuid = _hash16(chain + "".join(spec))
    at = spec.index("--comment") + 1
    return [*spec[:at], f"{spec[at]} - {uuid}", *spec[at + 1 :]]


def _q(text: str) -> str:
    return f'"{text}"'


def _line(argv: list[str]) -> str:
    return " ".join(_q(a) if " " in a else a for a in argv)


def _argv(line: str, **values: str) -> list[str]:
    """iptables arguments written as one line: its shell words, each `{name}` word then `values[name]`."""
    # Only the line, which is podpath's own text, is split; a value is one word whatever it holds.
    return [values[w[1:-1]] if w[:1] + w[-1:] == "{}" else w for w in shlex.split(line)]


def _top_level() -> list[str]:
    """The jumps from the built-in chains (position 1) and KUBE-ROUTER-INPUT's returns."""
    out = []
    for builtin, custom in TOP_LEVEL:
        spec = _uuid_comment(
            builtin, ["-m", "comment", "--comment", "kube-router netpol", "-j", custom]
        )
        out.append(_line(["-I", builtin, "1", *spec]))
    cluster = ["-m", "comment", "--comment", "allow traffic to primary/secondary cluster IP range"]
    returns = [[*cluster, "-d", SERVICE_CIDR, "-j", "RETURN"]]
    for proto in ("TCP", "UDP", "SCTP"):
        returns.append(
            _argv(
                "-p {proto} -m comment --comment {comment} -m addrtype --dst-type LOCAL"
                " -m multiport --dports {ports} -j RETURN",
                proto=proto.lower(),
                comment=f"allow LOCAL {proto} traffic to node ports",
                ports=NODE_PORT_RANGE,
            )
        )
    out += [_line(["-A", INPUT, *_uuid_comment(INPUT, spec)]) for spec in returns]
    return out


def _common_and_default() -> list[str]:
    """KUBE-NWPLCY-DEFAULT (mark: allowed) and KUBE-NWPLCY-COMMON (state, ICMP)."""
    mark = _argv(
        "-j MARK -m comment --comment 'rule to mark traffic matching a network policy'"
        " --set-xmark 0x10000/0x10000"
    )
    out = [_line(["-A", DEFAULT_CHAIN, *mark])]
    common = [
        _argv(
            "-m comment --comment 'rule to drop invalid state for pod'"
            " -m conntrack --ctstate INVALID -j DROP"
        ),
        _argv(
            "-m comment --comment 'rule for stateful firewall for pod'"
            " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
        ),
    ]
    for icmp, comment in (
        ("echo-request", "allow icmp echo requests"),
        ("destination-unreachable", "allow icmp destination unreachable messages"),
        ("time-exceeded", "allow icmp time exceeded messages"),
    ):
        common.append(
            [
                "-m",
                "comment",
                "--comment",
                comment,
                "-p",
                "icmp",
                "--icmp-type",
                icmp,
                "-j",
                "ACCEPT",
            ]
        )
    out += [_line(["-A", COMMON_CHAIN, *spec]) for spec in common]
    return out


def _policy_rules(policy: NetworkPolicy, version: str) -> list[str]:
    """processIngressRules for a rule `from` pods with ports: MARK, then RETURN if marked."""
    if policy.ingress_from is None:
        return []  # no ingress rule: the policy allows nothing
    comment = (
        "rule to ACCEPT traffic from source pods to dest pods selected by policy name "
        f"{policy.name} namespace {policy.namespace}"
    )
    base = _argv(
        "-A {chain} -m comment --comment {comment}"
        " -m set --match-set {src} src -m set --match-set {dst} dst",
        chain=policy_chain(policy, version),
        comment=comment,
        src=src_set(policy),
        dst=dst_set(policy),
    )
    out = []
    for port in policy.ports or (None,):
        spec = [*base, "-p", port.protocol, "--dport", str(port.port)] if port else base
        out.append(_line([*spec, "-j", "MARK", "--set-xmark", "0x10000/0x10000"]))
        out.append(_line([*spec, "-m", "mark", "--mark", "0x10000/0x10000", "-j", "RETURN"]))
    return out


def _pod_rules(
    pod: PodRecord, policies: Sequence[NetworkPolicy], pods: Sequence[PodRecord], version: str
) -> list[str]:
    """One local pod's firewall chain and the jumps into it (syncPodFirewallChains)."""
    chain, ip, who = (
        pod_chain(pod, version),
        pod.ip,
        f"POD name:{pod.name} namespace: {pod.namespace}",
    )
    applied = [p for p in policies if pod in selected(p, pods)]
    inserts = [
        _argv(
            "-d {ip} -m comment --comment {comment} -j {chain}",
            ip=ip,
            comment=f"run through nw policy {p.name}",
            chain=policy_chain(p, version),
        )
        for p in applied
    ]
    if not applied:
        inserts.append(
            _argv(
                "-d {ip} -m comment --comment 'run through default ingress network policy chain'"
                " -j {chain}",
                ip=ip,
                chain=DEFAULT_CHAIN,
            )
        )
    # No policy of the lab has egress rules: every pod's egress takes the default chain.
    inserts.append(
        _argv(
            "-s {ip} -m comment --comment 'run through default egress network policy chain'"
            " -j {chain}",
            ip=ip,
            chain=DEFAULT_CHAIN,
        )
    )
    inserts.append(
        _argv(
            "-m comment --comment"
            ' "rule to permit the traffic traffic to pods when source is the pod\'s local node"'
            " -m addrtype --src-type LOCAL -d {ip} -j ACCEPT",
            ip=ip,
        )
    )
    inserts.append(
        _argv(
            "-m comment --comment 'common bi-directional traffic policy rules' -j {chain}",
            chain=COMMON_CHAIN,
        )
    )
    out = [_line(["-I", chain, "1", *spec]) for spec in inserts]
    into = f"rule to jump traffic destined to {who} to chain {chain}"
    out_of = f"rule to jump traffic from {who} to chain {chain}"
    out += [
        _line(["-A", FORWARD, "-m", "comment", "--comment", into, "-d", ip, "-j", chain]),
        _line(["-A", OUTPUT, "-m", "comment", "--comment", into, "-d", ip, "-j", chain]),
        _line(
            _argv(
                "-A {forward} -m physdev --physdev-is-bridged"
                " -m comment --comment {into} -d {ip} -j {chain}",
                forward=FORWARD,
                into=into,
                ip=ip,
                chain=chain,
            )
        ),
    ]
    out += [
        _line(["-A", custom, "-m", "comment", "--comment", out_of, "-s", ip, "-j", chain])
        for _, custom in TOP_LEVEL
    ]
    out.append(
        _line(
            _argv(
                "-A {forward} -m physdev --physdev-is-bridged"
                " -m comment --comment {out_of} -s {ip} -j {chain}",
                forward=FORWARD,
                out_of=out_of,
                ip=ip,
                chain=chain,
            )
        )
    )
    log = _argv(
        "-A {chain} -m comment --comment {comment} -m mark ! --mark 0x10000/0x10000"
        " -j NFLOG --nflog-group 100 -m limit --limit 10/minute --limit-burst 10",
        chain=chain,
        comment=f"rule to log dropped traffic {who}",
    )
    reject = _argv(
        "-A {chain} -m comment --comment {comment} -m mark ! --mark 0x10000/0x10000 -j REJECT",
        chain=chain,
        comment=f"rule to REJECT traffic destined for {who}",
    )
    accept = _argv(
        "-A {chain} -m comment --comment"
        " 'set mark to ACCEPT traffic that comply to network policies'"
        " -j MARK --set-mark 0x20000/0x20000",
        chain=chain,
    )
    unmark = _argv("-A {chain} -j MARK --set-mark 0/0x10000", chain=chain)
    out += [_line(log), _line(reject), _line(unmark), _line(accept)]
    return out


def iptables_input(
    node: str,
    pods: Sequence[PodRecord],
    policies: Sequence[NetworkPolicy] = LAB_POLICIES,
    version: str = LAB_SYNC_VERSION,
) -> str:
    """`iptables-restore --noflush` input: kube-router's filter table on one node."""
    local = [p for p in pods if p.node == node]
    chains = [INPUT, FORWARD, OUTPUT, DEFAULT_CHAIN, COMMON_CHAIN]
    chains += [policy_chain(p, version) for p in policies]
    chains += [pod_chain(p, version) for p in local]
    lines = ["*filter", *(f":{c} - [0:0]" for c in chains)]
    lines += _top_level() + _common_and_default()
    for policy in policies:
        lines += _policy_rules(policy, version)
    for pod in local:
        lines += _pod_rules(pod, policies, pods, version)
    explicit = _argv(
        "-m comment --comment 'rule to explicitly ACCEPT traffic that comply to network policies'"
        " -m mark --mark 0x20000/0x20000 -j ACCEPT"
    )
    lines += [_line(["-A", custom, *explicit]) for _, custom in TOP_LEVEL]
    return "\n".join([*lines, "COMMIT", ""])


def ipset_input(pods: Sequence[PodRecord], policies: Sequence[NetworkPolicy] = LAB_POLICIES) -> str:
    """`ipset restore -exist` input: each policy's selected pods and admitted peers."""
    sets: dict[str, list[str]] = {}
    for policy in policies:
        sets[dst_set(policy)] = [p.ip for p in selected(policy, pods)]
        if policy.ingress_from is not None:
            sets[src_set(policy)] = [p.ip for p in _peers(policy, pods)]
    lines = []
    for name in sorted(sets):
        # RefreshSet creates hash:ip sets with `timeout 0` and adds each IP `timeout 0`.
        lines.append(f"create {name} hash:ip timeout 0")
        lines += [f"add {name} {ip} timeout 0" for ip in sets[name]]
    return "\n".join([*lines, ""])
