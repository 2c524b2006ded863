"""Each containerd's root, state dir and socket from its command line and config.toml, on the
configuration files containerd and MicroK8s ship, and pods found under a moved state dir."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
from runtime_tree import REALWORLD, SB, kind_specs, write, write_containerd_pod

from podpath.collectors.hostroot import HostRoot
from podpath.collectors.runtime.containerd_daemons import (
    ContainerdDirs,
    dirs_of,
    parse_flags,
    running_daemons,
)
from podpath.collectors.runtime.cri_state import sockets
from podpath.collectors.runtime.pods import collect_pods
from podpath.lab import Lab
from podpath.snapshot.model import Gap, Process

CONTAINERD = REALWORLD / "containerd"
# snap sets these for MicroK8s's services (snapcraft's environment for a snap's apps).
SNAP = {"${SNAP_DATA}": "/var/snap/microk8s/current", "${SNAP_COMMON}": "/var/snap/microk8s/common"}
MICROK8S = ContainerdDirs(
    root="/var/snap/microk8s/common/var/lib/containerd",
    state="/var/snap/microk8s/common/run/containerd",
    address="/var/snap/microk8s/common/run/containerd.sock",
)


def _microk8s_argv() -> list[str]:
    """containerd's command line as MicroK8s starts it: its default args file, expanded."""
    text = (CONTAINERD / "microk8s-default-args-containerd").read_text()
    for var, value in SNAP.items():
        text = text.replace(var, value)
    return ["/snap/microk8s/current/bin/containerd", *text.split()]


def test_flags_in_every_form_containerd_takes() -> None:
    """-c X, --config=X, -a X, --root X, --state=X; later flags win; other flags skipped."""
    argv = ["containerd", "-l", "debug", "-c", "/a.toml", "--root=/r", "--state", "/s"]
    argv += ["-a=/x.sock", "--address", "/y.sock"]
    assert parse_flags(argv) == {
        "config": "/a.toml",
        "root": "/r",
        "state": "/s",
        "address": "/y.sock",
    }


def test_containerds_default_config_gives_the_defaults(tmp_path: Path) -> None:
    """`containerd config default` (1.7, from containerd's tests) at the default path."""
    write(
        tmp_path,
        "/etc/containerd/config.toml",
        (CONTAINERD / "containerd-v2.3.4-integration-testdata-default-1.7.toml").read_text(),
    )
    gaps: list[Gap] = []
    with HostRoot(str(tmp_path)) as host:
        assert dirs_of(host, ["/usr/bin/containerd"], gaps) == ContainerdDirs()
    assert gaps == []


def test_a_config_that_moves_root_and_state(tmp_path: Path) -> None:
    """root, state and [grpc] address of the config file named by -c, when no flag says."""
    write(
        tmp_path,
        "/etc/k0s/containerd.toml",
        'version = 2\nroot = "/var/lib/k0s/containerd"\nstate = "/run/k0s/containerd"\n\n'
        '[grpc]\n  address = "/run/k0s/containerd.sock"\n',
    )
    with HostRoot(str(tmp_path)) as host:
        got = dirs_of(host, ["containerd", "--config=/etc/k0s/containerd.toml"], [])
    assert got == ContainerdDirs(
        "/var/lib/k0s/containerd", "/run/k0s/containerd", "/run/k0s/containerd.sock"
    )
    assert got.tasks() == "/run/k0s/containerd/io.containerd.runtime.v2.task/k8s.io"


def test_microk8s_flags_win_over_its_config(tmp_path: Path) -> None:
    """MicroK8s's args: --root/--state/--address over what its containerd.toml says."""
    write(tmp_path, "/var/snap/microk8s/current/args/containerd.toml", 'root = "/elsewhere"\n')
    with HostRoot(str(tmp_path)) as host:
        assert dirs_of(host, _microk8s_argv(), []) == MICROK8S


def test_a_config_that_is_not_toml_is_a_gap(tmp_path: Path) -> None:
    """A broken config named by -c: one gap, the defaults assumed, no exception."""
    write(tmp_path, "/etc/containerd/bad.toml", "root = [unterminated\n")
    gaps: list[Gap] = []
    with HostRoot(str(tmp_path)) as host:
        assert dirs_of(host, ["containerd", "-c", "/etc/containerd/bad.toml"], gaps) == (
            ContainerdDirs()
        )
    assert [g.reason for g in gaps] == [
        "containerd config is not TOML; its default paths are assumed"
    ]


