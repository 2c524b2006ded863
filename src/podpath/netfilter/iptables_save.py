"""Parse `iptables-save` text into tables, chains and rules: index first, parse on demand.

`parse_ruleset` only buckets rule lines by (table, chain) — about 0.1-0.2 s for 110k
rules — and a chain's rules are structured the first time someone asks for that chain.
Most lines take a fast path (quoted values swapped out, then `str.split` into option
chunks); anything unusual goes through one linear regex tokenizer that understands
iptables' quoting (`xtables_save_string`: double quotes, with `"`, `\\` and `'` escaped by
a backslash). Both give identical results (a tested property); `shlex` is 20x slower.

Input that is not `iptables-save` (a `grep` fragment, `iptables -S`, `iptables -nL`, an
error message) is detected, reported in `Ruleset.format`/`warnings`, and parsed as far
as it goes; nothing here raises on any text.
"""

from __future__ import annotations

import gc
import ipaddress
import re
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace

from podpath.netfilter.listing import parse_listing
from podpath.netfilter.model import BUILTIN_VERDICTS, Chain, Match, Rule, Target

# One token: unquoted runs and quoted strings glued together, like a shell word. An
# unterminated quote swallows the rest of the line instead of failing.
_TOKEN = re.compile(r'(?:[^ \t"]+|"[^"\\]*(?:\\.[^"\\]*)*"?)+')
_QUOTED_PART = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"?|([^"]+)')
_ESCAPE = re.compile(r"\\(.)")
_COUNTERS = re.compile(r"^\[(\d+):(\d+)\]$")
# A rule line, with or without the `[packets:bytes] ` that `iptables-save -c` puts first.
# A rule line, matched whole: the scan resumes at the line's end instead of trying a
# match at each of its characters (3x faster over a 15 MB dump: 0.03 s, not 0.09 s),
# and the empty group makes findall return "" for it, not a copy of the line.
_RULE_LINE = re.compile(r"^(?:\[\d+:\d+\] )?-A ()[^\n]*+", re.M)

# Short and long spellings of the built-in options -> the long name used in Match.option.
_BUILTIN_OPTS = {
    "-s": "source",
    "--source": "source",
    "--src": "source",
    "-d": "destination",
    "--destination": "destination",
    "--dst": "destination",
    "-p": "protocol",
    "--protocol": "protocol",
    "--proto": "protocol",
    "-i": "in-interface",
    "--in-interface": "in-interface",
    "-o": "out-interface",
    "--out-interface": "out-interface",
}
_PROTO_NUMBERS = {"1": "icmp", "6": "tcp", "17": "udp", "58": "ipv6-icmp", "132": "sctp"}
# Older iptables dumped some option names in short forms; the trace engine sees one name.
_OPTION_ALIASES = {
    "destination-port": "dport",
    "source-port": "sport",
    "destination-ports": "dports",
    "source-ports": "sports",
}
# Target extensions shipped with iptables 1.8 (man iptables-extensions, TARGET EXTENSIONS).
TARGET_EXTENSIONS = frozenset(
    {
        "AUDIT",
        "CHECKSUM",
        "CLASSIFY",
        "CLUSTERIP",
        "CONNMARK",
        "CONNSECMARK",
        "CT",
        "DNAT",
        "DNPT",
        "DSCP",
        "ECN",
        "HL",
        "HMARK",
        "IDLETIMER",
        "LED",
        "LOG",
        "MARK",
        "MASQUERADE",
        "MIRROR",
        "NETMAP",
        "NFLOG",
        "NFQUEUE",
        "NOTRACK",
        "RATEEST",
        "REDIRECT",
        "REJECT",
        "SAME",
        "SECMARK",
        "SET",
        "SNAT",
        "SNPT",
        "SYNPROXY",
        "TCPMSS",
        "TCPOPTSTRIP",
        "TEE",
        "TOS",
        "TPROXY",
        "TRACE",
        "TTL",
        "ULOG",
    }
)

# Options that always take exactly one argument: iptables consumes the next word even
# when it starts with "-" (`--comment -A` is a comment "-A"; iptables-save quotes it not).
_ONE_ARG = frozenset(
    {
        "comment",
        "mark",
        "probability",
        "every",
        "packet",
        "mode",
        "dport",
        "sport",
        "destination-port",
        "source-port",
        "dports",
        "sports",
        "ctstate",
        "state",
        "src-type",
        "dst-type",
        "to-destination",
        "to-source",
        "to-ports",
        "to",
        "set-xmark",
        "set-mark",
        "or-mark",
        "and-mark",
        "xor-mark",
        "reject-with",
        "log-prefix",
        "log-level",
        "name",
        "seconds",
        "hitcount",
        "mask",
        "nfacct-name",
        "on-port",
        "on-ip",
        "tproxy-mark",
        "physdev-in",
        "physdev-out",
        "string",
        "algo",
        "set-class",
        "nflog-prefix",
        "nflog-group",
        "queue-num",
        "zone",
        "helper",
        "uid-owner",
        "gid-owner",
        "cgroup",
        "path",
        "icmp-type",
        "limit",
        "limit-burst",
        "ctstatus",
        "ctdir",
    }
)
# The fast path's view of the same tables, keyed by an option chunk's first word (the
# text after " -": "s", "-source", "-dport"), so the hot loop slices and joins nothing.
_BUILTIN_BY_WORD = {opt[1:]: name for opt, name in _BUILTIN_OPTS.items()}
_ONE_ARG_WORDS = frozenset("-" + option for option in _ONE_ARG)
_OPTION_BY_WORD: dict[str, str] = {}  # "-dport" -> "dport", "-destination-port" -> "dport"
FORMAT_SAVE = "iptables-save"
FORMAT_SPEC = "iptables-S"
FORMAT_FRAGMENT = "fragment"
FORMAT_LISTING = "iptables-L"
FORMAT_ERROR = "error"
FORMAT_EMPTY = "empty"


