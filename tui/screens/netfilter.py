"""Netfilter: backend -> table -> chain -> rules; enter follows a jump, esc goes back.

Native nftables is one more backend: table -> chains and sets -> rules -> (jump/goto)
chain, or (vmap) the map's elements -> (goto) chain. It is parsed once per snapshot
(Loaded.nft_ruleset, in the prepare worker on big snapshots).
"""

from __future__ import annotations

from dataclasses import dataclass

from podpath.analysis.rulesets import RuleDump
from podpath.netfilter.nft import NftElement, NftRule, NftRuleset
from podpath.tui.rows.model import Row, RowSet, rowset
from podpath.tui.rows.netfilter import (
    BACKEND_COLUMNS,
    CHAIN_COLUMNS,
    RULE_COLUMNS,
    TABLE_COLUMNS,
    backend_rows,
    chain_rows,
    rule_rows,
    table_rows,
)
from podpath.tui.rows.nft import (
    NFT_CHAIN_COLUMNS,
    NFT_ELEMENT_COLUMNS,
    NFT_LABEL,
    NFT_RULE_COLUMNS,
    NFT_TABLE_COLUMNS,
    nft_backend_row,
    nft_chain_rows,
    nft_element_rows,
    nft_rule_rows,
    nft_table_rows,
    rule_target,
    rule_vmap_elements,
    rule_vmap_set,
    verdict_chain,
)
from podpath.tui.screens.base import TableScreen
from podpath.tui.state import SERVICES, Loaded
from podpath.tui.text import clean


@dataclass(frozen=True)
class Level:
    """Where the user is: a dump, a table in it, a chain in that table.

    In native nftables (`nft`): a table (with its family), a chain, and the elements
    of a named map (`set`) or of one rule's inline vmap (`vmap_rule`, its position).
    """

    dump: int | None = None
    table: str | None = None
    chain: str | None = None
    nft: bool = False
    family: str | None = None
    set: str | None = None
    vmap_rule: int | None = None

    @property
    def elements(self) -> bool:
        """True on a map's element list."""
        return self.set is not None or self.vmap_rule is not None


