"""A gap says "needs CAP_X" only when CAP_X is missing; otherwise why it was refused.

As root holding CAP_SYS_PTRACE, an unreadable PID 1 said "(needs CAP_SYS_PTRACE)"; as
nobody a CRI socket refused with EACCES was "not read (no answer)"; "14 processes:
permission (needs ...)" lacked "denied"; `ls gaps` said the capability twice and
printed the list again on stderr.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from podpath.collectors.proc.denials import checked_gaps, own_facts
from podpath.collectors.runtime.cri_state import LISTING_MODULE, _unread_socket_gap
from podpath.snapshot import codec
from podpath.snapshot.model import SCHEMA_VERSION, Gap, NodeFacts, Snapshot

PTRACE = Gap("/proc/*/ns", "3 processes: permission denied", "permission", "CAP_SYS_PTRACE")
INITIAL = "         0          0 4294967295\n"


def test_a_missing_capability_is_named() -> None:
    """Not held: the gap keeps its capability (the CLI prints "(needs CAP_SYS_PTRACE)")."""
    assert checked_gaps((PTRACE,), ("CAP_NET_ADMIN",), INITIAL, "") == (PTRACE,)


@pytest.mark.parametrize(
    ("uid_map", "lsm", "why"),
    [
        (INITIAL, "", "the kernel protects it"),
        (
            INITIAL,
            "lockdown,capability,yama,apparmor",
            "the apparmor security policy may refuse it",
        ),
        ("0 1000 1\n", "", "podpath runs in a user namespace of its own"),
        ("", "", "a protected process, a security module or another user namespace"),
    ],
)
def test_a_held_capability_is_not_asked_for(uid_map: str, lsm: str, why: str) -> None:
    """Held: no capability on the gap, and the reason says it was refused anyway, and why."""
    old = Gap("x", "permission denied (needs CAP_SYS_PTRACE)", "permission", "CAP_SYS_PTRACE")
    (gap,) = checked_gaps((old,), ("CAP_SYS_PTRACE",), uid_map, lsm)
    assert gap.capability is None and gap.kind == "permission"
    assert gap.reason.startswith(
        "permission denied; refused although podpath holds CAP_SYS_PTRACE: "
    )
    assert why in gap.reason and "needs" not in gap.reason


def test_own_facts_are_this_processs() -> None:
    """uid_map is /proc/self/uid_map as read here."""
    assert own_facts()[0] == Path("/proc/self/uid_map").read_text()


@pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare is missing")
def test_in_a_user_namespace_of_its_own_the_gap_says_so() -> None:
    """`unshare --user --map-root-user podpath ls namespaces`: all capabilities held (in that
    namespace) and other users' processes unreadable; no "needs CAP_SYS_PTRACE"."""
    out = subprocess.run(
        ["unshare", "--user", "--map-root-user", sys.executable, "-m", "podpath", "snapshot"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    snapshot = json.loads(out.stdout)
    assert "CAP_SYS_PTRACE" in snapshot["node"]["capabilities"]
    denied = [g for g in snapshot["gaps"] if g["kind"] == "permission"]
    assert denied, "the host's processes should be unreadable from a user namespace"
    for gap in denied:
        assert gap["capability"] is None, gap
        assert "podpath runs in a user namespace of its own" in gap["reason"], gap
    assert "needs CAP_" not in out.stderr


NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="util-linux setpriv is missing")
def test_a_cri_socket_refused_is_permission_denied(tmp_path: Path) -> None:
    """The listing of a socket nobody may connect to: "permission denied", not "no answer"."""
    import os
    import socket

    import podpath

    path = tmp_path / "containerd.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen()
        path.chmod(0o600)
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(podpath.__file__)))
        out = subprocess.run(
            [*NOBODY, sys.executable, "-m", LISTING_MODULE, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PYTHONPATH": package_parent, "PATH": os.environ["PATH"]},
            check=False,
        )
    assert out.returncode != 0 and "Permission denied" in out.stderr, out.stderr
    gap = _unread_socket_gap(str(path), out.stderr, None)
    assert (gap.kind, gap.capability) == ("permission", "CAP_DAC_OVERRIDE")
    assert gap.reason == "permission denied; pods come from the runtime's files"


def test_a_listing_that_did_not_run_says_why() -> None:
    """No stderr at all: the runner's reason, not "no answer"."""
    why = Gap("python -m x", "cannot execute: [Errno 2] No such file", "error")
    gap = _unread_socket_gap("/run/x.sock", "", why)
    assert (
        gap.reason
        == "not read (cannot execute: [Errno 2] No such file); pods come from the runtime's files"
    )


def test_ls_gaps_says_each_capability_once(tmp_path: Path) -> None:
    """`ls gaps`: the capability in its column only, and no second copy of the list on stderr."""
    snapshot = Snapshot(
        SCHEMA_VERSION,
        0.0,
        NodeFacts("n", "k"),
        1,
        gaps=(
            Gap(
                "/proc/*/fd",
                "3 processes: permission denied (needs CAP_SYS_PTRACE)",
                "permission",
                "CAP_SYS_PTRACE",
            ),
        ),
    )
    path = tmp_path / "gaps.json"
    path.write_text(codec.dumps(snapshot))
    out = subprocess.run(
        [sys.executable, "-m", "podpath", "ls", "gaps", "--snapshot", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.splitlines()[1].split() == [
        "permission",
        "/proc/*/fd",
        "3",
        "processes:",
        "permission",
        "denied",
        "CAP_SYS_PTRACE",
    ]
