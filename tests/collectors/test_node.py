"""Node facts equal what sysctl and setpriv report."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from podpath.collectors.hostroot import HostRoot
from podpath.collectors.proc.node_facts import collect_node, decode_capabilities


def test_decode_capabilities() -> None:
    """CapEff bits map to names; unknown high bits stay visible."""
    assert decode_capabilities("0000000000003000") == ("CAP_NET_ADMIN", "CAP_NET_RAW")
    assert decode_capabilities("0") == ()
    assert decode_capabilities(hex(1 << 60)) == ("CAP_60",)


def test_facts_equal_sysctl() -> None:
    """ip_forward, rp_filter and the kernel release match sysctl/uname."""
    if shutil.which("sysctl") is None:
        pytest.skip("sysctl missing")

    def sysctl(key: str) -> str:
        return subprocess.run(
            ["sysctl", "-n", "--", key], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    with HostRoot("/") as host:
        facts, _ = collect_node(host)
    assert facts.kernel == os.uname().release
    assert facts.hostname == os.uname().nodename
    assert facts.ip_forward == int(sysctl("net.ipv4.ip_forward"))
    assert facts.rp_filter["all"] == int(sysctl("net.ipv4.conf.all.rp_filter"))
    assert set(facts.rp_filter) >= {"all", "default", "lo"}
    assert facts.euid == os.geteuid()


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root+setpriv"
)
def test_capabilities_follow_setpriv() -> None:
    """Under a bounding set of only NET_ADMIN, the collector reports exactly that."""
    script = (
        "from podpath.collectors.hostroot import HostRoot\n"
        "from podpath.collectors.proc.node_facts import collect_node\n"
        "print(','.join(collect_node(HostRoot('/'))[0].capabilities))\n"
    )
    done = subprocess.run(
        [
            "setpriv",
            "--bounding-set=-all,+net_admin",
            "--inh-caps=-all",
            "--",
            sys.executable,
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout.strip() == "CAP_NET_ADMIN"