def count_rules(text: str) -> int:
    """How many rules a dump holds, counted in its text without parsing it."""
    return len(_RULE_LINE.findall(text))


def tokenize(line: str) -> list[str]:
    """Split one rule line into raw tokens, quotes kept (see `unquote`)."""
    return _TOKEN.findall(line)


def unquote(token: str) -> str:
    """The value of one token: quotes removed and backslash escapes undone."""
    if '"' not in token:
        return token
    out = []
    for quoted, plain in _QUOTED_PART.findall(token):
        out.append(plain if plain else _ESCAPE.sub(r"\1", quoted))
    return "".join(out)


def quote(value: str) -> str:
    """Quote a value the way iptables-save does (inverse of `unquote`)."""
    if value and re.fullmatch(r"[A-Za-z0-9_-]+", value):
        return value
    return '"' + re.sub(r'(["\\\'])', r"\\\1", value) + '"'


def _is_option(token: str) -> bool:
    """True for `-x`/`--xyz` tokens; negative numbers and quoted values are values."""
    return len(token) > 1 and token[0] == "-" and not token[1].isdigit()


_MATCH_CACHE: dict[tuple[str, str, str, bool], Match] = {}


def _match(module: str, option: str, value: str, negated: bool) -> Match:
    """A shared Match: kube-proxy repeats the same few thousand matches 100k times."""
    key = (module, option, value, negated)
    found = _MATCH_CACHE.get(key)
    if found is None:
        if len(_MATCH_CACHE) > 500_000:  # bound memory on hostile input
            _MATCH_CACHE.clear()
        found = _MATCH_CACHE[key] = Match(module, option, value, negated)
    return found


def parse_rule(
    table: str, chain: str, position: int, line: str, declared: AbstractSet[str] = frozenset()
) -> Rule:
    """Parse one `-A CHAIN ...` line (optionally `[p:b]`-prefixed) into a Rule.

    `declared` names the dump's chains, so `-j NAME` is known to be a jump, not an
    extension target.
    """
    line = line.strip()
    fast = _parse_rule_fast(table, chain, position, line, declared)
    if fast is not None:
        return fast
    return _parse_rule_tokens(table, chain, position, line, declared)


def _parse_rule_fast(
    table: str, chain: str, position: int, line: str, declared: AbstractSet[str] = frozenset()
) -> Rule | None:
    """The common case, split into option chunks at " -"; None when unusual (then tokens).

    Splitting a line into ~8 option chunks with str.split instead of walking ~20 tokens
    halves the parse time; quoted values are swapped for NUL placeholders first, so a
    " -" inside a comment cannot split it.
    """
    if line[:3] != "-A " or "\\" in line or "\t" in line or "\0" in line:
        return None
    quoted: list[str] = []
    body = line
    if '"' in line:
        parts = line.split('"')
        if not len(parts) & 1:
            return None  # an unterminated quote
        last = len(parts) - 1
        for k in range(1, last, 2):
            # A quote glued to a word (`a"b"`) is legal but rare: leave it to the tokenizer.
            if not parts[k - 1].endswith(" ") or (parts[k + 1] and parts[k + 1][0] != " "):
                return None
        quoted = parts[1::2]
        body = "\0".join(parts[0::2])
    if "  " in body:
        return None  # a double space would leave a blank inside a value
    chunks = body.split(" -")
    matches: list[Match] = []
    modules: list[str] = []
    target: Target | None = None
    target_opts: dict[str, str] | None = None
    module = protocol = ""
    neg = chunks[0].endswith(" !")
    if (chunks[0][:-2] if neg else chunks[0]).count(" ") != 1:
        return None  # words between the chain name and the first option
    q = 0
    for chunk in chunks[1:]:
        negated = neg
        neg = chunk.endswith(" !")
        if neg:
            chunk = chunk[:-2]
        opt, _, value = chunk.partition(" ")
        if not opt or opt[0] in "0123456789 !" or value[:1] == "!":
            return None  # a negative number, `! ` old syntax, or a double space
        if "!" in value and (" ! " in value or value.endswith(" !") or value == "!"):
            return None  # old syntax `--opt ! value`: the tokenizer handles it
        if opt in _ONE_ARG_WORDS and (not value or " " in value):
            # An argument starting with "-", or stray words after the one argument:
            # only the tokenizer gets those right.
            return None
        if "\0" in value:
            pieces = value.split("\0")
            out = [pieces[0]]
            for piece in pieces[1:]:
                out.append(quoted[q])
                out.append(piece)
                q += 1
            value = "".join(out)
        if target_opts is not None:
            if negated or opt[0] != "-" or opt[1:] in target_opts:
                return None
            target_opts[opt[1:]] = value
            continue
        builtin = _BUILTIN_BY_WORD.get(opt)
        if builtin is not None:
            if not value or " " in value:
                return None  # stray words after a built-in option: the tokenizer keeps them
            if builtin == "protocol":
                value = _PROTO_NUMBERS.get(value, value.lower())
                protocol = value
            matches.append(_match("", builtin, value, negated))
        elif opt == "m" or opt == "-match":
            if negated or not value or " " in value:
                return None
            module = value
            modules.append(module)
        elif opt == "j" or opt == "g" or opt == "-jump" or opt == "-goto":
            if negated or not value or " " in value:
                return None
            target = _target(value, opt == "g" or opt == "-goto", declared)
            target_opts = {}
        elif opt[0] == "-":
            option = _OPTION_BY_WORD.get(opt)
            if option is None:
                if len(_OPTION_BY_WORD) > 10_000:  # bound memory on hostile input
                    _OPTION_BY_WORD.clear()
                option = _OPTION_BY_WORD[opt] = _OPTION_ALIASES.get(opt[1:], opt[1:])
            matches.append(_match(module or protocol, option, value, negated))
        else:
            return None
    if neg or q != len(quoted):
        return None
    if target is not None and target_opts:
        target = Target(target.name, target.kind, target_opts)
    return Rule(table, chain, position, line, tuple(matches), target, None, (), tuple(modules))


