"""Which iptables rules name an address: every backend, table and chain, in one pass."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from podpath.analysis.rulesets import RuleDump

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


MentionIndex = dict[str, tuple[Mention, ...]]


def mention_index(dumps: Iterable[RuleDump], wanted: Iterable[str]) -> MentionIndex:
    """Every rule line naming one of `wanted` (e.g. pod IPs), by address: one regex pass.

    Built once per snapshot: 110k nat rules take ~0.2 s, too much to repeat per pod.
    """
    want = frozenset(wanted)
    found: dict[str, list[Mention]] = {}
    for dump in dumps:
        for table in dump.tables:
            for chain in dump.ruleset.chain_names(table):
                for pos, line in enumerate(dump.ruleset.lines_of(table, chain), 1):
                    hits = {a for a in _ADDRESS.findall(line) if a in want}
                    for ip in hits:
                        found.setdefault(ip, []).append(
                            Mention(dump.label, table, chain, pos, line)
                        )
    return {ip: tuple(v) for ip, v in found.items()}


def mentions_of(index: MentionIndex, ips: Iterable[str]) -> list[Mention]:
    """The rules naming any of `ips`, each once, in the order of the addresses given."""
    seen: set[tuple[str, str, str, int]] = set()
    out = []
    for ip in ips:
        for m in index.get(ip, ()):
            key = (m.backend, m.table, m.chain, m.position)
            if key not in seen:
                seen.add(key)
                out.append(m)
    return out
