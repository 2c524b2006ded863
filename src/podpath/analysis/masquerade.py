"""Which MASQUERADE/SNAT rules can rewrite a pod's outgoing source, and on what condition."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from podpath.analysis.index import ip_in
from podpath.analysis.rulesets import RuleDump
from podpath.netfilter.model import Match, Rule
from podpath.snapshot.model import Pod


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


def masquerades(dumps: Iterable[RuleDump], pod: Pod) -> list[Masquerade]:
    """MASQUERADE/SNAT rules of nat POSTROUTING (and the chains it jumps to) that can apply to the pod.

    Source matches are decided against the pod's IPs (a rule for another pod is left
    out); every other match, and each earlier RETURN/ACCEPT the packet must get past,
    is kept as a condition in words ("marked 0x4000/0x4000", "destination not 224.0.0.0/4").
    """
    out: list[Masquerade] = []
    for dump in dumps:
        family_v6 = dump.dump.family == "ipv6"
        ips = tuple(ip for ip in pod.ips if (":" in ip) == family_v6)
        if not ips or not dump.has_chain("nat", "POSTROUTING"):
            continue
        _walk(dump, "POSTROUTING", ips, [], frozenset(), out)
    return out


def _walk(
    dump: RuleDump,
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
    for rule in dump.rules("nat", chain):
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
            out.append(Masquerade(dump.label, chain, rule.position, action, when, rule.text))
        elif target.kind in ("jump", "goto") and dump.has_chain("nat", target.name):
            _walk(dump, target.name, ips, conds, seen, out)
            if target.kind == "goto" and not matches:
                return