def _parse_rule_tokens(
    table: str, chain: str, position: int, line: str, declared: AbstractSet[str] = frozenset()
) -> Rule:
    """The general parser, token by token: counters, old syntax, unknown words."""
    text = line
    counters: tuple[int, int] | None = None
    tokens = tokenize(line)
    if tokens and tokens[0].startswith("["):
        found = _COUNTERS.match(tokens[0])
        if found:
            counters = (int(found.group(1)), int(found.group(2)))
            tokens = tokens[1:]
            text = line[line.index("]") + 1 :].lstrip()
    if len(tokens) >= 2 and tokens[0] in ("-A", "--append", "-I", "--insert"):
        tokens = tokens[2:]
    matches: list[Match] = []
    modules: list[str] = []
    unknown: list[str] = []
    target: Target | None = None
    target_opts: dict[str, str] = {}
    module = ""
    protocol = ""
    negate = False
    i = 0
    n = len(tokens)
    while i < n:
        tok = tokens[i]
        i += 1
        if tok == "!":
            negate = True
            continue
        builtin = _BUILTIN_OPTS.get(tok)
        if builtin is not None:
            value = unquote(tokens[i]) if i < n else ""
            i += 1
            if i <= n and tokens[i - 1] == "!":  # old syntax `-s ! 10.0.0.0/8`; not `"!"`
                negate = True
                value = unquote(tokens[i]) if i < n else ""
                i += 1
            if builtin == "protocol":
                value = _PROTO_NUMBERS.get(value, value.lower())
                protocol = value
            matches.append(_match("", builtin, value, negate))
            negate = False
            continue
        if tok in ("-m", "--match"):
            module = unquote(tokens[i]) if i < n else ""
            i += 1
            modules.append(module)
            continue
        if tok in ("-j", "--jump", "-g", "--goto"):
            name = unquote(tokens[i]) if i < n else ""
            i += 1
            target = _target(name, tok in ("-g", "--goto"), declared)
            module = "\0target"
            continue
        if tok in ("-f", "--fragment"):
            matches.append(Match("", "fragment", "", negate))
            negate = False
            continue
        if tok == "-c" and i + 1 < n and tokens[i].isdigit() and tokens[i + 1].isdigit():
            counters = (int(tokens[i]), int(tokens[i + 1]))  # `iptables -S -v` form
            i += 2
            continue
        if tok.startswith("--") and len(tok) > 2:
            option = tok[2:]
            values: list[str] = []
            if option in _ONE_ARG and i < n and _is_option(tokens[i]):
                values.append(unquote(tokens[i]))
                i += 1
            while i < n and not _is_option(tokens[i]):
                if values and option in _ONE_ARG:
                    break  # a stray word after a one-argument option: Rule.unknown
                if tokens[i] == "!" and i + 1 < n and _is_option(tokens[i + 1]):
                    break  # negation of the next option, not a value of this one
                if tokens[i] == "!":
                    negate = True  # old syntax: `--ctstate ! NEW`
                    i += 1
                    continue
                values.append(unquote(tokens[i]))
                i += 1
            value = " ".join(values)
            if module == "\0target":
                target_opts[option] = (
                    value if option not in target_opts else (target_opts[option] + " " + value)
                )
            else:
                owner = module or protocol
                matches.append(_match(owner, _OPTION_ALIASES.get(option, option), value, negate))
            negate = False
            continue
        unknown.append(tok)
        negate = False
    if target is not None and target_opts:
        target = Target(target.name, target.kind, target_opts)
    return Rule(
        table,
        chain,
        position,
        text,
        tuple(matches),
        target,
        counters,
        tuple(unknown),
        tuple(modules),
    )


_TARGET_CACHE: dict[tuple[str, bool, bool], Target] = {}


def _target(name: str, goto: bool, declared: AbstractSet[str]) -> Target:
    """The Target of `-j NAME` / `-g NAME` before its options are known."""
    key = (name, goto, name in declared)
    found = _TARGET_CACHE.get(key)
    if found is not None:
        return found
    if goto:
        found = Target(name, "goto")
    elif name in BUILTIN_VERDICTS:
        found = Target(name, "verdict")
    elif name in declared or name not in TARGET_EXTENSIONS:
        # A declared chain wins; an undeclared name (a grep fragment) is a chain unless it
        # is a known extension, since users may name chains like extensions (DOCKER).
        found = Target(name, "jump")
    else:
        found = Target(name, "extension")
    if len(_TARGET_CACHE) > 200_000:
        _TARGET_CACHE.clear()
    _TARGET_CACHE[key] = found
    return found


