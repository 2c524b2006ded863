"""IPVS at its netfilter hooks: a connection to a virtual service goes to a real server.

IPVS registers at LOCAL_IN (priority NF_IP_PRI_NAT_SRC - 1 = 99) for packets the node
accepts as local (kube-proxy puts every ClusterIP on the dummy kube-ipvs0), and at
LOCAL_OUT (NF_IP_PRI_NAT_DST + 2 = -98) for the node's own packets (ip_vs_core.c,
ip_vs_ops4). A new connection to a virtual service is given a real server by the
service's scheduler, then NATed to it (forwarding method Masq) and sent on.

Which server a scheduler picks is knowable only for some of them: rr spreads
connections evenly over the servers with a weight above 0, wrr in proportion to the
weights. lc/wlc/sed/nq pick by live connection counts, sh/dh/mh by a hash: the branch
names every candidate and says the choice is not knowable from a snapshot. A
persistent service (ClientIP affinity) sends a client with a template connection in
/proc/net/ip_vs_conn back to its server; a virtual service without real servers
answers with ICMP port unreachable (ip_vs_leave).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from podpath.netfilter.ipvs import (
    SCHEDULERS,
    WEIGHTED,
    IpvsConnection,
    RealServer,
    VirtualService,
    parse_ipvs,
    parse_ipvs_conn,
)
from podpath.snapshot.model import IpvsDump
from podpath.trace.hooks import Stage
from podpath.trace.model import Hop, JsonValue, NatRecord, Packet
from podpath.trace.netfilter import NfEnv, NfOutcome

# Hook -> IPVS's priority there (only requests are traced; replies use conntrack).
PRIORITIES = {"INPUT": 99, "OUTPUT": -98}


@dataclass
class IpvsState:
    """A node's IPVS state, parsed once."""

    dump: IpvsDump
    # Virtual service key -> `ns/name:port`, as pods' service-link environment names it.
    names: dict[str, str] = field(default_factory=dict)

    @cached_property
    def services(self) -> tuple[VirtualService, ...]:
        """Every virtual service."""
        return parse_ipvs(self.dump.ip_vs)

    @cached_property
    def connections(self) -> tuple[IpvsConnection, ...]:
        """Connections and persistence templates (empty when ip_vs_conn was not read)."""
        return parse_ipvs_conn(self.dump.ip_vs_conn) if self.dump.ip_vs_conn else ()

    @cached_property
    def by_address(self) -> dict[tuple[str, str, int | None], VirtualService]:
        """Virtual services by (protocol, address, port)."""
        return {
            (s.protocol, s.address, s.port): s
            for s in self.services
            if s.address is not None and s.protocol != "FWM"
        }

    def lookup(self, packet: Packet) -> VirtualService | None:
        """The virtual service a packet is for (by address and port, or by firewall mark)."""
        found = self.by_address.get((packet.proto.upper(), packet.dst, packet.dport))
        if found is not None:
            return found
        if packet.mark:
            return next(
                (s for s in self.services if s.protocol == "FWM" and s.fwmark == packet.mark), None
            )
        return None

    def pin(self, svc: VirtualService, client: str | None) -> IpvsConnection | None:
        """The persistence template that pins this client to a server of this service."""
        if client is None:
            return None
        for conn in self.connections:
            if conn.template and conn.client == client and conn.virtual == svc.address:
                return conn
        return None


def ipvs_stages(state: IpvsState, hook: str) -> list[Stage]:
    """IPVS as a stage of a hook (INPUT and OUTPUT only)."""
    if hook not in PRIORITIES:
        return []

    def run(packet: Packet, env: NfEnv, prob: float) -> list[NfOutcome]:
        return schedule(state, packet, env, prob, hook)

    return [Stage(PRIORITIES[hook], "ipvs", "ipvs", False, run)]


def schedule(
    state: IpvsState, packet: Packet, env: NfEnv, probability: float, hook: str
) -> list[NfOutcome]:
    """Every way IPVS can send this packet on (or not touch it)."""
    if packet.direction != "original" or packet.ct_state != "NEW":
        return [NfOutcome(probability, "ACCEPT", packet)]
    svc = state.lookup(packet)
    if svc is None:
        return [NfOutcome(probability, "ACCEPT", packet)]
    usable = [s for s in svc.servers if s.weight > 0]
    how = SCHEDULERS.get(svc.scheduler, svc.scheduler)
    if not usable:
        named = state.names.get(svc.key)
        hop = _hop(env, hook, svc, None, "no real server with a weight above 0", named=named)
        why = f"IPVS {svc.key} has no real server: ICMP port unreachable (ip_vs_leave)"
        return [NfOutcome(probability, "REJECT", packet, (hop,), (), (), why)]
    pinned = state.pin(svc, packet.src)
    if pinned is not None:
        server = next(
            (s for s in svc.servers if (s.address, s.port) == (pinned.server, pinned.server_port)),
            None,
        )
        if server is not None:
            note = (
                f"persistence: {packet.src} has a template connection to "
                f"{server.address}:{server.port} in /proc/net/ip_vs_conn "
                f"(expires in {pinned.expires}s): pinned"
            )
            return [
                _to_server(
                    env, hook, svc, server, packet, probability, 1.0, (note,), (), state.names
                )
            ]
    shares, unknown = _shares(svc, usable)
    notes: tuple[str, ...] = ()
    if svc.persistent is not None:
        notes = (
            f"persistence {svc.persistent}s: later connections from {packet.src} "
            "follow this choice",
        )
    out = []
    for server, share in zip(usable, shares, strict=True):
        doubt: tuple[str, ...] = ()
        if unknown:
            doubt = (
                f"IPVS {svc.key} schedules with {svc.scheduler} ({how}): it picks by "
                f"{unknown}, which a snapshot cannot know; every server is a possible "
                "branch, shown with an equal share",
            )
        out.append(
            _to_server(
                env, hook, svc, server, packet, probability, share, notes, doubt, state.names
            )
        )
    return out


