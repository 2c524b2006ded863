"""Why a traced branch fails: the check it belongs to, the hop that decided it, and the fix.

The trace engine says what happens to a packet and why, hop by hop; this module reads
one branch's verdict and deciding hop and names the cause in the doctor's terms: no
listener, a Service without endpoints, forwarding off, a rule that drops it and whose
rule it is, a missing route or VTEP, a bridge that will not send a frame back out of
the port it came in on, a reply conntrack did not translate back. A branch the engine
could not follow to the end (an eBPF program, an IPVS scheduler's choice) is a fact the
doctor cannot judge: it is named, graded info, never called broken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from podpath.analysis.address_conflicts import failed_address, shared_address
from podpath.analysis.detached_ports import detached_finding
from podpath.analysis.findings import Finding
from podpath.analysis.gone_interfaces import gone_interface_finding
from podpath.analysis.index import SnapshotIndex
from podpath.analysis.ns_tables import network
from podpath.analysis.problems import (
    bridge_nf_fix,
    bridge_nf_off,
    forwarding_fix,
    forwarding_spared,
)
from podpath.analysis.sockets import is_listening, local_endpoint
from podpath.netfilter.kube_proxy import Service
from podpath.netfilter.owners import Owner
from podpath.snapshot.model import Link, Pod, Socket
from podpath.trace import own_rules
from podpath.trace.beyond import Beyond
from podpath.trace.beyond import parse as parse_beyond
from podpath.trace.links import set_down
from podpath.trace.model import Branch, Hop
from podpath.trace.probe import hostport
from podpath.trace.reply import answered_unasked
from podpath.trace.routing import address as parsed_address


@dataclass(frozen=True)
class Aim:
    """What a traced path is meant to reach, in the words of a finding."""

    kind: str  # service (a ClusterIP), nodeport, external (LB or external IP), pod
    label: str  # "Service default/web:http", "pod default/web-0"
    address: str
    port: int | None
    proto: str
    service: Service | None = None
    # A dual-stack Service port's ClusterIPs, one of each family (ClusterIP aims only).
    cluster_ips: tuple[str, ...] = ()

    @property
    def target(self) -> str:
        """`10.96.0.10:53`, `[fd00::a]:53`: what the client sends to (and must hear back
        from), as `podpath trace --to` reads it."""
        return hostport(self.address, self.port)

    @property
    def service_targets(self) -> str:
        """What a cause of the whole Service port names: the target with its protocol, or
        a dual-stack port's ClusterIP of each family (its paths to both make one finding)."""
        ips = self.cluster_ips if self.kind == "service" and self.cluster_ips else (self.address,)
        return " and ".join(f"{hostport(ip, self.port)}/{self.proto}" for ip in ips)


@dataclass(frozen=True)
class Cause:
    """Why one branch fails, in the doctor's words; equal causes make one finding."""

    check: str
    grade: str  # when every branch of the path fails this way
    subject: str
    cause: str
    fix: str
    hop: str | None = None
    evidence: tuple[str, ...] = ()
    key: str = ""  # what makes it one finding (default: the subject)
    partial_grade: str = "warning"  # when only some branches fail this way
    # Branches of one path failing for the same cause each add a part (an endpoint):
    # the sentence is cause + the parts joined + tail.
    parts: tuple[str, ...] = ()
    tail: str = ""
    # What the subject names, which says what other paths sharing its verdict add to it
    # ("(and 2 like it)"): the "destination" traced (other destinations), the "source"
    # pod (other pods), or a "place" (a node, rule or policy: nothing; nor a cause read
    # from each port's own rules, which names only its own Service).
    about: Literal["destination", "source", "place"] = "place"
    # The node whose kernel decided (a drop on the far node of a path that crossed to it);
    # "" for the path's own node.
    node: str = ""

    @property
    def id(self) -> str:
        """The finding this cause belongs to."""
        return f"{self.check}:{self.key or self.subject}"

    @property
    def text(self) -> str:
        """The whole sentence."""
        return self.cause + ", ".join(self.parts) + self.tail

    def joined(self, other: Cause) -> Cause:
        """This cause with another branch's parts and evidence (the same id)."""
        return replace(
            self,
            parts=tuple(dict.fromkeys((*self.parts, *other.parts))),
            evidence=tuple(dict.fromkeys((*self.evidence, *other.evidence))),
        )


def _address_conflict(branch: Branch, indexes: list[SnapshotIndex]) -> Cause | None:
    """The address conflict a failing branch's packets (or its answer's) carry: an
    address two of the node's namespaces hold, or one that failed duplicate address
    detection; None when they carry none."""
    for failed in (branch, *branch.reply):
        if failed.end is None:
            continue
        index = indexes[failed.end[0]]
        packet = failed.packet
        for address in (packet.dst, packet.src):
            finding = None
            if address is not None and address in index.shared_addresses:
                finding = shared_address(index, address)
            elif address is not None and address in index.failed_addresses:
                finding = failed_address(index, address)
            if finding is not None:
                return _from_finding(finding, failed)
    return None


def _cut_off_pod(branch: Branch, indexes: list[SnapshotIndex]) -> Cause | None:
    """The pod a failing branch's packets (or its answer's) come from or go to that is cut
    off from the node: its host veth no port of the bridge holding its network
    (podpath.analysis.detached_ports), or its eth0 gone (gone_interfaces); None when
    there is none."""
    for failed in (branch, *branch.reply):
        if failed.end is None:
            continue
        index = indexes[failed.end[0]]
        ports, gone = index.detached_ports, index.pods_without_eth0
        if not ports and not gone:
            continue
        for address in (failed.packet.dst, failed.packet.src or ""):
            port, pod = ports.get(address), gone.get(address)
            if port is not None:
                return _from_finding(detached_finding(index, port), failed)
            if pod is not None:
                return _from_finding(gone_interface_finding(index, pod), failed)
    return None


def _from_finding(finding: Finding, failed: Branch) -> Cause:
    """A fact check's finding as the cause of the paths it breaks, decided at their last hop."""
    return Cause(
        finding.check,
        finding.grade,
        finding.subject,
        finding.cause,
        finding.fix,
        hop_text(failed.hops[-1]) if failed.hops else None,
        finding.evidence,
        key=finding.key,
        partial_grade="critical",
        node=finding.node,
    )


def hop_text(hop: Hop) -> str:
    """A hop as one line: `[node1] netfilter filter/KUBE-SERVICES #3: -> REJECT`."""
    # A hop's text often starts with its kind ("dropped: ...", "bridge cni0: ..."): say it once.
    if hop.text.startswith(hop.kind):
        return f"[{hop.node}] {hop.text}"
    return f"[{hop.node}] {hop.kind} {hop.text}"


def branch_cause(branch: Branch, aim: Aim, indexes: list[SnapshotIndex]) -> Cause | None:
    """The cause of a failing branch (with its reply), or None when it works. Where the
    branch's packets carry an address two namespaces hold, or one that failed duplicate
    address detection, that is the cause, whichever hop showed it (a pod that is not the
    one meant, a martian source, an answer delivered to the wrong pod, an ARP answer
    either pod may give)."""
    cause = _hop_cause(branch, aim, indexes)
    if cause is None:
        return None
    return _address_conflict(branch, indexes) or _cut_off_pod(branch, indexes) or cause


def _hop_cause(branch: Branch, aim: Aim, indexes: list[SnapshotIndex]) -> Cause | None:
    """The cause of a failing branch as the hop that decided it shows, or None."""
    # A Service's address the node itself refuses or drops, kube-proxy's jumps missing (an
    # IPVS VIP without real servers is refused too, with its jumps in place; nftables mode
    # rejects a ClusterIP no rule translated, in cluster-ips-check).
    untranslated = branch.packet.dst == aim.address and branch.packet.dport == aim.port
    if branch.verdict in ("refused", "dropped") and untranslated:
        if aim.kind in ("service", "nodeport") and branch.packet.direction == "original":
            how = "refuses" if branch.verdict == "refused" else "drops"
            fate = f"the node itself {how} it: {branch.reason}"
            always = _nodeport_refused_untranslated(branch, aim, indexes)
            found = _not_dnated(branch, aim, indexes, fate, only_unjumped=not always)
            if found is not None:
                return found
    if branch.verdict == "refused":
        return _refused(branch, aim, indexes)
    if branch.verdict == "dropped":
        return _dropped(branch, aim, indexes, way="")
    if branch.verdict == "uncertain":
        return _detour(branch, aim, indexes) or _uncertain(branch, aim)
    if branch.verdict == "delivered":
        return _reply_cause(branch, aim, indexes)
    if branch.verdict == "leaves-node":
        if aim.kind == "service" and branch.packet.dst == aim.address:
            # Never DNATed: a ClusterIP no host outside the node holds.
            what = (
                "kube-proxy's DNAT (the nat table) is never consulted for it, and the "
                f"packet to the ClusterIP {branch.reason}"
            )
            found = _untracked_request(branch, aim, what, _last(branch, "leave"))
            found = found or _reject_bypassed(branch, aim)
            return found or _not_dnated(branch, aim, indexes, f"it {branch.reason}")
        return _astray(branch, aim, indexes) or _reply_cause(branch, aim, indexes)
    return None


