"""Churn: namespaces and processes come and go while podpath reads; it never crashes or invents.

docs/reliability.md rows 1, 4 and 5. Inside a lab node, short-lived processes each make
a network namespace of their own, and a loop adds and deletes a named one held only by
a bind mount, while podpath snapshots the node 100 times. Every namespace a snapshot
lists must be one that existed: the node's own, or one the churn logged making.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from podpath.lab import Lab

pytestmark = pytest.mark.lab

NODE = "node1"
ROUNDS = 100

# Three loops: processes in fresh netns (held by a process), and a named netns added and
# deleted in a private mount namespace (held by a bind mount). Each logs the inode.
_CHURN = r"""
log={log}
for n in 1 2; do
  while :; do unshare -n sh -c 'stat -Lc %i /proc/self/ns/net >> {log}; sleep 0.01'; done &
done
unshare -m --propagation private sh -c '
  mount -t tmpfs ppchurn /run && mkdir -p /run/netns &&
  while :; do
    ip netns add ppchurn && stat -Lc %i /run/netns/ppchurn >> {log}; ip netns del ppchurn
  done' &
wait
"""

# Snapshots the node ROUNDS times; prints one JSON line per round (or the crash).
_DRIVER = r"""
import json, sys, traceback
from podpath.collectors.snapshot import take_snapshot
from podpath.listing import kinds, listing
from podpath.analysis.index import SnapshotIndex
parts = frozenset({"processes", "netns", "pods", "cni"})
for _ in range(int(sys.argv[1])):
    try:
        snap = take_snapshot(parts=parts)
        index = SnapshotIndex(snap)
        for kind in ("namespaces", "pods", "links", "routes"):
            listing(index, kind)
    except Exception:
        print(json.dumps({"crash": traceback.format_exc()}), flush=True)
        continue
    print(json.dumps({
        "namespaces": [n.inode for n in snap.namespaces if n.type == "net"],
        "netns": [ns.inode for ns in snap.netns],
        "errors": [[g.subject, g.reason] for g in snap.gaps if g.kind == "error"],
    }), flush=True)
"""


def _net_inodes(lab: Lab) -> set[int]:
    """The node's network namespaces now, as lsns lists them."""
    out = lab.exec(NODE, ["lsns", "-J", "-t", "net", "-o", "NS"]).stdout
    return {int(row["ns"]) for row in json.loads(out)["namespaces"]}


def test_no_crash_and_no_invented_namespace_under_churn(
    make_lab: Callable[..., Lab], tmp_path: Path
) -> None:
    """100 snapshots under churn: no exception, no error gap, every listed netns really existed."""
    lab = make_lab(nodes=1, pods=2, services=2)
    log = tmp_path / "made.log"
    log.touch()
    stable = _net_inodes(lab)
    churn = subprocess.Popen(
        lab.enter_argv(NODE, ["sh", "-c", _CHURN.format(log=log)]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        driver = lab.exec(
            NODE, [sys.executable, "-c", _DRIVER, str(ROUNDS)], timeout=280, check=False
        )
        assert churn.poll() is None, "the churn stopped: the test measured nothing"
    finally:
        os.killpg(churn.pid, signal.SIGKILL)
        churn.wait(timeout=30)
    assert driver.returncode == 0, driver.stderr
    rounds = [json.loads(line) for line in driver.stdout.splitlines()]
    assert len(rounds) == ROUNDS
    crashes = [r["crash"] for r in rounds if "crash" in r]
    assert crashes == [], crashes[0] if crashes else ""
    made = {int(line) for line in log.read_text().split()}
    assert len(made) > 20, "the churn made too few namespaces to test anything"
    real = stable | made
    invented = {i for r in rounds for i in r["namespaces"] + r["netns"]} - real
    seen_churn = {i for r in rounds for i in r["namespaces"] + r["netns"]} & made
    assert seen_churn, "no snapshot caught a churned namespace: the test measured nothing"
    assert invented == set()
    assert [e for r in rounds for e in r["errors"]] == []
