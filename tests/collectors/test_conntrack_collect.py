"""conntrack collection: real traffic between two throw-away namespaces, empty and missing tables."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from podpath.collectors.commands import CommandRunner
from podpath.collectors.conntrack import collect_conntrack, tool_version
from podpath.conntrack import parse_conntrack

TOOLS = ("unshare", "nsenter", "ip", "nft", "conntrack")


def needs_lab() -> None:
    """Fail loudly in CI, skip elsewhere, when root or the tools are missing."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if os.geteuid() != 0 or missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"lab test needs root and {missing}")
        pytest.skip(f"needs root and {missing}")


def in_netns(body: str, timeout: float = 120) -> Any:
    """Run Python `body` in a new net+mount namespace; return the JSON it prints last."""
    prelude = textwrap.dedent(
        """
        import json, subprocess
        def sh(*argv, input=None):
            p = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=30)
            if p.returncode != 0:
                raise SystemExit(f"{argv}: {p.stderr}")
            return p.stdout
        """
    )
    proc = subprocess.run(
        ["unshare", "--net", "--mount", "--fork", "--", sys.executable, "-c", prelude + body],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


# Namespace A (this child) and B (a sleeping `unshare --net` child) joined by a veth.
# A DNATs tcp 10.199.0.1:8080 -> :9090 where a server answers; B connects and sends UDP.
_TRAFFIC = r"""
import socket, threading, time
b = subprocess.Popen(["unshare", "--net", "--", "sleep", "60"])
try:
    for _ in range(100):
        if open(f"/proc/{b.pid}/comm").read().strip() == "sleep":
            break
        time.sleep(0.02)
    pid = str(b.pid)
    def in_b(*argv):
        return sh("nsenter", "--net", "--target", pid, "--", *argv)
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", "ppct0", "type", "veth", "peer", "name", "ppct1")
    sh("ip", "link", "set", "ppct1", "netns", pid)
    sh("ip", "addr", "add", "10.199.0.1/24", "dev", "ppct0")
    sh("ip", "link", "set", "ppct0", "up")
    in_b("ip", "addr", "add", "10.199.0.2/24", "dev", "ppct1")
    in_b("ip", "link", "set", "ppct1", "up")
    in_b("ip", "link", "set", "lo", "up")
    sh("nft", "-f", "-", input='''
table ip ppct {
    chain pre {
        type nat hook prerouting priority -100;
        tcp dport 8080 dnat to 10.199.0.1:9090
    }
}
''')
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("10.199.0.1", 9090))
    srv.listen()
    def serve():
        conn, _ = srv.accept()
        conn.sendall(conn.recv(100))
        time.sleep(1)
        conn.close()
    threading.Thread(target=serve, daemon=True).start()
    client = (
        "import socket; s = socket.create_connection(('10.199.0.1', 8080), timeout=5);"
        "s.sendall(b'ping'); assert s.recv(100) == b'ping';"
        "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b'x', ('10.199.0.1', 5353))"
    )
    in_b("python3", "-c", client)
    from podpath.collectors.commands import CommandRunner
    from podpath.collectors.conntrack import collect_conntrack
    res = collect_conntrack(CommandRunner())
    plain = subprocess.run(["conntrack", "-L"], capture_output=True, text=True, timeout=30).stdout
    print(json.dumps({
        "text": res.dump.text if res.dump else None,
        "source": res.dump.source if res.dump else None,
        "gaps": [g.reason for g in res.gaps],
        "plain": plain,
    }))
finally:
    b.kill()
    b.wait()
"""


def _key(e: Any) -> tuple[Any, ...]:
    return (
        e.family,
        e.protocol,
        e.original.src,
        e.original.dst,
        e.original.sport,
        e.original.dport,
        e.reply.src,
        e.reply.dst,
        e.reply.sport,
        e.reply.dport,
    )


@pytest.mark.lab
def test_conntrack_after_real_traffic_equals_conntrack_L() -> None:
    """After TCP (DNAT'd) and UDP traffic over a veth, entries equal `conntrack -L`'s."""
    needs_lab()
    out = in_netns(_TRAFFIC)
    assert out["gaps"] == []
    ours = parse_conntrack(out["text"])
    theirs = parse_conntrack(out["plain"])
    assert sorted(map(_key, ours)) == sorted(map(_key, theirs))
    tcp = [e for e in ours if e.protocol == "tcp" and e.original.dport == 8080]
    assert len(tcp) == 1
    entry = tcp[0]
    assert (entry.original.src, entry.original.dst) == ("10.199.0.2", "10.199.0.1")
    assert (entry.reply.src, entry.reply.sport) == ("10.199.0.1", 9090)
    assert entry.is_dnat and not entry.is_snat and entry.family == 4
    assert "ASSURED" in entry.status or entry.state in ("TIME_WAIT", "CLOSE", "FIN_WAIT")
    udp = [e for e in ours if e.protocol == "udp" and e.original.dport == 5353]
    assert len(udp) == 1 and "UNREPLIED" in udp[0].status and not udp[0].is_dnat


@pytest.mark.lab
def test_empty_conntrack_table_is_empty_not_a_gap() -> None:
    """Row 15: a fresh namespace has no entries: an empty dump, no gap."""
    needs_lab()
    out = in_netns(
        """
from podpath.collectors.commands import CommandRunner
from podpath.collectors.conntrack import collect_conntrack
res = collect_conntrack(CommandRunner())
print(json.dumps({"text": res.dump.text if res.dump else None, "gaps": [g.reason for g in res.gaps]}))
"""
    )
    assert out == {"text": "", "gaps": []}


def _fake(bin_dir: Path, body: str) -> CommandRunner:
    bin_dir.mkdir()
    path = bin_dir / "conntrack"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return CommandRunner(bin_dirs=(bin_dir,))


def test_kernel_without_conntrack_is_unavailable_not_an_error(tmp_path: Path) -> None:
    """Row 15: "Protocol not supported" becomes kind=unavailable, "not available on this kernel"."""
    msg = "conntrack v1.4.7 (conntrack-tools): Operation failed: Protocol not supported"
    res = collect_conntrack(_fake(tmp_path / "bin", f"echo '{msg}' >&2; exit 1"))
    assert res.dump is None
    assert [g.kind for g in res.gaps] == ["unavailable"]
    assert "not available on this kernel" in res.gaps[0].reason


def test_unprivileged_conntrack_names_cap_net_admin(tmp_path: Path) -> None:
    """conntrack's own EPERM message becomes a permission gap naming CAP_NET_ADMIN."""
    msg = (
        "conntrack v1.4.7 (conntrack-tools): Operation failed: "
        "sorry, you must be root or get CAP_NET_ADMIN capability to do this"
    )
    res = collect_conntrack(_fake(tmp_path / "bin", f"echo '{msg}' >&2; exit 1"))
    assert [(g.kind, g.capability) for g in res.gaps] == [("permission", "CAP_NET_ADMIN")]


def test_missing_conntrack_tool_is_a_missing_tool_gap(tmp_path: Path) -> None:
    """No conntrack binary: kind=missing-tool and no dump."""
    (tmp_path / "bin").mkdir()
    res = collect_conntrack(CommandRunner(bin_dirs=(tmp_path / "bin",)))
    assert res.dump is None and [g.kind for g in res.gaps] == ["missing-tool"]


def test_old_tool_without_ipv6_gets_ipv6_read_separately(tmp_path: Path) -> None:
    """conntrack < 1.4.7 listed IPv4 only by default: `-f ipv6` is read and appended."""
    v4 = "ipv4     2 udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=53 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=53 dport=1 mark=0 use=1"
    v6 = "ipv6     10 udp      17 29 src=fd00::1 dst=fd00::2 sport=1 dport=53 [UNREPLIED] src=fd00::2 dst=fd00::1 sport=53 dport=1 mark=0 use=1"
    body = (
        'if [ "$2" = "-f" ]; then echo "' + v6 + '"; else echo "' + v4 + '"; fi\n'
        "echo 'conntrack v1.4.4 (conntrack-tools): 1 flow entries have been shown.' >&2"
    )
    res = collect_conntrack(_fake(tmp_path / "bin", body))
    assert res.gaps == () and res.dump is not None
    assert [e.family for e in parse_conntrack(res.dump.text)] == [4, 6]
    assert "-f ipv6" in res.dump.source


def test_tool_version_is_read_from_the_summary_line() -> None:
    """The stderr summary gives the conntrack-tools version."""
    line = "conntrack v1.4.6 (conntrack-tools): 296 flow entries have been shown."
    assert tool_version(line) == (1, 4, 6)
    assert tool_version("") is None


@pytest.mark.lab
def test_unprivileged_real_conntrack_is_a_permission_gap() -> None:
    """Row 10: the real tool run as nobody gives a permission gap, not a crash."""
    needs_lab()
    code = (
        "import json; from podpath.collectors.commands import CommandRunner;"
        "from podpath.collectors.conntrack import collect_conntrack;"
        "r = collect_conntrack(CommandRunner());"
        "print(json.dumps([[g.kind, g.capability] for g in r.gaps]))"
    )
    proc = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [["permission", "CAP_NET_ADMIN"]]
