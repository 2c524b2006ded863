"""The two things podpath does on a live node besides reading it: a shell and a capture.

Both enter a pod's network namespace with util-linux `nsenter`, pinned to what the
user saw: the pause process's /proc directory is opened once and its start time and
netns inode are checked through that directory fd, so a PID reused in between, or a
namespace re-created, is refused (docs/reliability.md rows 3 and 4). /proc is reached
through the node's HostRoot like every other read. The programs are started by the
collectors' allow-listed runner (collectors/commands.py: `CommandRunner.start`), only
in its two long-lived argv shapes, from the running system's own directories, never
from a host root or $PATH. A capture is written to a file podpath creates itself
(podpath.safe_files: O_EXCL|O_NOFOLLOW in a checked directory) and handed to tcpdump
as its stdout, so tcpdump never opens, follows or truncates a path.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from podpath.collectors.commands import IFNAME, SHELLS, CommandRefused, CommandRunner
from podpath.collectors.hostroot import CollectorError, HostRoot
from podpath.collectors.proc.processes import parse_stat
from podpath.safe_files import NewFile, UnsafePath, create_new, state_dir

# Where the node tools are looked up: the running system's own, in this order.
TRUSTED_DIRS = (Path("/usr/sbin"), Path("/usr/bin"), Path("/sbin"), Path("/bin"))
MAX_PACKETS = 1_000_000
MAX_SECONDS = 3600


class ActionRefused(Exception):
    """An action that must not run, and why, in one sentence."""


@dataclass(frozen=True)
class Pin:
    """A pod's network namespace as it was shown: the pause PID, its start time, the netns inode."""

    pid: int
    start_time: int | None
    netns_inode: int | None


def runner(host_root: str) -> CommandRunner:
    """The allow-listed runner the actions start their programs with (system dirs only)."""
    return CommandRunner(host_root=Path(host_root), bin_dirs=TRUSTED_DIRS)


