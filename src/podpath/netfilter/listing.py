"""Read `iptables -nL` / `-nvL` listings: the columns turned back into `-A` rule lines.

The listing format is lossy (iptables prints matches in prose), so this only rebuilds
what it can name for sure — addresses, protocol, interfaces, comment, ports, addrtype,
mark, set, statistic, DNAT/SNAT/MARK target arguments — and keeps the rest verbatim as
one quoted token that the rule parser reports in `Rule.unknown`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CHAIN = re.compile(r"^Chain (\S+) \((?:policy (\S+)[^)]*|\d+ references?|[^)]*)\)")
_COMMENT = re.compile(r"/\* (.*?) \*/")
_EXTRA_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(tcp|udp|sctp) dpts?:(!)?(\S+)"), "port"),
    (re.compile(r"\b(tcp|udp|sctp) spts?:(!)?(\S+)"), "sport"),
    (re.compile(r"\bADDRTYPE match (src|dst)-type (!)?(\S+)"), "addrtype"),
    (re.compile(r"\bmark match (!)?(\S+)"), "mark"),
    (re.compile(r"\b(!)?match-set (\S+) (\S+)"), "set"),
    (re.compile(r"\bstatistic mode random probability (\S+)"), "statistic"),
    (re.compile(r"\bctstate (!)?(\S+)"), "ctstate"),
    (re.compile(r"\bto:(\S+)"), "to"),
    (re.compile(r"\bMARK (or|and|xor|set) (\S+)"), "mark-target"),
    (re.compile(r"\breject-with (\S+)"), "reject"),
)


@dataclass(frozen=True)
class ListedChain:
    """One `Chain NAME (...)` block: its policy and its rules as rebuilt `-A` lines."""

    name: str
    policy: str | None
    rule_lines: tuple[str, ...]


@dataclass(frozen=True)
class Listing:
    """The chains of one `iptables -nL` listing, and what could not be read."""

    chains: tuple[ListedChain, ...]
    warnings: tuple[str, ...]


def _q(value: str) -> str:
    """Quote a value for a rebuilt rule line (the parser's `unquote` reverses it)."""
    return '"' + re.sub(r'(["\\\'])', r"\\\1", value) + '"'


def _address(flag: str, value: str) -> list[str]:
    """`-s`/`-d` tokens for a listing address column, nothing for the wildcard."""
    neg = value.startswith("!")
    value = value.lstrip("!")
    if value in ("0.0.0.0/0", "::/0", "anywhere", ""):
        return []
    return (["!"] if neg else []) + [flag, value]


def _interface(flag: str, value: str) -> list[str]:
    """`-i`/`-o` tokens for a -v listing interface column."""
    neg = value.startswith("!")
    value = value.lstrip("!")
    if value in ("*", "any", ""):
        return []
    return (["!"] if neg else []) + [flag, value]


def _rebuild(chain: str, cols: dict[str, str], extra: str) -> str:
    """One `-A` line from a listing row's columns and its trailing prose."""
    out = ["-A", chain]
    out += _interface("-i", cols.get("in", ""))
    out += _interface("-o", cols.get("out", ""))
    out += _address("-s", cols.get("source", ""))
    out += _address("-d", cols.get("destination", ""))
    prot = cols.get("prot", "all")
    if prot not in ("all", "0"):
        out += ["!", "-p", prot[1:]] if prot.startswith("!") else ["-p", prot]
    target_opts: list[str] = []
    for comment in _COMMENT.findall(extra):
        out += ["-m", "comment", "--comment", _q(comment)]
    extra = _COMMENT.sub(" ", extra)
    for pattern, kind in _EXTRA_RULES:
        found = pattern.search(extra)
        if not found:
            continue
        extra = extra[: found.start()] + " " + extra[found.end() :]
        g = found.groups()
        if kind in ("port", "sport"):
            opt = "--dport" if kind == "port" else "--sport"
            out += ["-m", g[0]] + (["!"] if g[1] else []) + [opt, g[2]]
        elif kind == "addrtype":
            out += ["-m", "addrtype"] + (["!"] if g[1] else []) + [f"--{g[0]}-type", g[2]]
        elif kind == "mark":
            out += ["-m", "mark"] + (["!"] if g[0] else []) + ["--mark", g[1]]
        elif kind == "set":
            out += ["-m", "set"] + (["!"] if g[0] else []) + ["--match-set", g[1], g[2]]
        elif kind == "statistic":
            out += ["-m", "statistic", "--mode", "random", "--probability", g[0]]
        elif kind == "ctstate":
            out += ["-m", "conntrack"] + (["!"] if g[0] else []) + ["--ctstate", g[1]]
        elif kind == "to":
            target_opts += [
                "--to-destination" if cols.get("target") == "DNAT" else "--to-source",
                g[0],
            ]
        elif kind == "mark-target":
            target_opts += [f"--{g[0]}-mark" if g[0] != "set" else "--set-mark", g[1]]
        elif kind == "reject":
            target_opts += ["--reject-with", g[0]]
    rest = " ".join(extra.split())
    if rest:
        out.append(_q(rest))  # kept verbatim: the parser reports it in Rule.unknown
    target = cols.get("target", "")
    if target:
        out += ["-j", target] + target_opts
    return " ".join(out)


def parse_listing(text: str) -> Listing:
    """Parse `iptables [-v] -nL` text; never raises."""
    chains: list[ListedChain] = []
    warnings: list[str] = []
    name: str | None = None
    policy: str | None = None
    header: list[str] = []
    lines: list[str] = []

    def flush() -> None:
        if name is not None:
            chains.append(ListedChain(name, policy, tuple(lines)))

    for raw in text.split("\n"):
        line = raw.rstrip()
        if not line.strip() or line.startswith("#"):
            if line.startswith("# Warning:"):
                warnings.append(line[2:])
            continue
        found = _CHAIN.match(line)
        if found:
            flush()
            name, policy, lines, header = found.group(1), found.group(2), [], []
            continue
        if name is None:
            warnings.append(f"unparsed line: {line[:200]}")
            continue
        words = line.split()
        if words[0] in ("target", "pkts", "num"):
            header = words
            continue
        cols_names = header or ["target", "prot", "opt", "source", "destination"]
        if len(words) < len(cols_names):
            warnings.append(f"chain {name}: truncated row kept verbatim: {line.strip()[:200]}")
            lines.append(f"-A {name} {_q(line.strip())}")
            continue
        cols = dict(zip(cols_names, words, strict=False))
        extra = (
            line.split(None, len(cols_names))[len(cols_names)]
            if len(words) > len(cols_names)
            else ""
        )
        lines.append(_rebuild(name, cols, extra))
    flush()
    return Listing(tuple(chains), tuple(warnings))
