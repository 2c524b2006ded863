"""The trace engine: follow a packet hop by hop through one or more node snapshots.

A pure function of the snapshots. The packet moves through the same steps as in the
kernel: output route lookup and OUTPUT/POSTROUTING for a locally generated packet;
PREROUTING, route lookup, then INPUT (local delivery) or FORWARD/POSTROUTING for a
received one; across a veth into the peer namespace; through a bridge by its FDB; into
a VXLAN tunnel toward a remote VTEP; out of the node. A packet sent to another node
whose snapshot was given continues there. Netfilter rules are known for each node's
root namespace (that is what iptables-save and nft read), so hooks run there.
Branches split at `-m statistic`/`numgen` and carry their probability.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from podpath.analysis.dataplane import detect
from podpath.analysis.index import SnapshotIndex
from podpath.netfilter.ipset import IpSet, parse_ipsets
from podpath.netfilter.owners import Owner
from podpath.snapshot.model import FdbEntry, Link, NetNamespace, RecentList, Snapshot
from podpath.trace import own_rules, policy, sysctls
from podpath.trace import reply as ct
from podpath.trace.beyond import Beyond, assumption
from podpath.trace.cluster_ips import ClusterIps
from podpath.trace.counters import with_counters
from podpath.trace.deliver import deliver
from podpath.trace.ebpf import Attachment, attached, ebpf_hop
from podpath.trace.flow import Flow
from podpath.trace.hooks import Stage, iptables_stages, run_hook
from podpath.trace.ipvs import IpvsState, ipvs_stages
from podpath.trace.links import (
    MacResolution,
    at_fault,
    fdb_port,
    primary_address,
    resolve_mac,
    set_down,
    vxlan_remote,
)
from podpath.trace.matches import MatchEnv
from podpath.trace.model import Branch, Hop, JsonValue, Packet, Trace
from podpath.trace.netfilter import NfEnv, NfOutcome, index_long_chains
from podpath.trace.probe import (
    Destination,
    Probe,
    ProbeError,
    Source,
    hostport,
    resolve_destination,
    resolve_source,
)
from podpath.trace.routing import (
    DROP_TYPES,
    RouteDecision,
    has_source_rules,
    lookup,
    masquerade_source,
    select_source,
    table_name,
    validate_source,
)

MAX_STEPS = 48


@dataclass(frozen=True)
class _Received:
    """A tunnel's outer packet as it reaches the far end's device."""

    outer: Packet
    link: Link


class Engine:
    """Trace state shared by every branch: node indexes and cached hook stages."""

    def __init__(self, indexes: Sequence[SnapshotIndex], explain: bool = False) -> None:
        self.indexes = list(indexes)
        self.explain = explain
        self._stages: dict[tuple[int, str, int], list[Stage]] = {}
        self._ipvs: dict[int, IpvsState | None] = {}
        self._sets: dict[int, tuple[IpSet, ...] | None] = {}
        self._owners = self._address_owners()
        self._unmodelled: dict[int, tuple[UnmodelledChain, ...]] = {}
        self._cluster_ips: dict[tuple[int, str], tuple[ClusterIps, ...]] = {}
        # Per (node, netns, bridge): the port each MAC behind a veth port is behind.
        self._port_macs: dict[tuple[int, int, int], dict[str, Link]] = {}
        # Set by a caller that traces many paths (the doctor): flows a DNAT sent to
        # destinations with equal keys behave alike, so one is followed for all of them.
        self.alike: Callable[[Flow], Hashable | None] | None = None
        # The traced connection's client's ip_local_port_range (its netns's), where its
        # source port comes from when the probe names none: set per trace, () unknown.
        self.client_ports: tuple[int, ...] = ()

    # --- lookups ----------------------------------------------------------------------

    def _address_owners(self) -> dict[str, tuple[int, Link]]:
        """Node addresses (root netns) that belong to exactly one node: where a packet lands."""
        seen: dict[str, list[tuple[int, Link]]] = {}
        for i, index in enumerate(self.indexes):
            root = index.root_netns
            if root is None:
                continue
            for link in root.links:
                for a in link.addresses:
                    if not a.address.startswith("127.") and a.address != "::1":
                        seen.setdefault(a.address, []).append((i, link))
        return {
            addr: owners[0] for addr, owners in seen.items() if len({o[0] for o in owners}) == 1
        }

    def remote_owner(self, node: int) -> Callable[[str], tuple[str, str | None] | None]:
        """Who answers ARP/NDP for an address on another loaded node (for node `node`'s wire)."""

        def owner(ip: str) -> tuple[str, str | None] | None:
            found = self._owners.get(ip)
            if found is None or found[0] == node:
                return None
            target, link = found
            return f"node {self.hostname(target)} ({link.name} {link.mac})", link.mac

        return owner

    def hostname(self, node: int) -> str:
        """The hostname of a node."""
        return self.indexes[node].snapshot.node.hostname

    def netns(self, flow: Flow) -> NetNamespace | None:
        """The namespace the flow is in."""
        return self.indexes[flow.node].netns_by_inode.get(flow.netns)

    def is_root(self, flow: Flow) -> bool:
        """True in a node's own namespace, the one whose netfilter rules were collected."""
        return flow.netns == self.indexes[flow.node].snapshot.root_netns

    def label(self, node: int, netns: int) -> str:
        """A namespace as a person knows it: the pod, the node, or its path."""
        index = self.indexes[node]
        if netns == index.snapshot.root_netns:
            return f"node {index.snapshot.node.hostname} (root netns)"
        pod = index.pods_by_netns.get(netns)
        if pod is not None:
            return f"pod {pod.namespace}/{pod.name}"
        ns = index.netns_by_inode.get(netns)
        if ns is not None and ns.paths:
            return f"netns {ns.paths[0]}"
        return f"netns {netns}"

    def _own_rules(self, flow: Flow, hook: str, family: int) -> Flow:
        """The flow at a hook of a namespace other than the node's: uncertain where that
        namespace has rules of its own there (podpath.trace.own_rules), else as it is."""
        ns = self.netns(flow)
        if ns is None or not ns.netfilter:
            return flow
        who = self.label(flow.node, flow.netns)
        first = flow.packet.direction == "original"
        said = own_rules.note(ns.netfilter, hook, family, who, first)
        return _doubted(flow, said) if said else flow

    def stages(self, node: int, hook: str, family: int) -> list[Stage]:
        """Every table registered at a hook on a node (cached)."""
        key = (node, hook, family)
        found = self._stages.get(key)
        if found is None:
            found = []
            fam = "ipv6" if family == 6 else "ipv4"
            for dump, ruleset in self.indexes[node].rulesets:
                if dump.family == fam:
                    found.extend(iptables_stages(dump.backend, ruleset, hook))
            found.extend(self._nft_stages(node, hook, family))
            state = self._ipvs_state(node)
            if state is not None:
                found.extend(ipvs_stages(state, hook))
            self._stages[key] = found
        return found

    def _ipvs_state(self, node: int) -> IpvsState | None:
        """The node's IPVS virtual services and connections (None without ip_vs)."""
        if node not in self._ipvs:
            dump = self.indexes[node].snapshot.ipvs
            index = self.indexes[node]
            # The Services pods' service-link environment names (IPVS names none).
            names = {
                s.svc_chain: s.key
                for s in (
                    index.services if dump is not None and index.snapshot.service_links else ()
                )
                if s.backend == "ipvs" and s.name and s.svc_chain
            }
            self._ipvs[node] = IpvsState(dump, names) if dump is not None else None
        return self._ipvs[node]

    def _ipsets(self, node: int) -> tuple[IpSet, ...] | None:
        """The node's ipsets, parsed once (None when the snapshot did not read them)."""
        if node not in self._sets:
            dump = self.indexes[node].snapshot.ipsets
            self._sets[node] = tuple(parse_ipsets(dump.text).values()) if dump else None
        return self._sets[node]

    def _nft_stages(self, node: int, hook: str, family: int) -> list[Stage]:
        snapshot = self.indexes[node].snapshot
        if snapshot.nft is None:
            return []
        from podpath.trace.nft import nft_stages

        return nft_stages(self.indexes[node], hook, family)

    # --- branch endings ---------------------------------------------------------------

    def finish(self, flow: Flow, verdict: str, reason: str, hop: Hop | None = None) -> Branch:
        """A finished branch; any uncertainty on the way makes its verdict "uncertain"."""
        hops = flow.hops + ((hop,) if hop is not None else ())
        end = (flow.node, flow.netns)
        if flow.uncertain and verdict != "uncertain":
            return Branch(
                flow.probability,
                "uncertain",
                f"{reason} (if: {flow.uncertain[0]})",
                hops,
                flow.packet,
                verdict,
                flow.uncertain,
                flow.nat,
                end,
                untracked=flow.untracked,
            )
        uncertain = flow.uncertain or ((reason,) if verdict == "uncertain" else ())
        return Branch(
            flow.probability,
            verdict,
            reason,
            hops,
            flow.packet,
            None,
            uncertain,
            flow.nat,
            end,
            untracked=flow.untracked,
        )

    def drop(
        self,
        flow: Flow,
        reason: str,
        by: str,
        carrier: str = "",
        device: Link | None = None,
        sender: str = "",
    ) -> list[Branch]:
        """The packet is dropped here (`carrier`: the tunnel packet that carried it, when
        that is what a rule dropped; `device`: the interface at fault, when one is;
        `sender`: the namespace whose neighbour entry is at fault, when one is)."""
        data: dict[str, JsonValue] = {"reason": reason, "by": by, "netns": flow.netns}
        if sender:
            data["sender"] = sender
        if carrier:
            data["carrier"] = carrier
        if device is not None:
            data["dev"] = device.name
            data["dev_netns"] = device.netns
            data["dev_ifindex"] = device.ifindex
        hop = Hop("drop", self.hostname(flow.node), f"dropped: {reason}", (), (), data)
        return [self.finish(flow, "dropped", reason, hop)]

    def unsure(self, flow: Flow, reason: str) -> list[Branch]:
        """The trace cannot go on: say why."""
        return [self.finish(flow, "uncertain", reason)]

    # --- netfilter --------------------------------------------------------------------

    def env(
        self,
        flow: Flow,
        in_link: Link | None,
        out_link: Link | None,
        bridged: bool = False,
        physdev_in: str | None = None,
        physdev_out: str | None = None,
    ) -> NfEnv:
        """What the rules at a hook see for this flow."""
        index = self.indexes[flow.node]
        local = index.local_addresses.get(flow.netns, frozenset())
        dnat = next((r for r in flow.nat if r.node == flow.node and r.kind == "DNAT"), None)
        snat = any(r.node == flow.node and r.kind == "SNAT" for r in flow.nat)
        fam = 6 if ":" in flow.packet.dst else 4
        matches = MatchEnv(
            local_addresses=local,
            in_iface=in_link.name if in_link else None,
            out_iface=out_link.name if out_link else None,
            bridged=bridged,
            physdev_in=physdev_in,
            physdev_out=physdev_out,
            dnat=dnat is not None,
            snat=snat,
            orig_dst=dnat.before[0] if dnat else None,
            orig_dport=dnat.before[1] if dnat else None,
            recent=self._recent(flow.node),
            ipsets=self._ipsets(flow.node),
            client_ports=self.client_ports,
        )
        ns = self.netns(flow)
        out_address = None
        if out_link is not None:
            out_address = (
                masquerade_source(ns, out_link, flow.packet.dst)
                if ns is not None
                else primary_address(out_link, fam)
            )
        return NfEnv(
            flow.node,
            self.hostname(flow.node),
            "",
            matches,
            out_address=out_address,
            in_address=primary_address(in_link, fam) if in_link else None,
        )

    def _recent(self, node: int) -> tuple[RecentList, ...] | None:
        """The node's xt_recent lists; None when the snapshot did not read them."""
        return self.indexes[node].snapshot.xt_recent

    def hook_split(
        self, flow: Flow, hook: str, env: NfEnv, carrier: str = ""
    ) -> tuple[list[Flow], list[Branch]]:
        """Run a hook: the flows that go on, and the branches that end here (`carrier`: the
        tunnel packet walked in the traced one's place, which their reasons name)."""
        label = f"{carrier}: " if carrier else ""
        family = 6 if ":" in flow.packet.dst else 4
        if not self.is_root(flow):
            return [self._own_rules(flow, hook, family)], []
        stages = self.stages(flow.node, hook, family)
        if not stages:
            return [flow], []
        going: list[Flow] = []
        ended: list[Branch] = []
        merge = None
        if self.alike is not None:
            # Merged as the hook goes, not only at its end: node-origin traffic to a
            # Service meets filter OUTPUT after nat OUTPUT's DNAT, walked once for each
            # of 250 endpoints otherwise (~45 ms a Service of the synthetic node).
            def merge(outcomes: list[NfOutcome]) -> list[NfOutcome]:
                return self._merge_outcomes(flow, outcomes)

        for outcome in run_hook(stages, flow.packet, env, flow.probability, merge):
            nxt = flow.moved_on(
                outcome.packet,
                outcome.probability,
                flow.hops + outcome.hops,
                flow.nat + outcome.nat,
                flow.uncertain + outcome.uncertain,
            )
            if outcome.packet.ct_state == "UNTRACKED":
                nxt = nxt.untracked_here()  # its reply finds no connection here
            if outcome.verdict == "ACCEPT":
                going.append(nxt)
            elif outcome.verdict in ("DROP", "REJECT"):
                what = "rejected" if outcome.verdict == "REJECT" else "dropped"
                reason = f"{label}{what} at {hook}: {outcome.reason}" + _owned_by(outcome.hops)
                reason += policy.denial(outcome.hops)
                ended.extend(self.drop(nxt, reason, "netfilter", carrier))
            else:
                ended.extend(self.unsure(nxt, f"{label}{outcome.reason}"))
        return going, ended

    def _merge_outcomes(self, before: Flow, outcomes: list[NfOutcome]) -> list[NfOutcome]:
        """The outcomes of a hook so far, those whose flows `alike` tells alike (DNATed
        to endpoints that behave the same) folded into the first of each kind with their
        probability, its last hop noting how many it took in. Run after each table of the
        hook (`run_hook(merge=)`), so what the hook returns needs no merge of its own."""
        alike = self.alike
        assert alike is not None
        kept: list[NfOutcome] = []
        first: dict[Hashable, int] = {}
        merged: dict[int, int] = {}
        for o in outcomes:
            key = None
            if o.verdict == "ACCEPT" and o.packet.dst != before.packet.dst:
                key = alike(before.moved_on(o.packet, o.probability, before.hops, before.nat, ()))
            if key is None or key not in first:
                if key is not None:
                    first[key] = len(kept)
                kept.append(o)
                continue
            i = first[key]
            kept[i] = replace(kept[i], probability=kept[i].probability + o.probability)
            merged[i] = merged.get(i, 0) + 1
        for i, n in merged.items():
            kept[i] = replace(kept[i], hops=_noted_alike(kept[i].hops, n))
        return kept

    # --- routing ----------------------------------------------------------------------

    def route(
        self, flow: Flow, iif: str = "lo", note: str = "", source_note: str = ""
    ) -> tuple[RouteDecision, Hop] | None:
        """Look the route up in the flow's namespace, as a hop."""
        ns = self.netns(flow)
        if ns is None:
            return None
        p = flow.packet
        decision = lookup(
            ns,
            p.dst,
            p.src,
            p.mark,
            iif,
            explain=self.explain,
            proto=p.proto,
            sport=p.sport,
            dport=p.dport,
        )
        index = self.indexes[flow.node]
        dev = index.link(flow.netns, decision.dev)
        gw = f" via {decision.gateway}" if decision.gateway else ""
        where = self.label(flow.node, flow.netns)
        if decision.type in ("unicast", "local", "broadcast", "multicast"):
            text = f"route {p.dst} in {where}: {decision.type} {decision.matched}{gw} dev {dev.name if dev else decision.dev}"
        else:
            text = f"route {p.dst} in {where}: {decision.type} {decision.matched or ''}".rstrip()
        details = [f"rule {decision.rule}", f"table {table_name(decision.table)}"]
        if note:
            details.insert(0, note)
        if source_note:
            details.append(source_note)
        if iif != "lo":
            details.append(f"input interface {iif}")
        details.extend(decision.notes)
        details.extend(f"assumed: {a}" for a in decision.assumed)
        data: dict[str, JsonValue] = {
            "netns": flow.netns,
            "dst": p.dst,
            "table": decision.table,
            "table_name": table_name(decision.table) if decision.table is not None else None,
            "matched": decision.matched,
            "dev": dev.name if dev else None,
            "gateway": decision.gateway,
            "type": decision.type,
            "rule": decision.rule,
            "iif": None if iif == "lo" else iif,
            "src": p.src,
            "mark": p.mark,
            "prefsrc": decision.prefsrc,
            # What rules with ipproto/sport/dport select on (`ip route get ... ipproto dport`).
            "proto": p.proto,
            "sport": p.sport,
            "dport": p.dport,
        }
        if decision.assumed:
            # Flow.add makes the branch uncertain on these.
            data["assumes"] = list(decision.assumed)
        return decision, Hop(
            "route", self.hostname(flow.node), text, tuple(details), decision.explain, data
        )

    # --- the path ---------------------------------------------------------------------

    def output(self, flow: Flow) -> list[Branch]:
        """A packet created by a process in flow.netns: route, OUTPUT, then out or to local delivery."""
        routed = self.route(flow)
        if routed is None:
            return self.unsure(flow, f"network namespace {flow.netns} is not in the snapshot")
        decision, hop = routed
        if flow.packet.src is None and decision.type not in DROP_TYPES and decision.type != "none":
            ns = self.netns(flow)
            assert ns is not None
            choice = select_source(ns, decision, flow.packet.dst)
            source_note = f"source {choice.address or '(none)'}: {choice.how}"
            hop = replace(
                hop,
                details=hop.details + (source_note,),
                data={**hop.data, "chosen_src": choice.address},
            )
            flow = replace(flow, packet=flow.packet.with_(src=choice.address))
            if choice.address is None:
                return self.drop(flow.add(hop), choice.how, "route")
            if has_source_rules(ns, 6 if ":" in flow.packet.dst else 4):
                # ip_route_connect(): with the source chosen, the kernel looks up again,
                # and a rule that selects on the source can now pick another table.
                flow = flow.add(hop)
                again = self.route(flow, note="second lookup with the chosen source")
                if again is None:
                    return self.unsure(flow, "namespace vanished")
                decision, hop = again
        flow = flow.add(hop)
        if decision.type in DROP_TYPES or decision.type == "none":
            return self.no_route(flow, decision, "sent")
        index = self.indexes[flow.node]
        out = index.link(flow.netns, decision.dev)
        going, ended = self.hook_split(flow, "OUTPUT", self.env(flow, None, out))
        results = list(ended)
        for f in going:
            if f.packet.dst != flow.packet.dst or f.packet.mark != flow.packet.mark:
                rerouted = self.route(f, note="rerouted: OUTPUT changed the destination or mark")
                if rerouted is None:
                    results.extend(self.unsure(f, "namespace vanished"))
                    continue
                decision2, hop2 = rerouted
                f = f.add(hop2)
                if decision2.type in DROP_TYPES or decision2.type == "none":
                    results.extend(self.no_route(f, decision2, "rerouted"))
                    continue
                results.extend(self.after_output(f, decision2))
            else:
                results.extend(self.after_output(f, decision))
        return results

    def after_output(self, flow: Flow, decision: RouteDecision) -> list[Branch]:
        """POSTROUTING and transmission (or local delivery) of a locally generated packet."""
        index = self.indexes[flow.node]
        out = index.link(flow.netns, decision.dev)
        if decision.type == "local":
            return self.local_in(flow, out)
        localnet = self._localnet_refused(flow, out, "its source", flow.packet.src)
        if localnet:
            return self.drop(flow, f"{localnet} (__mkroute_output: EINVAL)", "route_localnet")
        going, ended = self.hook_split(flow, "POSTROUTING", self.env(flow, None, out))
        results = list(ended)
        for f in going:
            f = self.reverse_dnat(f)
            results.extend(self.transmit(f, decision))
        return results

    def no_route(self, flow: Flow, decision: RouteDecision, how: str = "forwarded") -> list[Branch]:
        """A lookup that found a blackhole/unreachable/prohibit route, or nothing. A
        forwarded packet is discarded (with an ICMP error but for a blackhole); a local
        sender (`how` "sent") is refused by the lookup itself, nothing sent: the route
        type's error (fib_props in net/ipv4/fib_semantics.c) is what connect() or send()
        returns; one looked up again after OUTPUT changed it (`how` "rerouted",
        ip_route_me_harder) is dropped there."""
        if decision.type == "none":
            return self.drop(flow, f"no route to {flow.packet.dst} (network unreachable)", "route")
        forwarded, refused = {
            "blackhole": ("silently discarded", "EINVAL, Invalid argument"),
            "unreachable": ("ICMP host unreachable", "EHOSTUNREACH, No route to host"),
            "prohibit": ("ICMP administratively prohibited", "EACCES, Permission denied"),
        }[decision.type]
        what = {
            "forwarded": forwarded,
            "sent": f"the sender gets {refused}, nothing is sent",
            "rerouted": "dropped in OUTPUT, looked up again after it changed the packet",
        }[how]
        return self.drop(
            flow, f"{decision.type} route {decision.matched or decision.rule}: {what}", "route"
        )

    def receive(self, flow: Flow, iif: Link) -> list[Branch]:
        """A packet arriving on iif in flow.netns: PREROUTING, route, then INPUT or FORWARD."""
        flow = replace(flow, steps=flow.steps + 1)
        if flow.steps > MAX_STEPS:
            return self.unsure(flow, "too many hops: a routing loop?")
        ns = self.netns(flow)
        if ns is not None:
            for program in attached(ns, iif, "ingress"):
                return self.ebpf(flow, iif, program)
        flow = self._device_filtered(flow, iif, "ingress")
        flow = self.reverse_snat(flow)
        going, ended = self.hook_split(flow, "PREROUTING", self.env(flow, iif, None))
        results = list(ended)
        for f in going:
            results.extend(self.routed_in(f, iif))
        return results

    def routed_in(self, flow: Flow, iif: Link) -> list[Branch]:
        """The input route lookup and what follows it."""
        routed = self.route(flow, iif=iif.name)
        if routed is None:
            return self.unsure(flow, f"network namespace {flow.netns} is not in the snapshot")
        decision, hop = routed
        flow = flow.add(hop)
        if decision.type in DROP_TYPES or decision.type == "none":
            return self.no_route(flow, decision)
        ns = self.netns(flow)
        assert ns is not None
        localnet = self._localnet_refused(flow, iif, "its destination", flow.packet.dst)
        localnet = localnet or self._localnet_refused(flow, iif, "its source", flow.packet.src)
        if localnet:
            return self.drop(flow, f"{localnet} (a martian: the kernel drops it)", "route_localnet")
        facts = self.indexes[flow.node].snapshot.node if self.is_root(flow) else None
        family = 6 if ":" in flow.packet.dst else 4
        if decision.type not in ("local", "broadcast"):
            if sysctls.forwarding(ns, family, iif, facts) is False:
                if not self._bridged_dnat6(flow, iif, decision):
                    return self.drop(flow, self._not_forwarded(flow, ns, iif, decision), "sysctl")
                flow = _last_detailed(
                    flow,
                    f"net.ipv6.conf.all.forwarding is 0, but br_netfilter bridges this frame, "
                    f"DNATed to {flow.packet.dst}, back out of {iif.name}: it is never "
                    "forwarded (ip6_forward)",
                )
        if family == 4 and flow.packet.src is not None:
            # __fib_validate_source(): the mark is used only with src_valid_mark (not
            # read, in older snapshots: the packet's, as before).
            vmark = sysctls.src_valid_mark(ns, iif)
            check = validate_source(
                ns,
                flow.packet.src,
                flow.packet.dst,
                iif,
                sysctls.rp_filter(ns, iif, facts),
                flow.packet.mark if vmark is not False else 0,
                flow.packet.proto,
                flow.packet.sport,
                flow.packet.dport,
                sysctls.accept_local(ns, iif) is True,
            )
            if not check.ok:
                return self.drop(
                    flow, f"{check.reason} (a martian: the kernel drops it)", "rp_filter"
                )
            if check.mode:
                flow = _last_detailed(flow, check.reason)
        if decision.type in ("local", "broadcast"):
            return self.local_in(flow, iif)
        refused = self._bridged_back_refused(flow, decision)
        if refused is not None:
            return self.drop(flow, *refused)
        index = self.indexes[flow.node]
        out = index.link(flow.netns, decision.dev)
        going, ended = self.hook_split(flow, "FORWARD", self.env(flow, iif, out))
        results = list(ended)
        for f in going:
            post, post_ended = self.hook_split(f, "POSTROUTING", self.env(f, None, out))
            results.extend(post_ended)
            for g in post:
                results.extend(self.transmit(self.reverse_dnat(g), decision))
        return results

    def _localnet_refused(
        self, flow: Flow, device: Link | None, which: str, address: str | None
    ) -> str:
        """Why an IPv4 loopback address (127/8) may not be routed on a device that is no
        loopback: route_localnet off there and on conf/all (OUTPUT's DNAT of 127.0.0.1
        to a pod, as for a NodePort or hostPort on localhost, and its answer un-SNATed
        back to it); "" when it may, or the sysctl was not read."""
        if device is None or address is None or not address.startswith("127."):
            return ""
        if "LOOPBACK" in device.flags:
            return ""
        ns = self.netns(flow)
        if ns is None or sysctls.route_localnet(ns, device) is not False:
            return ""
        return (
            f"{which} {address} is a loopback address, and {device.name} is no loopback "
            f"device: net.ipv4.conf.{device.name}.route_localnet and conf.all are 0 (kube-proxy "
            "sets it for NodePorts on localhost, the portmap plugin on its bridge for hostPorts)"
        )

    def _bridged_dnat6(self, flow: Flow, iif: Link, decision: RouteDecision) -> bool:
        """br_nf_pre_routing_finish_ipv6(): an IPv6 frame DNATed in the bridge's PREROUTING
        whose new destination is routed back out of that bridge is bridged there
        (bridged_dnat), without ip6_forward() and its forwarding check. Its input lookup
        does not fail with forwarding off, unlike IPv4's (`_not_forwarded`)."""
        entered = flow.entered
        if ":" not in flow.packet.dst or entered is None or not self.is_root(flow):
            return False
        if entered[:3] != (flow.node, flow.netns, iif.ifindex) or entered[4] == flow.packet.dst:
            return False
        facts = self.indexes[flow.node].snapshot.node
        return decision.dev == iif.ifindex and facts.bridge_nf_calls(6, iif) != 0

    def _not_forwarded(
        self, flow: Flow, ns: NetNamespace, iif: Link, decision: RouteDecision
    ) -> str:
        """Why a packet to be forwarded is dropped where iif does not forward.

        The input lookup gives it an ip_error route, and ip_error() sends no ICMP when
        the input device does not forward: it only counts InAddrErrors (Ip6 likewise in
        ip6_forward()). A packet DNATed behind the bridge it came in by is no exception:
        br_netfilter bridges it only after that lookup succeeds (its old "bridged-and-
        DNAT'ed traffic doesn't require ip_forwarding" branch has been unreachable
        since 251da4130115 cached ip_error routes, and was removed as dead code). IPv6's
        lookup does not fail there: `_bridged_dnat6`.
        """
        family = 6 if ":" in flow.packet.dst else 4
        if family == 6:
            name = "net.ipv6.conf.all.forwarding"
            if sysctls.force_forwarding(ns, iif) is False:
                name += f" and net.ipv6.conf.{iif.name}.force_forwarding"
        elif sysctls.has_netconf(ns):
            name = f"net.ipv4.conf.{iif.name}.forwarding"
        else:
            name = "net.ipv4.ip_forward"
        counter = "Ip6InAddrErrors" if family == 6 else "IpInAddrErrors"
        verb = "are" if " and " in name else "is"
        reason = (
            f"{name} {verb} 0: {self.label(flow.node, flow.netns)} does not forward (dropped "
            f"without an ICMP error; nstat counts it in {counter})"
        )
        out = self.indexes[flow.node].link(flow.netns, decision.dev)
        dnat = any(r.node == flow.node and r.kind == "DNAT" for r in flow.nat)
        if dnat and iif.kind == "bridge" and out is not None and out.ifindex == iif.ifindex:
            reason += (
                f"; DNATed to {flow.packet.dst}, behind the bridge {iif.name} it came in by, "
                "it is routed all the same, not bridged"
            )
        return reason

    def local_in(self, flow: Flow, iif: Link | None) -> list[Branch]:
        """INPUT, then delivery to the pod or the node's own stack and its sockets (or on,
        after IPVS)."""
        going, ended = self.hook_split(flow, "INPUT", self.env(flow, iif, None))
        results = list(ended)
        for f in going:
            if f.packet.dst != flow.packet.dst:
                # IPVS scheduled the connection at LOCAL_IN: it is sent on to the real server.
                results.extend(self.ipvs_forward(f))
                continue
            unmodelled = self._ipvs_unknown(f)
            if unmodelled:
                results.extend(self.unsure(f, unmodelled))
                continue
            f = self.reverse_dnat(f)
            where = self.label(f.node, f.netns)
            verdict, reason, hop = deliver(self.indexes[f.node], f.netns, where, f.packet, iif)
            results.append(self.finish(f, verdict, reason, hop))
        return results

    def ipvs_forward(self, flow: Flow) -> list[Branch]:
        """IPVS NAT xmit: route to the real server, POSTROUTING, and out."""
        routed = self.route(flow, note="IPVS sends the connection to its real server")
        if routed is None:
            return self.unsure(flow, f"network namespace {flow.netns} is not in the snapshot")
        decision, hop = routed
        flow = flow.add(hop)
        if decision.type in DROP_TYPES or decision.type == "none":
            return self.no_route(flow, decision)
        return self.after_output(flow, decision)

    def _ipvs_unknown(self, flow: Flow) -> str:
        """Why a packet for a kube-ipvs0 ClusterIP cannot be followed (IPVS state unread)."""
        index = self.indexes[flow.node]
        p = flow.packet
        if p.direction != "original" or not self.is_root(flow) or index.snapshot.ipvs is not None:
            return ""
        if index.kube_proxy_mode.mode != "ipvs":
            return ""
        ns = self.netns(flow)
        dummy = next((link for link in ns.links if link.name == "kube-ipvs0"), None) if ns else None
        if dummy is None or not any(a.address == p.dst for a in dummy.addresses):
            return ""
        return (
            f"kube-proxy runs in IPVS mode and {p.dst} is a ClusterIP on kube-ipvs0: IPVS "
            "would send it to a real server, but the snapshot has no IPVS state "
            "(/proc/net/ip_vs was not read)"
        )

    # --- conntrack reverse translation (the reply direction) ---------------------------

    def reverse_snat(self, flow: Flow) -> Flow:
        """A reply to a masqueraded/SNATed connection gets its destination translated back."""
        return ct.reverse(self, flow, "SNAT")

    def reverse_dnat(self, flow: Flow) -> Flow:
        """A reply from a DNATed endpoint gets its source translated back (e.g. to the Service VIP)."""
        return ct.reverse(self, flow, "DNAT")

    # --- leaving the namespace --------------------------------------------------------

    def transmit(self, flow: Flow, decision: RouteDecision) -> list[Branch]:
        """Send the packet out of the route's device toward its next hop."""
        index = self.indexes[flow.node]
        link = index.link(flow.netns, decision.dev)
        if link is None:
            return self.unsure(flow, f"output device {decision.dev} is not in the snapshot")
        if link.state == "DOWN":
            why, down = self._why_down(flow.node, link)
            return self.drop(flow, why, "link", device=down)
        ns = self.netns(flow)
        if ns is not None:
            for program in attached(ns, link, "egress"):
                return self.ebpf(flow, link, program)
        nexthop = decision.gateway or flow.packet.dst
        if link.kind == "vxlan":
            return self.vxlan(flow, link, nexthop)
        if link.kind == "ipip":
            return self.ipip(flow, link, decision.gateway)
        if link.kind == "bridge":
            return self.bridge_out(flow, link, nexthop, None)
        if link.kind == "veth":
            return self.veth(flow, link, nexthop)
        return self.leave(flow, link, nexthop)

    def _why_down(self, node: int, link: Link) -> tuple[str, Link]:
        """Why a device is down, as `ip link` would show it, and the device at fault: it
        is set down, or it is a veth whose peer is (a veth has no carrier while its peer
        is down: veth_open)."""
        index = self.indexes[node]
        fault = at_fault(index, link)
        if fault is not link:  # at_fault returns the link itself or its peer
            there = self.label(node, fault.netns)
            return (
                f"{link.name} has no carrier: its peer {fault.name} in {there} is down "
                f"(ip link set {fault.name} up)",
                fault,
            )
        peer = index.peer(link) if link.kind == "veth" else None
        if peer is None:
            return f"{link.name} is down", link
        return f"{link.name} (to {self.label(node, peer.netns)}) is down", link

    def neighbour_hop(self, flow: Flow, link: Link, nexthop: str) -> tuple[Flow, MacResolution]:
        """Resolve the next hop's MAC on link: the flow with the hop (and any assumption)."""
        ns = self.netns(flow)
        assert ns is not None
        res = resolve_mac(
            self.indexes[flow.node],
            ns,
            link,
            nexthop,
            self._arp_sender(flow, ns, link),
            self.remote_owner(flow.node),
        )
        from_table = res.entry is not None and res.mac is not None and res.mac == res.entry.lladdr
        data: dict[str, JsonValue] = {
            "netns": flow.netns,
            "dev": link.name,
            "ip": nexthop,
            "lladdr": res.mac,
            "state": list(res.entry.state) if res.entry else None,
            "from_table": from_table,
            "answered": res.answered,
        }
        hop = Hop("neighbour", self.hostname(flow.node), res.how, res.details, (), data)
        flow = flow.add(hop)
        if res.uncertain:
            flow = replace(flow, uncertain=flow.uncertain + (res.uncertain,))
        return flow, res

    def _arp_sender(self, flow: Flow, ns: NetNamespace, link: Link) -> str | None:
        """The sender address of the ARP request: the packet's source when it is local
        (arp_announce=0), else the device's own address (arp_solicit)."""
        src = flow.packet.src
        if src is not None and src in self.indexes[flow.node].local_addresses.get(flow.netns, ()):
            return src
        return primary_address(link, 6 if ":" in flow.packet.dst else 4)

    def unresolved(self, flow: Flow, res: MacResolution) -> list[Branch]:
        """The next hop never answered: the kernel drops the queued packet (EHOSTUNREACH).
        A next hop behind a device that is down is that device's fault."""
        if res.down:
            return self.drop(flow, res.how, "link", device=res.down)
        return self.drop(flow, res.how, "neighbour")

    def ebpf(self, flow: Flow, link: Link, program: Attachment) -> list[Branch]:
        """An eBPF program decides here; podpath cannot run it, so the branch stops, named."""
        hop = ebpf_hop(self.hostname(flow.node), flow.netns, link, program)
        return [self.finish(flow.add(hop), "uncertain", hop.text)]

    def veth(self, flow: Flow, link: Link, nexthop: str) -> list[Branch]:
        """Across a veth pair into the peer namespace (and its bridge, if it is a port)."""
        index = self.indexes[flow.node]
        peer = index.peer(link)
        if peer is None and flow.netns == index.snapshot.root_netns:
            # The node's own uplink is a veth whose peer lies outside every snapshot (a
            # kind/container node's eth0, the lab's underlay): that is the wire out.
            return self.leave(flow, link, nexthop)
        flow, res = self.neighbour_hop(flow, link, nexthop)
        mac = res.mac
        if not res.answered:
            return self.unresolved(flow, res)
        owner = self._owners.get(nexthop)
        if peer is None and link.link_netnsid is not None and owner is not None:
            # A namespace wired to the network outside the node (its peer is in a
            # namespace of no node: a client on the lab's underlay): the frame lands on
            # the node that holds the next hop's address, on that address's device.
            target, arrive = owner
            hop = self.leave_hop(flow, link, nexthop, target)
            return self.arrive(flow.add(hop), target, arrive)
        if peer is None:
            return self.unsure(flow, f"the peer of veth {link.name} is not in the snapshot")
        moved = self.cross_veth(flow, link, peer)
        master = index.link(peer.netns, peer.master)
        if master is not None and master.kind == "bridge":
            return self.bridge_in(moved, master, peer, mac)
        if mac is not None and _foreign_frame(peer, mac) and not self._hooked(moved, peer):
            text = (
                f"{peer.name} in {self.label(flow.node, peer.netns)} has MAC {peer.mac}, and "
                f"the frame is for {mac}: not for this host, ip_rcv drops it (PACKET_OTHERHOST)"
            )
            return self._for_no_one(moved, text, peer)
        return self.receive(moved, peer)

    def _hooked(self, flow: Flow, device: Link) -> bool:
        """Whether a tc ingress program sees the device's frames before the IP stack does
        (and may redirect one for another MAC: Cilium's)."""
        ns = self.netns(flow)
        return ns is not None and any(attached(ns, device, "ingress"))

    def _for_no_one(self, flow: Flow, text: str, device: Link | None) -> list[Branch]:
        """A frame for a MAC no device takes, from the sender's neighbour entry: dropped
        for good when the entry is PERMANENT or NOARP (nothing resolves it again: a CNI's
        static entry for the gateway, AWS VPC CNI's 169.254.1.1, after the host side's
        MAC changed); else the kernel probes the entry and asks again within a minute
        or so, and the path heals."""
        hop = next((h for h in reversed(flow.hops) if h.kind == "neighbour"), None)
        if hop is None:
            return self.unsure(flow, text)
        state = hop.data.get("state")
        states = {str(x) for x in state} if isinstance(state, list) else set()
        said = "/".join(sorted(states))
        netns = hop.data.get("netns")
        sender = self.label(flow.node, netns) if isinstance(netns, int) else "the sender"
        entry = (
            f"{hop.data.get('lladdr')} is the neighbour entry for {hop.data.get('ip')} on "
            f"{hop.data.get('dev')} of {sender}"
        )
        if states & {"PERMANENT", "NOARP"}:
            reason = f"{text}; {entry} ({said}: nothing resolves it again)"
            return self.drop(flow, reason, "neighbour-mac", device=device, sender=sender)
        how = f" ({said}: probed, then asked anew)" if said else ""
        return self.unsure(flow, f"{text}, until the kernel resolves it again; {entry}{how}")

    def cross_veth(self, flow: Flow, link: Link, peer: Link) -> Flow:
        """The flow after crossing veth `link` to its `peer`, in the peer's namespace."""
        there = self.label(flow.node, peer.netns)
        hop = Hop(
            "link",
            self.hostname(flow.node),
            f"veth {link.name} -> {peer.name} in {there}",
            (),
            (),
            {
                "from": link.name,
                "to": peer.name,
                "from_netns": flow.netns,
                "to_netns": peer.netns,
                "type": "veth",
            },
        )
        # Crossing into another namespace scrubs the skb: the mark does not survive.
        packet = ct.crossed(flow.packet, flow.untracked, (flow.node, peer.netns))
        return replace(flow.add(hop), netns=peer.netns, packet=packet)

    def bridge_in(self, flow: Flow, bridge: Link, port: Link, mac: str | None) -> list[Branch]:
        """A frame entering a bridge port: to the bridge's own stack, or bridged to another
        port; a bridge that is down takes nothing in (its ports are disabled with it)."""
        if set_down(bridge):
            return self.drop(
                flow,
                f"bridge {bridge.name} is down: its ports are disabled, it takes in nothing",
                "link",
                device=bridge,
            )
        blocked = _port_blocked(port, f"bridge {bridge.name} takes no frame in by it", "in")
        if blocked:
            return self.drop(flow, blocked, "port-state", device=port)
        if mac is None:
            return self.unsure(
                flow, f"the destination MAC of the frame entering {bridge.name} is unknown"
            )
        flow = self._bridge_filtered(flow, bridge, "prerouting")
        own = self._local_mac(flow, bridge, mac)
        if own:
            flow = self._bridge_filtered(flow, bridge, "input")
            hop = Hop(
                "bridge",
                self.hostname(flow.node),
                f"bridge {bridge.name}: {mac} is {own}: up to the IP stack",
                (),
                (),
                {"bridge": bridge.name, "mac": mac, "port": None, "flooded": False, "local": True},
            )
            entered = (flow.node, flow.netns, bridge.ifindex, port.ifindex, flow.packet.dst)
            return self.receive(replace(flow.add(hop), entered=entered), bridge)
        return self.bridge_out(flow, bridge, None, port, mac)

    def _local_mac(self, flow: Flow, bridge: Link, mac: str) -> str:
        """Whose MAC a frame in by a port is sent to when the bridge takes it up to its own
        stack: the bridge's, or one of its FDB's local entries (`permanent`: each port's
        own MAC, and what `bridge fdb add ... permanent` adds), which br_handle_frame_finish
        passes up whatever port they name. A pod whose neighbour entry for its gateway
        was learned while its host veth was on no bridge sends to that veth's own MAC.
        "" when it is neither."""
        if bridge.mac is not None and mac.lower() == bridge.mac.lower():
            return "the bridge's own MAC"
        ns = self.netns(flow)
        entry = fdb_port(ns, bridge, mac) if ns is not None else None
        if entry is None or "permanent" not in entry.state:
            return ""
        port = self.indexes[flow.node].link(flow.netns, entry.ifindex)
        whose = f"{port.name}'s own MAC, " if port is not None and port.mac == mac else ""
        return f"{whose}a local entry of its fdb (permanent)"

    def bridge_out(
        self,
        flow: Flow,
        bridge: Link,
        nexthop: str | None,
        ingress: Link | None,
        mac: str | None = None,
    ) -> list[Branch]:
        """Bridge forwarding by FDB (or flooding), with br_netfilter for bridged IPv4 traffic."""
        # Bridged from a port (or DNATed by br_netfilter back out of the bridge it came in
        # by: bridged_dnat), or sent by the stack through the bridge.
        entered = flow.entered
        back = (
            entered is not None
            and entered[:3] == (flow.node, flow.netns, bridge.ifindex)
            and entered[4] != flow.packet.dst
        )
        first = "forward" if ingress is not None or back else "output"
        flow = self._bridge_filtered(flow, bridge, first, "postrouting")
        index = self.indexes[flow.node]
        ns = self.netns(flow)
        assert ns is not None
        if nexthop is not None:
            flow, res = self.neighbour_hop(flow, bridge, nexthop)
            mac = res.mac
            if not res.answered:
                return self.unresolved(flow, res)
        if mac is None:
            return self.unsure(flow, f"no MAC for {nexthop} on {bridge.name}")
        entry = fdb_port(ns, bridge, mac)
        egress = index.link(flow.netns, entry.ifindex) if entry else None
        if egress is None:
            # Unknown unicast: the bridge floods every port; the one that owns the MAC takes it.
            ports = index.bridge_ports(bridge)
            egress = self._port_behind(flow, bridge, mac)
            text = (
                f"bridge {bridge.name}: {mac} not in the FDB: flooded to all {len(ports)} ports"
                + (f"; {egress.name} leads to it" if egress else "")
            )
            data: dict[str, JsonValue] = {
                "bridge": bridge.name,
                "mac": mac,
                "port": egress.name if egress else None,
                "flooded": True,
            }
        else:
            said = (*entry.state, *(f for f in entry.flags if f == "sticky")) if entry else ()
            state = ",".join(said) or "learned"
            text = f"bridge {bridge.name}: fdb {mac} -> port {egress.name} ({state})"
            data = {"bridge": bridge.name, "mac": mac, "port": egress.name, "flooded": False}
        flow = flow.add(Hop("bridge", self.hostname(flow.node), text, (), (), data))
        if egress is None:
            return self._flooded(flow, bridge, ingress, mac)
        if entry is not None:
            roams = self._entry_roams(flow, bridge, entry, egress)
            if roams:
                return self.unsure(flow, roams)
        if ingress is not None:
            # Bridged between two ports: br_netfilter hands IPv4 frames to iptables.
            return self.bridged_netfilter(flow, bridge, ingress, egress, mac)
        return self.port_out(flow, egress, mac)

    def _port_behind(self, flow: Flow, bridge: Link, mac: str) -> Link | None:
        """The bridge port whose far end (a veth's peer) has the MAC (a map per bridge: a
        node's bridge has hundreds of ports, and every bridged frame asks)."""
        key = (flow.node, flow.netns, bridge.ifindex)
        macs = self._port_macs.get(key)
        if macs is None:
            index = self.indexes[flow.node]
            macs = {}
            for port in index.bridge_ports(bridge):
                peer_mac = index.peer_mac(port)  # not the peer: that reads its namespace
                if peer_mac is not None:
                    macs.setdefault(peer_mac.lower(), port)
            self._port_macs[key] = macs
        return macs.get(mac.lower())

    def _entry_roams(self, flow: Flow, bridge: Link, entry: FdbEntry, egress: Link) -> str:
        """Why an FDB entry that sends a MAC to a port other than the one it is behind
        will not stay: a frame from that MAC, in by its own port, moves the entry there
        (br_fdb_update), unless the entry is sticky or the port does not learn; a local
        (permanent) entry is the bridge's own. "" when it stays, or is where the MAC is."""
        if "permanent" in entry.state or "sticky" in entry.flags:
            return ""
        owner = self._port_behind(flow, bridge, entry.mac)
        if owner is None or owner.ifindex == egress.ifindex or owner.learning is False:
            return ""
        return (
            f"bridge {bridge.name}'s fdb sends {entry.mac} to {egress.name}, but {entry.mac} is "
            f"behind {owner.name}: the entry moves there as soon as a frame from it comes in "
            f"by {owner.name} (learning on, the entry not sticky); until then frames for it "
            f"go to {egress.name}, for another host"
        )

    def _flooded(self, flow: Flow, bridge: Link, ingress: Link | None, mac: str) -> list[Branch]:
        """A frame to a MAC no port leads to (a pod's stale neighbour entry for its gateway).
        br_netfilter's PREROUTING sees a frame from a port before the bridge looks its MAC
        up (br_nf_pre_routing), and re-routes what its nat DNATs: to a Service endpoint
        behind the bridge it is bridged with the endpoint's MAC, elsewhere it takes the
        bridge's own MAC, up to the stack (br_nf_pre_routing_finish). What no rule
        translates is flooded, for no known port to take."""
        unknown = f"{mac} is unknown to {bridge.name} and no port leads to it: flooded"
        hooked = self._br_netfilter(flow, bridge) if ingress is not None else None
        if hooked is None or ingress is None:
            return self._flooded_out(flow, bridge, mac, unknown)
        # Any new destination is re-routed: a DNAT, or an answer's un-SNAT by conntrack.
        env_in = self.env(hooked, bridge, None, True, ingress.name, None)
        pre, ended = self.hook_split(self.reverse_snat(hooked), "PREROUTING", env_in)
        results = list(ended)
        for f in pre:
            if f.packet.dst == hooked.packet.dst:
                results.extend(self._flooded_out(f, bridge, mac, unknown))
                continue
            text = (
                f"bridge {bridge.name}: br_netfilter's PREROUTING gave the frame a new "
                f"destination, {f.packet.dst}: re-routed, whatever its MAC {mac} "
                "(br_nf_pre_routing_finish)"
            )
            data: dict[str, JsonValue] = {"bridge": bridge.name, "mac": mac, "rerouted": True}
            hop = Hop("bridge", self.hostname(f.node), text, (), (), data)
            entered = (f.node, f.netns, bridge.ifindex, ingress.ifindex, hooked.packet.dst)
            results.extend(self.routed_in(replace(f.add(hop), entered=entered), bridge))
        return results

    def _flooded_out(self, flow: Flow, bridge: Link, mac: str, unknown: str) -> list[Branch]:
        """A frame flooded to every port: where each port is a veth whose far end is in the
        snapshot, and none has the MAC, every one drops it (PACKET_OTHERHOST), as the
        bridge does (not its MAC); a port to anything else may lead to it."""
        index = self.indexes[flow.node]
        ports = index.bridge_ports(bridge)
        peers = [index.peer(p) if p.kind == "veth" else None for p in ports]
        if not ports or any(peer is None or peer.mac is None for peer in peers):
            return self.unsure(flow, unknown)
        text = (
            f"{unknown} to {len(ports)} veths, and no device behind them has that MAC: "
            "each drops it (PACKET_OTHERHOST)"
        )
        return self._for_no_one(flow, text, None)

    def _br_netfilter(self, flow: Flow, bridge: Link) -> Flow | None:
        """The flow a node's br_netfilter hands to the IP hooks (bridge-nf-call-iptables, or
        -ip6tables, is 1, or the bridge's own nf_call_iptables is on), with a note when the
        switch was not read (assumed on); None when it hands nothing (the switch is 0, or
        the bridge is a pod's own)."""
        if not self.is_root(flow):
            return None
        six = ":" in flow.packet.dst
        calls = self.indexes[flow.node].snapshot.node.bridge_nf_calls(6 if six else 4, bridge)
        if calls == 0:
            return None
        if calls is None:
            switch = "ip6tables" if six else "iptables"
            unread = (
                f"net.bridge.bridge-nf-call-{switch} was not read; assumed 1 (kubelet needs it)"
            )
            return replace(flow, uncertain=flow.uncertain + (unread,))
        return flow

    def _bridge_filtered(self, flow: Flow, bridge: Link, *hooks: str) -> Flow:
        """A frame a node's bridge handles at `hooks` (the bridge's own prerouting, input,
        forward, output, postrouting) where nftables bridge-family base chains may filter
        it (`nft add table bridge ...`, ebtables-nft): the trace goes on, uncertain, as
        those chains are not modelled."""
        found = self._unmodelled_chains(flow.node) if self.is_root(flow) else ()
        chains = [c.name for c in found if c.family == "bridge" and c.hook in hooks]
        if not chains:
            return flow
        note = (
            f"nftables bridge-family chains of node {self.hostname(flow.node)} "
            f"({', '.join(chains)}) filter the frames bridge {bridge.name} handles: not modelled"
        )
        return _doubted(flow, note)

    def _device_filtered(self, flow: Flow, device: Link, hook: str) -> Flow:
        """A packet at a device's ingress (or egress) hook of the node, where nftables
        ingress/egress chains (netdev or inet family) bound to that device may filter it,
        before PREROUTING (after POSTROUTING): the trace goes on, uncertain, as those
        chains are not modelled."""
        found = self._unmodelled_chains(flow.node) if self.is_root(flow) else ()
        chains = [
            c.name + ("" if c.devices else ", its device not said")
            for c in found
            if c.family != "bridge"
            and c.hook == hook
            and (not c.devices or device.name in c.devices)
        ]
        if not chains:
            return flow
        # nft 1.0.6's JSON leaves a netdev chain's device out: such a chain may be any one's.
        way = "arrives" if hook == "ingress" else "leaves"
        note = (
            f"nftables {hook} chains of node {self.hostname(flow.node)} "
            f"({'; '.join(chains)}) may filter what {way} by {device.name}: not modelled"
        )
        return _doubted(flow, note)

    def _unmodelled_chains(self, node: int) -> tuple[UnmodelledChain, ...]:
        """The node's nftables base chains the trace does not walk -- bridge-family ones,
        and netdev or inet ones at a device's ingress or egress -- that can change a
        packet's fate (a rule, or a policy other than accept)."""
        found = self._unmodelled.get(node)
        if found is None:
            found = self._unmodelled[node] = _unmodelled_base_chains(self.indexes[node])
        return found

    def _bridged_back_refused(self, flow: Flow, decision: RouteDecision) -> tuple[str, str] | None:
        """br_nf_pre_routing_finish(): a frame DNATed in the bridge's PREROUTING to an address
        behind that same bridge is bridged (bridged_dnat), before any FORWARD hook, and
        br_forward() sends nothing back out of its ingress port unless that port is in
        hairpin mode, nor from one isolated port to another. Why it is dropped and by
        what (hairpin, isolated), or None."""
        entered = flow.entered
        if entered is None or not self.is_root(flow) or decision.dev is None:
            return None
        node, netns, bridge_index, port_index, dst = entered
        index = self.indexes[flow.node]
        bridge = index.link(flow.netns, decision.dev)
        if (node, netns) != (flow.node, flow.netns) or bridge is None:
            return None
        if bridge.ifindex != bridge_index or dst == flow.packet.dst:
            return None
        family = 6 if ":" in flow.packet.dst else 4
        if index.snapshot.node.bridge_nf_calls(family, bridge) == 0:
            return None
        ns = self.netns(flow)
        assert ns is not None
        mac = resolve_mac(index, ns, bridge, decision.gateway or flow.packet.dst).mac
        entry = fdb_port(ns, bridge, mac) if mac is not None else None
        port = index.link(flow.netns, entry.ifindex) if entry is not None else None
        if port is None:
            return None
        ingress = index.link(flow.netns, port_index)
        isolated = _isolation(bridge, ingress, port) if ingress is not None else None
        if isolated is not None:
            return f"{isolated} (br_netfilter DNAT to {flow.packet.dst})", "isolated"
        # An unknown hairpin mode (older snapshots) is not judged.
        if port.ifindex != port_index or port.hairpin is not False:
            return None
        reason = (
            f"{port.name} is the port the frame came in by and hairpin mode is off: bridge "
            f"{bridge.name} does not send it back out (br_netfilter DNAT to {flow.packet.dst}, "
            "which is behind that same port)"
        )
        return reason, "hairpin"

    def bridged_netfilter(
        self, flow: Flow, bridge: Link, ingress: Link, egress: Link, mac: str | None = None
    ) -> list[Branch]:
        """br_netfilter: bridged frames traverse PREROUTING, FORWARD and POSTROUTING with in/out = the bridge."""
        hooked = self._br_netfilter(flow, bridge)
        if hooked is None:
            refused = self._isolated(flow, bridge, ingress, egress)
            return refused or self.port_out(flow, egress, mac)
        flow = hooked
        flow = self.reverse_snat(flow)
        env_in = self.env(flow, bridge, None, True, ingress.name, None)
        results: list[Branch] = []
        pre, ended = self.hook_split(flow, "PREROUTING", env_in)
        results.extend(ended)
        for f in pre:
            if f.packet.dst != flow.packet.dst:
                # DNAT of a bridged frame: br_netfilter re-routes it (hairpin/Service).
                results.extend(self.routed_in(f, bridge))
                continue
            refused = self._isolated(f, bridge, ingress, egress)
            if refused:
                results.extend(refused)
                continue
            env_fw = self.env(f, bridge, bridge, True, ingress.name, egress.name)
            fwd, ended2 = self.hook_split(f, "FORWARD", env_fw)
            results.extend(ended2)
            for g in fwd:
                env_post = self.env(g, None, bridge, True, None, egress.name)
                post, ended3 = self.hook_split(g, "POSTROUTING", env_post)
                results.extend(ended3)
                for h in post:
                    results.extend(self.port_out(self.reverse_dnat(h), egress, mac))
        return results

    def _isolated(self, flow: Flow, bridge: Link, ingress: Link, egress: Link) -> list[Branch]:
        """br_forward's should_deliver(), after the bridge's PREROUTING and before its
        FORWARD: no frame that came in by an isolated port leaves by another one."""
        reason = _isolation(bridge, ingress, egress)
        return [] if reason is None else self.drop(flow, reason, "isolated", device=egress)

    def port_out(self, flow: Flow, port: Link, mac: str | None = None) -> list[Branch]:
        """A frame (for `mac`) leaving a bridge port: none leaves a port that is down (the
        bridge disables it: br_stp_disable_port), and the device behind a veth port takes
        only frames for its own MAC (or broadcast, multicast)."""
        index = self.indexes[flow.node]
        if port.state == "DOWN":
            why, down = self._why_down(flow.node, port)
            return self.drop(flow, f"bridge port {why}: nothing leaves it", "link", device=down)
        blocked = _port_blocked(port, "the bridge sends no frame out by it", "out")
        if blocked:
            return self.drop(flow, blocked, "port-state", device=port)
        if port.kind == "veth":
            peer = index.peer(port)
            if peer is None:
                return self.unsure(flow, f"the peer of {port.name} is not in the snapshot")
            moved = self.cross_veth(flow, port, peer)
            if mac is not None and _foreign_frame(peer, mac) and not self._hooked(moved, peer):
                reason = (
                    f"{peer.name} in {self.label(flow.node, peer.netns)} has MAC {peer.mac}, "
                    f"and the frame the bridge's fdb sent it by {port.name} is for {mac}: not "
                    "for this host, ip_rcv drops it (PACKET_OTHERHOST)"
                )
                return self.drop(moved, reason, "fdb-misplaced", device=port)
            return self.receive(moved, peer)
        return self.leave(flow, port, flow.packet.dst)

    def vxlan(self, flow: Flow, device: Link, nexthop: str) -> list[Branch]:
        """Encapsulate toward the remote VTEP and route the outer packet over the underlay."""
        flow, res = self.neighbour_hop(flow, device, nexthop)
        mac = res.mac
        if not res.answered:
            return self.unresolved(flow, res)
        ns = self.netns(flow)
        assert ns is not None
        if mac is None:
            return self.unsure(
                flow, f"no MAC for {nexthop} on {device.name}: the VTEP cannot be chosen"
            )
        remote, how = vxlan_remote(ns, device, mac)
        vx = device.vxlan
        vni = vx.vni if vx else None
        hop = Hop(
            "vxlan",
            self.hostname(flow.node),
            f"vxlan {device.name}: encapsulate in UDP, VNI {vni}, to VTEP {remote}",
            (how,),
            (),
            {
                "dev": device.name,
                "vni": vni,
                "remote": remote,
                "local": vx.local if vx else None,
                "port": vx.port if vx else None,
            },
        )
        flow = flow.add(hop)
        if remote is None:
            return self.drop(flow, f"no remote VTEP for {mac} on {device.name}", "vxlan")
        outer = Packet(
            vx.local if vx else None, remote, "udp", None, vx.port if vx else 4789, flow.packet.mark
        )
        crossed = self._underlay(flow, outer, f"VTEP {remote}", "VXLAN")
        if isinstance(crossed, list):
            return crossed
        flow, target, leave, received = crossed
        # Netfilter sees the outer packet before the UDP socket of a VXLAN device does.
        going, ended = self._carried(
            flow.add(leave), received.outer, ("PREROUTING", "INPUT"), "VXLAN", target, received
        )
        inner = _Inner(mac, nexthop, device.name)
        return ended + [
            b
            for f in going
            for b in self._decapsulate(f, target, vni, remote, received.outer, inner)
        ]

    def _decapsulate(
        self,
        flow: Flow,
        target: int,
        vni: int | None,
        remote: str,
        outer: Packet,
        inner: _Inner,
    ) -> list[Branch]:
        """The far node's VXLAN device takes the packet off its UDP port and VNI, and the
        inner frame arrives on it: its IP packet is taken up when the frame is for the
        device's own MAC."""
        host = self.hostname(target)
        root = self.indexes[target].root_netns
        if root is None:
            return self.unsure(flow, f"node {host}'s root namespace is not in its snapshot")
        vteps = [lk for lk in root.links if lk.vxlan is not None]
        remote_dev = _vxlan_device(vteps, vni, remote, outer.dport)
        there = replace(flow, node=target, netns=root.inode)
        if remote_dev is None:
            # A socket on the port with no device of the VNI drops it (vxlan_rcv); no socket
            # on the port, and the kernel answers port unreachable.
            on_port = any(lk.vxlan is not None and lk.vxlan.port == outer.dport for lk in vteps)
            why = (
                "no VXLAN device with that VNI takes it"
                if on_port
                else "no VXLAN socket listens on that port (the kernel answers port unreachable)"
            )
            listed = ", ".join(
                f"{lk.name} VNI {lk.vxlan.vni} on UDP {lk.vxlan.port}"
                for lk in vteps
                if lk.vxlan is not None
            )
            return self.drop(
                there,
                f"node {host} has no VXLAN device with VNI {vni} (its VTEPs: "
                f"{listed or 'none'}): {why}",
                "vxlan-vni",
            )
        if set_down(remote_dev):
            # vxlan_stop() releases the device's socket: no device of this VNI is found
            # on the port (and with no other device on it, the port is closed).
            return self.drop(
                there,
                f"node {host}'s {remote_dev.name} (VNI {vni}) is down: a VXLAN device that "
                "is down takes nothing off its UDP port",
                "link",
                device=remote_dev,
            )
        listens = remote_dev.vxlan.port if remote_dev.vxlan else None
        if listens is not None and outer.dport not in (None, listens):
            # The kernel finds the VXLAN socket by UDP port before it reads the VNI.
            return self.drop(
                there,
                f"node {host}'s {remote_dev.name} (VNI {vni}) takes VXLAN on UDP port "
                f"{listens}, and the packet was sent to port {outer.dport}: no VXLAN socket "
                "takes it (the kernel answers port unreachable)",
                "vxlan-port",
            )
        if _foreign_frame(remote_dev, inner.mac):
            return self.drop(
                there,
                f"node {host}'s {remote_dev.name} has MAC {remote_dev.mac}, and the frame "
                f"inside is for {inner.mac}, {self.hostname(flow.node)}'s neighbour entry "
                f"for {inner.nexthop} on {inner.dev}: not for this host, it is dropped "
                "(the sender's neighbour and fdb entries name another MAC: the VTEP's old "
                "one, if it was made again)",
                "vxlan-mac",
            )
        dec = Hop(
            "vxlan",
            host,
            f"vxlan {remote_dev.name}: decapsulate VNI {vni} on {host}",
            (),
            (),
            {
                "dev": remote_dev.name,
                "vni": vni,
                "remote": remote,
                "local": None,
                "port": None,
                "decap": True,
            },
        )
        return self.arrive(flow.add(dec), target, remote_dev)

    def ipip(self, flow: Flow, device: Link, gateway: str | None) -> list[Branch]:
        """IP in IP (Calico's IPIP mode: `NODE-BLOCK via NODE dev tunl0 proto bird onlink`):
        the packet is wrapped in an IPv4 header (protocol 4) addressed to the route's
        gateway, the outer packet is routed over the underlay, and the receiving node's
        IP-in-IP device unwraps it and routes the inner packet as arriving on itself.

        podpath does not collect a tunnel's own endpoints (`ip tunnel show`): tunl0, the
        fallback device Calico uses, has none, so the route's gateway is the remote end;
        a route without one is left uncertain.
        """
        node = self.hostname(flow.node)
        if gateway is None:
            return self.unsure(
                flow,
                f"{device.name}: an IP-in-IP route without a gateway sends to the tunnel's "
                "own remote end, which podpath does not collect",
            )
        hop = Hop(
            "ipip",
            node,
            f"ipip {device.name}: encapsulate in IPv4 (protocol 4) to {gateway}",
            (f"{device.name} is NOARP: no neighbour lookup on it; MTU {device.mtu}",),
            (),
            {"dev": device.name, "remote": gateway},
        )
        flow = flow.add(hop)
        outer = Packet(None, gateway, "ipencap", mark=flow.packet.mark)
        crossed = self._underlay(flow, outer, f"IPIP peer {gateway}", "IP-in-IP")
        if isinstance(crossed, list):
            return crossed
        flow, target, leave, received = crossed
        # Netfilter sees the outer packet before the IP-in-IP handler does.
        going, ended = self._carried(
            flow.add(leave), received.outer, ("PREROUTING", "INPUT"), "IP-in-IP", target, received
        )
        return ended + [b for f in going for b in self._unwrap(f, target, gateway, node)]

    def _unwrap(self, flow: Flow, target: int, gateway: str, sender: str) -> list[Branch]:
        """The far node's IP-in-IP device takes protocol 4 off, and the inner packet arrives
        on it; with none, the kernel answers protocol unreachable."""
        host = self.hostname(target)
        receiver = self._ipip_device(target)
        root = self.indexes[target].root_netns
        if (
            receiver is None
            and root is not None
            and not any(lk.kind == "ipip" for lk in root.links)
        ):
            return self.drop(
                replace(flow, node=target, netns=root.inode),
                f"node {host} has no IP-in-IP device (tunl0) to unwrap protocol 4: the "
                "kernel answers protocol unreachable",
                "ipip",
            )
        if receiver is None:
            return self.unsure(
                flow, f"node {host}: which of its IP-in-IP devices unwraps protocol 4 is unknown"
            )
        dec = Hop(
            "ipip",
            host,
            f"ipip {receiver.name}: decapsulate on {host} (from {sender})",
            (),
            (),
            {"dev": receiver.name, "remote": gateway, "decap": True},
        )
        return self.arrive(flow.add(dec), target, receiver)

    def arrive(self, flow: Flow, node: int, device: Link) -> list[Branch]:
        """The packet received by another node's device (its mark cleared: the skb crossed
        a wire, or was unwrapped from a tunnel)."""
        packet = ct.crossed(flow.packet, flow.untracked, (node, device.netns))
        moved = replace(flow, node=node, netns=device.netns, packet=packet)
        return self.receive(moved, device)

    def _underlay(
        self, flow: Flow, outer: Packet, what: str, tunnel: str
    ) -> tuple[Flow, int, Hop, _Received] | list[Branch]:
        """An encapsulated packet routed over the node's underlay toward the tunnel's far
        end (`outer.dst`: a VTEP, an IPIP peer) and through this node's OUTPUT and
        POSTROUTING as the kernel sends it (a host firewall dropping UDP 8472 or
        protocol 4 stops the pods' traffic here): the flow with those hops, the loaded node
        that owns the far end, the hop leaving for it and what arrives there; or the
        branches where it ends (no route, a drop, a far end no loaded snapshot holds)."""
        routed = self.route(
            replace(flow, packet=outer), note="underlay route of the encapsulated packet"
        )
        if routed is None:
            return self.unsure(flow, "namespace vanished")
        decision, rhop = routed
        flow = flow.add(rhop)
        if decision.type in DROP_TYPES or decision.type == "none":
            return self.no_route(flow, decision)
        underlay = self.indexes[flow.node].link(flow.netns, decision.dev)
        if outer.src is None:
            ns = self.netns(flow)
            chosen = select_source(ns, decision, outer.dst).address if ns is not None else None
            outer = outer.with_(src=chosen)
        going, ended = self._carried(flow, outer, ("OUTPUT", "POSTROUTING"), tunnel, out=underlay)
        if len(going) != 1 or ended:
            # All dropped (ended alone), or split by rules such as `-m statistic`.
            split = f"the {tunnel} packet's rules split it: not followed"
            return ended + [b for f in going for b in self.unsure(f, split)]
        (flow,) = going
        nexthop = decision.gateway or outer.dst
        owner = self._owners.get(outer.dst)
        if owner is None or owner[0] == flow.node:
            return self.leaves(flow, underlay, nexthop, what)
        target, link = owner
        # The wire clears the mark; the far end sees the packet as sent.
        received = _Received(outer.with_(mark=0), link)
        return flow, target, self.leave_hop(flow, underlay, nexthop, target), received

    def _carried(
        self,
        flow: Flow,
        outer: Packet,
        hooks: tuple[str, str],
        tunnel: str,
        node: int | None = None,
        received: _Received | None = None,
        out: Link | None = None,
    ) -> tuple[list[Flow], list[Branch]]:
        """The packet a tunnel wraps the flow's in, through two hooks of the root namespace
        of `node` (the flow's own by default; arriving on `received.link` there): the flow
        with the hops it met, or the branches where a rule ended it (their packet the
        flow's own, their reason naming the outer one).

        The outer packet is a connection of its own (NEW: each inner flow hashes to its
        own UDP source port), so nat chains see it too; a rule that translates it is
        followed no further. The kernel keeps the inner packet's mark on it (the same
        namespace: skb_scrub_packet clears it only across namespaces)."""
        where = flow.node if node is None else node
        netns = flow.netns if received is None else received.link.netns
        carrier = Flow(outer, where, netns, flow.probability, flow.hops, (), flow.uncertain)
        to = hostport(outer.dst, outer.dport)
        carried = f"the {tunnel} packet ({outer.proto} {outer.src} -> {to})"
        in_link = received.link if received is not None else None
        going: list[Flow] = [carrier]
        ended: list[Branch] = []
        for hook in hooks:
            nxt: list[Flow] = []
            for f in going:
                on, stop = self.hook_split(f, hook, self.env(f, in_link, out), carried)
                nxt.extend(on)
                ended.extend(stop)
            going = nxt
        seen = len(flow.hops)
        inner = [
            replace(b, packet=flow.packet, nat=flow.nat, hops=_about(b.hops, seen, carried))
            for b in ended
        ]
        kept: list[Flow] = []
        for f in going:
            hops = _about(f.hops, seen, carried)
            back = replace(flow, probability=f.probability, hops=hops, uncertain=f.uncertain)
            if (f.packet.dst, f.packet.dport) != (outer.dst, outer.dport):
                inner.extend(
                    self.unsure(back, f"{carried} translated to {f.packet.dst}: not followed")
                )
            else:
                kept.append(back)
        return kept, inner

    def _ipip_device(self, node: int) -> Link | None:
        """The device that unwraps IP in IP on a node: tunl0 (the fallback device every
        unmatched protocol-4 packet reaches), else its only IP-in-IP device."""
        root = self.indexes[node].root_netns
        if root is None:
            return None
        found = [lk for lk in root.links if lk.kind == "ipip"]
        named = [lk for lk in found if lk.name == "tunl0"]
        return (named or found)[0] if len(named) == 1 or len(found) == 1 else None

    def leave_hop(
        self,
        flow: Flow,
        link: Link | None,
        nexthop: str,
        target: int | None,
        through_router: bool = False,
    ) -> Hop:
        """The packet leaves the node: for nexthop, itself a node, or a router (outside the
        snapshots) that is assumed to take it on to the node named."""
        toward = self.hostname(target) if target is not None else None
        name = link.name if link else None
        where = f"node {toward}"
        if through_router:
            where = f"a router outside the snapshots, on to node {toward}"
        text = f"leaves {self.hostname(flow.node)} via {name} toward {nexthop}" + (
            f" ({where})" if toward else ""
        )
        return Hop(
            "leave",
            self.hostname(flow.node),
            text,
            (),
            (),
            {
                "dev": name,
                "via": nexthop,
                "toward": toward,
                "netns": flow.netns,
            },
        )

    def leaves(self, flow: Flow, link: Link | None, nexthop: str, what: str = "") -> list[Branch]:
        """The branch ends: the packet leaves for a place no snapshot covers."""
        hop = self.leave_hop(flow, link, nexthop, None)
        name = link.name if link else "?"
        reason = f"leaves the node via {name} toward {nexthop}" + (f" ({what})" if what else "")
        return [self.finish(flow, "leaves-node", reason, hop)]

    def leave(self, flow: Flow, link: Link, nexthop: str) -> list[Branch]:
        """Out of a plain device: to another traced node, or out of the picture."""
        flow = self._device_filtered(flow, link, "egress")
        flow, res = self.neighbour_hop(flow, link, nexthop)
        if not res.answered:
            return self.unresolved(flow, res)
        # The next hop decides where the frame lands; a node reached through a router
        # other than itself is out of the picture (its receiving device is unknown).
        owner = self._owners.get(nexthop)
        through_router = owner is None or owner[0] == flow.node
        if owner is not None and not through_router:
            target, arrive = owner
        else:
            beyond = self._beyond(flow)
            if beyond is None:
                return self.leaves(flow, link, nexthop, self._untranslated_cluster_ip(flow))
            target, arrive, assumption = beyond
            flow = replace(flow, uncertain=flow.uncertain + (assumption,))
        hop = self.leave_hop(flow, link, nexthop, target, through_router)
        return self.arrive(flow.add(hop), target, arrive)

    def _untranslated_cluster_ip(self, flow: Flow) -> str:
        """What a packet leaving a node for one of its ClusterIPs, on a port kube-proxy
        does not translate, should say (podpath.trace.cluster_ips); "" for others."""
        if flow.packet.direction != "original" or not self.is_root(flow):
            return ""
        family = "ipv6" if ":" in flow.packet.dst else "ipv4"
        found = self._cluster_ips.get((flow.node, family))
        if found is None:
            rulesets = self.indexes[flow.node].rulesets
            found = tuple(ClusterIps(r) for d, r in rulesets if d.family == family)
            self._cluster_ips[(flow.node, family)] = found
        return next((text for c in found if (text := c.untranslated(flow.packet))), "")

    def _beyond(self, flow: Flow) -> tuple[int, Link, str] | None:
        """Where a packet sent toward a router outside the snapshots would land, as an assumption.

        When another loaded node owns the destination (its pod, or its own address), the
        network between (a VPC, routers) is assumed to deliver it there, on the interface
        that node's route back to the source uses: a cloud fabric delivers to the ENI that
        owns the address, which is the one its replies leave by.
        """
        dst = flow.packet.dst
        for i, index in enumerate(self.indexes):
            if i == flow.node:
                continue
            root = index.root_netns
            owns = dst in index.pods_by_ip or dst in index.local_addresses.get(
                index.snapshot.root_netns, ()
            )
            if root is None or not owns or flow.packet.src is None:
                continue
            back = lookup(root, flow.packet.src, dst, 0, "lo")
            arrive = index.link(root.inode, back.dev)
            if back.type != "unicast" or arrive is None:
                continue
            beyond = Beyond(self.hostname(flow.node), self.hostname(i), arrive.name)
            return i, arrive, assumption(beyond, dst, flow.packet.src)
        return None


def _doubted(flow: Flow, note: str) -> Flow:
    """The flow uncertain for `note` too (said once, however many hops meet it)."""
    return flow if note in flow.uncertain else replace(flow, uncertain=flow.uncertain + (note,))


def _unmodelled_base_chains(index: SnapshotIndex) -> tuple[UnmodelledChain, ...]:
    """Engine._unmodelled_chains of one node, read from the walk's own nftables index
    (podpath.trace.nft): its base chains by hook and which chains hold rules, so neither
    a cached index nor 10k Services' 100k rules are parsed or scanned again for it (a
    scan of every rule took 40 ms of each trace, a parse 1.3 s of a cached one)."""
    if index.snapshot.nft is None:
        return ()
    from podpath.trace.nft import nft_index

    nft = nft_index(index)
    if nft is None:
        return ()
    found = []
    for hook, keys in nft.base_chains.items():
        for key in keys:
            family = key[0]
            if family != "bridge" and hook not in ("ingress", "egress"):
                continue
            chain = nft.chains[key]
            if (chain.policy or "accept") != "accept" or key in nft.rules:
                name = f"{family} {key[1]} {key[2]}"
                found.append(UnmodelledChain(family, name, hook, chain.devices))
    return tuple(found)


class UnmodelledChain(NamedTuple):
    """An nftables base chain the trace does not walk (Engine._unmodelled_chains)."""

    family: str
    name: str  # `netdev guard in`: family, table, chain
    hook: str
    devices: tuple[str, ...]


def _port_blocked(port: Link, what: str, way: str) -> str:
    """Why a bridge port in an STP state other than forwarding passes no frame `way` (in:
    br_handle_frame drops it, a learning port after learning its source MAC; out:
    should_deliver skips the port); "" when it forwards, or its state was not read."""
    if port.port_state in (None, "forwarding"):
        return ""
    learns = (
        ", after learning its source MAC" if way == "in" and port.port_state == "learning" else ""
    )
    return f"bridge port {port.name} is in STP state {port.port_state}: {what}{learns}"


def _ebpf_services(
    indexes: Sequence[SnapshotIndex], source: Source, dest: Destination
) -> tuple[str, ...]:
    """On an eBPF dataplane without kube-proxy rules, a Service address is not what it seems."""
    index = indexes[source.node]
    known = any(
        dest.address in ix.pods_by_ip
        or dest.address in ix.local_addresses.get(ix.snapshot.root_netns, ())
        for ix in indexes
    )
    if known or index.kube_proxy_mode.mode is not None:
        return ()  # kube-proxy's rules decide (detect's eBPF scan reads every namespace)
    plane = detect(index)
    if not plane.ebpf or plane.kube_proxy_rules:
        return ()
    return (
        f"{plane.summary}: a Service address is resolved in eBPF maps (kube-proxy replacement) "
        "and socket-level load balancing may rewrite the destination at connect(); "
        "podpath cannot see which backend is chosen",
    )


@dataclass(frozen=True)
class _Inner:
    """The Ethernet frame a VXLAN device wraps: for the next hop's MAC, from the
    sender's neighbour entry for it on the device."""

    mac: str
    nexthop: str
    dev: str


def _foreign_frame(device: Link, mac: str) -> bool:
    """Whether a frame is for another host: a unicast MAC that is not the receiving
    device's. A device in no bridge (a decapsulating VXLAN device, a veth) hands it to
    the IP stack as PACKET_OTHERHOST, which ip_rcv drops (a bridge port's frame goes to
    the bridge's forwarding database instead)."""
    if device.master is not None or device.mac is None:
        return False
    try:
        first_octet = int(mac.split(":", 1)[0], 16)
    except ValueError:
        return False  # not a MAC podpath can read: not judged
    if first_octet & 1:  # broadcast or multicast: every host on the link takes it
        return False
    return mac.lower() != device.mac.lower()


def _vxlan_device(
    vteps: list[Link], vni: int | None, remote: str | None, port: int | None
) -> Link | None:
    """Of a node's VXLAN devices, the one that decapsulates: the same VNI, and bound to
    the VTEP address the packet was sent to (flannel.1 and flannel-v6.1 share VNI 1 but
    not their local address); one on the UDP port it was sent to first."""
    found = [lk for lk in vteps if lk.vxlan is not None and lk.vxlan.vni == vni]
    on_port = [lk for lk in found if lk.vxlan is not None and lk.vxlan.port == port]
    found = on_port or found
    exact = [lk for lk in found if lk.vxlan is not None and lk.vxlan.local == remote]
    family = [
        lk
        for lk in found
        if lk.vxlan is not None
        and remote is not None
        and (lk.vxlan.local is None or (":" in lk.vxlan.local) == (":" in remote))
    ]
    return next(iter(exact or family or found), None)


def _about(hops: tuple[Hop, ...], seen: int, packet: str) -> tuple[Hop, ...]:
    """The netfilter hops after the first `seen` say which packet they walked (a tunnel's,
    in the traced packet's place) as their first detail."""
    return hops[:seen] + tuple(
        replace(h, details=(packet, *h.details)) if h.kind == "netfilter" else h
        for h in hops[seen:]
    )


def _isolation(bridge: Link, ingress: Link, egress: Link) -> str | None:
    """Why br_forward() bridges no frame from `ingress` to `egress` (both isolated ports),
    or None. The doctor reads the bridge's name before the first colon."""
    if not (ingress.isolated and egress.isolated):
        return None
    return (
        f"bridge {bridge.name}: {ingress.name} and {egress.name} are isolated ports: "
        "no frame is bridged from one to the other"
    )


def _owned_by(hops: tuple[Hop, ...]) -> str:
    """` (NetworkPolicy ns/name (Calico))`: who made the rule that ended the branch."""
    for hop in reversed(hops):
        owner = hop.data.get("owner") if hop.kind == "netfilter" else None
        if isinstance(owner, dict):
            made = Owner(*(str(owner.get(k) or "") for k in ("kind", "agent", "name", "how")))
            return f" ({made.text})"
    return ""


def _indexes(snapshots: Sequence[Snapshot | SnapshotIndex]) -> list[SnapshotIndex]:
    return [s if isinstance(s, SnapshotIndex) else SnapshotIndex(s) for s in snapshots]


def prepare_for_traces(indexes: Sequence[SnapshotIndex]) -> None:
    """Build now what a process's first trace would build (or import) on its way: the
    long chains' dispatch indexes (~50 ms at 10k Services), and podpath.trace.nft, which
    resolving a Service's name imports in either kube-proxy mode. For a caller with time
    to spare before the first trace (the TUI, while the doctor's child finishes)."""
    for index in indexes:
        for _dump, ruleset in index.rulesets:
            index_long_chains(ruleset)
    importlib.import_module("podpath.trace.nft")


def trace(
    snapshots: Sequence[Snapshot | SnapshotIndex],
    probe: Probe,
    explain: bool = False,
    reply: bool = False,
) -> Trace:
    """Trace a probe through node snapshots: every branch, with its probability and verdict.

    Pass SnapshotIndex objects to reuse parsed rulesets across traces.
    """
    if probe.proto == "icmp" and probe.sport is not None:
        raise ProbeError(f"ICMP has no ports: leave out the source port {probe.sport}")
    indexes = _indexes(snapshots)
    dest = resolve_destination(indexes, probe.destination, probe.proto, probe.family)
    # The source speaks the destination's family (a dual-stack pod has one of each).
    source = resolve_source(indexes, probe.source, 6 if ":" in dest.address else 4)
    packet = Packet(source.address, dest.address, probe.proto, probe.sport, dest.port)
    engine = Engine(indexes, explain)
    engine.client_ports = client_ports(indexes[source.node], source.netns)
    flow = Flow(packet, source.node, source.netns, uncertain=_ebpf_services(indexes, source, dest))
    branches = engine.output(flow)
    if reply:
        branches = [replace(b, reply=tuple(ct.trace_reply(engine, b))) for b in branches]
    branches = [with_counters(b, indexes) for b in branches]
    probe_json: dict[str, JsonValue] = probe.as_json()
    probe_json.update(
        {
            "src": source.address,
            "src_label": source.label,
            "dst": dest.address,
            "dport": dest.port,
            "dst_label": dest.label,
            "node": indexes[source.node].snapshot.node.hostname,
            "netns": source.netns,
        }
    )
    return Trace(probe_json, tuple(sorted(branches, key=lambda b: -b.probability)))


def client_ports(index: SnapshotIndex, netns: int) -> tuple[int, ...]:
    """The ip_local_port_range of a client's network namespace, () when not read."""
    ns = index.netns_by_inode.get(netns)
    return ns.local_ports if ns is not None else ()


def _with_detail(hop: Hop, detail: str) -> Hop:
    return replace(hop, details=hop.details + (detail,))


def _last_detailed(flow: Flow, detail: str) -> Flow:
    """The flow with its last hop saying one thing more."""
    return replace(flow, hops=flow.hops[:-1] + (_with_detail(flow.hops[-1], detail),))


def _noted_alike(hops: tuple[Hop, ...], more: int) -> tuple[Hop, ...]:
    """The hops with their last one saying how many destinations alike were merged in."""
    if not hops:
        return hops
    note = (
        f"and {more} more destination{'s' if more != 1 else ''} alike (same position, "
        "same listener): followed once for all"
    )
    return hops[:-1] + (_with_detail(hops[-1], note),)
