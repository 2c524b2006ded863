"""Pure row builders for iptables on the Netfilter screen: backends, tables, chains, rules."""

from __future__ import annotations

from podpath.analysis.rulesets import RuleDump
from podpath.netfilter.model import Rule
from podpath.netfilter.owners import iptables_owner
from podpath.tui.rows.model import Cell, Row, cell, row

BACKEND_COLUMNS = ("BACKEND", "TABLES", "CHAINS", "RULES", "COMMAND")


def backend_rows(dumps: tuple[RuleDump, ...]) -> list[Row]:
    """One row per iptables dump (backend/family)."""
    return [
        row(
            f"dump:{i}",
            Cell(rs.label, "accent"),
            len(rs.tables),
            sum(len(rs.chains(t)) for t in rs.tables),
            rs.total_rules,
            Cell(" ".join(rs.dump.command), "dim"),
        )
        for i, rs in enumerate(dumps)
    ]


TABLE_COLUMNS = ("TABLE", "CHAINS", "RULES")


def table_rows(ruleset: RuleDump) -> list[Row]:
    """One row per table of a dump."""
    return [
        row(f"table:{t}", Cell(t, "accent"), len(ruleset.chains(t)), ruleset.rule_count(t))
        for t in ruleset.tables
    ]


CHAIN_COLUMNS = ("CHAIN", "POLICY", "RULES", "PACKETS", "BYTES")


def chain_rows(ruleset: RuleDump, table: str) -> list[Row]:
    """One row per chain of a table, built-in chains first (rules are not parsed)."""
    ordered = sorted(ruleset.chains(table), key=lambda c: (not c.builtin, c.name))
    out = []
    for c in ordered:
        counters = c.counters
        out.append(
            row(
                f"chain:{c.name}",
                Cell(c.name, "primary" if c.builtin else "accent"),
                cell(c.policy, "warning" if c.policy == "DROP" else "dim"),
                ruleset.rule_count(table, c.name),
                cell(counters[0] if counters else None),
                cell(counters[1] if counters else None),
            )
        )
    return out


# OWNER comes last: the comment (what the node wrote) stays in view on an 80-column terminal.
RULE_COLUMNS = ("#", "MATCHES", "TARGET", "COMMENT", "PKTS", "OWNER")


def rule_matches(rule: Rule) -> str:
    """A rule's matches as iptables-save writes them: `-d 10.96.0.10/32 -p udp -m udp --dport 53`."""
    parts = []
    module = ""
    for m in rule.matches:
        if m.option == "comment":
            continue
        if m.module and m.module != module:
            parts.append(f"-m {m.module}")
        module = m.module
        neg = "! " if m.negated else ""
        short = {
            "source": "-s",
            "destination": "-d",
            "protocol": "-p",
            "in-interface": "-i",
            "out-interface": "-o",
        }
        flag = short.get(m.option, f"--{m.option}") if m.module == "" else f"--{m.option}"
        parts.append(f"{neg}{flag} {m.value}".strip())
    return " ".join(parts) + (" " + " ".join(rule.unknown) if rule.unknown else "")


def rule_target(rule: Rule) -> str:
    """A rule's target with its options: `DNAT --to-destination 10.244.0.5:53`."""
    if rule.target is None:
        return ""
    opts = " ".join(f"--{k} {v}" for k, v in rule.target.options.items())
    prefix = "goto " if rule.target.kind == "goto" else ""
    return f"{prefix}{rule.target.name} {opts}".strip()


def rule_rows(rules: tuple[Rule, ...], table: str) -> list[Row]:
    """One row per rule of a chain, with who made it; jumps to user chains are highlighted."""
    out = []
    for r in rules:
        owner = iptables_owner(table, r.chain, r.comments, r.target.name if r.target else None)
        target_role = (
            "accent" if r.target is not None and r.target.kind in ("jump", "goto") else "primary"
        )
        out.append(
            row(
                f"rule:{r.position}",
                Cell(str(r.position), "dim"),
                cell(rule_matches(r)),
                Cell(rule_target(r), target_role),
                cell(r.comment, "dim"),
                cell(r.counters[0] if r.counters else None),
                cell(owner.text),
            )
        )
    return out
