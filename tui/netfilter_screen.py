"""Netfilter: backend -> table -> chain -> rules; enter follows a jump, esc goes back."""

from __future__ import annotations

from dataclasses import dataclass

from podpath.tui.adapters import RulesetView
from podpath.tui.base_screen import TableScreen
from podpath.tui.list_rows import (
    BACKEND_COLUMNS,
    CHAIN_COLUMNS,
    RULE_COLUMNS,
    TABLE_COLUMNS,
    backend_rows,
    chain_rows,
    rule_rows,
    table_rows,
)
from podpath.tui.rows import Row
from podpath.tui.state import Loaded
from podpath.tui.text import clean


@dataclass(frozen=True)
class Level:
    """Where the user is: a dump, a table in it, a chain in that table."""

    dump: int | None = None
    table: str | None = None
    chain: str | None = None


class NetfilterScreen(TableScreen):
    """The node's iptables rules, browsed like a file tree."""

    HEADING = "Netfilter"
    GAP_WORDS = ("iptables", "nft", "netfilter", "rules")

    def __init__(self, needle: str = "") -> None:
        super().__init__(needle)
        self.path: list[Level] = [Level()]
        self._cursor_keys: list[str | None] = []

    @property
    def level(self) -> Level:
        """The current level."""
        return self.path[-1]

    def _ruleset(self, loaded: Loaded) -> RulesetView | None:
        rulesets = loaded.views.rulesets()
        dump = self.level.dump
        return rulesets[dump] if dump is not None and dump < len(rulesets) else None

    def columns(self) -> tuple[str, ...]:
        """Columns of the current level."""
        lv = self.level
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
        parts = ["Netfilter", rs.label if rs else None, lv.table, lv.chain]
        return " › ".join(p for p in parts if p)

    def build_rows(self, loaded: Loaded) -> list[Row]:
        """Rows of the current level."""
        rs, lv = self._ruleset(loaded), self.level
        if rs is None:
            return backend_rows(loaded.views.rulesets())
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
        if kind == "dump":
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
                self.notify(clean(f"{target.name} is a target, not a chain"), markup=False, timeout=2)

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

    def show_chain(self, backend_label: str | None, table: str, chain: str) -> bool:
        """Jump straight to a chain (used by other screens); False when it does not exist."""
        loaded = self.loaded
        if loaded is None:
            return False
        for i, rs in enumerate(loaded.views.rulesets()):
            if backend_label not in (None, rs.label):
                continue
            if rs.has_chain(table, chain):
                self.path = [Level(), Level(dump=i), Level(dump=i, table=table), Level(dump=i, table=table, chain=chain)]
                self._cursor_keys = [None, None, None]
                self.rebuild()
                return True
        return False
