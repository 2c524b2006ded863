"""Turn real `ip route`, `ip rule`, `ip addr`, `arp -a` and `tc filter show` text into snapshot objects.

The real-world fixtures are what people pasted from real nodes: the text form, with
prompts, `...` elisions and the authors' `<----` annotations. This reads just enough
of each line to rebuild the model objects a collector would have produced, so a trace
can run on a real node's routes and rules.
"""

from __future__ import annotations

import re
from pathlib import Path

from podpath.snapshot.model import Address, BpfProgram, Neighbour, Route, Rule, TcFilter

REALWORLD = Path(__file__).resolve().parents[1] / "fixtures" / "realworld"
_ANNOTATION = re.compile(r"\s*<[-<]+.*$|\s*<<<.*$")
TABLES = {"main": 254, "local": 255, "default": 253}


def lines(path: Path) -> list[str]:
    """The output lines of a pasted dump: no prompt, no elision, no author's annotation."""
    out = []
    for raw in path.read_text().splitlines():
        line = _ANNOTATION.sub("", raw).rstrip()
        stripped = line.strip()
        if not stripped or stripped in ("...", "[...]") or stripped.startswith(("#", "/ #")):
            continue
        out.append(line)
    return out


def _prefix(dst: str) -> str:
    if dst == "default":
        return "0.0.0.0/0"
    return dst if "/" in dst else f"{dst}/32"


def routes(
    path: Path,
    netns: int,
    devs: dict[str, int],
    table: int = 254,
    names: dict[str, int] | None = None,
) -> list[Route]:
    """`ip route show [table T]` lines as Route objects (devices by name -> ifindex)."""
    out = []
    for line in lines(path):
        words = line.split()
        rtype = "unicast"
        if words[0] in ("local", "blackhole", "unreachable", "prohibit", "broadcast"):
            rtype = words.pop(0)
        # Words come in pairs after the destination: via X, dev Y, proto Z, scope S, src A.
        pairs = dict(zip(words[1::2], words[2::2], strict=False))
        tbl = table
        if "table" in pairs:
            tbl = (names or {}).get(pairs["table"], TABLES.get(pairs["table"], 0)) or int(
                pairs["table"]
            )
        out.append(
            Route(
                netns,
                4,
                tbl,
                rtype,
                _prefix(words[0]),
                gateway=pairs.get("via"),
                dev=devs.get(pairs.get("dev", ""), None),
                prefsrc=pairs.get("src"),
                scope=pairs.get("scope", "global" if "via" in pairs else "link"),
                protocol=pairs.get("proto", "boot"),
                flags=("onlink",) if "onlink" in words else (),
            )
        )
    return out


def rules(path: Path, netns: int, names: dict[str, int]) -> list[Rule]:
    """`ip rule list` lines as Rule objects (table names resolved through `names`)."""
    out = []
    for line in lines(path):
        prio, _, rest = line.partition(":")
        words = rest.split()
        invert = words[0] == "not"
        if invert:
            words = words[1:]
        pairs = dict(zip(words[0::2], words[1::2], strict=False))
        table_word = pairs.get("lookup", "main")
        table = names.get(table_word, TABLES.get(table_word, 0)) or int(table_word)
        src, dst = pairs.get("from", "all"), pairs.get("to")
        out.append(
            Rule(
                netns,
                4,
                int(prio),
                "lookup",
                table,
                src=None if src == "all" else _prefix(src),
                dst=_prefix(dst) if dst else None,
                invert=invert,
            )
        )
    return out


def addresses(path: Path, ifname: str) -> tuple[str | None, tuple[Address, ...]]:
    """The MAC and addresses of one interface from `ip addr show`."""
    mac: str | None = None
    found: list[Address] = []
    current = None
    for line in lines(path):
        head = re.match(r"^\d+: ([^:@]+)", line)
        if head:
            current = head.group(1)
            continue
        if current != ifname:
            continue
        words = line.split()
        if words[0] == "link/ether":
            mac = words[1]
        elif words[0] in ("inet", "inet6"):
            addr, plen = words[1].split("/")
            scope = words[words.index("scope") + 1] if "scope" in words else "global"
            found.append(Address(4 if words[0] == "inet" else 6, addr, int(plen), scope))
    return mac, tuple(found)


def arp_entries(path: Path, netns: int, devs: dict[str, int]) -> list[Neighbour]:
    """`arp -a` lines as Neighbour objects (PERM is the kernel's PERMANENT)."""
    out = []
    for line in lines(path):
        m = re.match(r"^\S+ \(([\d.]+)\) at (\S+) \[ether\]( PERM)? on (\S+)", line)
        if m:
            state = ("PERMANENT",) if m.group(3) else ("REACHABLE",)
            out.append(Neighbour(netns, 4, devs[m.group(4)], m.group(1), m.group(2), state))
    return out


def tc_filters(path: Path, ifindex: int, hook: str) -> list[TcFilter]:
    """`tc filter show dev X ingress|egress` text (line continuations joined) as TcFilter objects."""
    text = "\n".join(lines(path)).replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        m = re.match(
            r"^filter protocol (\S+) pref (\d+) (\S+) chain (\d+) handle (\S+) (\S+)(.*)$", line
        )
        if not m:
            continue
        rest = m.group(7).split()
        prog_id = int(rest[rest.index("id") + 1]) if "id" in rest else None
        tag = rest[rest.index("tag") + 1] if "tag" in rest else None
        out.append(
            TcFilter(
                ifindex,
                hook,
                m.group(3),
                m.group(1),
                int(m.group(2)),
                int(m.group(4)),
                m.group(5),
                "direct-action" in rest,
                BpfProgram(prog_id, None, tag, m.group(6)),
            )
        )
    return out
