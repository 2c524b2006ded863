"""Socket collection against the real kernel, compared with `ss -H -tuanpe` in each namespace.

The namespaces and servers exist only inside a private `unshare --net --mount --pid`
child, where `sockets_driver.py` builds them, takes podpath's snapshot with both readers
(sock_diag, and /proc/net/* via PODPATH_SOCKETS_READER=procfs) and runs ss. The procfs
parser is also checked on real-world files, and the module-loading guard on fake roots.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from podpath.analysis.sockets import endpoint, peer_endpoint
from podpath.collectors.hostroot import HostRoot
from podpath.collectors.netlink.sock_diag import (
    SOCK_DIAG_BY_FAMILY,
    decode_sockets,
    handlers_present,
    parse_sockstat,
)
from podpath.collectors.netlink.wire import MalformedMessage, message
from podpath.collectors.proc.net_sockets import parse_table

DRIVER = Path(__file__).with_name("sockets_driver.py")
PROCNET = Path(__file__).parents[1] / "fixtures" / "realworld" / "procnet"
RELEASE = "6.1.0-test"
# ss -p's users:(("comm",pid=N,fd=M),...) entries; comm may hold ESC but no quote here.
_USER = re.compile(r'\("([^"]*)",pid=(\d+),fd=(\d+)\)')

Key = tuple[str, str, str, str, int]


def _require_root() -> None:
    missing = [t for t in ("unshare", "ip", "ss") if shutil.which(t) is None]
    if os.geteuid() != 0 or missing:
        reason = f"needs root and {missing or 'unshare/ip/ss'}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def world() -> Any:
    """Both readers' snapshots and ss's view of the same private namespaces."""
    _require_root()
    argv = ["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc"]
    argv += ["--propagation", "private", "--", sys.executable, str(DRIVER)]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


Row = tuple[Key, frozenset[tuple[str, int, int]]]


def _ident(inode: int, local: str, peer: str) -> int | tuple[str, str]:
    """A socket's identity: its inode, or both ends for TIME-WAIT ones (inode 0)."""
    return inode or (local, peer)


def _ss_rows(lines: list[str]) -> dict[int | tuple[str, str], Row]:
    """ss lines by identity: (netid, state, local, peer, send-q) and the owners."""
    rows = {}
    for line in lines:
        netid, state, _rq, sq, local, peer = line.split()[:6]
        found = re.search(r"ino:(\d+)", line)
        inode = int(found.group(1)) if found else 0
        owners = frozenset((c, int(p), int(f)) for c, p, f in _USER.findall(line))
        rows[_ident(inode, local, peer)] = ((netid, state, local, peer, int(sq)), owners)
    return rows


def _ours(ns: dict[str, Any]) -> dict[int | tuple[str, str], Row]:
    """podpath's sockets of one namespace, written the way ss writes them."""
    devs = {link["ifindex"]: link["name"] for link in ns["links"]}
    rows = {}
    for s in ns["sockets"]:
        dev = devs.get(s["bound_dev"]) if s["bound_dev"] else None
        local = endpoint(s["family"], s["local"], s["local_port"], s["v6only"], dev)
        peer = peer_endpoint(s["family"], s["peer"], s["peer_port"], s["v6only"])
        owners = frozenset((o["comm"], o["pid"], o["fd"]) for o in s["owners"])
        row = (s["protocol"], s["state"], local, peer, s["send_q"])
        rows[_ident(s["inode"], local, peer)] = (row, owners)
    return rows


