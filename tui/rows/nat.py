"""Pure row builders for the Pod screen's NAT extras: rules naming the pod's IPs, and masquerade."""

from __future__ import annotations

from collections.abc import Iterable

from podpath.analysis.masquerade import masquerades
from podpath.analysis.mentions import MentionIndex, mentions_of
from podpath.analysis.rulesets import RuleDump
from podpath.snapshot.model import Pod
from podpath.tui.rows.model import Cell, Row, cell, row

MENTION_COLUMNS = ("BACKEND", "TABLE", "CHAIN", "#", "RULE")


def mention_rows(mentions: MentionIndex, pod: Pod) -> list[Row]:
    """The rules, of any backend, table and chain, whose text names one of the pod's IPs."""
    return [
        row(
            f"ipt:{m.backend}:{m.table}:{m.chain}:{m.position}",
            Cell(m.backend, "dim"),
            Cell(m.table, "primary"),
            Cell(m.chain, "accent"),
            cell(m.position),
            cell(m.text),
        )
        for m in mentions_of(mentions, pod.ips)
    ]


MASQUERADE_COLUMNS = ("BACKEND", "CHAIN", "#", "ACTION", "APPLIES", "RULE")


def masquerade_rows(dumps: Iterable[RuleDump], pod: Pod) -> list[Row]:
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
        for m in masquerades(dumps, pod)
    ]
