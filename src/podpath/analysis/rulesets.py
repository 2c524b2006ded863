"""One iptables dump (a backend and a family) with its ruleset, parsed chain by chain on demand."""

from __future__ import annotations

from podpath.analysis.index import SnapshotIndex
from podpath.netfilter.iptables_save import Ruleset
from podpath.netfilter.model import Chain, Rule
from podpath.snapshot.model import IptablesDump


class RuleDump:
    """One iptables dump with its lazily parsed ruleset (rules parse per chain, on demand)."""

    def __init__(self, dump: IptablesDump, ruleset: Ruleset) -> None:
        self.dump = dump
        self.ruleset = ruleset

    @property
    def label(self) -> str:
        """backend/family, e.g. nft/ipv4."""
        return f"{self.dump.backend}/{self.dump.family}"

    @property
    def tables(self) -> tuple[str, ...]:
        """Table names in dump order."""
        return self.ruleset.tables

    def chains(self, table: str) -> tuple[Chain, ...]:
        """A table's chains in dump order."""
        return self.ruleset.chains(table)

    def has_chain(self, table: str, name: str) -> bool:
        """True when the table declares or uses this chain."""
        return self.ruleset.chain(table, name) is not None

    def rules(self, table: str, chain: str) -> tuple[Rule, ...]:
        """A chain's rules (parsed on first access)."""
        return self.ruleset.rules(table, chain)

    def rule_count(self, table: str, chain: str | None = None) -> int:
        """Rules in one chain, or in every chain of a table, without parsing them."""
        names = [chain] if chain is not None else [c.name for c in self.chains(table)]
        return sum(len(self.ruleset.rule_lines(table, n)) for n in names)

    @property
    def total_rules(self) -> int:
        """Rules in every table."""
        return sum(self.rule_count(t) for t in self.tables)


def rule_dumps(index: SnapshotIndex) -> tuple[RuleDump, ...]:
    """Every iptables dump of the snapshot, in the order it was collected."""
    return tuple(RuleDump(dump, ruleset) for dump, ruleset in index.rulesets)