@dataclass(frozen=True)
class Dispatch:
    """An index of a dispatch chain (KUBE-SERVICES...) by (destination, protocol, dport).

    Positions are 1-based like Rule.position. `fallback` holds rules that could match
    any destination (no exact address, or a negated one); they are always candidates.
    """

    table: str
    chain: str
    by_key: dict[tuple[str, str | None, int | None], tuple[int, ...]]
    fallback: tuple[int, ...]
    size: int

    def candidates(self, dst: str, protocol: str | None, dport: int | None) -> tuple[int, ...]:
        """Positions, in chain order, of every rule that could match this packet."""
        ip = normalize_ip(dst)
        proto = protocol.lower() if protocol else None
        found: set[int] = set(self.fallback)
        for key in {(ip, proto, dport), (ip, proto, None), (ip, None, None)}:
            found.update(self.by_key.get(key, ()))
        return tuple(sorted(found))


def normalize_ip(text: str) -> str:
    """One spelling per address, so the index and the lookup agree (IPv6 compressed)."""
    if ":" not in text:
        return text
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return text


# A rule line whose options before its target are only the ones kube-proxy writes for a
# ClusterIP, external IP or NodePort rule, in iptables-save's order, none negated, the
# comment quoted without escapes: its dispatch key is read by this one match. Any other
# line goes through `_dispatch_key_tokens`, which gives the same key for these
# (a tested property); 10k KUBE-SERVICES lines took ~0.1 s through it alone.
_DISPATCH_LINE = re.compile(
    r"-A [^ !-][^ ]*"
    r"(?: -s [0-9A-Fa-f.:/]+)?"
    r" -d ([0-9A-Fa-f.:]+)(?:/(?:32|128))?"
    r"(?: -p (tcp|udp|sctp))?"
    r'(?: -m comment --comment "[^"\\]*")?'
    r"(?: -m (?:tcp|udp|sctp) --dport ([0-9]+))?"
    r" -j "
)


def _dispatch_key(line: str) -> tuple[str, str | None, int | None] | None:
    """The (dst, proto, dport) a rule line needs, or None when it cannot be indexed."""
    fast = _DISPATCH_LINE.match(line)
    if fast is None:
        return _dispatch_key_tokens(line)
    addr, proto, dport = fast.groups()
    return (normalize_ip(addr), proto, int(dport) if proto is not None and dport else None)


def _dispatch_key_tokens(line: str) -> tuple[str, str | None, int | None] | None:
    """`_dispatch_key` of any line, from its tokens up to the target."""
    if "\\" not in line and line.count('"') % 2 == 0:
        # Quoted values (comments) never hold the address, protocol or port: drop them
        # and split, 5x faster than the tokenizer.
        tokens = "".join(line.split('"')[0::2]).split() if '"' in line else line.split()
    else:
        tokens = tokenize(line)
    dst: str | None = None
    proto: str | None = None
    dport: int | None = None
    negate = False
    for i, tok in enumerate(tokens):
        if tok == "!":
            negate = True
            continue
        if tok in ("-j", "-g", "--jump", "--goto"):
            break
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok in ("-d", "--destination", "--dst"):
            if negate or nxt == "!":
                return None
            addr, _, mask = nxt.partition("/")
            if mask and mask not in ("32", "128", "255.255.255.255"):
                return None
            dst = normalize_ip(addr)
        elif tok in ("-p", "--protocol"):
            if not negate and nxt != "!":
                proto = _PROTO_NUMBERS.get(nxt, nxt.lower())
        elif tok in ("--dport", "--destination-port"):
            if not negate and nxt.isdigit():
                dport = int(nxt)
        negate = False
    if dst is None:
        return None
    return (dst, proto, dport if proto is not None else None)


@dataclass
class _Table:
    """One table's index: raw header lines and raw rule lines, by chain, in dump order.

    Plain strings only: building 40k Chain objects up front would double the index time.
    """

    name: str
    headers: dict[str, str] = field(default_factory=dict)  # chain -> ":NAME POLICY [p:b]"
    # chain -> "-A NAME ..." lines: a dict while indexing, _SplitLines once read back
    # from a pickle (podpath.trace.index_cache).
    lines: Mapping[str, list[str]] = field(default_factory=dict)
    # `iptables-save -c` prefixes rules with [packets:bytes]: kept here as "p:b" text, by
    # chain and position (index 0 = rule 1), so the lines stay what a dump without -c holds.
    # A dict while indexing, _SplitCounters (split with the lines) once read back.
    counters: Mapping[str, list[str | None]] = field(default_factory=dict)

    def counter(self, chain: str, position: int) -> tuple[int, int] | None:
        """The (packets, bytes) of a rule, when the dump has counters."""
        counts = self.counters.get(chain)
        if not counts or position > len(counts) or counts[position - 1] is None:
            return None
        packets, _, octets = str(counts[position - 1]).partition(":")
        if not packets.isdigit() or not octets.isdigit():
            return None
        return int(packets), int(octets)

    def order(self) -> list[str]:
        """Chain names: declared ones first (dump order), then those only used by -A."""
        names = list(self.headers)
        names.extend(n for n in self.lines if n not in self.headers)
        return names

    def writable(self) -> dict[str, list[str]]:
        """The lines by chain, to add to (only a table being indexed is added to)."""
        assert isinstance(self.lines, dict), "a table read back from a pickle is not indexed again"
        return self.lines

    def writable_counters(self) -> dict[str, list[str | None]]:
        """The counters by chain, to add to (only a table being indexed is added to)."""
        assert isinstance(self.counters, dict), "a table read back is not indexed again"
        return self.counters

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # Each chain's lines as one string (or a span of the dump, Ruleset.__getstate__),
        # split when the chain is asked for: 40k strings instead of 110k lines and 100k
        # counters to unpickle, and a trace asks for 15-34 chains.
        lines = self.lines
        if not isinstance(lines, _SplitLines):
            joined: dict[str, str | tuple[int, ...]] = {c: _join(v) for c, v in lines.items()}
            lines = _SplitLines(joined, "", dict(self.counters))
        return (_Table, (self.name, self.headers, lines, _SplitCounters(lines)))


