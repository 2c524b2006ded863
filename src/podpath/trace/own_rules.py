"""A pod's own netfilter rules: where the trace cannot say what becomes of a packet.

The node's rules are read whole and walked; a pod's namespace normally has none. Where
it has some (a service mesh's: Istio's ISTIO_OUTPUT REDIRECTs the pod's connections to
its sidecar on 15001, ISTIO_INBOUND takes what comes in; Linkerd's PROXY_INIT_OUTPUT),
they decide the packet at the pod's own hooks, before the node sees it. The snapshot
holds only what tables and chains they are and how many rules each chain has
(podpath.snapshot.model.NetfilterTable), so a packet crossing a hook of that namespace
where rules are is said to be uncertain, naming them, never traced on as if they were
not there.
"""

from __future__ import annotations

from podpath.snapshot.model import NetfilterTable

# The phrase every note holds, by which the doctor knows one.
MARK = "'s own network namespace has netfilter rules"
# The hooks a legacy table's built-in chains attach to (its rules are not counted).
_LEGACY_HOOKS = {
    "nat": frozenset({"prerouting", "input", "output", "postrouting"}),
    "filter": frozenset({"input", "forward", "output"}),
    "mangle": frozenset({"prerouting", "input", "forward", "output", "postrouting"}),
    "raw": frozenset({"prerouting", "output"}),
    "security": frozenset({"input", "forward", "output"}),
}
_DEVICE_HOOKS = {"prerouting": "ingress", "postrouting": "egress"}
# Chain name prefixes that say whose rules they are.
_WRITERS = (("ISTIO_", "Istio's sidecar redirect"), ("PROXY_INIT_", "Linkerd's proxy-init"))


def note(
    tables: tuple[NetfilterTable, ...] | None, hook: str, family: int, who: str, first: bool
) -> str:
    """Why a packet of `family` (4 or 6) at `hook` (PREROUTING...) of the namespace `who`
    names, whose own tables are `tables`, goes on uncertain; "" when no rule is there.
    Only a connection's first packet meets nat chains (`first`: not an answer)."""
    at = hook.lower()
    families = {"inet", "netdev", "ip6" if family == 6 else "ip"}
    found = [t for t in tables or () if t.family in families and _rules_at(t, at, first)]
    if not found:
        return ""
    return (
        f"{who}{MARK} at {hook} ({summary(tuple(found))}): podpath reads only the node's "
        "rules, so where they send the packet is not known"
    )


def summary(tables: tuple[NetfilterTable, ...]) -> str:
    """The tables' chains with rules, and whose they are when their names say: `ip nat:
    OUTPUT 1 rule, ISTIO_OUTPUT 2 rules; Istio's sidecar redirect`; "" for none."""
    listed = "; ".join(d for t in tables if (d := _described(t)))
    if not listed:
        return ""
    chains = {c.name for t in tables for c in t.chains}
    writer = next((w for prefix, w in _WRITERS if any(c.startswith(prefix) for c in chains)), "")
    return f"{listed}; {writer}" if writer else listed


def _rules_at(table: NetfilterTable, hook: str, first: bool) -> bool:
    """Whether the table may act at the hook: an nf_tables base chain there with rules,
    or a legacy table with a built-in chain there (its rules are not counted); nat
    chains only on a connection's first packet (nf_nat binds the rest to its choice)."""
    if table.backend == "legacy":
        nat = table.name == "nat"
        return (first or not nat) and hook in _LEGACY_HOOKS.get(table.name, frozenset())
    # A device's ingress (egress) chains see the packet just before PREROUTING (after
    # POSTROUTING).
    hooks = {hook, _DEVICE_HOOKS.get(hook, hook)}
    return any(c.hook in hooks and c.rules and (first or c.type != "nat") for c in table.chains)


def _described(table: NetfilterTable) -> str:
    """`ip nat: OUTPUT 1 rule, ISTIO_OUTPUT 2 rules`, or a legacy table's name; "" for an
    nf_tables table without rules."""
    if table.backend == "legacy":
        return f"legacy {table.family} {table.name}, rules not counted"
    chains = ", ".join(
        f"{c.name} {c.rules} rule{'s' if c.rules != 1 else ''}" for c in table.chains if c.rules
    )
    return f"{table.family} {table.name}: {chains}" if chains else ""