def _nodeport_refused_untranslated(branch: Branch, aim: Aim, indexes: list[SnapshotIndex]) -> bool:
    """A NodePort the node's own stack refuses was translated by no rule, whatever jumps
    are there (its Service's rule in KUBE-NODEPORTS gone), but where IPVS holds it (a VIP
    without real servers); one the node drops may be kube-proxy's own doing
    (externalTrafficPolicy Local without a local endpoint)."""
    if branch.verdict != "refused" or aim.kind != "nodeport":
        return False
    end = _last(branch, "deliver")
    index = _index_of(indexes, end.node) if end is not None else None
    return index is None or index.kube_proxy_mode.mode != "ipvs"


def _not_dnated(
    branch: Branch, aim: Aim, indexes: list[SnapshotIndex], fate: str, only_unjumped: bool = False
) -> Cause | None:
    """A Service's address (a ClusterIP, or a node's NodePort) that no nat rule translated:
    the packet goes on to the address itself, which no pod serves. kube-proxy's rules are
    reached from the hooks' chains by its jumps (iptables: `-A PREROUTING -j KUBE-SERVICES`,
    and from OUTPUT; nftables: `jump services` in nat-prerouting and nat-output), which a
    restart puts back: a hook's chain without its jump is named. With `only_unjumped`,
    None unless such a chain is found (a node refusing an IPVS VIP without real servers
    has its jumps)."""
    hop = _last(branch, "leave") or _last(branch, "deliver") or _last(branch, "drop")
    node = hop.node if hop is not None else ""
    index = _index_of(indexes, node)
    family = "ipv6" if ":" in aim.address else "ipv4"
    nodeport = aim.kind == "nodeport"
    unjumped = _kube_jumps_missing(index, family, nodeport) if index is not None else ()
    if only_unjumped and not unjumped:
        return None
    chains, targets = _named(unjumped)
    why = (
        f"kube-proxy's jump to {targets} is missing from {chains} on node {node}"
        if unjumped
        else f"no nat rule of node {node} translated it"
    )
    return Cause(
        "service-not-dnated",
        "critical",
        f"{chains} of node {node}" if unjumped else aim.label,
        f"{_dropped_flow(branch, aim, '')} is never DNATed to an endpoint ({why}): {fate}",
        "restart kube-proxy on the node, which writes its rules and their jumps again; "
        "check its log for why they are missing",
        hop_text(hop) if hop is not None else None,
        tuple(m.evidence for m in unjumped),
        key=f"{node}:{chains or aim.label}",
        partial_grade="critical",
        node=node,
        about="place" if unjumped else "destination",
    )


def _reject_bypassed(branch: Branch, aim: Aim) -> Cause | None:
    """A ClusterIP without endpoints, which kube-proxy's iptables mode rejects in the filter
    table (KUBE-SERVICES, jumped from FORWARD and OUTPUT), left the node untranslated
    because a rule ahead of that jump accepted it: kube-router's KUBE-ROUTER-FORWARD,
    hooked at position 1, ends with an explicit ACCEPT of what its policies let through.
    No nat rule is missing (kube-proxy writes none for such a port): the client times
    out, not refused, and the packet goes to the node's default gateway. (In nftables
    mode kube-proxy's own table rejects it at the same hook whatever another table
    accepted.)"""
    svc = aim.service
    if svc is None or not svc.no_endpoints or aim.kind != "service":
        return None
    accepted = next(
        (
            h
            for h in reversed(branch.hops)
            if h.kind == "netfilter"
            and h.data.get("table") == "filter"
            and h.data.get("taken")
            and str(h.data.get("rule") or "").endswith("-j ACCEPT")
        ),
        None,
    )
    if accepted is None:
        return None
    owner = _owner(accepted)
    who = f"{owner.agent}'s " if owner is not None and owner.agent else ""
    rule = f"{accepted.data.get('chain')} #{accepted.data.get('position')}"
    rejects = [e for e in svc.evidence if "has no endpoints" in e]
    hook = str(accepted.data.get("hook") or "FORWARD")
    return Cause(
        "service-reject-bypassed",
        "warning",
        aim.label,
        f"{aim.label} has no endpoints, and kube-proxy's {svc.no_endpoints} of it in the "
        f"filter table is never reached: {who}{rule} accepts "
        f"{_dropped_flow(branch, aim, '')} first at {hook}, so it {branch.reason}, "
        "untranslated: the client times out instead of being refused",
        "give the Service ready endpoints (kubectl get endpointslices -l "
        "kubernetes.io/service-name=NAME -n NAMESPACE); the ACCEPT ahead of kube-proxy's "
        f"rules at {hook} lets every packet to such a ClusterIP leave the node",
        hop_text(accepted),
        (str(accepted.data.get("rule")), *rejects[:1]),
        key=f"{accepted.node}:{aim.label}",
        partial_grade="warning",
        node=accepted.node,
        about="destination",
    )


def _unmasqueraded(
    branch: Branch, aim: Aim, indexes: list[SnapshotIndex], fate: str
) -> Cause | None:
    """kube-proxy marked the request for its masquerade (KUBE-MARK-MASQ; nftables:
    mark-for-masquerade) and nothing on that node masqueraded it, as its POSTROUTING jump
    or its MASQUERADE rule is gone: the endpoint answers the client's own address (a
    pod DNATed to itself takes its own source for a martian; an endpoint on another
    node answers a NodePort's client past the node that DNATed it)."""
    marked = next(
        (
            h
            for h in branch.hops
            if h.kind == "netfilter"
            and h.data.get("taken")
            and h.data.get("chain") in ("KUBE-MARK-MASQ", "mark-for-masquerade")
        ),
        None,
    )
    if marked is None:
        return None
    node = marked.node
    if any(
        h.kind == "nat" and h.node == node and h.data.get("type") == "SNAT" for h in branch.hops
    ):
        return None
    index = _index_of(indexes, node)
    family = "ipv6" if ":" in aim.address else "ipv4"
    missing = _masquerade_missing(index, family) if index is not None else ()
    if not missing:
        return None
    chains, targets = _named(missing)
    return Cause(
        "masquerade-missing",
        "critical",
        f"{chains} of node {node}",
        f"{_dropped_flow(branch, aim, '')} is marked for kube-proxy's masquerade on node "
        f"{node} and never masqueraded ({targets} missing from {chains}): {fate}",
        "restart kube-proxy on the node, which writes its rules and their jumps again; "
        "check what flushed its nat POSTROUTING rules (a host firewall's reload)",
        hop_text(marked),
        tuple(m.evidence for m in missing),
        key=f"{node}:{chains}",
        partial_grade="critical",
        node=node,
    )


def _masquerade_missing(index: SnapshotIndex, family: str) -> tuple[_MissingJump, ...]:
    """What of kube-proxy's masquerade is missing from the node's nat POSTROUTING: the jump
    to KUBE-POSTROUTING or its MASQUERADE (iptables), the jump to masquerading or its
    masquerade (nftables)."""
    return _kube_rules_missing(
        index,
        family,
        (
            "KUBE-POSTROUTING",
            (("POSTROUTING", "KUBE-POSTROUTING"), ("KUBE-POSTROUTING", "MASQUERADE")),
        ),
        (
            "masquerading",
            (("nat-postrouting", "jump masquerading"), ("masquerading", "masquerade")),
        ),
    )


def _named(missing: tuple[_MissingJump, ...]) -> tuple[str, str]:
    """The chains that lack a rule, and what they lack, as a finding says them."""
    chains = " and ".join(m.chain for m in missing)
    return chains, " / ".join(dict.fromkeys(m.target for m in missing))


def _verdict_words(text: str) -> list[str]:
    """An nftables rule's words before its comment, whose last are its verdict."""
    return text.split(" comment ")[0].split()


@dataclass(frozen=True)
class _MissingJump:
    """A nat hook's chain without kube-proxy's jump to its Services' chain."""

    chain: str  # as the finding names it: "nat PREROUTING", "ip kube-proxy nat-prerouting"
    target: str  # the chain it should jump to: "KUBE-SERVICES", "services"
    evidence: str  # the command that shows it, and what it lacks


def _kube_jumps_missing(
    index: SnapshotIndex, family: str, nodeport: bool = False
) -> tuple[_MissingJump, ...]:
    """The nat hooks' chains (prerouting, output) without kube-proxy's jump to its Services,
    in the family's iptables ruleset that has KUBE-SERVICES and in an nftables kube-proxy
    table that has its services chain (kubernetes/kubernetes pkg/proxy/nftables); for a
    NodePort, KUBE-SERVICES without its last rule's jump to KUBE-NODEPORTS too."""
    jumps = [("PREROUTING", "KUBE-SERVICES"), ("OUTPUT", "KUBE-SERVICES")]
    ruleset = index.ruleset(family)
    if nodeport and ruleset is not None and ruleset.has_chain("nat", "KUBE-NODEPORTS"):
        jumps.append(("KUBE-SERVICES", "KUBE-NODEPORTS"))
    return _kube_rules_missing(
        index,
        family,
        ("KUBE-SERVICES", tuple(jumps)),
        ("services", (("nat-prerouting", "jump services"), ("nat-output", "jump services"))),
    )


