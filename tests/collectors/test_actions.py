"""`s` and `c` on a live node: pinned to the process shown, and a capture that never writes
through a planted path (a symlink, an existing file, someone else's directory)."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podpath.cli.tui import NodeActions
from podpath.collectors.actions import (
    ActionRefused,
    Pin,
    capture_argv,
    open_pinned_netns,
    runner,
)
from podpath.collectors.commands import CommandRefused, CommandRunner
from podpath.collectors.hostroot import HostRoot
from podpath.tui.actions import PodTarget

NOBODY = 65534
PCAP_MAGIC = 0xA1B2C3D4


def _start_time(pid: int) -> int:
    raw = Path(f"/proc/{pid}/stat").read_bytes()
    return int(raw[raw.rindex(b")") + 2 :].split()[19])


def _pin(pid: int) -> Pin:
    return Pin(pid, _start_time(pid), os.stat(f"/proc/{pid}/ns/net").st_ino)


def _target(pin: Pin, interface: str = "eth0") -> PodTarget:
    return PodTarget("default/web", pin.pid, pin.start_time, pin.netns_inode, interface)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A short-lived child process we own, killed afterwards."""
    proc = subprocess.Popen(["sleep", "60"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def netns_holder() -> Iterator[subprocess.Popen[bytes]]:
    """A process in a private network namespace of its own (only lo, brought up), killed after."""
    if os.geteuid() != 0:
        pytest.skip("a private network namespace needs root")
    proc = subprocess.Popen(["unshare", "--net", "--", "sleep", "60"])
    try:
        for _ in range(100):  # until unshare has exec'd sleep in the new namespace
            if os.stat(f"/proc/{proc.pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino:
                break
            time.sleep(0.02)
        subprocess.run(
            ["nsenter", f"--net=/proc/{proc.pid}/ns/net", "--", "ip", "link", "set", "lo", "up"],
            check=True,
        )
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A root-only file (0600) in a directory of its own: what a planted symlink points at."""
    safe = tmp_path / "etc"
    safe.mkdir(mode=0o700)
    path = safe / "shadow"
    path.write_bytes(b"root:secret-hash:19000::::::\n")
    path.chmod(0o600)
    return path


def _fingerprint(path: Path) -> tuple[bytes, int, int, int, int]:
    st = path.stat()
    return path.read_bytes(), st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns


def _shared_dir(tmp_path: Path, mode: int) -> Path:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    return shared


@pytest.mark.parametrize("mode", [0o1777, 0o777], ids=["sticky-like-tmp", "world-writable"])
def test_capture_never_writes_through_a_symlink_planted_at_its_path(
    mode: int, tmp_path: Path, victim: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """A symlink at the capture path, planted by another user, leaves its target untouched."""
    shared = _shared_dir(tmp_path, mode)
    planted = shared / "capture.pcap"
    planted.symlink_to(victim)
    os.lchown(planted, NOBODY, NOBODY)
    before = _fingerprint(victim)
    result = NodeActions().capture(_target(_pin(sleeper.pid)), str(planted), 5, 2)
    assert not result.ok
    assert "already exists" in result.message or "writable by others" in result.message
    assert _fingerprint(victim) == before
    assert planted.is_symlink() and os.readlink(planted) == str(victim)


def test_capture_never_overwrites_an_existing_file(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """An earlier capture at the same path is kept as it was; the new one is refused."""
    old = tmp_path / "old.pcap"
    old.write_bytes(b"earlier capture")
    result = NodeActions().capture(_target(_pin(sleeper.pid)), str(old), 5, 2)
    assert not result.ok and "already exists" in result.message
    assert old.read_bytes() == b"earlier capture"


def test_capture_refuses_a_directory_of_another_user(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """A directory owned by another user (who could swap the file) is refused."""
    if os.geteuid() != 0:
        pytest.skip("giving a directory to another user needs root")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, NOBODY, NOBODY)
    result = NodeActions().capture(_target(_pin(sleeper.pid)), str(theirs / "x.pcap"), 5, 2)
    assert not result.ok and f"uid {NOBODY}" in result.message
    assert list(theirs.iterdir()) == []


def test_a_refused_pin_leaves_no_capture_file(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """A netns inode other than the one shown is refused, and the empty file is removed."""
    pin = Pin(sleeper.pid, None, 1)
    actions = NodeActions(capture_dir=str(tmp_path))
    result = actions.capture(_target(pin), "x.pcap", 5, 2)
    assert not result.ok and "namespace" in result.message
    assert list(tmp_path.iterdir()) == []


def test_pin_opens_the_namespace_of_the_same_process(sleeper: subprocess.Popen[bytes]) -> None:
    """PID, start time and netns inode all match: the fd is the process's netns."""
    pin = _pin(sleeper.pid)
    with HostRoot("/") as host:
        fd = open_pinned_netns(host, pin)
    try:
        assert os.fstat(fd).st_ino == pin.netns_inode
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"start_time": 1}, "start time changed"),
        ({"netns_inode": 1}, "network namespace of pid"),
    ],
)
def test_pin_refuses_another_process_or_namespace(
    change: dict[str, int], words: str, sleeper: subprocess.Popen[bytes]
) -> None:
    """A reused PID (other start time) or a re-created namespace (other inode) is refused."""
    pin = _pin(sleeper.pid)
    pin = Pin(
        pin.pid,
        change.get("start_time", pin.start_time),
        change.get("netns_inode", pin.netns_inode),
    )
    with HostRoot("/") as host, pytest.raises(ActionRefused, match=words):
        open_pinned_netns(host, pin)