class NetfilterScreen(TableScreen):
    """The node's iptables rules, browsed like a file tree."""

    HEADING = "Netfilter"
    # A big native nft ruleset is parsed with the Services (tui/state.py).
    PENDING_STAGE = SERVICES
    GAP_WORDS = ("iptables", "nft", "netfilter", "rules")

    def __init__(self, needle: str = "") -> None:
        super().__init__(needle)
        self.path: list[Level] = [Level()]
        self._cursor_keys: list[str | None] = []

    @property
    def level(self) -> Level:
        """The current level."""
        return self.path[-1]

    def _ruleset(self, loaded: Loaded) -> RuleDump | None:
        rulesets = loaded.parsed.rule_dumps()
        dump = self.level.dump
        return rulesets[dump] if dump is not None and dump < len(rulesets) else None

    def columns(self) -> tuple[str, ...]:
        """Columns of the current level."""
        lv = self.level
        if lv.nft:
            if lv.elements:
                return NFT_ELEMENT_COLUMNS
            if lv.chain is not None:
                return NFT_RULE_COLUMNS
            return NFT_CHAIN_COLUMNS if lv.table is not None else NFT_TABLE_COLUMNS
        if lv.chain is not None:
            return RULE_COLUMNS
        if lv.table is not None:
            return CHAIN_COLUMNS
        if lv.dump is not None:
            return TABLE_COLUMNS
        return BACKEND_COLUMNS

    def heading(self) -> str:
        """Breadcrumb: Netfilter › nft/ipv4 › nat › KUBE-SERVICES."""
        loaded = self.loaded
        rs = self._ruleset(loaded) if loaded is not None else None
        lv = self.level
        if lv.nft:
            table = f"{lv.family} {lv.table}" if lv.table is not None else None
            elements = (
                f"@{lv.set}"
                if lv.set is not None
                else (f"rule {lv.vmap_rule} vmap" if lv.vmap_rule is not None else None)
            )
            parts = ["Netfilter", NFT_LABEL, table, lv.chain, elements]
        else:
            parts = ["Netfilter", rs.label if rs else None, lv.table, lv.chain]
        return " › ".join(p for p in parts if p)

    @staticmethod
    def _nft_parsed(loaded: Loaded) -> bool:
        """True when asking for the nft ruleset will not parse it on the event loop."""
        return loaded.snapshot.nft is None or loaded.small or loaded.has(SERVICES)

    def build_rowset(self, loaded: Loaded) -> RowSet | None:
        """Rows of the current level; None while a big nft ruleset is parsed in the worker."""
        lv = self.level
        if (lv.nft or lv.dump is None) and not self._nft_parsed(loaded):
            return None
        if lv.set is not None and lv.family is not None and lv.table is not None:
            # A kube-proxy service-ips map holds one element per Service port: build once.
            name = f"nft-set\x1f{lv.family}\x1f{lv.table}\x1f{lv.set}"
            return loaded.rows(name, lambda: self.build_rows(loaded))
        return rowset(self.build_rows(loaded))

    def gap_lines(self, loaded: Loaded) -> list[str]:
        """The snapshot's netfilter gaps, plus what the nft parser could not read."""
        found = super().gap_lines(loaded)
        nft = loaded.nft_ruleset() if self.level.nft else None
        return found + [f"nftables: {w}" for w in nft.warnings] if nft is not None else found

    def _nft_rule(self, nft: NftRuleset, position: int | None) -> NftRule | None:
        lv = self.level
        if lv.family is None or lv.table is None or lv.chain is None:
            return None
        rules = nft.chain_rules(lv.family, lv.table, lv.chain)
        return next((r for r in rules if r.position == position), None)

    def _nft_elements(self, nft: NftRuleset) -> tuple[NftElement, ...]:
        lv = self.level
        if lv.set is not None and lv.family is not None and lv.table is not None:
            found = nft.get_set(lv.family, lv.table, lv.set)
            return found.elements if found is not None else ()
        rule = self._nft_rule(nft, lv.vmap_rule)
        return (rule_vmap_elements(rule) or ()) if rule is not None else ()

    def _nft_rows(self, nft: NftRuleset) -> list[Row]:
        lv = self.level
        if lv.elements:
            return nft_element_rows(self._nft_elements(nft))
        if lv.family is None or lv.table is None:
            return nft_table_rows(nft)
        if lv.chain is None:
            return nft_chain_rows(nft, lv.family, lv.table)
        return nft_rule_rows(nft.chain_rules(lv.family, lv.table, lv.chain))

    def build_rows(self, loaded: Loaded) -> list[Row]:
        """Rows of the current level."""
        rs, lv = self._ruleset(loaded), self.level
        nft = loaded.nft_ruleset() if lv.nft or rs is None else None
        if lv.nft:
            return self._nft_rows(nft) if nft is not None else []
        if rs is None:
            rows = backend_rows(loaded.parsed.rule_dumps())
            return rows + [nft_backend_row(nft)] if nft is not None else rows
        if lv.table is None:
            return table_rows(rs)
        if lv.chain is None:
            return chain_rows(rs, lv.table)
        return rule_rows(rs.rules(lv.table, lv.chain))

    def descend(self, level: Level) -> None:
        """Go one level deeper, remembering where the cursor was."""
        self._cursor_keys.append(self.table.selected_key)
        self.path.append(level)
        self.clear_filter()
        self.rebuild()
        self.table.move_cursor(row=0, animate=False)

    def open_row(self, key: str, loaded: Loaded) -> None:
        """Drill into a dump, table or chain; on a rule, follow its jump/goto target."""
        lv = self.level
        kind, _, value = key.partition(":")
        if kind.startswith("nft"):
            self._open_nft(kind, value, loaded)
        elif kind == "dump":
            self.descend(Level(dump=int(value)))
        elif kind == "table":
            self.descend(Level(dump=lv.dump, table=value))
        elif kind == "chain":
            self.descend(Level(dump=lv.dump, table=lv.table, chain=value))
        elif kind == "rule":
            rs = self._ruleset(loaded)
            if rs is None or lv.table is None or lv.chain is None:
                return
            rule = next((r for r in rs.rules(lv.table, lv.chain) if str(r.position) == value), None)
            target = rule.target if rule else None
            if target is None:
                return
            if rs.has_chain(lv.table, target.name):
                self.descend(Level(dump=lv.dump, table=lv.table, chain=target.name))
            else:
                self.notify(
                    clean(f"{target.name} is a target, not a chain"), markup=False, timeout=2
                )

    def _open_nft(self, kind: str, value: str, loaded: Loaded) -> None:
        """Enter in native nftables: a table, a chain, a set, a rule's verdict, an element's."""
        lv, nft = self.level, loaded.nft_ruleset()
        if nft is None:
            return
        here = Level(nft=True, family=lv.family, table=lv.table)
        if kind == "nft":
            self.descend(Level(nft=True))
        elif kind == "nfttable" and value.isdigit() and int(value) < len(nft.tables):
            t = nft.tables[int(value)]
            self.descend(Level(nft=True, family=t.family, table=t.name))
        elif kind == "nftchain":
            self.descend(Level(nft=True, family=lv.family, table=lv.table, chain=value))
        elif kind == "nftset":
            self.descend(Level(nft=True, family=lv.family, table=lv.table, set=value))
        elif kind == "nftrule" and value.isdigit():
            rule = self._nft_rule(nft, int(value))
            if rule is None:
                return
            target, named = rule_target(rule), rule_vmap_set(rule)
            if target is not None:
                self._open_nft_chain(nft, here, target)
            elif named is not None:
                self.descend(
                    Level(nft=True, family=lv.family, table=lv.table, chain=lv.chain, set=named)
                )
            elif rule_vmap_elements(rule) is not None:
                self.descend(
                    Level(
                        nft=True,
                        family=lv.family,
                        table=lv.table,
                        chain=lv.chain,
                        vmap_rule=rule.position,
                    )
                )
        elif kind == "nftelem" and value.isdigit():
            elements = self._nft_elements(nft)
            element = elements[int(value)] if int(value) < len(elements) else None
            target = verdict_chain(element.value) if element is not None else None
            if target is not None:
                self._open_nft_chain(nft, here, target)
            elif element is not None:
                self.notify(
                    clean(f"{element.value or 'no value'}: not a chain"), markup=False, timeout=2
                )

    def _open_nft_chain(self, nft: NftRuleset, here: Level, name: str) -> None:
        """Descend to a chain of the current table, or say it is missing."""
        if (
            here.family is not None
            and here.table is not None
            and nft.get_chain(here.family, here.table, name)
        ):
            self.descend(Level(nft=True, family=here.family, table=here.table, chain=name))
        else:
            self.notify(clean(f"chain {name} is not in this ruleset"), markup=False, timeout=2)

    def go_back(self) -> None:
        """Up one level, cursor restored; at the top, leave the screen."""
        if len(self.path) > 1:
            self.path.pop()
            key = self._cursor_keys.pop() if self._cursor_keys else None
            self.rebuild()
            if key is not None:
                self.table.move_to_key(key)
            return
        super().go_back()
