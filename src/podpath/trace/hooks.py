"""One netfilter hook: every table (iptables legacy, iptables-nft, native nftables) in priority order.

All registered tables run at a hook, whatever their backend: a node with legacy and
nft-backend rules runs both. The nat table is consulted only for the first packet of
a connection (nf_nat_inet_fn): later packets, the reply included, get conntrack's
stored translation instead, which the engine applies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from podpath.netfilter.iptables_save import Ruleset
from podpath.trace.model import Packet
from podpath.trace.netfilter import TABLE_PRIORITY, NfEnv, NfOutcome, walk_table

HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")

StageFn = Callable[[Packet, NfEnv, float], list[NfOutcome]]


@dataclass(frozen=True)
class Stage:
    """One table (or nft base chain) registered at a hook."""

    priority: int
    label: str  # e.g. "iptables-nft nat", "nft ip kube-proxy nat-prerouting"
    backend: str
    is_nat: bool
    run: StageFn


def iptables_stages(backend: str, ruleset: Ruleset, hook: str) -> list[Stage]:
    """The stages one iptables dump registers at a hook."""
    out: list[Stage] = []
    for table, priority in TABLE_PRIORITY[hook].items():
        if table not in ruleset.tables or not ruleset.has_chain(table, hook):
            continue

        def run(packet: Packet, env: NfEnv, prob: float, table: str = table) -> list[NfOutcome]:
            return walk_table(ruleset, table, hook, packet, env.on(backend), prob)

        out.append(Stage(priority, f"iptables ({backend}) {table}", backend, table == "nat", run))
    return out


Merge = Callable[[list[NfOutcome]], list[NfOutcome]]


def run_hook(
    stages: Sequence[Stage],
    packet: Packet,
    env: NfEnv,
    probability: float = 1.0,
    merge: Merge | None = None,
) -> list[NfOutcome]:
    """Run every stage in priority order; each ACCEPTed branch goes on to the next stage.

    `merge`, given, may fold branches that behave alike into one after each stage, so
    the later stages walk it once (the doctor's endpoints alike, `Engine.alike`)."""
    ordered = sorted(stages, key=lambda s: s.priority)
    current = [NfOutcome(probability, "ACCEPT", packet)]
    for stage in ordered:
        if stage.is_nat and (packet.ct_state != "NEW" or packet.direction != "original"):
            continue
        nxt: list[NfOutcome] = []
        for outcome in current:
            # nat is consulted for a connection's first packet only: not for one an
            # earlier (raw) table of this hook left untracked.
            if outcome.verdict != "ACCEPT" or (
                stage.is_nat and outcome.packet.ct_state == "UNTRACKED"
            ):
                nxt.append(outcome)
                continue
            stage_env = _with_nat(env, outcome)
            for result in stage.run(outcome.packet, stage_env, outcome.probability):
                nxt.append(
                    result.extended(
                        outcome.hops + result.hops,
                        outcome.nat + result.nat,
                        outcome.uncertain + result.uncertain,
                    )
                )
        current = merge(nxt) if merge is not None and len(nxt) > 1 else nxt
    return current


def _with_nat(env: NfEnv, outcome: NfOutcome) -> NfEnv:
    """The env a later table sees: conntrack now knows the DNAT/SNAT done earlier at this hook."""
    if not outcome.nat:
        return env
    m = env.matches
    for record in outcome.nat:
        if record.kind == "DNAT":
            m = replace(m, dnat=True, orig_dst=record.before[0], orig_dport=record.before[1])
        else:
            m = replace(m, snat=True)
    return replace(env, matches=m)