def _join(lines: Sequence[str]) -> str:
    """One chain's lines as one string: empty for none, else each after a newline."""
    return "".join("\n" + line for line in lines)


class _SplitLines(Mapping[str, list[str]]):
    """Rule lines (and counters) by chain, each chain kept as one string until asked for.

    A chain is its lines joined (`_join`), or, where they lie together in the dump's
    text, the (start, end) of them there -- (start, end, 1) when each carries its
    `[packets:bytes] ` counters. The text is kept anyway: 15 MB of joined lines and
    100k counter strings at 10k Services were most of reading the rules back. Rule
    lines never hold a newline (the dump was split on them), so nothing is lost.
    """

    def __init__(
        self,
        joined: dict[str, str | tuple[int, ...]],
        text: str = "",
        counters: dict[str, list[str | None]] | None = None,
    ) -> None:
        self._joined = joined
        self._text = text
        self._counters = counters or {}  # counters of the chains kept joined
        self._split: dict[str, list[str]] = {}

    def __getitem__(self, chain: str) -> list[str]:
        found = self._split.get(chain)
        if found is None:
            value = self._joined[chain]
            if isinstance(value, str):
                found = value[1:].split("\n") if value else []
            elif len(value) == 2:
                found = self._text[value[0] : value[1]].split("\n")
            else:
                found = []
                counts: list[str | None] = []
                for raw in self._text[value[0] : value[1]].split("\n"):
                    counter, _, rest = raw.partition("] ")
                    found.append(rest)
                    counts.append(counter[1:])
                self._counters[chain] = counts
            self._split[chain] = found
        return found

    def counters_of(self, chain: str) -> list[str | None] | None:
        """The chain's counters (None when its lines carry none)."""
        value = self._joined.get(chain)
        if isinstance(value, tuple) and len(value) == 3:
            self[chain]  # splits the lines and their counters
        return self._counters.get(chain)

    def counted(self) -> Iterator[str]:
        """The chains whose lines carry counters."""
        for chain, value in self._joined.items():
            if chain in self._counters or (isinstance(value, tuple) and len(value) == 3):
                yield chain

    def __contains__(self, chain: object) -> bool:
        return chain in self._joined

    def __iter__(self) -> Iterator[str]:
        return iter(self._joined)

    def __len__(self) -> int:
        return len(self._joined)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # Split lines are never changed (read-only by contract): the strings still hold
        # them; counters split from a span are left to be split again.
        joined = self._joined
        kept = {c: v for c, v in self._counters.items() if not isinstance(joined.get(c), tuple)}
        return (_SplitLines, (joined, self._text, kept))


class _SplitCounters(Mapping[str, list[str | None]]):
    """The counters of a _SplitLines, by chain, split with its lines."""

    def __init__(self, lines: _SplitLines) -> None:
        self._lines = lines

    def __getitem__(self, chain: str) -> list[str | None]:
        found = self._lines.counters_of(chain)
        if found is None:
            raise KeyError(chain)
        return found

    def __iter__(self) -> Iterator[str]:
        return self._lines.counted()

    def __len__(self) -> int:
        return sum(1 for _ in self._lines.counted())


def _spans(
    lines: Mapping[str, list[str]], counters: Mapping[str, list[str | None]], text: str
) -> _SplitLines:
    """The chains' lines as spans of `text` where they lie together in it, else joined."""
    out: dict[str, str | tuple[int, ...]] = {}
    kept: dict[str, list[str | None]] = {}
    cursor = 0
    misses = 0
    for chain in lines:
        found = lines[chain]
        counts = counters.get(chain)
        searched: str | None = None
        if not counts:
            searched = "\n".join(found)
        elif len(counts) == len(found) and None not in counts:
            searched = "\n".join(f"[{c}] {line}" for c, line in zip(counts, found, strict=True))
        # iptables-save lists a chain's rules together, chains in the order the index
        # met them: each is searched for from where the one before ended. A miss reads
        # to the end, so a dump that interleaves chains stops being searched.
        start = text.find(searched, cursor) if found and searched and misses < _SPAN_MISSES else -1
        if searched is not None and start >= 0:
            end = start + len(searched)  # exactly the lines (and counters) searched for
            out[chain] = (start, end, 1) if counts else (start, end)
            cursor = end
        else:
            misses += bool(found)
            out[chain] = _join(found)
            if counts:
                kept[chain] = counts
    return _SplitLines(out, text, kept)


