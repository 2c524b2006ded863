"""Read-only: the node is byte-identical around every command and a TUI session.

docs/reliability.md row 8. Some "read" commands write (legacy save with -t creates its
table, ipvsadm loads a module, IPRoute(netns=) creates a namespace). Inside a lab node,
every `podpath ls` kind, `snapshot`, a live `trace` and a headless TUI session that
refreshes and visits each screen must leave tables, rules, links, routes, rules,
sysctls, named netns, mounts and modules as they were.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import pytest

from podpath.listing import kinds

if TYPE_CHECKING:
    from pathlib import Path

    from podpath.lab import Lab

pytestmark = pytest.mark.lab

NODE = "node1"

# What a reader must never change; nothing here moves by itself in a quiet node
# (`nft -s` leaves out counters, `ip` without -s leaves out statistics).
_PROBES = (
    ["cat", "/proc/net/ip_tables_names"],
    ["cat", "/proc/net/ip6_tables_names"],
    ["nft", "-s", "list", "ruleset"],
    ["ip", "-o", "link"],
    ["ip", "-o", "address"],
    ["ip", "route", "show", "table", "all"],
    ["ip", "rule"],
    ["ip", "netns", "list"],
    ["ls", "-la", "/run/netns"],
    ["cat", "/proc/1/mountinfo"],
    ["sh", "-c", "cat /proc/modules 2>/dev/null || true"],
    ["sh", "-c", "grep -r . /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/*/rp_filter"],
)

# A headless session of the live TUI: every screen by its `:` name, `r` on each.
_TUI_SESSION = r"""
import asyncio
from podpath.cli.tui import build_app, live_source

async def session() -> None:
    app = build_app(live_source("/"), live=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await app.workers.wait_for_complete()
        for name in ("pods", "svc", "ns", "links", "ipt", "ct", "cni", "problems"):
            await pilot.press("escape", "escape", "colon", *name, "enter")
            await pilot.press("r")
            await app.workers.wait_for_complete()
            await pilot.pause()
        assert app.is_running
    print("session done")

asyncio.run(session())
"""


def _state(lab: Lab) -> list[str]:
    return [lab.exec(NODE, argv, check=False).stdout for argv in _PROBES]


def _settled(lab: Lab) -> list[str]:
    """The state once it stops moving by itself (IPv6 DAD, routes of a fresh node)."""
    state = _state(lab)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(2)
        now = _state(lab)
        if now == state:
            return state
        state = now
    raise AssertionError(f"the node kept changing by itself: {_diff(state, _state(lab))}")


def _diff(before: list[str], after: list[str]) -> list[str]:
    return [" ".join(p) for p, b, a in zip(_PROBES, before, after, strict=True) if b != a]


def test_every_command_and_a_tui_session_change_nothing(shared_lab: Lab, tmp_path: Path) -> None:
    """Each command run in the node leaves every probe byte-identical."""
    pod = shared_lab.pods_on(NODE)[0].ref
    podpath = [sys.executable, "-m", "podpath"]
    commands = [
        *([*podpath, "ls", kind] for kind in kinds()),
        [*podpath, "snapshot", "-o", str(tmp_path / "node.json")],
        [*podpath, "trace", "--from", pod, "--to", "default/web:80", "--reply", "--explain"],
        [*podpath, "trace", "--from", pod, "--to", "default/web:80", "--conntrack", "--json"],
        [*podpath, "doctor"],
        [sys.executable, "-c", _TUI_SESSION],
    ]
    before = _settled(shared_lab)
    assert before[2], "nft printed no ruleset: the probe would see nothing"
    for argv in commands:
        done = shared_lab.exec(NODE, argv, timeout=240, check=False)
        assert done.returncode == 0, (argv, done.stderr)
        assert _diff(before, _state(shared_lab)) == [], argv
    assert (tmp_path / "node.json").stat().st_size > 0