def _shares(svc: VirtualService, usable: list[RealServer]) -> tuple[list[float], str]:
    """Each server's share of new connections, and what decides it when not the weights."""
    if svc.scheduler == "wrr":
        total = sum(s.weight for s in usable)
        return [s.weight / total for s in usable], ""
    even = [1.0 / len(usable)] * len(usable)
    if svc.scheduler in WEIGHTED:
        return even, ""
    if svc.scheduler in ("lc", "wlc", "sed", "nq", "lblc", "lblcr", "twos"):
        counts = ", ".join(f"{s.address}:{s.port} {s.active}/{s.inactive}" for s in usable)
        return even, f"live connection counts (active/inactive at snapshot time: {counts})"
    if svc.scheduler in ("sh", "dh", "mh"):
        return even, "a hash of the packet's addresses over the kernel's server table"
    if svc.scheduler in ("fo", "ovf"):
        return even, "weights and live connection counts"
    return even, "an algorithm podpath does not model"


def _to_server(
    env: NfEnv,
    hook: str,
    svc: VirtualService,
    server: RealServer,
    packet: Packet,
    probability: float,
    share: float,
    notes: tuple[str, ...],
    doubt: tuple[str, ...],
    names: dict[str, str],
) -> NfOutcome:
    choice = f"{server.address}:{server.port} ({server.forward}, weight {server.weight})"
    hop = _hop(env, hook, svc, server, f"-> {choice}", notes, share, named=names.get(svc.key))
    if server.forward != "Masq":
        why = f"IPVS forwarding method {server.forward} (not NAT) is not modelled"
        return NfOutcome(probability * share, "UNCERTAIN", packet, (hop,), (), doubt + (why,), why)
    port = server.port if server.port is not None else packet.dport
    before = (packet.dst, packet.dport)
    after = (server.address, port)
    nat_hop = Hop(
        "nat",
        env.hostname,
        f"DNAT {_ap(before)} -> {_ap(after)}",
        (),
        (),
        {"from": _ap(before), "to": _ap(after), "type": "DNAT", "target": "ipvs", "table": "ipvs"},
    )
    return NfOutcome(
        probability * share,
        "ACCEPT",
        packet.with_(dst=server.address, dport=port),
        (hop, nat_hop),
        (NatRecord(env.node, "DNAT", before, after),),
        doubt,
        f"IPVS {svc.key} -> {choice}",
    )


def _hop(
    env: NfEnv,
    hook: str,
    svc: VirtualService,
    server: RealServer | None,
    what: str,
    notes: tuple[str, ...] = (),
    share: float | None = None,
    *,
    named: str | None = None,
) -> Hop:
    persistent = f" persistent {svc.persistent}" if svc.persistent is not None else ""
    rule = f"{svc.key} {svc.scheduler}{persistent}"
    owner: dict[str, JsonValue] = {
        "kind": "service",
        "agent": "kube-proxy (IPVS)",
        "name": named or svc.key,
        "how": "IPVS virtual service"
        + (", named from pods' service-link environment" if named else ""),
    }
    if named:
        rule += f" (Service {named})"
    data: dict[str, JsonValue] = {
        "table": "ipvs",
        "chain": svc.key,
        "rule": rule,
        "backend": "ipvs",
        "hook": hook,
        "position": None,
        "scheduler": svc.scheduler,
        "server": None if server is None else f"{server.address}:{server.port}",
        "weight": None if server is None else server.weight,
        "counter": None,
        "owner": owner,
    }
    if share is not None:
        data["probability"] = share
    # The text form leads with the backend (data["backend"]), as for every netfilter hop.
    return Hop("netfilter", env.hostname, f"{rule}: {what}", notes, (), data)


def _ap(pair: tuple[str, int | None]) -> str:
    addr, port = pair
    if port is None:
        return addr
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