def _kube_rules_missing(
    index: SnapshotIndex,
    family: str,
    iptables: tuple[str, tuple[tuple[str, str], ...]],
    nftables: tuple[str, tuple[tuple[str, str], ...]],
) -> tuple[_MissingJump, ...]:
    """kube-proxy's nat rules that are not where it writes them, in the family's iptables
    ruleset (each (chain, target) where the ruleset has kube-proxy's first chain named)
    and its nftables kube-proxy table (each (chain, verdict) where the table has the chain
    named): a `-j TARGET` in the chain, a rule ending in the verdict."""
    found: list[_MissingJump] = []
    ruleset = index.ruleset(family)
    needs, jumps = iptables
    if ruleset is not None and ruleset.has_chain("nat", needs):
        command = "ip6tables" if family == "ipv6" else "iptables"
        found.extend(
            _MissingJump(f"nat {chain}", target, f"{command} -t nat -S {chain}: no -j {target}")
            for chain, target in jumps
            if not any(f" -j {target} " in f"{line} " for line in ruleset.lines_of("nat", chain))
        )
    nft = index.nft_ruleset
    table = "ip6" if family == "ipv6" else "ip"
    needs, verdicts = nftables
    if nft is not None and nft.get_chain(table, "kube-proxy", needs) is not None:
        found.extend(
            _MissingJump(
                f"{table} kube-proxy {chain}",
                verdict.removeprefix("jump "),
                f"nft list chain {table} kube-proxy {chain}: no {verdict}",
            )
            for chain, verdict in verdicts
            if not any(
                _verdict_words(r.text)[-len(verdict.split()) :] == verdict.split()
                for r in nft.chain_rules(table, "kube-proxy", chain)
            )
        )
    return tuple(found)


def _untracked_request(branch: Branch, aim: Aim, what: str, decided: Hop | None) -> Cause | None:
    """A NOTRACK rule (raw table) that left the request without a conntrack entry: no NAT
    for it there, and its answer belongs to no connection (a TCP SYN-ACK is INVALID,
    which kube-proxy's KUBE-FORWARD drops). NodeLocal DNSCache NOTRACKs both directions
    of its DNS traffic, which needs no NAT; a rule for one direction breaks the path."""
    notrack = next((h for h in reversed(branch.hops) if h.data.get("untracked")), None)
    if notrack is None:
        return None
    (rule,) = _rule_evidence(notrack)
    return Cause(
        "untracked-request",
        "critical",
        f"rule {notrack.data.get('table')}/{notrack.data.get('chain')}",
        f"{rule} leaves {_dropped_flow(branch, aim, '')} untracked on node {notrack.node}: {what}",
        "NOTRACK only traffic that needs no NAT and whose answers are NOTRACKed too (a rule "
        "for each direction, as NodeLocal DNSCache's are), or remove the rule",
        hop_text(decided) if decided is not None else hop_text(notrack),
        (rule, *(_rule_evidence(decided) if decided and decided.kind == "netfilter" else ())),
        key=f"{notrack.node}:{notrack.data.get('rule')}",
        partial_grade="warning",
        node=notrack.node,
    )


def _astray(branch: Branch, aim: Aim, indexes: list[SnapshotIndex]) -> Cause | None:
    """A packet for a pod of a loaded node that leaves toward somewhere else: no route to it."""
    dst = branch.packet.dst
    owner = next((i for i in indexes if dst in i.pods_by_ip), None)
    if owner is None:
        return None
    pod = owner.pods_by_ip[dst]
    leave = _last(branch, "leave")
    route = _last(branch, "route")
    node = leave.node if leave is not None else ""
    via = (
        f" via {leave.data.get('dev')} toward {leave.data.get('via')}" if leave is not None else ""
    )
    there = owner.snapshot.node.hostname
    matched = route.data.get("matched") if route is not None else None
    sent = (
        f"pod {pod.namespace}/{pod.name} ({dst}) is on node {there}, but node {node} sends its "
        f"packets{via}"
        + (f" by the route {matched}" if matched else "")
        + f", which is not {there}"
    )
    down = _pod_side_down(owner, pod) if node == there else None
    if down is not None:
        # The kernel deleted the routes of the device that went down: the node's route
        # to its own pods (the bridge's, or the pod's host veth's) with them.
        return _link_down(
            owner,
            down,
            f"{_device(owner, down)} is down, and its routes went with it: {sent}",
            hop_text(leave) if leave is not None else None,
            (route.text,) if route is not None else (branch.reason,),
        )
    return Cause(
        "no-route",
        "critical",
        f"node {node}",
        f"{sent}: no route to its pod network",
        f"add the route to {there}'s pod CIDR (host-gw: via {there}'s address), or check the "
        "CNI agent that programs it",
        hop_text(leave) if leave is not None else None,
        (route.text,) if route is not None else (branch.reason,),
        key=f"{node}:{there}",
        partial_grade="critical",
    )


def _pod_side_down(index: SnapshotIndex, pod: Pod) -> Link | None:
    """The device on a pod's way that is set down: its eth0, its host veth, or the
    bridge that is a port of."""
    eth0 = index.pod_interface(pod)
    if eth0 is not None and set_down(eth0):
        return eth0
    peer = index.peer(eth0) if eth0 is not None else None
    if peer is None:
        return None
    if set_down(peer):
        return peer
    master = index.link(peer.netns, peer.master)
    return master if master is not None and set_down(master) else None


def _device(index: SnapshotIndex, link: Link) -> str:
    """`eth0 of pod default/web-0`, `cni0 of node node1`: a device where it is."""
    pod = index.pods_by_netns.get(link.netns)
    if pod is not None:
        return f"{link.name} of pod {pod.namespace}/{pod.name}"
    return f"{link.name} of node {index.snapshot.node.hostname}"


def _detour(branch: Branch, aim: Aim, indexes: list[SnapshotIndex]) -> Cause | None:
    """A packet for a pod of a loaded node sent to a gateway that is not that node, while
    that node routes the sender's pods straight back (host-gw): the sender lacks the route.

    Where the owner also routes by a gateway (a cloud VPC that routes pod CIDRs), the
    network beyond decides, and the doctor does not judge.
    """
    for reply in branch.reply:
        found = _detour(reply, aim, indexes)
        if found is not None:
            return found
    dst = branch.packet.dst
    owner = next((i for i in indexes if dst in i.pods_by_ip), None)
    if owner is None:
        return None
    for leave in (h for h in branch.hops if h.kind == "leave"):
        sender = _index_of(indexes, leave.node)
        if sender is None or sender is owner:
            continue
        via = str(leave.data.get("via") or "")
        if via in _node_addresses(owner) or not _routes_straight(owner, sender):
            return None
        pod = owner.pods_by_ip[dst]
        there = owner.snapshot.node.hostname
        routes = [h for h in branch.hops if h.kind == "route" and h.node == leave.node]
        route = routes[-1] if routes else None
        sent = (
            f"pod {pod.namespace}/{pod.name} ({dst}) is on node {there}, but node "
            f"{leave.node} sends its packets via {leave.data.get('dev')} to {via}, which is "
            f"not {there}"
        )
        evidence = (route.text,) if route is not None else (branch.reason,)
        down = _overlay_down(sender, owner)
        if down is not None:
            # The kernel deletes a device's routes when it goes down: the overlay's
            # routes to the other nodes' pods went with it (one finding with the
            # packets that device no longer takes in).
            return _link_down(
                sender,
                down,
                f"{_device(sender, down)} is down, and its routes to the other nodes' pods "
                f"went with it: {sent}",
                hop_text(leave),
                evidence,
            )
        return Cause(
            "no-route",
            "critical",
            f"node {leave.node}",
            f"{sent}, while {there} routes {leave.node}'s pods {_how_routed(owner, sender)}"
            f": no route to {there}'s pod network",
            f"add the route to {there}'s pod CIDR via {there}'s address, or check the CNI "
            "agent that programs it",
            hop_text(leave),
            evidence,
            key=f"{leave.node}:{there}",
            partial_grade="critical",
        )
    return None


def _link_down(
    index: SnapshotIndex, dev: Link, cause: str, hop: str | None, evidence: tuple[str, ...]
) -> Cause:
    """A device that is set down: one finding per device, whichever path met it. The fix
    brings its routes back too: the kernel deletes a device's routes when it goes down,
    and only the agent that made them (the CNI's) puts them back."""
    node = index.snapshot.node.hostname
    if dev.netns != index.snapshot.root_netns:
        fix = (
            f"bring the device up (ip link set {dev.name} up, in the pod's network "
            "namespace) and put back the routes the kernel removed with it (the CNI "
            "plugin made them when the pod started: a pod made again gets them), or find "
            "out why it went down"
        )
    else:
        fix = (
            f"bring the device up (ip link set {dev.name} up) and check that its routes "
            "came back (the kernel removed them; the CNI agent that made them puts them "
            "back: flannel, calico-node), or find out why it went down"
        )
    return Cause(
        "link-down",
        "critical",
        f"interface {_device(index, dev)}",
        cause,
        fix,
        hop,
        evidence,
        key=f"{node}:{dev.netns}:{dev.name}",
        partial_grade="critical",
        node=node,
    )


