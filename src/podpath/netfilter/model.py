"""Structured iptables rules, as parsed from `iptables-save` text.

The shapes shared by the parser (`podpath.netfilter.iptables_save`), the kube-proxy
Service model (`podpath.netfilter.kube_proxy`), the trace engine and the TUI.
These are derived views of a snapshot's `IptablesDump.text`, built on demand; they
are not stored in the snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Targets built into iptables itself (not extensions, not user chains).
BUILTIN_VERDICTS = frozenset({"ACCEPT", "DROP", "RETURN", "QUEUE"})
# Chains built into each table, in the kernel's hook order.
BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}


@dataclass(frozen=True)
class Match:
    """One condition of a rule.

    `module` is "" for the built-in options (-s -d -p -i -o -f), else the `-m` module
    name (or the protocol's implicit module: `tcp`, `udp`, `icmp`). `option` is the
    long option name without dashes (source, destination, protocol, in-interface,
    out-interface, dport, sport, comment, mode, probability, src-type, mark, ctstate,
    ...). `value` is the option's argument(s) verbatim, joined by one space.
    """

    module: str
    option: str
    value: str
    negated: bool = False


@dataclass(frozen=True)
class Target:
    """What a rule does when it matches."""

    name: str  # ACCEPT, DROP, RETURN, DNAT, MASQUERADE, MARK, KUBE-SVC-..., ...
    kind: str  # "verdict" (built-in), "jump" (-j user chain), "goto" (-g), "extension"
    # Target options without dashes -> value, e.g. {"to-destination": "10.244.1.5:80"}.
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    """One rule, in one chain, of one table."""

    table: str
    chain: str
    position: int  # 1-based, as `iptables -L --line-numbers` counts
    text: str  # the rule's line as dumped (`-A CHAIN ...`), verbatim
    matches: tuple[Match, ...] = ()
    target: Target | None = None  # None: a rule without -j only counts packets
    counters: tuple[int, int] | None = None  # (packets, bytes) when dumped with -c
    # Tokens the parser did not understand, verbatim, in order. Never dropped.
    unknown: tuple[str, ...] = ()
    # Every `-m MODULE` named by the rule, in order, including option-less ones (`-m tcp`).
    modules: tuple[str, ...] = ()

    def matches_of(self, module: str, option: str) -> tuple[Match, ...]:
        """All matches with this module and option."""
        return tuple(m for m in self.matches if m.module == module and m.option == option)

    def first(self, option: str) -> Match | None:
        """The first match with this option name, whatever its module."""
        for m in self.matches:
            if m.option == option:
                return m
        return None

    @property
    def comment(self) -> str | None:
        """The rule's `-m comment --comment` text, if any (several are joined by "; ")."""
        found = [m.value for m in self.matches if m.option == "comment"]
        return "; ".join(found) if found else None

    @property
    def comments(self) -> tuple[str, ...]:
        """Every `--comment` of the rule (Calico writes two per rule)."""
        return tuple(m.value for m in self.matches if m.option == "comment")


@dataclass(frozen=True)
class Chain:
    """A chain's header: built-in chains have a policy, user chains do not."""

    table: str
    name: str
    policy: str | None  # ACCEPT/DROP for built-in chains; None for user chains
    counters: tuple[int, int] | None = None

    @property
    def builtin(self) -> bool:
        """True for the kernel's chains (PREROUTING, INPUT, ...)."""
        # A fragment (`iptables-save | grep`) names built-in chains without a policy line.
        return self.policy is not None or self.name in BUILTIN_CHAINS.get(self.table, ())