_SPAN_MISSES = 8


def _chain_header(table: str, name: str, header: str) -> Chain:
    """A Chain from its `:NAME POLICY [p:b]` (or `-P NAME POLICY` / empty) header."""
    parts = header.split()
    if header.startswith("-P ") and len(parts) > 2:
        return Chain(table, name, parts[2])
    policy = parts[1] if len(parts) > 1 and parts[1] != "-" and header.startswith(":") else None
    counters = None
    if len(parts) > 2:
        found = _COUNTERS.match(parts[2])
        if found:
            counters = (int(found.group(1)), int(found.group(2)))
    return Chain(table, name, policy, counters)


class Ruleset:
    """An indexed `iptables-save` dump: chains known at once, rules parsed on demand.

    Mutable only in its caches (parsed chains, dispatch indexes); every answer is a
    tuple of frozen objects, so callers can share a Ruleset across refreshes.
    """

    def __init__(
        self, fmt: str, tables: dict[str, _Table], warnings: list[str], text: str = ""
    ) -> None:
        self.format = fmt
        self._tables = tables
        self._text = text  # the dump the lines were split from, when they are its own
        self._warnings = tuple(warnings)
        self._parsed: dict[tuple[str, str], tuple[Rule, ...]] = {}
        # Rules parsed one at a time (a trace reads a few rules of a cold chain: the
        # doctor's 31 traces at 10k Services asked 8,799 times for 1,830 rules).
        self._single: dict[tuple[str, str, int], Rule] = {}
        self._chains: dict[str, tuple[Chain, ...]] = {}
        self._dispatch: dict[tuple[str, str], Dispatch] = {}
        self._declared: frozenset[str] | None = None

    def __getstate__(self) -> dict[str, object]:
        # Pickled for `trace --cache`: the chain headers and names (40k each at 10k
        # Services) are cheaper rebuilt on the rare first use than unpickled every time,
        # and the lines are kept as spans of the dump's text where they can be.
        tables = self._tables
        if self._text:
            tables = {}
            for name, t in self._tables.items():
                if isinstance(t.lines, dict):
                    lines = _spans(t.lines, t.counters, self._text)
                    t = replace(t, lines=lines, counters=_SplitCounters(lines))
                tables[name] = t
        return {**self.__dict__, "_tables": tables, "_chains": {}, "_declared": None}

    @property
    def tables(self) -> tuple[str, ...]:
        """Table names in dump order."""
        return tuple(self._tables)

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the dump itself warned about, and what the parser noticed (truncation...)."""
        return self._warnings

    def chains(self, table: str) -> tuple[Chain, ...]:
        """The table's chains in dump order (declared, then those only referenced by -A)."""
        found = self._chains.get(table)
        if found is None:
            index = self._tables.get(table)
            if index is None:
                return ()
            found = tuple(_chain_header(table, n, index.headers.get(n, "")) for n in index.order())
            self._chains[table] = found
        return found

    def chain(self, table: str, name: str) -> Chain | None:
        """One chain's header, or None when the table has no such chain."""
        index = self._tables.get(table)
        if index is None or (name not in index.headers and name not in index.lines):
            return None
        return _chain_header(table, name, index.headers.get(name, ""))

    def has_chain(self, table: str, name: str) -> bool:
        """True when the table declares or uses the chain (cheaper than `chain`)."""
        index = self._tables.get(table)
        return index is not None and (name in index.headers or name in index.lines)

    def chain_names(self, table: str) -> tuple[str, ...]:
        """The table's chain names in `chains` order, without building Chain objects."""
        return tuple(self._chain_names(table))

    def rule_count_of(self, table: str, chain: str) -> int:
        """Number of rules in one chain (0 for an unknown chain), without parsing."""
        index = self._tables.get(table)
        return len(index.lines.get(chain, ())) if index else 0

    def lines_of(self, table: str, chain: str) -> Sequence[str]:
        """The chain's rule lines, unparsed and uncopied (read-only by contract)."""
        index = self._tables.get(table)
        return index.lines.get(chain, ()) if index else ()

    def rule_lines(self, table: str, chain: str) -> tuple[str, ...]:
        """The chain's rule lines, unparsed (cheap)."""
        index = self._tables.get(table)
        return tuple(index.lines.get(chain, ())) if index else ()

    def _declared_names(self) -> frozenset[str]:
        """Every chain name of the dump (jump targets vs extension targets)."""
        if self._declared is None:
            self._declared = frozenset(
                n for t in self._tables.values() for n in (*t.headers, *t.lines)
            )
        return self._declared

    def rules(self, table: str, chain: str) -> tuple[Rule, ...]:
        """The chain's rules, parsed on first access and cached."""
        key = (table, chain)
        found = self._parsed.get(key)
        if found is None:
            index = self._tables.get(table)
            lines = index.lines.get(chain, []) if index else []
            declared = self._declared_names()
            found = tuple(
                parse_rule(table, chain, pos, line, declared) for pos, line in enumerate(lines, 1)
            )
            if index is not None and index.counters.get(chain):
                found = tuple(
                    replace(r, counters=index.counter(chain, r.position) or r.counters)
                    for r in found
                )
            self._parsed[key] = found
        return found

    def rule(self, table: str, chain: str, position: int) -> Rule | None:
        """One rule by its 1-based position (parses only that rule if the chain is cold)."""
        cached = self._parsed.get((table, chain))
        if cached is not None:
            return cached[position - 1] if 1 <= position <= len(cached) else None
        single = self._single.get((table, chain, position))
        if single is None:
            single = self._parse_one(table, chain, position)
            if single is not None:
                self._single[(table, chain, position)] = single
        return single

    def _parse_one(self, table: str, chain: str, position: int) -> Rule | None:
        """One rule of a cold chain, parsed from its line, with its counters."""
        index = self._tables.get(table)
        lines = index.lines.get(chain, []) if index else []
        if not 1 <= position <= len(lines):
            return None
        rule = parse_rule(table, chain, position, lines[position - 1], self._declared_names())
        counted = index.counter(chain, position) if index else None
        return replace(rule, counters=counted) if counted else rule

    def _chain_names(self, table: str) -> list[str]:
        """Chain names of one table in dump order (empty for an unknown table)."""
        index = self._tables.get(table)
        return index.order() if index else []

    def preload(self, table: str | None = None) -> None:
        """Parse every chain of one table (or all) now, in bulk, with the GC paused."""
        tables = [table] if table is not None else list(self._tables)
        was_enabled = gc.isenabled()
        # Bulk parsing allocates millions of small objects that never form cycles;
        # the cyclic GC would rescan them over and over (measured 1.6-2x slower).
        gc.disable()
        try:
            for name in tables:
                for chain in self._chain_names(name):
                    self.rules(name, chain)
        finally:
            if was_enabled:
                gc.enable()

    def all_rules(self, table: str | None = None) -> Iterator[Rule]:
        """Every rule of one table (or all), parsed in bulk first (see `preload`)."""
        tables = [table] if table is not None else list(self._tables)
        self.preload(table)
        for name in tables:
            for chain in self._chain_names(name):
                yield from self.rules(name, chain)

    def rule_count(self, table: str | None = None) -> int:
        """Number of rules in one table, or in all tables."""
        tables = [table] if table is not None else list(self._tables)
        return sum(
            len(v) for t in tables if t in self._tables for v in self._tables[t].lines.values()
        )

    def dispatch(self, table: str, chain: str) -> Dispatch:
        """The (dst, proto, dport) index of a chain, built once from its raw lines."""
        key = (table, chain)
        found = self._dispatch.get(key)
        if found is None:
            found = _build_dispatch(table, chain, self.rule_lines(table, chain))
            self._dispatch[key] = found
        return found