def _port_not_forwarding(index: SnapshotIndex, port: Link, cause: str, hop: str | None) -> Cause:
    """A bridge port in an STP state other than forwarding: one finding per port, naming
    the pod behind it. A port left disabled by hand is set forwarding again; the other
    states are STP's (a new port listens, then learns, for twice the bridge's
    forward_delay; a port in a loop blocks), which CNI bridges do not run."""
    node = index.snapshot.node.hostname
    bridge = index.link(port.netns, port.master)
    named = bridge.name if bridge is not None else "BRIDGE"
    if port.port_state == "disabled":
        fix = (
            f"set the port forwarding again: bridge link set dev {port.name} state 3 (and "
            "find what disabled it)"
        )
    else:
        fix = (
            f"turn STP off on bridge {named} (ip link set {named} type bridge stp_state 0), "
            f"then set the port forwarding (bridge link set dev {port.name} state 3): STP "
            "holds a new port, listening then learning, for twice the bridge's forward_delay "
            "before it forwards (a port it holds stays held to its timers when STP goes "
            "off), and blocks a port it finds in a loop; a CNI bridge runs without it"
        )
    peer = index.peer(port)
    pod = index.pods_by_netns.get(peer.netns) if peer is not None else None
    behind = f" (the host side of pod {pod.namespace}/{pod.name})" if pod is not None else ""
    return Cause(
        "bridge-port-state",
        "critical",
        f"interface {_device(index, port)}{behind}",
        cause,
        fix,
        hop,
        (f"bridge link show dev {port.name}: state {port.port_state}",),
        key=f"{node}:{port.netns}:{port.name}",
        partial_grade="critical",
        node=node,
    )


def _how_routed(owner: SnapshotIndex, sender: SnapshotIndex) -> str:
    """How the owner routes to the sender: over an overlay device, or straight."""
    ns = owner.root_netns
    if ns is None:
        return "straight"
    mine = _node_addresses(sender)
    for r in ns.routes:
        link = owner.link(ns.inode, r.dev) if r.gateway in mine and r.dev else None
        if link is not None and link.kind == "vxlan":
            return f"over its VXLAN device {link.name} to {sender.snapshot.node.hostname}"
    return f"straight to {sender.snapshot.node.hostname} (host-gw)"


def _overlay_down(sender: SnapshotIndex, owner: SnapshotIndex) -> Link | None:
    """The sender's VXLAN device that is down where the owner's of the same VNI is up."""

    def vteps(index: SnapshotIndex) -> list[Link]:
        ns = index.root_netns
        return [lk for lk in (ns.links if ns is not None else ()) if lk.vxlan is not None]

    used = {lk.vxlan.vni for lk in vteps(owner) if lk.vxlan is not None and not set_down(lk)}
    return next(
        (
            lk
            for lk in vteps(sender)
            if lk.vxlan is not None and lk.vxlan.vni in used and set_down(lk)
        ),
        None,
    )


def _index_of(indexes: list[SnapshotIndex], node: str) -> SnapshotIndex | None:
    """The loaded node of this hostname."""
    return next((i for i in indexes if i.snapshot.node.hostname == node), None)


def _node_addresses(index: SnapshotIndex) -> frozenset[str]:
    return index.local_addresses.get(index.snapshot.root_netns, frozenset())


def _routes_straight(owner: SnapshotIndex, sender: SnapshotIndex) -> bool:
    """True when the owner's root netns routes something via one of the sender's addresses."""
    ns = owner.netns_by_inode.get(owner.snapshot.root_netns)
    mine = _node_addresses(sender)
    return ns is not None and any(r.gateway in mine for r in ns.routes if r.gateway)


def _reply_cause(branch: Branch, aim: Aim, indexes: list[SnapshotIndex]) -> Cause | None:
    """A delivered request whose answer does not come back, or comes back untranslated."""
    for reply in branch.reply:
        if reply.verdict == "dropped" and reply.packet.ct_state in ("INVALID", "NEW"):
            # The answer met a conntrack with no entry for it: its request went untracked.
            p = reply.packet
            what = (
                f"its answer {hostport(p.src, p.sport)} -> {p.dst} belongs to no connection "
                f"there (conntrack: {p.ct_state}): {reply.reason}"
            )
            found = _untracked_request(branch, aim, what, _last(reply, "netfilter"))
            if found is not None:
                return found
        if answered_unasked(reply):
            return _untranslated(branch, reply, aim, indexes)
        if reply.verdict == "dropped":
            return _dropped(reply, aim, indexes, way="on the way back, ")
        if reply.verdict == "uncertain":
            return _detour(reply, aim, indexes) or _uncertain(reply, aim)
        astray = _astray(reply, aim, indexes) if reply.verdict == "leaves-node" else None
        if astray is not None:
            return replace(astray, cause=f"the reply: {astray.cause}")
        if reply.verdict in ("delivered", "leaves-node"):
            # The client asked aim.target: an answer from anywhere else is not its answer.
            src = reply.packet.src
            port = reply.packet.sport
            if src != aim.address or (aim.port is not None and port != aim.port):
                return _untranslated(branch, reply, aim, indexes)
    return None


def _refused(branch: Branch, aim: Aim, indexes: list[SnapshotIndex]) -> Cause:
    deliver = next((h for h in reversed(branch.hops) if h.kind == "deliver"), None)
    data = deliver.data if deliver is not None else {}
    where = f"{branch.packet.dst}:{branch.packet.dport}/{branch.packet.proto}"
    pod = data.get("pod")
    listeners = _listeners(indexes, branch, branch.packet.proto)
    serves = tuple(dict.fromkeys(f"{local_endpoint(s)}/{s.protocol}" for s in listeners))
    who = f"pod {pod}" if pod else where
    listener = who if pod or deliver is None else f"node {deliver.node}"
    return Cause(
        "no-listener",
        "critical",
        aim.label if aim.service is not None else who,
        "nothing listens on ",
        _refused_fix(branch, aim, listeners, f"pod {pod}" if pod else "the node"),
        hop_text(deliver) if deliver is not None else None,
        (f"{listener} listens on {', '.join(serves) or 'nothing'}",),
        key=aim.label if aim.service is not None else where,
        parts=(f"{where}" + (f" ({who})" if pod else ""),),
        tail=f": {aim.target}/{aim.proto} gets {_refusal(aim.proto)}",
    )


def _refused_fix(branch: Branch, aim: Aim, listeners: list[Socket], place: str) -> str:
    """How to make a refused port answer. A server on a loopback address of the port is
    reached only from its own namespace; an address never DNATed (a ClusterIP the node
    holds itself, as NodeLocal DNSCache does) is answered by whatever listens there,
    not by the Service's pods; else another port of the same protocol is what serves."""
    packet = branch.packet
    same = [s for s in listeners if s.protocol == packet.proto]
    inside = [s for s in same if s.local_port == packet.dport and _loopback(s.local)]
    if inside:
        return (
            f"the server listens on {local_endpoint(inside[0])} only, which nothing outside "
            f"its own network namespace reaches: make it listen on every address (0.0.0.0, "
            f"::) or on {packet.dst}"
        )
    if aim.service is None:
        where = f"{packet.dst}:{packet.dport}/{packet.proto}"
        return f"start the server on {where}, or point the client at a port the pod serves"
    if aim.kind == "service" and packet.dst == aim.address:
        return (
            f"{aim.address} reaches {place} untranslated (a NOTRACK rule, as NodeLocal "
            "DNSCache writes, keeps it from kube-proxy's DNAT) and is an address of "
            f"{place} itself: what listens there answers, not the Service's pods; start it "
            f"on {aim.target}/{aim.proto}, or take the address (and the rule) away"
        )
    reachable = [s for s in same if not _loopback(s.local)]
    if not reachable:
        return "its pods listen on nothing: start their server, or fix the Service's targetPort"
    return (
        f"point the Service's targetPort at a port its pods serve ({packet.dport} -> "
        f"{reachable[0].local_port}), or make the pods serve {packet.dport}"
    )


def _loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def _refusal(proto: str) -> str:
    return "a RST (connection refused)" if proto == "tcp" else "ICMP port unreachable"


def _listeners(indexes: list[SnapshotIndex], branch: Branch, proto: str) -> list[Socket]:
    """What the namespace the branch ended in listens on, `proto` first, as `ss -l`
    would list it."""
    if branch.end is None:
        return []
    node, netns = branch.end
    ns = indexes[node].netns_by_inode.get(netns)
    if ns is None or ns.sockets is None:
        return []
    return [
        s
        for s in sorted(ns.sockets, key=lambda s: (s.protocol != proto, s.local_port))
        if is_listening(s)
    ]


def _last(branch: Branch, kind: str) -> Hop | None:
    return next((h for h in reversed(branch.hops) if h.kind == kind), None)


def _owner(hop: Hop) -> Owner | None:
    owner = hop.data.get("owner")
    if not isinstance(owner, dict):
        return None
    return Owner(*(str(owner.get(k) or "") for k in ("kind", "agent", "name", "how")))


_BACKENDS = {"nft": "iptables-nft", "legacy": "iptables-legacy", "nftables": "nftables"}


def _rule_evidence(hop: Hop) -> tuple[str, ...]:
    backend = str(hop.data.get("backend") or "")
    where = f"{_BACKENDS.get(backend, backend)} {hop.data.get('table')}/{hop.data.get('chain')}"
    return (f"{where}: {hop.data.get('rule')}",)