def _by_label(snap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Namespaces by how the driver named them for ss: 'root' or their /run/netns path."""
    out = {}
    for ns in snap["netns"]:
        if ns["inode"] == snap["root"]:
            out["root"] = ns
        for path in ns["paths"]:
            out[path] = ns
    return out


def test_sock_diag_equals_ss_in_every_namespace(world: Any) -> None:
    """Every socket ss lists (state, both ends as ss writes them, backlog, owners) and no other."""
    spaces = _by_label(world["diag"])
    assert world["diag"]["gaps"] == []
    compared = 0
    for label, lines in world["ss"].items():
        ns = spaces[label]
        assert ns["sockets_source"] == "sock_diag"
        assert _ours(ns) == _ss_rows(lines), label
        compared += len(lines)
    assert compared >= 11


def test_procfs_reader_finds_the_same_sockets(world: Any) -> None:
    """The procfs reader lists the same sockets; it cannot know v6only, so [::] stays [::]."""
    spaces = _by_label(world["procfs"])
    for label, lines in world["ss"].items():
        ns = spaces[label]
        assert ns["sockets_source"] == "procfs"
        ours = sorted(
            (s["protocol"], s["state"], s["local_port"], s["peer_port"] or 0, s["inode"])
            for s in ns["sockets"]
        )
        want = []
        for ident, ((netid, state, local, peer, _sq), _owners) in _ss_rows(lines).items():
            port = peer.rsplit(":", 1)[1]
            inode = ident if isinstance(ident, int) else 0
            lport = int(local.rsplit(":", 1)[1])
            want.append((netid, state, lport, 0 if port == "*" else int(port), inode))
        assert ours == sorted(want), label
        assert all(s["v6only"] is None for s in ns["sockets"])


def test_owners_keep_hostile_names_and_a_reuseport_group_has_both(world: Any) -> None:
    """The owner named with ESC and brackets is kept verbatim; both SO_REUSEPORT workers are there."""
    spaces = _by_label(world["diag"])
    a = spaces["/run/netns/ppsk-a"]["sockets"]
    assert {o["comm"] for s in a for o in s["owners"]} == {world["hostile"]}
    b = spaces["/run/netns/ppsk-b"]["sockets"]
    group = [s for s in b if s["local_port"] == 8080]
    assert sorted(o["comm"] for s in group for o in s["owners"]) == ["worker-1", "worker-2"]
    if world["busybox"]:
        (httpd,) = [s for s in b if s["local_port"] == 8000]
        assert httpd["owners"][0]["comm"] == "busybox" and httpd["v6only"] is False


def test_v6only_and_device_binds_are_read(world: Any) -> None:
    """sock_diag tells [::]:80 (dual-stack) from [::]:81 (v6only) and names the bound device."""
    ns = _by_label(world["diag"])["/run/netns/ppsk-a"]
    by_port = {(s["protocol"], s["local_port"]): s for s in ns["sockets"] if s["state"] != "ESTAB"}
    assert by_port[("tcp", 80)]["v6only"] is False and by_port[("tcp", 81)]["v6only"] is True
    assert by_port[("tcp", 82)]["local"] == "::ffff:127.0.0.1"
    devs = {link["name"]: link["ifindex"] for link in ns["links"]}
    assert by_port[("udp", 54)]["bound_dev"] == devs["ppsk0"]
    assert by_port[("udp", 53)]["bound_dev"] is None and by_port[("udp", 53)]["peer"] is None


def test_time_wait_alone_is_found(world: Any) -> None:
    """A namespace left with one TIME-WAIT socket: sockstat's tw makes the reader walk for it."""
    ns = _by_label(world["diag"])["/run/netns/ppsk-tw"]
    assert [s["state"] for s in ns["sockets"]] == ["TIME-WAIT"]
    assert ns["sockets"][0]["peer_port"] == 7000


def test_sockstat_counters() -> None:
    """TCP inuse and tw from sockstat, TCP6 inuse from sockstat6; anything else is 'unsure'."""
    four = b"sockets: used 12\nTCP: inuse 3 orphan 0 tw 2 alloc 4 mem 0\nUDP: inuse 1 mem 0\n"
    six = b"TCP6: inuse 1\nUDP6: inuse 0\n"
    assert (parse_sockstat(four), parse_sockstat(six)) == ((3, 2), (1, 0))
    assert parse_sockstat(b"TCP: orphan 0\n") is None and parse_sockstat(b"") is None


def test_a_namespace_without_sockets_has_an_empty_table(world: Any) -> None:
    """Read and empty is (), not None (None means 'not read' to the trace)."""
    ns = _by_label(world["diag"])["/run/netns/ppsk-empty"]
    assert ns["sockets"] == [] and world["ss"]["/run/netns/ppsk-empty"] == []


# --- the procfs parser on real-world files ------------------------------------------------


def test_proc_net_tcp_fixture() -> None:
    """prometheus/procfs's /proc/net/tcp: x86 word order, LISTEN, queues."""
    socks = parse_table((PROCNET / "procfs-proc-net-tcp.txt").read_bytes(), 7, "tcp", 4)
    assert [(s.local, s.local_port, s.state) for s in socks] == [
        ("10.0.0.5", 22, "LISTEN"),
        ("0.0.0.0", 22, "LISTEN"),
        ("0.0.0.0", 22, "LISTEN"),
    ]
    assert (socks[0].recv_q, socks[1].send_q, socks[0].inode, socks[0].peer) == (1, 1, 2740, None)


def test_proc_net_udp6_fixture_link_local() -> None:
    """A link-local IPv6 bind decodes word by word; large `sl` numbers and extra columns are fine."""
    socks = parse_table((PROCNET / "procfs-proc-net-udp6-link-local.txt").read_bytes(), 7, "udp", 6)
    assert [(s.local, s.local_port, s.state, s.uid) for s in socks] == [
        ("::", 5355, "UNCONN", 981),
        ("fe80::56e1:adff:fe7c:6609", 51073, "UNCONN", 1000),
    ]


def test_truncated_proc_net_lines_are_skipped() -> None:
    """A line cut after the state column is skipped, not misread."""
    assert parse_table((PROCNET / "procfs-proc-net-udp-broken.txt").read_bytes(), 7, "udp", 4) == []


# --- sock_diag decoding and the module-loading guard --------------------------------------


def test_truncated_sock_diag_message_is_refused() -> None:
    """An inet_diag_msg shorter than its fixed header raises (a gap), never half a socket."""
    buf = message(SOCK_DIAG_BY_FAMILY, 2, 1, struct.pack("=BBBB", 2, 10, 0, 0) + bytes(20))
    with pytest.raises(MalformedMessage):
        decode_sockets((buf,), 7, "tcp", SOCK_DIAG_BY_FAMILY)


def _root(tmp_path: Path, modules: str | None, builtin: str | None) -> HostRoot:
    (tmp_path / "proc").mkdir()
    if modules is not None:
        (tmp_path / "proc" / "modules").write_text(modules)
    if builtin is not None:
        where = tmp_path / "lib" / "modules" / RELEASE
        where.mkdir(parents=True)
        (where / "modules.builtin").write_text(builtin)
    return HostRoot(str(tmp_path))


LOADED = "tcp_diag 16384 0 - Live 0x0\nudp_diag 16384 0 - Live 0x0\ninet_diag 28672 2 - Live 0x0\n"


@pytest.mark.parametrize(
    ("modules", "builtin", "safe"),
    [
        (None, None, True),  # no /proc/modules: a kernel without modules loads nothing
        (LOADED, None, True),
        ("inet_diag 28672 0 - Live 0x0\n", None, False),  # asking would load tcp_diag
        ("", "kernel/net/ipv4/tcp_diag.ko\nkernel/net/ipv4/udp_diag.ko\n", True),
        ("tcp_diag 16384 0 - Live 0x0\n", "kernel/net/ipv4/udp_diag.ko\n", True),
        ("", "kernel/net/ipv4/tcp_diag.ko\n", False),
    ],
)
def test_sock_diag_is_used_only_when_it_loads_no_module(
    tmp_path: Path, modules: str | None, builtin: str | None, safe: bool
) -> None:
    """tcp_diag and udp_diag must each be built in or loaded; otherwise procfs is read."""
    with _root(tmp_path, modules, builtin) as host:
        assert handlers_present(host, RELEASE) is safe
