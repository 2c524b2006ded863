"""The Pod screen's NAT extras: rules that mention the pod's IPs, and masquerade that applies to it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from podpath.analysis.index import ip_in
from podpath.netfilter.model import Match, Rule
from podpath.snapshot.model import Pod
from podpath.tui.adapters import RulesetView
from podpath.tui.rows.model import Cell, Row, cell, row

# An address as iptables-save writes one (-s 10.244.0.3/32, --to-destination
# 10.244.0.3:80, a comment's "-> 10.244.0.3:80"); the look-arounds keep 10.244.0.3
# from matching inside 10.244.0.35 or 110.244.0.3.
_ADDRESS = re.compile(
    r"(?<![\w.:])(\d{1,3}(?:\.\d{1,3}){3}|[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7})(?![\w.]|:[0-9a-fA-F]*:)"
)


@dataclass(frozen=True)
class Mention:
    """One rule whose text names an address."""

    backend: str  # nft/ipv4, legacy/ipv6, ...
    table: str
    chain: str
    position: int
    text: str


def mention_index(
    rulesets: Iterable[RulesetView], wanted: Iterable[str]
) -> dict[str, tuple[Mention, ...]]:
    """Every rule line naming one of `wanted` (pod IPs), by IP: one regex pass over all rules.

    Built once per snapshot in the prepare worker: 110k nat rules take ~0.2 s, too much
    to repeat per pod on the event loop.
    """
    want = frozenset(wanted)
    found: dict[str, list[Mention]] = {}
    for rs in rulesets:
        for table in rs.tables:
            for chain in rs.ruleset.chain_names(table):
                for pos, line in enumerate(rs.ruleset.lines_of(table, chain), 1):
                    hits = {a for a in _ADDRESS.findall(line) if a in want}
                    for ip in hits:
                        found.setdefault(ip, []).append(Mention(rs.label, table, chain, pos, line))
    return {ip: tuple(v) for ip, v in found.items()}


MENTION_COLUMNS = ("BACKEND", "TABLE", "CHAIN", "#", "RULE")


def mention_rows(mentions: dict[str, tuple[Mention, ...]], pod: Pod) -> list[Row]:
    """The rules, of any backend, table and chain, whose text names one of the pod's IPs."""
    seen: set[tuple[str, str, str, int]] = set()
    out = []
    for ip in pod.ips:
        for m in mentions.get(ip, ()):
            key = (m.backend, m.table, m.chain, m.position)
            if key in seen:
                continue
            seen.add(key)
            out.append(
                row(
                    f"ipt:{m.backend}:{m.table}:{m.chain}:{m.position}",
                    Cell(m.backend, "dim"),
                    Cell(m.table, "primary"),
                    Cell(m.chain, "accent"),
                    cell(m.position),
                    cell(m.text),
                )
            )
    return out


@dataclass(frozen=True)
class Masquerade:
    """A MASQUERADE/SNAT rule reachable from nat POSTROUTING for the pod's traffic."""

    backend: str
    chain: str
    position: int
    action: str  # MASQUERADE, or SNAT to ...
    when: str  # the condition, in words
    text: str


_SKIP_OPTIONS = frozenset({"comment"})
_WORDS = {
    "source": "source",
    "destination": "destination",
    "mark": "marked",
    "in-interface": "in on",
    "out-interface": "out on",
    "protocol": "protocol",
    "ctstate": "conntrack state",
    "dst-type": "destination type",
    "src-type": "source type",
}
# Deep enough for POSTROUTING -> KUBE-POSTROUTING / CNI-xxx -> ..., bounded against loops.
_MAX_DEPTH = 8


def _word(m: Match) -> str:
    name = _WORDS.get(m.option, f"{m.module or ''} {m.option}".strip())
    value = m.value.removesuffix("/32").removesuffix("/128")
    if m.negated:
        return f"not {name} {value}" if m.option == "mark" else f"{name} not {value}"
    return f"{name} {value}"


def _source_verdict(rule: Rule, ips: tuple[str, ...]) -> bool | None:
    """True/False when the rule's source matches decide for these IPs, None without any."""
    sources = [m for m in rule.matches if m.option == "source"]
    if not sources:
        return None
    for m in sources:
        inside = any(ip_in(ip, c) for ip in ips for c in m.value.split(","))
        if inside == m.negated:
            return False
    return True


def _conditions(rule: Rule) -> list[str]:
    return [_word(m) for m in rule.matches if m.option not in _SKIP_OPTIONS]


def masquerades(rulesets: Iterable[RulesetView], pod: Pod) -> list[Masquerade]:
    """MASQUERADE/SNAT rules of nat POSTROUTING (and the chains it jumps to) that can apply to the pod.

    Source matches are decided against the pod's IPs (a rule for another pod is left
    out); every other match, and each earlier RETURN/ACCEPT the packet must get past,
    is kept as a condition in words ("marked 0x4000/0x4000", "destination not 224.0.0.0/4").
    """
    out: list[Masquerade] = []
    for rs in rulesets:
        family_v6 = rs.dump.family == "ipv6"
        ips = tuple(ip for ip in pod.ips if (":" in ip) == family_v6)
        if not ips or not rs.has_chain("nat", "POSTROUTING"):
            continue
        _walk(rs, "POSTROUTING", ips, [], frozenset(), out)
    return out


def _walk(
    rs: RulesetView,
    chain: str,
    ips: tuple[str, ...],
    path: list[str],
    seen: frozenset[str],
    out: list[Masquerade],
) -> None:
    # `seen` is the chains on this path only: KUBE-MARK-MASQ may be reached twice, a loop not.
    if chain in seen or len(seen) > _MAX_DEPTH:
        return
    seen = seen | {chain}
    guards: list[str] = []  # what the packet must not match to get past earlier RETURNs
    for rule in rs.rules("nat", chain):
        if _source_verdict(rule, ips) is False:
            continue
        target = rule.target
        if target is None:
            continue
        conds = [*path, *guards, *_conditions(rule)]
        matches = [m for m in rule.matches if m.option not in _SKIP_OPTIONS]
        if target.name in ("RETURN", "ACCEPT", "DROP"):
            if not matches:
                return  # everything after is unreachable
            if len(matches) == 1:
                guards.append(_word(replace(matches[0], negated=not matches[0].negated)))
            else:
                guards.append(f"not ({' and '.join(_word(m) for m in matches)})")
        elif target.name in ("MASQUERADE", "SNAT"):
            action = target.name
            if target.name == "SNAT" and "to-source" in target.options:
                action = f"SNAT to {target.options['to-source']}"
            when = "when " + " and ".join(conds) if conds else "always"
            out.append(Masquerade(rs.label, chain, rule.position, action, when, rule.text))
        elif target.kind in ("jump", "goto") and rs.has_chain("nat", target.name):
            _walk(rs, target.name, ips, conds, seen, out)
            if target.kind == "goto" and not matches:
                return


MASQUERADE_COLUMNS = ("BACKEND", "CHAIN", "#", "ACTION", "APPLIES", "RULE")


def masquerade_rows(rulesets: Iterable[RulesetView], pod: Pod) -> list[Row]:
    """The masquerade/SNAT rules that can rewrite the pod's outgoing source, with their condition."""
    return [
        row(
            f"masq:{m.backend}:{m.chain}:{m.position}",
            Cell(m.backend, "dim"),
            Cell(m.chain, "accent"),
            cell(m.position),
            Cell(m.action, "primary"),
            cell(m.when),
            Cell(m.text, "dim"),
        )
        for m in masquerades(rulesets, pod)
    ]
