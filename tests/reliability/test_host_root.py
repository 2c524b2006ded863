"""`--host-root DIR` treats DIR as data: no binary found in it ever runs.

docs/reliability.md row 19. The allow-listed tools used to run chrooted into the host
root, so a script planted at DIR/usr/sbin/iptables-nft-save ran as uid 0 and its
output was accepted as the node's rules. Now only the running system's binaries run;
they read the kernel, so in the node's network namespace (a debug pod's hostNetwork)
they see the node's rules, and from any other namespace they are not run at all.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from podpath.analysis.index import SnapshotIndex
from podpath.collectors.commands import CommandRunner
from podpath.snapshot import codec

if TYPE_CHECKING:
    from podpath.lab import Lab

NODE = "node1"
MARKER = "PLANTED-BY-THE-NODE-ROOT"
TOOLS = ("iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save", "nft", "conntrack")


def _plant(root: Path) -> Path:
    """Scripts named like every allow-listed tool, in every bin dir of a node root that can run them.

    The root has a static busybox as /bin/sh, so a chroot into it runs the scripts.
    Each script appends to ROOT/canary (found relative to itself, chrooted or not);
    that path is returned.
    """
    busybox = shutil.which("busybox")
    assert busybox is not None, "busybox-static is one of ./run's packages"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    (root / "bin" / "sh").symlink_to("busybox")
    for bin_dir in ("usr/sbin", "sbin", "usr/bin", "bin"):
        ups = "/".join(".." for _ in bin_dir.split("/"))
        (root / bin_dir).mkdir(parents=True, exist_ok=True)
        for tool in TOOLS:
            script = root / bin_dir / tool
            script.write_text(
                "#!/bin/sh\n"
                f'echo ran >> "$(dirname "$0")/{ups}/canary"\n'
                f"echo '*filter'\necho ':{MARKER} - [0:0]'\necho COMMIT\n"
            )
            script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return root / "canary"


def test_runner_never_picks_a_binary_inside_the_host_root(tmp_path: Path) -> None:
    """Even first in the search path, the node root's binary is skipped for the system's own."""
    root = tmp_path / "host"
    canary = _plant(root)
    own = tmp_path / "own-bin"
    own.mkdir()
    (own / "iptables-nft-save").write_text("#!/bin/sh\necho ours\n")
    (own / "iptables-nft-save").chmod(0o755)
    runner = CommandRunner(host_root=root, bin_dirs=(root / "usr" / "sbin", own))
    result = runner.run("iptables-nft-save", ())
    assert result.ok, result.gap
    assert result.stdout == "ours\n"
    assert result.argv[0] == str(own / "iptables-nft-save")
    assert not canary.exists()


def test_only_a_binary_inside_the_host_root_is_a_missing_tool(tmp_path: Path) -> None:
    """When the node root has the tool and the system does not, nothing runs: a missing-tool gap."""
    root = tmp_path / "host"
    canary = _plant(root)
    runner = CommandRunner(host_root=root, bin_dirs=(root / "usr" / "sbin", root / "bin"))
    result = runner.run("conntrack", ("-L", "-o", "extended"))
    assert result.gap is not None and result.gap.kind == "missing-tool"
    assert not canary.exists()


def _debug_pod_argv(lab: Lab, root: Path, out: Path, *, share_netns: bool) -> list[str]:
    """podpath in the node, with the node's /proc bind-mounted at ROOT/proc (a private mount ns).

    With `share_netns`, podpath runs in the node's network namespace, as a hostNetwork
    debug pod does; without, in a fresh empty one of its own.
    """
    script = (
        f"mount --bind /proc {root}/proc && exec {sys.executable} -m podpath "
        f"snapshot --host-root {root} -o {out}"
    )
    inner = ["unshare", "-m", "--propagation", "private", "--", "sh", "-c", script]
    return lab.enter_argv(NODE, inner if share_netns else ["unshare", "-n", "--", *inner])


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    from podpath.lab.node import node_env

    return subprocess.run(
        argv, env=node_env(), cwd="/", capture_output=True, text=True, timeout=180, check=False
    )


@pytest.mark.lab
def test_planted_tools_never_run_and_the_node_rules_are_read(
    shared_lab: Lab, tmp_path: Path
) -> None:
    """A debug pod's view: planted tools never run; podpath's own read the node's real rules."""
    root, out = tmp_path / "host", tmp_path / "node.json"
    canary = _plant(root)
    (root / "proc").mkdir()
    done = _run(_debug_pod_argv(shared_lab, root, out, share_netns=True))
    assert done.returncode == 0, done.stderr
    assert not canary.exists()
    text = out.read_text()
    assert MARKER not in text
    snapshot = codec.loads(text)
    for dump in snapshot.iptables:
        assert not dump.command[0].startswith(str(root)), dump.command
    # The node's own iptables-save, run in the node, lists the same filter chains.
    real = shared_lab.exec(NODE, ["iptables-nft-save"]).stdout
    block = real.split("*filter\n", 1)[1].split("COMMIT", 1)[0]
    chains = {line[1:].split()[0] for line in block.splitlines() if line.startswith(":")}
    ruleset = SnapshotIndex(snapshot).ruleset("ipv4", "nft")
    assert ruleset is not None
    assert {c.name for c in ruleset.chains("filter")} == chains
    assert not [g for g in snapshot.gaps if "not the node's" in g.reason]


@pytest.mark.lab
def test_tools_are_not_run_from_another_network_namespace(shared_lab: Lab, tmp_path: Path) -> None:
    """In a network namespace that is not the node's, the tools would read the wrong rules: refused."""
    root, out = tmp_path / "host", tmp_path / "node.json"
    canary = _plant(root)
    (root / "proc").mkdir()
    done = _run(_debug_pod_argv(shared_lab, root, out, share_netns=False))
    assert done.returncode == 0, done.stderr
    assert not canary.exists()
    snapshot = codec.loads(out.read_text())
    assert snapshot.iptables == () and snapshot.conntrack is None
    refused = [g for g in snapshot.gaps if "not the node's" in g.reason]
    assert {g.subject.split()[0] for g in refused} >= {"iptables-nft-save", "conntrack"}
    assert "not the node's" in done.stderr
