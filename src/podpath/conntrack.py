"""Parse conntrack tables as `conntrack -L [-o extended]` and /proc/net/nf_conntrack print them.

Pure and fast: a 50k-entry table parses well under half a second. Lines that are not
entries (the tool's "N flow entries have been shown." summary on stderr, `conntrack -S`
statistics, blank lines, garbage) are skipped, never fatal. Keys the parser does not
know are kept verbatim in `ConntrackEntry.extra`.

Line shapes (conntrack-tools src/conntrack.c, kernel nf_conntrack_standalone.c):
    [ipv4 2] tcp 6 431999 ESTABLISHED src=A dst=B sport=1 dport=2 [packets=N bytes=N]
        [UNREPLIED] src=B dst=A sport=2 dport=1 [packets=N bytes=N] [ASSURED] mark=0
        [secctx=...] [zone=N] use=1 [id=N]
    icmp 1 29 src=A dst=B type=8 code=0 id=7 src=B dst=A type=0 code=0 id=7 mark=0 use=1
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from typing import NamedTuple

_FAMILIES = {"ipv4": 4, "ipv6": 6}
# Keys that belong to a direction's tuple (and its counters), in either direction.
_TUPLE_KEYS = frozenset(
    {"src", "dst", "sport", "dport", "type", "code", "id", "packets", "bytes", "srckey", "dstkey"}
)
_SUMMARY_MARK = "flow entries have been shown"


# NamedTuples rather than frozen dataclasses: equally immutable and typed, but about
# 5x cheaper to build (0.3 us vs 3 us here), which decides whether 50k+ entries parse
# in well under half a second (docs/performance.md).
class ConntrackTuple(NamedTuple):
    """One direction of a connection: addresses, ports (or ICMP fields) and counters."""

    src: str
    dst: str
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None
    packets: int | None = None
    bytes: int | None = None


class ConntrackEntry(NamedTuple):
    """One conntrack table entry."""

    family: int  # 4 or 6
    protocol: str  # tcp, udp, icmp, icmpv6, sctp, gre, unknown, ...
    protonum: int | None
    state: str | None  # protocol state (ESTABLISHED, TIME_WAIT, ...) when it has one
    timeout: int | None  # seconds left
    original: ConntrackTuple
    reply: ConntrackTuple  # lines without a reply tuple are not entries (truncated)
    status: tuple[str, ...] = ()  # ASSURED, SEEN_REPLY, UNREPLIED, OFFLOAD, ...
    mark: int | None = None
    zone: int | None = None
    use: int | None = None
    # Any other key=value field (secctx, labels, id, zone-orig, delta-time, ...), verbatim.
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def is_dnat(self) -> bool:
        """True when the reply does not come from the original destination (DNAT)."""
        return is_dnat(self)

    @property
    def is_snat(self) -> bool:
        """True when the reply does not go back to the original source (SNAT/masquerade)."""
        return is_snat(self)

    @property
    def seen_reply(self) -> bool:
        """True unless the kernel marked the entry UNREPLIED."""
        return "UNREPLIED" not in self.status


def is_dnat(entry: ConntrackEntry) -> bool:
    """True when the entry was destination-NATed: reply src != original dst (or port)."""
    r, o = entry.reply, entry.original
    return r.src != o.dst or (o.dport is not None and r.sport is not None and r.sport != o.dport)


def is_snat(entry: ConntrackEntry) -> bool:
    """True when the entry was source-NATed: reply dst != original src (or port)."""
    r, o = entry.reply, entry.original
    return r.dst != o.src or (o.sport is not None and r.dport is not None and r.dport != o.sport)


def _int(value: str) -> int | None:
    try:
        return int(value, 0) if value.startswith("0x") else int(value)
    except ValueError:
        return None


def _make_tuple(fields: dict[str, str]) -> ConntrackTuple | None:
    src, dst = fields.get("src"), fields.get("dst")
    if src is None or dst is None:
        return None
    get = fields.get
    sport, dport = get("sport"), get("dport")
    itype, icode, iid = get("type"), get("code"), get("id")
    packets, nbytes = get("packets"), get("bytes")
    return ConntrackTuple(
        src,
        dst,
        _int(sport) if sport is not None else None,
        _int(dport) if dport is not None else None,
        _int(itype) if itype is not None else None,
        _int(icode) if icode is not None else None,
        _int(iid) if iid is not None else None,
        _int(packets) if packets is not None else None,
        _int(nbytes) if nbytes is not None else None,
    )


def parse_conntrack_line(line: str) -> ConntrackEntry | None:
    """Parse one line; None when it is not a conntrack entry."""
    entry = _parse_fast(line)
    return entry if entry is not None else _parse_tokens(line)


# The common tcp/udp/sctp/dccp shape in one regex: a C-level match is ~5x faster than
# the token loop. Anything else (ICMP, secctx, labels, other flags) takes the loop.
_COMMON = re.compile(
    r"(?:(ipv[46])\s+\d+\s+)?([a-z]+)\s+(\d+)\s+(\d+)\s+(?:([A-Z_]+)\s+)?"
    r"src=(\S+)\s+dst=(\S+)\s+sport=(\d+)\s+dport=(\d+)"
    r"(?:\s+packets=(\d+)\s+bytes=(\d+))?(\s+\[UNREPLIED\])?"
    r"\s+src=(\S+)\s+dst=(\S+)\s+sport=(\d+)\s+dport=(\d+)"
    r"(?:\s+packets=(\d+)\s+bytes=(\d+))?(\s+\[ASSURED\])?"
    r"\s+mark=(\d+)(?:\s+zone=(\d+))?\s+use=(\d+)\s*\Z"
)


def _parse_fast(line: str) -> ConntrackEntry | None:
    """The common shape via one regex match; None when the line has another shape."""
    m = _COMMON.match(line)
    if m is None:
        return None
    (
        fam,
        proto,
        pnum,
        timeout,
        state,
        s1,
        d1,
        sp1,
        dp1,
        pk1,
        by1,
        unrepl,
        s2,
        d2,
        sp2,
        dp2,
        pk2,
        by2,
        assured,
        mark,
        zone,
        use,
    ) = m.groups()
    original = ConntrackTuple(
        s1,
        d1,
        int(sp1),
        int(dp1),
        None,
        None,
        None,
        int(pk1) if pk1 else None,
        int(by1) if by1 else None,
    )
    reply = ConntrackTuple(
        s2,
        d2,
        int(sp2),
        int(dp2),
        None,
        None,
        None,
        int(pk2) if pk2 else None,
        int(by2) if by2 else None,
    )
    if unrepl:
        status: tuple[str, ...] = ("UNREPLIED", "ASSURED") if assured else ("UNREPLIED",)
    else:
        status = ("ASSURED",) if assured else ()
    family = _FAMILIES[fam] if fam else (6 if ":" in s1 else 4)
    return ConntrackEntry(
        family,
        proto,
        int(pnum),
        state,
        int(timeout),
        original,
        reply,
        status,
        int(mark),
        int(zone) if zone else None,
        int(use),
    )


def _parse_tokens(line: str) -> ConntrackEntry | None:
    """The careful token-by-token parse, for every shape the fast path declines."""
    tokens = line.split()
    if len(tokens) < 4 or _SUMMARY_MARK in line:
        return None
    i = 0
    family = _FAMILIES.get(tokens[0])
    if family is not None:
        i = 2  # "ipv4 2": the name and the L3 protocol number
    protocol = tokens[i]
    if "=" in protocol:
        return None  # e.g. `conntrack -S` statistics: "cpu=0 found=0 ..."
    protonum = _int(tokens[i + 1]) if i + 1 < len(tokens) else None
    i += 2
    timeout: int | None = None
    state: str | None = None
    if i < len(tokens) and tokens[i].isdigit():
        timeout = int(tokens[i])
        i += 1
    if i < len(tokens) and "=" not in tokens[i] and not tokens[i].startswith("["):
        state = tokens[i]
        i += 1
    directions: list[dict[str, str]] = [{}]
    after: dict[str, str] = {}
    status: list[str] = []
    extra: list[tuple[str, str]] = []
    in_tuples = True
    for tok in tokens[i:]:
        if tok[0] == "[" and tok[-1] == "]":
            status.append(tok[1:-1])
            continue
        key, sep, value = tok.partition("=")
        if not sep:
            extra.append((tok, ""))
            continue
        current = directions[-1]
        # A bare id= outside an ICMP tuple is the entry's conntrack id (`-o id`).
        if in_tuples and key in _TUPLE_KEYS and (key != "id" or "type" in current):
            if key == "src" and "src" in current:
                if len(directions) == 2:
                    in_tuples = False  # a third src=: not a tuple any more
                else:
                    directions.append({key: value})
                    continue
            elif key not in current:
                current[key] = value
                continue
        if in_tuples and len(directions) == 2 and key not in _TUPLE_KEYS:
            in_tuples = False
        if key in ("mark", "zone", "use") and key not in after:
            after[key] = value
        else:
            extra.append((key, value))
    original = _make_tuple(directions[0])
    reply = _make_tuple(directions[1]) if len(directions) > 1 else None
    if original is None or reply is None:
        return None
    if family is None:
        family = 6 if ":" in original.src else 4
    mark, zone, use = after.get("mark"), after.get("zone"), after.get("use")
    return ConntrackEntry(
        family,
        protocol,
        protonum,
        state,
        timeout,
        original,
        reply,
        tuple(status),
        _int(mark) if mark is not None else None,
        _int(zone) if zone is not None else None,
        _int(use) if use is not None else None,
        tuple(extra),
    )


def entry_lines(text: str, contains: str | None = None) -> list[str]:
    """The lines of a listing that hold entries (optionally only those containing a string).

    Cheap (no parsing): a pager shows `len()` and parses only the rows on screen with
    `parse_conntrack_line`; a filter by address narrows 50k lines in a few ms.
    """
    lines = text.splitlines()
    if contains is not None:
        lines = [line for line in lines if contains in line]
    return [line for line in lines if " src=" in line and _SUMMARY_MARK not in line]


def iter_conntrack(text: str, contains: str | None = None) -> Iterator[ConntrackEntry]:
    """Yield the entries of a conntrack listing one at a time, skipping non-entry lines."""
    for line in entry_lines(text, contains):
        entry = parse_conntrack_line(line)
        if entry is not None:
            yield entry


def parse_conntrack(text: str, contains: str | None = None) -> tuple[ConntrackEntry, ...]:
    """All entries of a conntrack listing (`conntrack -L`, `-o extended`, /proc/net/nf_conntrack)."""
    # Tens of thousands of small tuples trigger many useless GC passes (nothing here
    # forms cycles): pausing the collector makes the parse up to 2x faster.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return tuple(iter_conntrack(text, contains))
    finally:
        if was_enabled:
            gc.enable()


def count_entries(text: str) -> int:
    """How many lines of a listing are entries, without parsing them (cheap)."""
    return len(entry_lines(text))
