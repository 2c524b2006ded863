"""Hostile names made in a lab node (argv, ifname, rule comment) reach a real pty literally."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from tmux_pane import tmux, wait_for

from podpath.cli.tui import tui_in_node_argv

if TYPE_CHECKING:
    from podpath.lab import Lab

pytestmark = pytest.mark.lab

# An OSC title change, a screen clear and an action link: each would do something if
# it reached the terminal or Textual's markup parser.
ARGV0 = "\x1b]2;PWNED\x07[@click=app.quit]pwarg\x1b[2J"
ARGV0_SHOWN = "\\x1b]2;PWNED\\x07[@click=app.quit]pwarg\\x1b[2J"
# Linux ifnames: <= 15 bytes, no '/', ':' or whitespace; ESC and brackets are allowed.
IFNAME = "[b]pwif\x1b[2J"
IFNAME_SHOWN = "[b]pwif\\x1b[2J"
# Short enough for the COMMENT column (24 cells) once its ESC is shown as \x1b.
COMMENT = "[@click=app.quit]\x1b[J"
COMMENT_SHOWN = "[@click=app.quit]\\x1b[J"

# Forks a child that takes a UTS namespace of its own (so lsns, and the Namespaces
# screen, name it as that namespace's process) and execs sleep under a hostile argv[0].
SPAWN = r"""
import ctypes, os, sys
pid = os.fork()
if pid:
    print(pid)
    sys.exit(0)
os.setsid()
fd = os.open("/dev/null", os.O_RDWR)
for n in (0, 1, 2):
    os.dup2(fd, n)
if ctypes.CDLL(None, use_errno=True).unshare(0x04000000) != 0:
    os._exit(1)
os.execv("/bin/sleep", [sys.argv[1], "300"])
"""


def _keys(session: str, *keys: str) -> None:
    tmux("send-keys", "-t", session, *keys)


def _filter_and_open(session: str, needle: str) -> None:
    """`/` needle, then enter to keep the filter and enter to open the first match."""
    time.sleep(0.5)  # let the new level settle before the filter key
    _keys(session, "/")
    wait_for(session, "filter (substring)")
    _keys(session, "-l", needle)
    wait_for(session, "match")
    _keys(session, "Enter")
    time.sleep(0.5)
    _keys(session, "Enter")


def _jump(session: str, name: str) -> None:
    _keys(session, ":")
    wait_for(session, "jump to")
    _keys(session, name, "Enter")


def _assert_untouched(session: str) -> None:
    """The app still runs and the pane title was never set by node data."""
    assert "PWNED" not in tmux("display-message", "-p", "-t", session, "#{pane_title}")
    alive = tmux("display-message", "-p", "-t", session, "#{pane_dead}").strip()
    assert alive == "0"


def test_hostile_names_made_in_a_lab_node_show_literally_on_a_pty(
    make_lab: Callable[..., Lab],
) -> None:
    """A hostile process argv, interface name and iptables comment are shown escaped; nothing fires."""
    lab = make_lab(nodes=1, pods=1, services=2)
    node = "node1"
    spawned = lab.exec(node, [sys.executable, "-c", SPAWN, ARGV0]).stdout.strip()
    pid = int(spawned)
    # veth, not dummy: the dummy module may not be loadable where the lab runs.
    lab.exec(node, ["ip", "link", "add", IFNAME, "type", "veth", "peer", "name", "pwpeer0"])
    lab.exec(
        node, ["iptables", "-A", "INPUT", "-m", "comment", "--comment", COMMENT, "-j", "ACCEPT"]
    )
    version = lab.exec(node, ["iptables", "-V"]).stdout
    backend = "nft/ipv4" if "nf_tables" in version else "legacy/ipv4"
    argv = lab.enter_argv(node, tui_in_node_argv(node))
    session = f"pptui-hostile-{uuid.uuid4().hex[:8]}"
    tmux("new-session", "-d", "-s", session, "-x", "200", "-y", "50", *argv)
    tmux("set-option", "-t", session, "remain-on-exit", "on")
    try:
        wait_for(session, "VIEW")
        _jump(session, "ns")
        # The COMMAND column is capped in width: the row shows the start of the argv.
        screen = wait_for(session, "pwarg")
        assert ARGV0_SHOWN[:40] in screen
        _assert_untouched(session)
        _jump(session, "links")
        screen = wait_for(session, "pwif")
        assert IFNAME_SHOWN in screen
        _assert_untouched(session)
        _jump(session, "ipt")
        wait_for(session, "Netfilter")
        wait_for(session, backend)
        _filter_and_open(session, backend)
        wait_for(session, "filter")
        _filter_and_open(session, "filter")
        wait_for(session, "INPUT")
        _filter_and_open(session, "INPUT")
        screen = wait_for(session, "[@click=app.quit]")
        assert COMMENT_SHOWN in screen
        _assert_untouched(session)
        _keys(session, "q")
        time.sleep(1)
    finally:
        subprocess.run(
            ["tmux", "kill-session", "-t", session], capture_output=True, timeout=20, check=False
        )
        lab.exec(node, ["kill", "--", str(pid)], check=False)