# The engine's drops by an overlay's own device: the check and its fix.
_OVERLAY_CHECKS = {
    "vxlan": (
        "vxlan-fdb-missing",
        "the overlay agent (flannel) adds `bridge fdb append MAC dev DEV dst VTEP` for each "
        "node: restart it, or add the entry",
    ),
    "vxlan-mac": (
        "vxlan-mac-stale",
        "the overlay agent on the sending node updates its neighbour and fdb entries for "
        "the far VTEP from that node's record (flannel: the flannel.alpha.coreos.com/"
        "backend-data annotation; restart flanneld there), or give the far VTEP back its "
        "MAC",
    ),
    "vxlan-port": (
        "vxlan-port-mismatch",
        "give every node's VXLAN device one destination port (flannel's backend Port, "
        "Calico's vxlanPort: 8472 and 4789 are both common defaults)",
    ),
    "vxlan-vni": (
        "vxlan-vni-mismatch",
        "give every node's VXLAN device the overlay's one VNI (flannel's backend VNI, "
        "Calico's vxlanVNI)",
    ),
    "ipip": (
        "ipip-device-missing",
        "give the node its IP-in-IP device (modprobe ipip makes tunl0; Calico's node agent "
        "brings it up in IPIP mode), or route the pods without the tunnel",
    ),
}


def _dropped(branch: Branch, aim: Aim, indexes: list[SnapshotIndex], way: str) -> Cause:
    """Why a branch was dropped, on the node whose kernel dropped it (another node's rule,
    route or sysctl, for a path that crossed to it)."""
    cause = _drop_cause(branch, aim, indexes, way)
    drop = _last(branch, "drop")
    return replace(cause, node=drop.node) if drop is not None and drop.node else cause


def _not_forwarding(
    node: str, reason: str, drop: Hop | None, indexes: list[SnapshotIndex]
) -> Cause:
    """A node that does not forward in the packet's family (the reason names the sysctl):
    a finding per family, each with its own switch."""
    index = _index_of(indexes, node)
    six = reason.startswith("net.ipv6.")
    spared = forwarding_spared(index, 6 if six else 4) if index is not None else ""
    return Cause(
        "ip-forward-off",
        "critical",
        f"node {node}",
        f"{reason}: what the node routes for its pods is dropped: to other nodes and to "
        f"every Service endpoint{spared}",
        forwarding_fix(reason),
        hop_text(drop) if drop else None,
        (reason,),
        key=f"{node}:ipv6" if six else node,
        partial_grade="critical",
    )


def _drop_cause(branch: Branch, aim: Aim, indexes: list[SnapshotIndex], way: str) -> Cause:
    drop = _last(branch, "drop")
    by = str(drop.data.get("by")) if drop is not None else ""
    reason = branch.reason
    node = drop.node if drop is not None else ""
    if by == "netfilter":
        return _netfilter_drop(branch, aim, indexes, way, node)
    if by == "sysctl":
        return _not_forwarding(node, reason, drop, indexes)
    if by == "rp_filter":
        found = (
            _unmasqueraded(branch, aim, indexes, f"where it arrives, {reason}") if not way else None
        )
        if found is not None:
            return found
        own = "is an address of this namespace" in reason
        return Cause(
            "rp-filter",
            "critical",
            f"node {node}",
            f"{way}{reason}",
            # A source of the receiving namespace's own is a martian whatever rp_filter says.
            "find why the packet carries that source (a DNAT back to its sender needs a "
            "SNAT too), or set accept_local to 1 on the receiving interface"
            if own
            else "set rp_filter to 2 (loose) or 0 on the receiving interface and on 'all' "
            "(the kernel uses the higher of the two), or route the way back through the "
            "interface the packets arrive on",
            hop_text(drop) if drop else None,
            (reason,),
            key=f"{node}:{_route_dev(branch)}",
            partial_grade="critical",
        )
    if by == "route":
        return (
            _pod_unrouted(branch, indexes, drop, way)
            or _pod_without_route(branch, aim, indexes, drop, way)
            or _pod_route_gone(branch, indexes, drop, way)
            or _no_route(branch, aim, way, node, reason, drop)
        )
    if by in _OVERLAY_CHECKS:
        check, fix = _OVERLAY_CHECKS[by]
        return Cause(
            check,
            "critical",
            f"node {node}",
            f"{way}{reason}: the overlay cannot reach that node's pods",
            fix,
            hop_text(drop) if drop else None,
            (reason,),
            # A missing FDB entry is one per VTEP; the others are the node's own setting.
            key=f"{node}:{reason}" if by == "vxlan" else f"{node}:{by}",
            partial_grade="critical",
        )
    if by == "neighbour":
        return _endpoint_gone(branch, aim, indexes, drop, way) or _unresolved(
            branch, aim, way, node, reason, drop
        )
    if by == "neighbour-mac":
        return _wrong_mac(branch, indexes, way, node, reason, drop)
    if by == "fdb-misplaced":
        return _fdb_misplaced(branch, way, node, reason, drop)
    if by == "hairpin":
        pod = _pod_at(indexes, branch)
        port = reason.split(" ", 1)[0]  # the engine's reason starts with the port's name
        return Cause(
            "hairpin-off",
            "critical",
            f"pod {pod}",
            f"{reason}: a pod that reaches a Service which picks the pod itself gets no answer",
            f"turn hairpin mode on for the pod's bridge port: bridge link set dev {port} "
            "hairpin on (for good: kubelet --hairpin-mode=hairpin-veth, or the bridge CNI "
            'plugin\'s "hairpinMode": true)',
            hop_text(drop) if drop else None,
            (f"bridge -d link show dev {port}: hairpin off",),
            key=pod,
            partial_grade="critical",
            about="source",
        )
    if by == "isolated":
        bridge = reason.split(":", 1)[0]  # the engine's reason starts "bridge NAME:"
        return Cause(
            "bridge-port-isolated",
            "critical",
            f"{bridge} of node {node}",
            f"{way}{reason}: pods behind such ports reach each other only through the "
            "node's IP stack (a Service, whose DNAT routes the packet), and not even then "
            "when the answer is bridged back",
            "turn isolation off on the pods' bridge ports: bridge link set dev PORT "
            "isolated off (whatever set it on sets it again: check the CNI's configuration)",
            hop_text(drop) if drop else None,
            (f"bridge -d link show: {reason.partition(': ')[2] or reason}",),
            key=f"{node}:{bridge}",
            partial_grade="critical",
        )
    if by == "port-state":
        blocked = _dropped_device(indexes, node, drop)
        if blocked is not None:
            hop = hop_text(drop) if drop else None
            return _port_not_forwarding(*blocked, f"{way}{reason}", hop)
    if by == "link":
        # One finding per device at fault: a pod's host veth set down stops the frames
        # sent to the pod and, its eth0 without carrier, the pod's own.
        down = _dropped_device(indexes, node, drop)
        if down is not None:
            index, dev = down
            return _link_down(
                index, dev, f"{way}{reason}", hop_text(drop) if drop else None, (reason,)
            )
    return Cause(
        "dropped",
        "critical",
        aim.label,
        f"{way}{reason}",
        "see the deciding hop",
        hop_text(drop) if drop else None,
        (reason,),
        key=f"{aim.label}:{reason}",
        about="destination",
    )


def _pod_at(indexes: list[SnapshotIndex], branch: Branch) -> str:
    """The pod whose address the branch's packet was sent to (after any DNAT)."""
    for index in indexes:
        pod = index.pods_by_ip.get(branch.packet.dst)
        if pod is not None:
            return f"{pod.namespace}/{pod.name}"
    return branch.packet.dst


def _route_dev(branch: Branch) -> str:
    route = _last(branch, "route")
    return str(route.data.get("iif") or route.data.get("dev")) if route is not None else ""


def _service_name(owner: Owner | None, aim: Aim) -> str:
    """ns/name:port of the Service a kube-proxy rule or the traced Service names."""
    if owner is not None and owner.name:
        return owner.name
    svc = aim.service
    return svc.key if svc is not None and svc.name else aim.label