def test_pods_under_microk8s_state_dir(tmp_path: Path) -> None:
    """A pod whose bundle is under MicroK8s's state dir is found through its running containerd."""
    sandbox, _ = kind_specs()
    write_containerd_pod(tmp_path, MICROK8S.tasks(), sandbox)
    daemon = Process(900, 100, 1, "containerd", tuple(_microk8s_argv()), 0, "S", "/", {})
    pause = Process(1322, 6322, 1000, "pause", ("/pause",), 0, "S", "/", {"net": 4026532500})
    with HostRoot(str(tmp_path)) as host:
        assert running_daemons(host, (daemon, pause), []) == [MICROK8S]
        pods, _ = collect_pods(host, (daemon, pause), 4026531840)
    (pod,) = pods
    assert (pod.name, pod.source, pod.sandbox_id, pod.pause_pid) == (
        "coredns-5d78c9869d-79bfv",
        "runtime-state",
        SB,
        1322,
    )


def test_a_socket_linked_to_another_is_asked_once(tmp_path: Path) -> None:
    """/run/k0s/containerd.sock linked to containerd's own socket: one listing, not two."""
    (tmp_path / "run" / "containerd").mkdir(parents=True)
    (tmp_path / "run" / "k0s").mkdir()
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(tmp_path / "run" / "containerd" / "containerd.sock"))
        (tmp_path / "run" / "k0s" / "containerd.sock").symlink_to("../containerd/containerd.sock")
        with HostRoot(str(tmp_path)) as host:
            found = sockets(host)
    assert found == [("containerd", f"{tmp_path}/run/containerd/containerd.sock")]


def test_a_containerd_of_another_mount_namespace_is_not_read(tmp_path: Path) -> None:
    """A kind or lab node's containerd on this machine: its paths are not this tree's; no gap."""
    init = Process(1, 1, 0, "systemd", ("/sbin/init",), 0, "S", "/", {"mnt": 4026531841})
    daemon = Process(
        900,
        100,
        1,
        "containerd",
        ("containerd", "-c", "/etc/node/config.toml"),
        0,
        "S",
        "/",
        {"mnt": 4026532999},
    )
    gaps: list[Gap] = []
    with HostRoot(str(tmp_path)) as host:
        assert running_daemons(host, (init, daemon), gaps, mnt=4026531841) == []
        assert running_daemons(host, (init, daemon), gaps, mnt=4026532999) == [ContainerdDirs()]
    assert [g.subject for g in gaps] == ["/etc/node/config.toml"]


# Run inside a lab node: podpath's process scan, then the daemons it finds, as JSON.
_IN_NODE = """
import dataclasses, json
from podpath.collectors.hostroot import HostRoot
from podpath.collectors.proc.processes import scan_processes_and_fds
from podpath.collectors.runtime.containerd_daemons import running_daemons
with HostRoot("/") as host:
    procs, _, _ = scan_processes_and_fds(host, fds=False)
    init = next(p for p in procs if p.pid == 1)
    gaps = []
    found = running_daemons(host, procs, gaps, init.namespaces.get("mnt"))
print(json.dumps({"daemons": [dataclasses.asdict(d) for d in found], "gaps": len(gaps)}))
"""


@pytest.mark.lab
def test_the_lab_nodes_real_containerd_is_found(shared_lab: Lab) -> None:
    """On a lab node, the real containerd's --config file gives its root, state and socket."""
    from podpath.lab import containerd

    node = shared_lab.nodes[0].name
    out = shared_lab.exec(node, [sys.executable, "-c", _IN_NODE])
    got = json.loads(out.stdout)
    assert got == {
        "daemons": [
            {"root": containerd.ROOT, "state": containerd.STATE, "address": containerd.SOCKET}
        ],
        "gaps": 0,
    }
    listing = shared_lab.exec(
        node, ["ls", "-1", f"{containerd.STATE}/io.containerd.runtime.v2.task/k8s.io"]
    )
    assert {p.sandbox_id for p in shared_lab.pods_on(node)} <= set(listing.stdout.split())