def test_pin_refuses_a_process_that_is_gone() -> None:
    """A PID with no process is refused with one sentence."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    with HostRoot("/") as host, pytest.raises(ActionRefused, match=f"pid {proc.pid}"):
        open_pinned_netns(host, Pin(proc.pid, None, None))


def test_shell_is_refused_when_the_pid_was_reused(sleeper: subprocess.Popen[bytes]) -> None:
    """A different start time means another process now has the PID: refused, nothing run."""
    pin = _pin(sleeper.pid)
    result = NodeActions().shell(_target(Pin(pin.pid, (pin.start_time or 0) + 1, None)))
    assert not result.ok and "start time changed" in result.message


def test_capture_argv_takes_only_an_interface_name() -> None:
    """An option or a path in place of the interface never reaches tcpdump."""
    for bad in ("-w/etc/shadow", "eth0 -w x", "a" * 16, "", "../x"):
        with pytest.raises(ActionRefused):
            capture_argv(3, bad, 10)
    argv = capture_argv(3, "eth0", 10)
    assert argv[1:3] == ["--net=/proc/self/fd/3", "--"] and argv[-3:] == ["-U", "-w", "-"]


def _send_udp(pid: int, stop: threading.Event) -> None:
    """Send UDP datagrams to 127.0.0.1:9 inside the netns of `pid` until told to stop."""
    code = (
        "import socket, sys, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "for _ in range(400):\n"
        "    s.sendto(b'podpath', ('127.0.0.1', 9)); time.sleep(0.02)\n"
    )
    proc = subprocess.Popen(["nsenter", f"--net=/proc/{pid}/ns/net", "--", "python3", "-c", code])
    try:
        stop.wait(15)
    finally:
        proc.kill()
        proc.wait()


def _pcap_packets(data: bytes) -> list[bytes]:
    """The packets of a pcap file (little-endian, as tcpdump writes on x86)."""
    assert struct.unpack_from("<I", data)[0] == PCAP_MAGIC
    out, offset = [], 24
    while offset + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, offset + 8)[0]
        out.append(data[offset + 16 : offset + 16 + caplen])
        offset += 16 + caplen
    return out


@pytest.mark.lab
def test_a_real_capture_goes_to_a_new_private_file_with_its_absolute_path(
    tmp_path: Path, netns_holder: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """tcpdump in the pinned netns writes real packets into a new 0600 file named absolutely."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir("/")  # a relative name must not land in the CWD
    stop = threading.Event()
    sender = threading.Thread(target=_send_udp, args=(netns_holder.pid, stop))
    sender.start()
    try:
        result = NodeActions().capture(_target(_pin(netns_holder.pid), "lo"), "web.pcap", 3, 10)
    finally:
        stop.set()
        sender.join()
    expected = tmp_path / "state" / "podpath" / "captures" / "web.pcap"
    assert result.ok, result.message
    assert str(expected) in result.message and not Path("/web.pcap").exists()
    st = expected.stat()
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == os.geteuid()
    packets = _pcap_packets(expected.read_bytes())
    assert len(packets) == 3 and all(b"podpath" in p for p in packets)
    assert socket.inet_aton("127.0.0.1") in packets[0]


@pytest.mark.parametrize(
    ("program", "args"),
    [
        ("nsenter", ["--net=/proc/self/fd/3", "--", "touch", "{mark}"]),
        ("nsenter", ["--net=/proc/self/fd/3", "--", "sh", "-c", "touch {mark}"]),
        ("nsenter", ["--net=/proc/self/fd/3", "--", "tcpdump", "-i", "lo", "-w", "{mark}"]),
        ("nsenter", ["--net=/proc/1/ns/net", "--", "sh"]),
        ("nsenter", ["--mount=/proc/self/fd/3", "--", "sh"]),
        ("touch", ["{mark}"]),
        ("tcpdump", ["-i", "lo", "-c", "1", "-U", "-w", "-"]),
    ],
    ids=[
        "other-program",
        "shell-command",
        "tcpdump-writes-a-path",
        "proc-path",
        "mount-ns",
        "bare-program",
        "tcpdump-outside-nsenter",
    ],
)
def test_the_runner_refuses_to_start_what_the_actions_may_not_run(
    tmp_path: Path, program: str, args: list[str]
) -> None:
    """Only the shell's and the capture's argv shapes start; anything else is refused unrun."""
    mark = tmp_path / "ran"
    argv = [a.replace("{mark}", str(mark)) for a in args]
    with pytest.raises(CommandRefused, match="not a command podpath may start"):
        runner("/").start(program, argv)
    time.sleep(0.1)
    assert not mark.exists()


def test_the_actions_never_start_a_binary_found_in_the_host_root(tmp_path: Path) -> None:
    """An nsenter planted under --host-root is not run: the runner looks outside the host root."""
    planted = tmp_path / "usr" / "sbin"
    planted.mkdir(parents=True)
    mark = tmp_path / "ran"
    for name in ("nsenter", "sh"):
        (planted / name).write_text(f"#!/bin/sh\ntouch {mark}\n")
        (planted / name).chmod(0o755)
    commands = CommandRunner(host_root=tmp_path, bin_dirs=(planted,))
    with pytest.raises(CommandRefused, match="nsenter is not installed"):
        commands.start("nsenter", ["--net=/proc/self/fd/3", "--", "sh"])
    assert not mark.exists()


def test_a_capture_with_a_refused_interface_starts_nothing(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """The capture action refuses an option in place of the interface before starting tcpdump."""
    result = NodeActions().capture(
        _target(_pin(sleeper.pid), "-w/tmp/x"), str(tmp_path / "c.pcap"), 1, 1
    )
    assert not result.ok and "not an interface name" in result.message
