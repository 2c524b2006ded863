"""`podpath tui --snapshot DIR/*.json`: one node shown, traces crossing into the others."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources

import pytest

from podpath.cli import CliError
from podpath.cli.tui import files_source
from podpath.snapshot.codec import load_path
from podpath.tui.app import create_app
from podpath.tui.screens.trace import TraceScreen

NODE1 = str(resources.files("podpath").joinpath("data", "demo-snapshot.json"))
NODE2 = str(resources.files("podpath").joinpath("data", "demo-snapshot-node2.json"))


def test_first_snapshot_is_shown_the_others_are_peers() -> None:
    """The first file is shown; the title names the peers' nodes."""
    source = files_source([NODE1, NODE2])
    assert source.initial is not None and source.initial.node.hostname == "node1"
    assert [p.node.hostname for p in source.peers] == ["node2"]
    assert "(+1 on :map and in traces: node2)" in source.title(source.initial)


def test_node_picks_the_snapshot_shown() -> None:
    """--node node2 shows node2, with node1 as its peer; an unknown node is one sentence."""
    source = files_source([NODE1, NODE2], "node2")
    assert source.initial is not None and source.initial.node.hostname == "node2"
    assert [p.node.hostname for p in source.peers] == ["node1"]
    with pytest.raises(CliError, match="no snapshot of that node .nodes: node1, node2."):
        files_source([NODE1, NODE2], "node9")


async def test_tui_trace_crosses_into_the_other_node() -> None:
    """In the TUI, a trace from a node1 pod to a node2 pod is delivered on node2."""
    target = load_path(NODE2).pods[0]
    client = load_path(NODE1).pods[0]
    app = create_app(files_source([NODE1, NODE2]))
    async with app.run_test(size=(160, 48)) as pilot:
        app.start_trace(f"{client.namespace}/{client.name}", f"{target.ips[0]}:80")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TraceScreen) and screen.trace is not None
        (branch,) = screen.trace.branches
        assert branch.verdict == "delivered"
        assert {hop.node for hop in branch.hops} == {"node1", "node2"}


def test_cli_refuses_node_without_snapshots() -> None:
    """`podpath tui --node X` without snapshot files: exit 2, one sentence."""
    done = subprocess.run(
        [sys.executable, "-m", "podpath", "tui", "--node", "node1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == "podpath: --node picks one of several --snapshot files\n"
