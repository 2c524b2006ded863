"""Pure row builders for native nftables on the Netfilter screen, and what enter follows.

nftables -> table -> chains and sets -> rules -> (jump/goto) chain, or (vmap) elements
-> (goto) chain. Rules keep their JSON expressions: verdicts and counters are read from
them, never from the rendered text (a comment could say `jump X`).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from podpath.netfilter.nft import NftElement, NftRule, NftRuleset, NftSet, render_expr
from podpath.netfilter.owners import nft_owner
from podpath.tui.rows.model import Cell, Row, cell, row
from podpath.tui.rows.netfilter import owner_cell

NFT_LABEL = "nftables"
NFT_COMMAND = "nft -j list ruleset"

# A map's data as nft renders a verdict: `goto service-...`, `jump X`.
_VERDICT_RE = re.compile(r"^(jump|goto) (\S+)$")


def nft_backend_row(ruleset: NftRuleset) -> Row:
    """The one backend-level row for the native nftables ruleset."""
    return row(
        "nft:",
        Cell(NFT_LABEL, "accent"),
        len(ruleset.tables),
        len(ruleset.chains),
        len(ruleset.rules),
        Cell(NFT_COMMAND, "dim"),
    )


NFT_TABLE_COLUMNS = ("FAMILY", "TABLE", "CHAINS", "SETS/MAPS", "RULES", "COMMENT")


def nft_table_rows(ruleset: NftRuleset) -> list[Row]:
    """One row per table, keyed by its position (family + name may hold any text)."""
    chains = Counter((c.family, c.table) for c in ruleset.chains)
    sets = Counter((s.family, s.table) for s in ruleset.sets)
    rules = Counter((r.family, r.table) for r in ruleset.rules)
    out = []
    for i, t in enumerate(ruleset.tables):
        key = (t.family, t.name)
        out.append(
            row(
                f"nfttable:{i}",
                Cell(t.family, "primary"),
                Cell(t.name, "accent"),
                chains[key],
                sets[key],
                rules[key],
                cell(t.comment, "dim"),
            )
        )
    return out


NFT_CHAIN_COLUMNS = ("CHAIN / SET", "TYPE", "HOOK", "PRIO", "POLICY", "RULES/ELEMS")


def nft_chain_rows(ruleset: NftRuleset, family: str, table: str) -> list[Row]:
    """A table's chains (base chains first), then its sets and maps (`@name`)."""
    mine = [c for c in ruleset.chains if c.family == family and c.table == table]
    mine.sort(key=lambda c: (c.hook is None, c.name))
    out = [
        row(
            f"nftchain:{c.name}",
            Cell(c.name, "primary" if c.hook else "accent"),
            cell(c.type, "dim"),
            cell(c.hook),
            cell(c.prio),
            cell(c.policy, "warning" if c.policy == "drop" else "dim"),
            len(ruleset.chain_rules(family, table, c.name)),
        )
        for c in mine
    ]
    for s in ruleset.sets:
        if s.family == family and s.table == table:
            out.append(
                row(
                    f"nftset:{s.name}",
                    Cell(f"@{s.name}", "success"),
                    cell(set_type(s), "dim"),
                    "",
                    "",
                    "",
                    len(s.elements),
                )
            )
    return out


def set_type(s: NftSet) -> str:
    """`map ipv4_addr . inet_proto . inet_service : verdict` / `set ipv4_addr`."""
    kind = f"{s.kind} {' . '.join(s.type)}"
    return f"{kind} : {s.map_type}" if s.map_type else kind


NFT_RULE_COLUMNS = ("#", "HANDLE", "PKTS", "BYTES", "OWNER", "RULE")


def rule_counters(rule: NftRule) -> tuple[int, int] | None:
    """(packets, bytes) of the rule's anonymous `counter` statement, if it has one."""
    for stmt in rule.expr:
        found = stmt.get("counter") if isinstance(stmt, dict) else None
        if isinstance(found, dict) and isinstance(found.get("packets"), int):
            nbytes = found.get("bytes", 0)
            return found["packets"], nbytes if isinstance(nbytes, int) else 0
    return None


def rule_target(rule: NftRule) -> str | None:
    """The chain a rule's `jump X` / `goto X` verdict names, if any."""
    for stmt in rule.expr:
        if isinstance(stmt, dict) and len(stmt) == 1:
            ((kind, val),) = stmt.items()
            if (
                kind in ("jump", "goto")
                and isinstance(val, dict)
                and isinstance(val.get("target"), str)
            ):
                return str(val["target"])
    return None


def _vmap(rule: NftRule) -> Any:
    """The `data` of the rule's verdict map statement, or None."""
    for stmt in rule.expr:
        found = stmt.get("vmap") if isinstance(stmt, dict) and len(stmt) == 1 else None
        if isinstance(found, dict) and "data" in found:
            return found["data"]
    return None


def rule_vmap_set(rule: NftRule) -> str | None:
    """The named map a `vmap @name` rule looks up (without the @)."""
    data = _vmap(rule)
    return data[1:] if isinstance(data, str) and data.startswith("@") else None


def rule_vmap_elements(rule: NftRule) -> tuple[NftElement, ...] | None:
    """The elements of an inline `vmap { k : verdict, ... }` (kube-proxy's numgen dispatch)."""
    data = _vmap(rule)
    items = data.get("set") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    out = []
    for item in items:
        if isinstance(item, list) and len(item) == 2:
            key, value = item
            parts = key.get("concat") if isinstance(key, dict) else None
            keys = (
                tuple(render_expr(k) for k in parts)
                if isinstance(parts, list)
                else (render_expr(key),)
            )
            out.append(NftElement(keys, render_expr(value)))
    return tuple(out)


def verdict_chain(value: str | None) -> str | None:
    """The chain an element's verdict (`goto service-...`) opens, if any."""
    found = _VERDICT_RE.match(value or "")
    return found.group(2) if found else None


def nft_rule_rows(rules: tuple[NftRule, ...]) -> list[Row]:
    """One row per rule; rules that lead somewhere (jump/goto/vmap) are highlighted."""
    out = []
    for r in rules:
        counters = rule_counters(r)
        leads = rule_target(r) is not None or _vmap(r) is not None
        out.append(
            row(
                f"nftrule:{r.position}",
                Cell(str(r.position), "dim"),
                cell(r.handle, "dim"),
                cell(counters[0] if counters else None),
                cell(counters[1] if counters else None),
                owner_cell(nft_owner(r.family, r.table, r.chain, r.comment)),
                Cell(r.text, "accent" if leads else ""),
            )
        )
    return out


NFT_ELEMENT_COLUMNS = ("KEY", "VERDICT / VALUE", "COMMENT")


def nft_element_rows(elements: tuple[NftElement, ...]) -> list[Row]:
    """One row per set/map element: key -> verdict, verdicts that open a chain highlighted."""
    return [
        row(
            f"nftelem:{i}",
            Cell(" . ".join(e.key), "primary"),
            cell(e.value, "accent" if verdict_chain(e.value) else ""),
            cell(e.comment, "dim"),
        )
        for i, e in enumerate(elements)
    ]