def _build_dispatch(table: str, chain: str, lines: tuple[str, ...]) -> Dispatch:
    """Index rule positions by the exact (dst, proto, dport) they require."""
    by_key: dict[tuple[str, str | None, int | None], list[int]] = {}
    fallback: list[int] = []
    for pos, line in enumerate(lines, 1):
        key = _dispatch_key(line)
        if key is None:
            fallback.append(pos)
        else:
            by_key.setdefault(key, []).append(pos)
    frozen = {k: tuple(v) for k, v in by_key.items()}
    return Dispatch(table, chain, frozen, tuple(fallback), len(lines))


def detect_format(text: str) -> str:
    """Which dump format the text is: iptables-save, -S, -nL, a fragment, error, empty."""
    saw_rule = saw_spec = False
    for raw in text.split("\n", 400)[:400]:
        line = raw.strip()
        if not line or line.startswith("#") or line == "...":
            continue
        if line.startswith("*"):
            return FORMAT_SAVE
        if line.startswith("Chain ") and "(" in line:
            return FORMAT_LISTING
        if line.startswith(("-P ", "-N ")):
            saw_spec = True
        elif line.startswith(("-A ", ":", "[")):
            saw_rule = True
    if saw_spec:
        return FORMAT_SPEC
    if saw_rule:
        return FORMAT_FRAGMENT
    return FORMAT_ERROR if text.strip() else FORMAT_EMPTY


def _guess_table(lines: list[str]) -> str:
    """The table a header-less fragment most likely comes from (by its targets/chains)."""
    blob = "\n".join(lines[:2000])
    if re.search(r"-j (DNAT|SNAT|MASQUERADE|REDIRECT)\b|KUBE-S(VC|EP)-|KUBE-MARK-MASQ", blob):
        return "nat"
    if re.search(r"-j (TPROXY|TOS|TTL|DSCP|CONNMARK)\b|_mangle\b", blob):
        return "mangle"
    if re.search(r"^-A (PREROUTING|POSTROUTING) ", blob, re.M):
        return "nat"
    return "filter"