def _netfilter_drop(
    branch: Branch, aim: Aim, indexes: list[SnapshotIndex], way: str, node: str
) -> Cause:
    rule = _last(branch, "netfilter")
    drop = _last(branch, "drop")
    text = str(rule.data.get("rule") or "") if rule is not None else ""
    owner = _owner(rule) if rule is not None else None
    evidence = _rule_evidence(rule) if rule is not None else ()
    decided = hop_text(rule) if rule is not None else (hop_text(drop) if drop else None)
    svc = aim.service
    # kube-proxy's nftables mode drops through its no-endpoint-* maps (a Service's
    # element, no comment on the rule): the Service traced says which case it is. The
    # hop's owner is kube-proxy, or the Service whose map element matched (kube-proxy's).
    nft_no_endpoint = (
        svc is not None
        and owner is not None
        and "kube-proxy" in (owner.kind, owner.agent)
        and ("@no-endpoint-" in text or text == "reject")
    )
    nft_local = nft_no_endpoint and "@no-endpoint-" in text
    if "has no endpoints" in text or (
        svc and not svc.endpoints and (nft_no_endpoint or (owner and owner.kind == "service"))
    ):
        name = _service_name(owner, aim)
        return Cause(
            "service-no-endpoints",
            "warning",
            f"Service {name}",
            f"Service {name} has no endpoints: kube-proxy "
            f"{'rejects' if 'REJECT' in text or 'reject' in text else 'drops'} "
            f"every connection to {aim.service_targets}",
            "no ready pod backs it: check the Service's selector and its pods' readiness "
            "(kubectl get endpointslices -l kubernetes.io/service-name=NAME -n NAMESPACE)",
            decided,
            evidence,
            key=name,
            partial_grade="warning",
        )
    if ("has no local endpoints" in text or nft_local) and aim.kind == "service":
        name = _service_name(owner, aim)
        return Cause(
            "itp-local-no-endpoint",
            "warning",
            f"Service {name}",
            f"Service {name} has internalTrafficPolicy Local and no endpoint on node {node}: "
            f"kube-proxy drops {aim.target}/{aim.proto} from this node's pods and the node itself",
            "run an endpoint on every node whose pods use it (a DaemonSet), or set "
            "internalTrafficPolicy: Cluster",
            decided,
            evidence,
            key=f"{node}:{name}:internal",
            partial_grade="warning",
        )
    if "has no local endpoints" in text or nft_local:
        name = _service_name(owner, aim)
        health = (
            f" (its health check node port is {svc.health_check_node_port})"
            if svc and svc.health_check_node_port
            else ""
        )
        return Cause(
            "etp-local-no-endpoint",
            "warning",
            f"Service {name}",
            f"Service {name} has externalTrafficPolicy Local and no endpoint on node {node}: "
            f"{aim.target}/{aim.proto} from outside is dropped here{health}",
            "run an endpoint on this node, let the load balancer's health check steer "
            "traffic away from it, or set externalTrafficPolicy: Cluster",
            decided,
            evidence,
            key=f"{node}:{name}",
            partial_grade="warning",
        )
    if svc is not None and _outside_source_ranges(rule, text, svc, aim):
        name = _service_name(owner, aim)
        ranges = ", ".join(svc.source_ranges)
        return Cause(
            "lb-source-ranges",
            "info",
            f"Service {name}",
            f"{way}{aim.target}/{aim.proto} admits only its loadBalancerSourceRanges "
            f"({ranges}): kube-proxy drops {branch.packet.src} from outside them, as the "
            "Service asks",
            "nothing to fix if the ranges are meant; otherwise add the clients' ranges to "
            "the Service's spec.loadBalancerSourceRanges",
            decided,
            evidence,
            key=f"{node}:{name}:{aim.address}",
            partial_grade="info",
            about="destination",
        )
    mixed = _other_backend(rule, indexes, node) if rule is not None else ""
    if owner is not None and owner.kind == "network-policy":
        return Cause(
            "network-policy-drop",
            "warning",
            f"NetworkPolicy {owner.name}",
            f"{way}{owner.text} drops {_dropped_flow(branch, aim, way)}{mixed}",
            f"if this traffic is wanted, allow it in {owner.name}'s rules",
            decided,
            evidence,
            key=owner.name,
            partial_grade="warning",
        )
    flow = _dropped_flow(branch, aim, way)
    if rule is not None and _is_policy(rule):
        return _policy_drop(rule, way, f"{flow}{mixed}", node, decided)
    what = owner.text if owner is not None else "a rule"
    verb = "rejects" if "REJECT" in text else "drops"
    carrier = drop.data.get("carrier") if drop is not None else None
    if carrier:
        # The tunnel's own packet between the nodes (flannel's UDP 8472, Calico's IPIP).
        return Cause(
            "netfilter-drop",
            "critical",
            f"rule {rule.data.get('table')}/{rule.data.get('chain')}" if rule else aim.label,
            f"{way}{what} {verb} {carrier} that carries {flow}: the pods' traffic "
            "between these nodes travels in such packets",
            "let the overlay's packets between the nodes through (the protocol and port "
            "above, from every node's address), or narrow the rule",
            decided,
            evidence,
            key=f"{node}:{text}",
            partial_grade="warning",
            about="place",
        )
    return Cause(
        "netfilter-drop",
        "critical",
        f"rule {rule.data.get('table')}/{rule.data.get('chain')}" if rule else aim.label,
        f"{way}{what} {verb} {flow}{mixed}",
        "remove or narrow the rule, or ask its owner why it drops this traffic",
        decided,
        evidence,
        key=f"{node}:{text}",
        partial_grade="warning",
        about="destination" if rule is None else "place",
    )


def _is_policy(rule: Hop) -> bool:
    """Whether a netfilter hop is a chain's policy (iptables `-P FORWARD DROP`, nftables
    `policy drop`), which decides where no rule did."""
    text = str(rule.data.get("rule") or "")
    return rule.data.get("position") is None and text.startswith(("-P ", "policy "))


def _policy_drop(rule: Hop, way: str, flow: str, node: str, decided: str | None) -> Cause:
    """No rule of a chain accepted the packet and its policy drops it. Docker sets the
    FORWARD policy to DROP when it starts on a node (moby/moby#28257), which drops the
    pods' forwarded traffic (kubernetes/kubernetes#40182) unless rules accept it first,
    as flannel's do since flannel-io/flannel#872; a host firewall's nftables base chain
    with `policy drop` does the same."""
    table, chain = str(rule.data.get("table")), str(rule.data.get("chain"))
    nft = rule.data.get("backend") == "nftables"
    where = f"{table} {chain}" if nft else f"{table}/{chain}"
    if nft:
        fix = (
            f"accept the pods' traffic in {where} before its policy (e.g. `nft insert rule "
            f"{table} {chain} ip saddr POD_CIDR accept` and the same for ip daddr), or "
            f"set its policy to accept (`nft chain {table} {chain} '{{ policy accept; }}'`)"
        )
    else:
        fix = (
            f"accept the pods' traffic in {where} before its policy, as flannel does "
            f"(`iptables -A {chain} -s POD_CIDR -j ACCEPT` and `-d POD_CIDR`), or set "
            f"its policy to ACCEPT (`iptables -P {chain} ACCEPT`)"
        )
        if chain == "FORWARD":
            fix += "; Docker sets FORWARD's policy to DROP when it starts on a node"
    return Cause(
        "chain-policy-drop",
        "critical",
        f"policy of {where}",
        f"{way}no rule of {where} accepts {flow}, so the chain's policy drops it "
        f"({rule.data.get('rule')})",
        fix,
        decided,
        _rule_evidence(rule),
        key=f"{node}:{where}",
        partial_grade="warning",
    )


def _dropped_flow(branch: Branch, aim: Aim, way: str) -> str:
    """What a rule dropped: the client's packet to what it aimed at, or on the way back the
    answer as it was when dropped (from the endpoint to the client; it read as the request
    from the endpoint to the Service)."""
    p = branch.packet
    if way:
        answer = f"{hostport(p.src, p.sport)} -> {p.dst}"
        return f"the answer {answer} (of its connection to {aim.target}/{aim.proto})"
    return f"{p.src} -> {aim.target}/{aim.proto}"


def _outside_source_ranges(rule: Hop | None, text: str, svc: Service, aim: Aim) -> bool:
    """kube-proxy's drop, at an LB IP, of a client outside the Service's
    loadBalancerSourceRanges: its firewall chain (nftables: `ip saddr != { ranges } drop`
    in firewall-...), or KUBE-PROXY-FIREWALL's DROP of what KUBE-FW- did not accept
    (iptables: "... traffic not accepted by KUBE-FW-...")."""
    if rule is None or not svc.source_ranges or not svc.fw_chain:
        return False
    if aim.address not in svc.load_balancer_ips:
        return False
    chain = str(rule.data.get("chain") or "")
    return chain == svc.fw_chain or f"traffic not accepted by {svc.fw_chain}" in text


def _other_backend(rule: Hop, indexes: list[SnapshotIndex], node: str) -> str:
    """`, in iptables-legacy, which iptables-nft-save does not show` when backends are mixed."""
    backend = str(rule.data.get("backend") or "")
    index = _index_of(indexes, node)
    if index is None or not index.kube_proxy_mode.warnings:
        return ""
    shown = _BACKENDS.get(backend, backend)
    main = index.kube_proxy_mode.backend
    if main is None or main == shown:
        return ""
    return f" (a rule of {shown}, not of {main} that kube-proxy uses: the node's rules are split)"


def _dropped_device(
    indexes: list[SnapshotIndex], node: str, drop: Hop | None
) -> tuple[SnapshotIndex, Link] | None:
    """The device an engine's link drop names, with its node's index."""
    index = _index_of(indexes, node)
    if index is None or drop is None:
        return None
    netns, ifindex = drop.data.get("dev_netns"), drop.data.get("dev_ifindex")
    link = (
        index.link(netns, ifindex) if isinstance(netns, int) and isinstance(ifindex, int) else None
    )
    return (index, link) if link is not None else None


def _pod_unrouted(
    branch: Branch, indexes: list[SnapshotIndex], drop: Hop | None, way: str
) -> Cause | None:
    """A route drop where a pod's device is down: the kernel deleted its routes with it.
    The sending pod's eth0 (no route left in the pod), or the host veth of the pod it is
    sent to on this node (Calico's blackhole for its block swallows it)."""
    if drop is None:
        return None
    index = _index_of(indexes, drop.node)
    if index is None:
        return None
    reason = branch.reason
    netns = drop.data.get("netns")
    sender = index.pods_by_netns.get(netns) if isinstance(netns, int) else None
    eth0 = index.pod_interface(sender) if sender is not None else None
    if eth0 is not None and set_down(eth0):
        lost = f"{_device(index, eth0)} is down, and the pod's routes went with it"
        return _link_down(index, eth0, f"{way}{lost}: {reason}", hop_text(drop), (reason,))
    pod = index.pods_by_ip.get(branch.packet.dst)
    down = _pod_side_down(index, pod) if pod is not None else None
    if pod is None or down is None:
        return None
    lost = f"{_device(index, down)} is down, and its route to pod {pod.namespace}/{pod.name} went with it"
    return _link_down(index, down, f"{way}{lost}: {reason}", hop_text(drop), (reason,))


