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


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("conntrack") is None or shutil.which("unshare") is None,
    reason="needs root, conntrack and unshare",
)
def test_conntrack_fill_equals_conntrack_count() -> None:
    """In a private netns with 3 entries inserted, the count is conntrack -C's and the
    maximum is the kernel's nf_conntrack_max."""
    if not os.path.exists("/proc/sys/net/netfilter/nf_conntrack_max"):
        pytest.fail("nf_conntrack is not loaded here: the conntrack tests need it")
    insert = [
        f"conntrack -I -p udp -s 10.9.0.{i} -d 10.9.1.1 --sport 4000 --dport 53 "
        "--timeout 120 >/dev/null 2>&1"
        for i in (1, 2, 3)
    ]
    script = (
        "from podpath.collectors.hostroot import HostRoot\n"
        "from podpath.collectors.proc.node_facts import collect_node\n"
        "f = collect_node(HostRoot('/'))[0]\n"
        "print(f.conntrack_count, f.conntrack_max)\n"
    )
    shell = "; ".join([*insert, f'{sys.executable} -c "$1"', "conntrack -C"])
    done = subprocess.run(
        ["unshare", "--net", "--", "sh", "-c", shell, "sh", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    ours, tool = done.stdout.splitlines()
    count, limit = ours.split()
    assert int(count) == int(tool) == 3
    with open("/proc/sys/net/netfilter/nf_conntrack_max") as f:
        assert int(limit) == int(f.read())