class _Indexer:
    """The line loop of `parse_ruleset`, with its state in one place."""

    def __init__(self, lines: list[str], fmt: str, default_table: str | None) -> None:
        self.lines = lines
        self.fmt = fmt
        self.default_table = default_table
        self.tables: dict[str, _Table] = {}
        self.warnings: list[str] = []
        self.current: _Table | None = None
        self.committed = True

    def enter(self, name: str) -> _Table:
        """Make `name` the table that following lines belong to."""
        self.current = self.tables.setdefault(name, _Table(name))
        return self.current

    def table_for_headerless(self) -> _Table:
        """The table of lines before any `*table` (fragments, `iptables -S`)."""
        if self.current is None:
            return self.enter(self.default_table or _guess_table(self.lines))
        return self.current

    def run(self) -> None:
        """Index every line."""
        last_name = ""
        last_lines: list[str] = []
        last_counts: list[str | None] = []
        # Whether last_counts is the table's list for last_name: a chain first seen on a
        # plain line has none yet, and a counted line of it must fetch it.
        counts_read = False
        chains: dict[str, list[str]] = {}
        for raw in self.lines:
            if raw[:1] == "[" and self.current is not None:
                # `iptables-save -c`: "[packets:bytes] -A CHAIN ..."; the counters go aside
                # as text (parsed when a rule is), the line as a dump without -c has it.
                counter, sep, rest = raw.partition("] ")
                if sep and rest[:3] == "-A ":
                    raw = rest
                    end = raw.find(" ", 3)
                    name = raw[3:end] if end > 0 else raw[3:].strip()
                    if name != last_name or not counts_read:
                        last_lines = chains.setdefault(name, [])
                        last_name = name
                        last_counts = self.current.writable_counters().setdefault(name, [])
                        counts_read = True
                    if len(last_counts) < len(last_lines):
                        last_counts.extend([None] * (len(last_lines) - len(last_counts)))
                    last_lines.append(raw)
                    last_counts.append(counter[1:])
                    continue
            if raw[:3] == "-A " and self.current is not None:
                # The hot path, 99% of a big dump: kube-proxy writes a chain's rules
                # contiguously, so remembering the last chain skips most dict lookups.
                end = raw.find(" ", 3)
                name = raw[3:end] if end > 0 else raw[3:].strip()
                if name != last_name:
                    last_lines = chains.setdefault(name, [])
                    last_name = name
                    counts_read = False  # plain lines: a counted line fetches the list
                last_lines.append(raw)
                continue
            before = self.current
            self.other(raw.strip())
            if self.current is not before and self.current is not None:
                chains = self.current.writable()
                last_name = ""

    def other(self, line: str) -> None:
        """Every line but the hot `-A` path: headers, table markers, comments, noise."""
        if not line:
            return
        head = line[0]
        if head in "-[":
            rest = line
            if head == "[":
                close = line.find("]")
                rest = line[close + 1 :].lstrip() if close > 0 else line
            parts = rest.split(None, 2)
            if len(parts) >= 2 and parts[0] in ("-A", "--append"):
                self.table_for_headerless().writable().setdefault(parts[1], []).append(line)
            elif len(parts) >= 2 and parts[0] in ("-P", "-N"):
                self.table_for_headerless().headers[parts[1]] = rest
            elif self.fmt != FORMAT_ERROR:
                self.warnings.append(f"unparsed line: {line[:200]}")
        elif head == ":":
            names = line[1:].split(None, 1)
            if names:
                self.table_for_headerless().headers[names[0]] = line
        elif head == "*":
            self.end_table()
            self.enter(line[1:].strip())
            self.committed = False
        elif line == "COMMIT":
            self.committed = True
        elif head == "#":
            if line.startswith("# Warning:"):
                self.warnings.append(line[2:].strip())
        elif line == "...":
            self.warnings.append("dump elided with '...': rules before it are missing")
        elif self.fmt != FORMAT_ERROR:
            self.warnings.append(f"unparsed line: {line[:200]}")

    def end_table(self) -> None:
        """Report a table that ended without COMMIT (a truncated dump)."""
        if not self.committed and self.current is not None:
            self.warnings.append(
                f"table {self.current.name}: no COMMIT (truncated dump); rules kept"
            )


def parse_ruleset(text: str, default_table: str | None = None) -> Ruleset:
    """Index a dump by (table, chain) without parsing any rule yet.

    `default_table` is the table of rules that come without a `*table` line (grep
    fragments, `iptables -t T -S`); guessed from the rules when not given.
    """
    fmt = detect_format(text)
    if fmt == FORMAT_LISTING:
        return parse_listing_ruleset(text, default_table)
    lines = text.replace("\r\n", "\n").split("\n") if "\r" in text else text.split("\n")
    indexer = _Indexer(lines, fmt, default_table)
    if fmt == FORMAT_ERROR:
        first = text.strip().split("\n", 1)[0]
        indexer.warnings.append(f"not an iptables dump: {first[:200]}")
    indexer.run()
    indexer.end_table()
    if fmt in (FORMAT_FRAGMENT, FORMAT_SPEC) and indexer.tables:
        indexer.warnings.append(
            f"{fmt} without *table lines: rules assigned to table {', '.join(indexer.tables)}"
        )
    return Ruleset(fmt, indexer.tables, _dedupe(indexer.warnings), text)


def _dedupe(items: list[str]) -> list[str]:
    """Warnings once each, first occurrence first, at most 50 (a garbage file floods)."""
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    out = list(seen)
    if len(out) > 50:
        out = out[:50] + [f"... and {len(out) - 50} more warnings"]
    return out


def parse_listing_ruleset(text: str, default_table: str | None = None) -> Ruleset:
    """A Ruleset from `iptables -nL` output: rules rebuilt as `-A` lines where possible."""
    listing = parse_listing(text)
    table = default_table or (
        "nat" if re.search(r"\b(DNAT|MASQUERADE|KUBE-SVC-|KUBE-SEP-)", text) else "filter"
    )
    index = _Table(table)
    for chain in listing.chains:
        index.headers[chain.name] = f":{chain.name} {chain.policy or '-'}"
        index.writable()[chain.name] = list(chain.rule_lines)
    warnings = [
        f"{FORMAT_LISTING} listing (not iptables-save): rules rebuilt from columns, "
        f"assigned to table {table}",
        *listing.warnings,
    ]
    return Ruleset(FORMAT_LISTING, {table: index} if index.headers else {}, _dedupe(warnings))