def _pod_without_route(
    branch: Branch, aim: Aim, indexes: list[SnapshotIndex], drop: Hop | None, way: str
) -> Cause | None:
    """A pod whose own routing table has no route for what it sends (its default route
    deleted from inside it, say): the pod is at fault, not the node, and the routes the
    node's other pods have say what its CNI plugin gives."""
    index = _index_of(indexes, drop.node) if drop is not None else None
    netns = drop.data.get("netns") if drop is not None else None
    pod = index.pods_by_netns.get(netns) if index is not None and isinstance(netns, int) else None
    if index is None or pod is None or netns is None:
        return None
    name = f"{pod.namespace}/{pod.name}"
    route = _last(branch, "route")
    given = _default_route_of_peers(index, pod, ":" in branch.packet.dst)
    restore = (
        f"add it back in its network namespace (the node's other pods have `{given}`)"
        if given
        else "add the route its CNI plugin gives in its network namespace"
    )
    fate = f"{aim.label} cannot be reached from it" if not way else "its answers go nowhere"
    return Cause(
        "no-route",
        "critical",
        f"pod {name}",
        f"{way}pod {name}'s own routing table has no route to {branch.packet.dst}: {fate}",
        "a pod's routes are written by its CNI plugin when its sandbox is made: recreate "
        f"the pod, or {restore}; then find what removed it (a privileged container, a "
        "script run in the pod)",
        hop_text(drop) if drop is not None else None,
        (route.text,) if route is not None else (branch.reason,),
        # One finding for every address the pod has no route to.
        key=f"{drop.node if drop else ''}:{netns}:unreachable",
        partial_grade="critical",
    )


def _pod_route_gone(
    branch: Branch, indexes: list[SnapshotIndex], drop: Hop | None, way: str
) -> Cause | None:
    """A routed CNI's pod (Calico, kindnet's ptp, the AWS VPC CNI: its host veth on no
    bridge) whose route on its node is gone, its device up: what is sent to the pod finds
    the block's blackhole (Calico) or another route, or none. The CNI agent writes one
    route per pod, `POD_IP dev VETH`; the fix puts it back."""
    index = _index_of(indexes, drop.node) if drop is not None else None
    if index is None or drop is None or drop.data.get("netns") != index.snapshot.root_netns:
        return None
    dst = branch.packet.dst
    pod = index.pods_by_ip.get(dst)
    eth0 = index.pod_interface(pod) if pod is not None else None
    veth = index.peer(eth0) if eth0 is not None else None
    if pod is None or veth is None or veth.netns != index.snapshot.root_netns:
        return None
    if veth.master is not None or set_down(veth):
        return None
    name = f"{pod.namespace}/{pod.name}"
    ip = "ip -6" if ":" in dst else "ip"
    return Cause(
        "no-route",
        "critical",
        f"pod {name}",
        f"{way}node {drop.node} has no route to pod {name} ({dst}) by its veth {veth.name}: "
        f"{branch.reason}",
        f"{ip} route add {dst} dev {veth.name}: the route the CNI agent writes for each of "
        "its pods (Calico's Felix, kindnet, the AWS VPC CNI); if it goes again, that "
        "agent's log says why",
        hop_text(drop),
        (
            *((route.text,) if (route := _last(branch, "route")) is not None else ()),
            f"{veth.name}: up, the host side of pod {name}'s {eth0.name if eth0 else 'eth0'}",
        ),
        key=f"{drop.node}:{veth.name}",
        partial_grade="critical",
    )


def _default_route_of_peers(index: SnapshotIndex, pod: Pod, six: bool) -> str:
    """`default via 10.244.0.1 dev eth0`, as `ip route` prints it: the default route of
    that family of another pod of the node whose gateway the pod's own routes still
    reach on-link (a pod of the same network), else ''."""
    default = "::/0" if six else "0.0.0.0/0"
    own = index.netns_by_inode.get(pod.netns_inode or 0)
    if own is None:
        return ""
    links = [
        net
        for r in own.routes
        if r.gateway is None
        and r.dst not in (None, "default", default)
        and (net := network(str(r.dst))) is not None
    ]
    for other in index.snapshot.pods:
        ns = index.netns_by_inode.get(other.netns_inode or 0)
        if ns is None or ns is own or ns.inode == index.snapshot.root_netns:
            continue
        for route in ns.routes:
            gateway = route.gateway
            if route.table != 254 or route.dst not in (default, "default") or not gateway:
                continue
            ip = parsed_address(gateway)
            if ip is not None and any(ip in net for net in links):
                dev = index.link(ns.inode, route.dev) if route.dev is not None else None
                return f"default via {gateway}" + (f" dev {dev.name}" if dev else "")
    return ""


# Route types whose lookup refuses what it matches (RTN_BLACKHOLE, _UNREACHABLE, _PROHIBIT).
_DROP_ROUTES = ("blackhole", "unreachable", "prohibit")


def _no_route(
    branch: Branch, aim: Aim, way: str, node: str, reason: str, drop: Hop | None
) -> Cause:
    route = _last(branch, "route")
    evidence = (f"{route.text}",) if route is not None else (reason,)
    unreachable = "network unreachable" in reason
    kind = str(route.data.get("type") or "") if route is not None else ""
    if aim.kind == "service" and branch.packet.dst == aim.address and kind in _DROP_ROUTES:
        # A route that refuses Service addresses: the lookup comes before the DNAT.
        matched = route.data.get("matched") if route is not None else None
        ip = "ip -6" if ":" in aim.address else "ip"
        fix = (
            f"delete the {kind} route {matched} ({ip} route del {kind} {matched}), or what "
            "writes it: the node's own route lookup for a Service address comes before "
            "kube-proxy's DNAT, and this route refuses it"
        )
    elif aim.kind == "service" and branch.packet.dst == aim.address:
        # Still the ClusterIP: the output route lookup comes before kube-proxy's DNAT.
        fix = (
            "give the node a route for Service addresses (usually its default route): the "
            "routing decision comes before kube-proxy's DNAT"
        )
    else:
        fix = (
            "add the route (host-gw: the remote pod CIDR via the node that owns it), or "
            "check the CNI agent that programs it"
        )
    netns = drop.data.get("netns") if drop is not None else None
    return Cause(
        "no-route",
        "critical",
        f"node {node}",
        f"{way}{reason}: {aim.label} cannot be reached from there",
        fix,
        hop_text(drop) if drop else None,
        evidence,
        # One finding for every address the same namespace has no route to.
        key=f"{node}:{netns}:unreachable" if unreachable else f"{node}:{reason}",
        partial_grade="critical",
    )


def _endpoint_gone(
    branch: Branch, aim: Aim, indexes: list[SnapshotIndex], drop: Hop | None, way: str
) -> Cause | None:
    """A Service's endpoint, DNATed to by kube-proxy's rules, that no pod of the loaded
    nodes holds and nothing answers ARP for: the rules name a pod that is gone (kube-
    proxy not syncing, or an EndpointSlice not updated)."""
    neighbour = _last(branch, "neighbour")
    ip = str(neighbour.data.get("ip")) if neighbour is not None else ""
    svc = aim.service
    if svc is None or ip != branch.packet.dst or all(ep.ip != ip for ep in svc.endpoints):
        return None
    if any(ip in index.pods_by_ip for index in indexes):
        return None
    node = drop.node if drop is not None else ""
    reason = branch.reason
    where = f"{ip}:{branch.packet.dport}" if branch.packet.dport is not None else ip
    return Cause(
        "endpoint-gone",
        "critical",
        f"Service {svc.namespace}/{svc.name}:{svc.port_name}",
        f"{way}kube-proxy sends connections to endpoint {where}, which no pod of node "
        f"{node} holds: {reason}",
        "kube-proxy's rules name a pod that is gone: check that kube-proxy runs and syncs "
        "on this node (its log, its sync metrics), and the Service's EndpointSlices "
        f"(kubectl get endpointslices -l kubernetes.io/service-name={svc.name} -n "
        f"{svc.namespace})",
        hop_text(drop) if drop else None,
        (reason,),
        key=f"{node}:{svc.namespace}/{svc.name}:{ip}",
        about="destination",
    )


def _wrong_mac(
    branch: Branch, indexes: list[SnapshotIndex], way: str, node: str, reason: str, drop: Hop | None
) -> Cause:
    """A static neighbour entry (PERMANENT, NOARP) for a MAC no device on the way takes: a
    CNI's entry for the pod's gateway (AWS VPC CNI's 169.254.1.1, written once when the
    pod starts) after the host side was made again with another MAC."""
    neighbour = _last(branch, "neighbour")
    dev = str(neighbour.data.get("dev")) if neighbour is not None else "?"
    ip = str(neighbour.data.get("ip")) if neighbour is not None else "?"
    sender = str(drop.data.get("sender") or f"node {node}") if drop is not None else node
    netns = neighbour.data.get("netns") if neighbour is not None else None
    index = _index_of(indexes, neighbour.node if neighbour is not None else node)
    enter = _nsenter(index, netns) if index is not None and isinstance(netns, int) else ""
    return Cause(
        "neighbour-wrong-mac",
        "critical",
        f"neighbour {ip} on {dev} of {sender}",
        f"{way}{reason}",
        f"delete the entry, and the kernel resolves {ip} again: {enter}ip neigh del {ip} dev "
        f"{dev} (or replace it with the MAC of the device that takes the frame); a CNI that "
        "writes it when the pod starts writes it right when the pod is made again",
        hop_text(drop) if drop else None,
        (reason,),
        key=f"{node}:{sender}:{dev}:{ip}",
        partial_grade="critical",
        about="place",
    )