def open_pinned_netns(host: HostRoot, pin: Pin) -> int:
    """An fd of the pinned process's netns; refused unless PID, start time and inode still match."""
    try:
        pid_fd = host.proc_open(str(pin.pid), os.O_RDONLY | os.O_DIRECTORY)
    except CollectorError as exc:
        raise ActionRefused(f"pid {pin.pid} is gone ({exc})") from None
    try:
        # Both reads go through the one directory fd: they are of the same process,
        # even if the PID is reused meanwhile (the old directory then reads ESRCH).
        netns = os.open("ns/net", os.O_RDONLY | os.O_CLOEXEC, dir_fd=pid_fd)
        try:
            with open(os.open("stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=pid_fd), "rb") as fp:
                started = parse_stat(fp.read()).start_time
            if pin.start_time is not None and started != pin.start_time:
                raise ActionRefused(f"pid {pin.pid} is another process now (start time changed)")
            if pin.netns_inode is not None and os.fstat(netns).st_ino != pin.netns_inode:
                raise ActionRefused(f"the network namespace of pid {pin.pid} changed")
        except BaseException:
            os.close(netns)
            raise
        return netns
    except (OSError, ValueError, IndexError) as exc:
        raise ActionRefused(f"pid {pin.pid} cannot be entered ({exc})") from None
    finally:
        os.close(pid_fd)


def shell_argv(commands: CommandRunner, netns_fd: int) -> list[str]:
    """`nsenter --net=/proc/self/fd/N -- SHELL`: a shell in the netns, on the node's filesystem."""
    shell = next((s for s in SHELLS if commands.which(s) is not None), None)
    if shell is None:
        raise ActionRefused(f"no shell ({', '.join(SHELLS)}) is installed")
    return ["nsenter", f"--net=/proc/self/fd/{netns_fd}", "--", shell]


def capture_argv(netns_fd: int, interface: str, count: int) -> list[str]:
    """`nsenter --net=/proc/self/fd/N -- tcpdump -i IF -c N -U -w -`: pcap on stdout."""
    if not IFNAME.fullmatch(interface):
        raise ActionRefused(f"{interface!r} is not an interface name")
    if not 1 <= count <= MAX_PACKETS:
        raise ActionRefused(f"a capture takes 1 to {MAX_PACKETS} packets, not {count}")
    return [
        "nsenter",
        f"--net=/proc/self/fd/{netns_fd}",
        "--",
        "tcpdump",
        "-i",
        interface,
        "-c",
        str(count),
        "-U",
        "-w",
        "-",
    ]


@contextlib.contextmanager
def _interrupts_go_to_the_child() -> Iterator[None]:
    """As system(3) does: while an interactive child runs, ctrl-c is the child's alone."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal dispositions can only be changed on the main thread
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _terminal_comes_back() -> Iterator[None]:
    """While an interactive shell runs, make sure the terminal can be given back, and take it.

    An interactive shell makes its own process group the terminal's foreground one, and
    on exit gives the terminal back to the group it started in. In a PID namespace of
    its own with that group's leader outside (the TUI inside a lab node: podpath demo),
    getpgrp() is 0: the shell cannot name the group, the terminal stayed with the dead
    shell's, and the TUI, in the background, read no key again. So the caller first leads
    a group of its own there, the foreground one; afterwards it takes the terminal back
    whoever holds it (SIGTTOU ignored: a background group may then set it, as shells do).
    """
    if threading.current_thread() is not threading.main_thread() or not os.isatty(0):
        yield
        return
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    # OSError: not a terminal we can arrange (no job control): the shell runs as before.
    try:
        with contextlib.suppress(OSError):
            if os.getpgrp() == 0:
                os.setpgid(0, 0)
                os.tcsetpgrp(0, os.getpgrp())
    finally:
        signal.signal(signal.SIGTTOU, previous)
    try:
        yield
    finally:
        previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        # OSError: the terminal is gone (hung up), there is nothing to take back.
        try:
            with contextlib.suppress(OSError):
                if os.getpgrp() != 0 and os.tcgetpgrp(0) != os.getpgrp():
                    os.tcsetpgrp(0, os.getpgrp())
        finally:
            signal.signal(signal.SIGTTOU, previous)


def run_shell(host_root: str, pin: Pin) -> int:
    """Run an interactive shell in the pinned netns (the terminal is the caller's); its exit status."""
    with HostRoot(host_root) as host:
        netns = open_pinned_netns(host, pin)
    try:
        commands = runner(host_root)
        argv = shell_argv(commands, netns)
        with _terminal_comes_back():
            proc = commands.start(argv[0], argv[1:], pass_fds=(netns,))
            with _interrupts_go_to_the_child():
                return proc.wait()
    except CommandRefused as exc:
        raise ActionRefused(str(exc)) from None
    finally:
        os.close(netns)


def default_capture_dir() -> str:
    """Where captures go unless an absolute path is given: podpath's private state directory."""
    return state_dir("captures")


def new_capture_file(path: str, directory: str) -> NewFile:
    """Create the capture file (relative names in `directory`), or refuse with the reason."""
    try:
        return create_new(path, directory)
    except UnsafePath as exc:
        raise ActionRefused(str(exc)) from None


@dataclass(frozen=True)
class Captured:
    """How a capture ended: tcpdump's exit status and the pcap's size."""

    returncode: int
    size: int


def run_capture(
    host_root: str, pin: Pin, interface: str, out: NewFile, count: int, seconds: int
) -> Captured:
    """tcpdump on the pinned netns's interface into `out`, at most `count` packets or `seconds`."""
    seconds = max(1, min(seconds, MAX_SECONDS))
    with HostRoot(host_root) as host:
        netns = open_pinned_netns(host, pin)
    try:
        argv = capture_argv(netns, interface, count)
        proc = runner(host_root).start(argv[0], argv[1:], stdout=out.fd, pass_fds=(netns,))
        # ctrl-c reaches tcpdump (the terminal's foreground group), which then exits.
        with _interrupts_go_to_the_child():
            try:
                code = proc.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                # SIGINT lets tcpdump flush the last packets and exit cleanly.
                proc.send_signal(signal.SIGINT)
                try:
                    code = proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait()
    except CommandRefused as exc:
        raise ActionRefused(str(exc)) from None
    finally:
        os.close(netns)
    return Captured(code, os.fstat(out.fd).st_size)
