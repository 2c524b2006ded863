"""Hostile strings, and a snapshot that carries them in every kind of source.

Each value is text that anyone who names a pod, a process, an interface or a rule
controls, and that would do something if it reached a terminal or Textual's markup
parser: markup and click actions, CSI, OSC (title, clipboard, hyperlink), C1 controls,
bidi overrides, undecodable bytes, NUL/DEL/newlines, shell syntax, a 100 KB value and
backslashes that spell escapes.
"""

from __future__ import annotations

import dataclasses
import json
import re

from podpath.snapshot.model import (
    Address,
    CniConfig,
    Container,
    Gap,
    IpamAllocation,
    Link,
    Namespace,
    NftDump,
    Pod,
    Process,
    Snapshot,
)

CORPUS: dict[str, str] = {
    "click": "[@click=app.quit]pw[/]",
    "link": "[link=https://evil.example]pw[/link]",
    "bold": "[b]pw",
    "unbalanced": "pw[/]",
    "csi": "pw\x1b[2J\x1b[31m",
    "osc-title": "\x1b]2;PWNED\x07pw",
    "osc-clipboard": "\x1b]52;c;cHduZWQ=\x07pw",
    "osc-hyperlink": "\x1b]8;;https://evil.example\x1b\\pw\x1b]8;;\x1b\\",
    "c1": "pw\x9b2J\x9d0;x\x9c",
    "bidi": "pw\u202eexe.txt",
    "isolate": "\u2066pw\u2069",
    "undecodable": b"pw\xff\xfe".decode("utf-8", "surrogateescape"),
    "nul-del": "pw\x00\x7f",
    "newlines": "pw\nsecond\rthird\tx",
    "shell": "$(touch /tmp/podpath-hostile-PWN);pw",
    "dash": "-pw --help",
    "long": "pw" + "x" * 100_000,
    # Backslashes that spell escapes: shown doubled, never alike to the controls they spell.
    "backslash": "pw\\x1b[2J\\u202e\\",
}

# What must never reach a terminal: C0 controls but newline, DEL, C1, bidi controls,
# line/paragraph separators and lone surrogates (tests/tui/test_text.py's set).
UNSAFE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff]"
)

# Where a value can sit in an iptables-save line without changing the line's shape:
# the kernel's comment match takes any bytes but NUL; iptables-save quotes the comment
# and escapes its quotes; a line ends at the newline.
_COMMENT_SAFE = str.maketrans({'"': "'", "\n": " ", "\r": " ", "\x00": " "})


def _iptables(snapshot: Snapshot) -> Snapshot:
    dump = snapshot.iptables[0]
    rules = "".join(
        f'-A INPUT -m comment --comment "{value[:200].translate(_COMMENT_SAFE)}" -j ACCEPT\n'
        for value in CORPUS.values()
    )
    chain = ':PW\x1b[2J - [0:0]\n-A PW\x1b[2J -m comment --comment "\x1b]2;PWNED\x07" -j RETURN\n'
    text = dump.text.replace("*filter\n", "*filter\n" + chain + rules, 1)
    return dataclasses.replace(snapshot, iptables=(dataclasses.replace(dump, text=text),))


def _nft() -> NftDump:
    items: list[object] = [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}]
    for i, value in enumerate(CORPUS.values()):
        table = f"pw{i}{value[:40]}"
        items.append({"table": {"family": "inet", "name": table, "handle": i + 1}})
        items.append(
            {
                "chain": {
                    "family": "inet",
                    "table": table,
                    "name": value[:60],
                    "handle": 1,
                    "type": "filter",
                    "hook": "input",
                    "prio": 0,
                    "policy": "accept",
                }
            }
        )
        items.append(
            {
                "rule": {
                    "family": "inet",
                    "table": table,
                    "chain": value[:60],
                    "handle": 2,
                    "comment": value[:200],
                    "expr": [{"accept": None}],
                }
            }
        )
    return NftDump(json.dumps({"nftables": items}))


def hostile_snapshot(base: Snapshot) -> Snapshot:
    """`base` with every corpus value in processes, namespaces, pods, containers, links,
    iptables comments and chains, nft tables/chains/comments, conntrack, CNI and gaps."""
    values = list(CORPUS.values())
    root = base.root_netns
    processes = tuple(
        Process(90000 + i, 1000 + i, 1, v[:15], (v, "--opt=[/etc]", v), 0, "S", v)
        for i, v in enumerate(values)
    )
    namespaces = tuple(
        Namespace("uts", 4026599000 + i, 4, 1, 90000 + i, 0, "root", v)
        for i, v in enumerate(values)
    )
    pods = tuple(
        Pod(
            namespace="hostile",
            name=f"pw{i}-{v}",
            uid=v,
            sandbox_id=f"{i:064x}",
            pause_pid=90000 + i,
            containers=(
                Container(v, f"{i:064x}", "container", (90000 + i,), v, (v,), (f"X={v}",)),
            ),
        )
        for i, v in enumerate(values)
    )
    links = tuple(
        Link(
            root,
            900 + i,
            v[:64],
            "veth",
            "02:00:00:00:00:01",
            1500,
            v[:20],
            addresses=(Address(4, f"10.99.0.{i + 1}", 32, label=v[:30]),),
        )
        for i, v in enumerate(values)
    )
    netns = tuple(
        dataclasses.replace(ns, links=ns.links + links) if ns.inode == root else ns
        for ns in base.netns
    )
    conntrack = base.conntrack
    if conntrack is not None:
        extra = "".join(f"ipv4     2 tcp      6 100 {v[:300]}\n" for v in values)
        conntrack = dataclasses.replace(conntrack, text=conntrack.text + extra)
    cni = dataclasses.replace(
        base.cni,
        configs=base.cni.configs
        + tuple(
            CniConfig(f"/etc/cni/net.d/{i}-pw.conflist", json.dumps({"name": v}), v, v, (v,), v)
            for i, v in enumerate(values)
        ),
        allocations=base.cni.allocations
        + tuple(
            IpamAllocation(v[:40], f"10.98.0.{i + 1}", v, v[:30], True)
            for i, v in enumerate(values)
        ),
    )
    snapshot = dataclasses.replace(
        base,
        node=dataclasses.replace(base.node, hostname="node1\x1b]2;PWNED\x07", kernel=values[0]),
        processes=base.processes + processes,
        namespaces=base.namespaces + namespaces,
        pods=base.pods + pods,
        netns=netns,
        nft=_nft(),
        conntrack=conntrack,
        cni=cni,
        gaps=base.gaps + tuple(Gap(v, v, "error", v[:20]) for v in values),
    )
    return _iptables(snapshot)