def _fdb_misplaced(branch: Branch, way: str, node: str, reason: str, drop: Hop | None) -> Cause:
    """A bridge FDB entry that sends a pod's MAC to another port, and stays there: sticky,
    or the MAC's own port does not learn (an entry that roams is uncertain instead)."""
    bridged = _last(branch, "bridge")
    bridge = str(bridged.data.get("bridge")) if bridged is not None else "?"
    mac = str(bridged.data.get("mac")) if bridged is not None else "?"
    port = str(bridged.data.get("port")) if bridged is not None else "?"
    return Cause(
        "fdb-misplaced",
        "critical",
        f"fdb {mac} of {bridge} on node {node}",
        f"{way}{reason}",
        f"bridge fdb del {mac} dev {port} master, and the bridge learns {mac} again on the "
        "port it is behind; what wrote the entry (static and sticky, or learning off on "
        "that port: bridge -d link show) writes it again",
        hop_text(drop) if drop else None,
        (hop_text(bridged) if bridged is not None else reason,),
        key=f"{node}:{bridge}:{mac}",
        partial_grade="critical",
    )


def _nsenter(index: SnapshotIndex, inode: int) -> str:
    """`nsenter --net=PATH ` (or `-t PID -n `) that runs a command in a namespace of the
    node; "" for the node's own."""
    ns = index.netns_by_inode.get(inode)
    if ns is None or inode == index.snapshot.root_netns:
        return ""
    if ns.paths:
        return f"nsenter --net={ns.paths[0]} "
    return f"nsenter -t {ns.holder_pid} -n " if ns.holder_pid else ""


def _unresolved(
    branch: Branch, aim: Aim, way: str, node: str, reason: str, drop: Hop | None
) -> Cause:
    neighbour = _last(branch, "neighbour")
    dev = str(neighbour.data.get("dev")) if neighbour is not None else "?"
    ip = str(neighbour.data.get("ip")) if neighbour is not None else "?"
    if "proxy_arp=1" in reason and "no route" in reason:
        return Cause(
            "proxy-arp-no-route",
            "critical",
            f"next hop {ip} on {dev} of node {node}",
            f"{way}{reason}",
            f"give node {node} a route that covers {ip} out of another interface (Calico: "
            "its default route): proxy ARP answers only for addresses the node routes elsewhere",
            hop_text(drop) if drop else None,
            # The facts behind the cause: the proxy_arp sysctls and the lookup that failed.
            neighbour.details if neighbour is not None and neighbour.details else (reason,),
            key=f"{node}:{ip}",
            partial_grade="critical",
        )
    return Cause(
        "neighbour-unresolved",
        "critical",
        f"next hop {ip} on {dev} of node {node}",
        f"{way}{reason}",
        f"the next hop {ip} on {dev} must answer ARP/NDP (or the overlay agent must add "
        f"`ip neigh add {ip} lladdr MAC dev {dev} nud permanent`)",
        hop_text(drop) if drop else None,
        (reason,),
        key=f"{node}:{dev}:{ip}",
        partial_grade="critical",
    )


def _uncertain(branch: Branch, aim: Aim) -> Cause:
    """A branch the engine could not follow: a fact the doctor cannot judge."""
    why = branch.uncertain[0] if branch.uncertain else branch.reason
    beyond = parse_beyond(why)
    if beyond is not None:
        return _beyond_snapshots(branch, beyond, why)
    if own_rules.MARK in why:
        return _own_rules(branch, why)
    unmodelled = _UNMODELLED.match(why)
    if unmodelled is not None:
        return _unmodelled_chains(branch, *unmodelled.groups())
    # One finding per Service and reason, whichever of its addresses was traced.
    subject = f"Service {aim.service.key}" if aim.service and aim.service.name else aim.label
    return _unjudged(
        branch,
        "cannot-judge",
        subject,
        why,
        "nothing to fix from here; check it on the node (the trace names what decides it)",
        (why,),
        key=f"{subject}:{why}",
        about="destination",
    )


def _unjudged(
    branch: Branch,
    check: str,
    subject: str,
    why: str,
    fix: str,
    evidence: tuple[str, ...],
    key: str,
    about: Literal["destination", "source", "place"] = "place",
    node: str = "",
) -> Cause:
    """What the doctor cannot judge from a snapshot (info, whatever share of a path's
    branches it decides), with the hop the trace stopped knowing at."""
    return Cause(
        check,
        "info",
        subject,
        f"cannot be judged from a snapshot: {why}",
        fix,
        hop_text(branch.hops[-1]) if branch.hops else None,
        evidence,
        key=key,
        partial_grade="info",
        about=about,
        node=node,
    )


# The engine's note on nftables chains it does not walk (Engine._bridge_filtered,
# Engine._device_filtered): their kind, node and names.
_UNMODELLED = re.compile(
    r"nftables (bridge-family|ingress|egress) chains of node (\S+) \(([^)]*)\)"
)


def _unmodelled_chains(branch: Branch, kind: str, node: str, chains: str) -> Cause:
    """Paths through nftables chains the trace does not walk: one finding per node and
    chains, whichever devices and paths met them."""
    return _unjudged(
        branch,
        "unmodelled-chains",
        f"node {node}",
        f"nftables {kind} chains of node {node} ({chains}) may filter the paths that cross "
        "them, and podpath does not walk them",
        "nothing to fix from here: read what they do (nft list ruleset), and whether they "
        "drop what these paths carry",
        (f"nftables {kind} chains: {chains}",),
        key=f"unmodelled:{node}:{kind}:{chains}",
        node=node,
    )


def _own_rules(branch: Branch, why: str) -> Cause:
    """Paths through a pod whose namespace has netfilter rules of its own (a service
    mesh's): one finding per such namespace, whichever paths crossed it."""
    subject = why.split(own_rules.MARK, 1)[0]
    return _unjudged(
        branch,
        "own-netfilter-rules",
        subject,
        why,
        "nothing to fix from here: the paths through it are judged as far as the node's "
        "own rules go (its sidecar, if it is one, decides the rest: istioctl proxy-config, "
        "linkerd diagnostics)",
        (why,),
        key=f"own-rules:{subject}",
    )


def _beyond_snapshots(branch: Branch, beyond: Beyond, why: str) -> Cause:
    """Paths that leave through a router no snapshot holds: one finding per stretch of
    network (sender, receiver, interface), whichever addresses crossed it."""
    return _unjudged(
        branch,
        "cannot-judge",
        f"the network from node {beyond.sender} to {beyond.device} of node {beyond.receiver}",
        f"packets leave {beyond.sender} through a router no snapshot holds, and are assumed "
        f"to reach {beyond.receiver} on {beyond.device} (for one path: {why})",
        "nothing to fix from here; check the network between the nodes (a VPC's route "
        "tables, security groups) if these paths fail",
        (why,),
        key=f"beyond:{beyond.sender}:{beyond.receiver}:{beyond.device}",
    )


def _untranslated(branch: Branch, reply: Branch, aim: Aim, indexes: list[SnapshotIndex]) -> Cause:
    """The answer reaches the client from the endpoint's own address, not from the VIP."""
    src = hostport(reply.packet.src, reply.packet.sport)
    # The hops up to the client (or out of the node), without the client's refusal of it.
    answered = reply.hops[:-1] if answered_unasked(reply) else reply.hops
    fate = (
        f"the answer, sent straight to the client, reaches it from {src}, not from "
        f"{aim.target}, which it never asked"
    )
    unmasqueraded = _unmasqueraded(branch, aim, indexes, fate)
    if unmasqueraded is not None:
        return unmasqueraded
    node = branch.hops[0].node if branch.hops else ""
    index = _index_of(indexes, node)
    bridged = next((h for h in reply.hops if h.kind == "bridge"), None)
    off = None
    if bridged is not None and index is not None:
        # The bridge's own nf_call_iptables hands its frames over whatever the switch.
        bridge = index.link_by_name(index.snapshot.root_netns, str(bridged.data.get("bridge")))
        off = bridge_nf_off(index.snapshot.node, 6 if ":" in aim.address else 4, bridge)
    if bridged is not None and off is not None:
        name, value = off
        return Cause(
            "bridge-nf-off",
            "critical",
            f"node {node}",
            f"{name} is {value} on a bridge CNI with kube-proxy: the answer to {aim.target} "
            f"is bridged past conntrack and reaches the client from {src}, which it never "
            "asked (TCP answers with a RST)",
            bridge_nf_fix(name),
            hop_text(bridged),
            (f"{name} = {value}",),
            key=node if name.endswith("-iptables") else f"{node}:ipv6",
            partial_grade="critical",
        )
    return Cause(
        "reply-untranslated",
        "critical",
        aim.label,
        f"the answer to {aim.target} reaches the client from {src}, not from "
        f"{aim.target}: conntrack does not translate it back on its way",
        "make the reply pass the node that DNATed the request (asymmetric routing "
        "bypasses its conntrack entry)",
        hop_text(answered[-1]) if answered else None,
        (str(reply.hops[-1].data["delivered"]) if answered_unasked(reply) else reply.reason,),
        key=f"{aim.label}:{src}",
        partial_grade="critical",
        about="destination",
    )
