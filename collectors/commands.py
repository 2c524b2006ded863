"""The only way collectors run external programs: an allow-list, bounded and cancellable.

Every command podpath may run is listed in `ALLOWED` with the exact arguments it may
take, because some "read" commands write: `iptables-legacy-save -t mangle` creates the
table it names and `ipvsadm` runs modprobe (docs/reliability.md). Commands run from argv lists
(never a shell), in their own process group (so a hanging child dies with its parent),
with a timeout, a cap on the output read, and a `threading.Event` that cancels them.
Only the running system's own binaries run, never one found under a host root
(docs/reliability.md row 19). Failures come back as `Gap`s, never as exceptions.
"""

from __future__ import annotations

import fcntl
import functools
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path

from podpath.snapshot.model import Gap

DEFAULT_TIMEOUT = 20.0
DEFAULT_MAX_OUTPUT = 64 * 1024 * 1024
MAX_STDERR = 64 * 1024
# How often a running command checks the cancel event and its deadline.
_POLL = 0.05
_READ_CHUNK = 1024 * 1024
# A command's stdout pipe holds this much (Linux's default pipe-max-size) instead of
# 64 KiB: see _widen.
_PIPE_SIZE = 1024 * 1024

# Program -> the exact argument tuples it may be run with. Nothing else runs.
ALLOWED: dict[str, frozenset[tuple[str, ...]]] = {
    # Legacy save is only ever run WITHOUT -t: `-t TABLE` creates TABLE. `-c` adds each
    # rule's packet/byte counters and changes nothing.
    "iptables-legacy-save": frozenset({(), ("-c",)}),
    "ip6tables-legacy-save": frozenset({(), ("-c",)}),
    "iptables-nft-save": frozenset({(), ("-c",)}),
    "ip6tables-nft-save": frozenset({(), ("-c",)}),
    "nft": frozenset(
        {
            ("-j", "--", "list", "ruleset"),
            ("-j", "--", "list", "tables"),
            ("-j", "--", "list", "flowtables"),
        }
    ),
    "conntrack": frozenset(
        {
            ("-L", "-o", "extended"),
            ("-L", "-f", "ipv6", "-o", "extended"),
            ("-S",),
            ("-C",),
        }
    ),
    # Lists every set; run only when ip_set is already in the kernel (collectors/ipset.py).
    "ipset": frozenset({("save",)}),
}

# Long-lived programs the user starts on purpose (the TUI's `s` shell and `c` capture,
# collectors/actions.py): util-linux nsenter into a network namespace handed over as an
# open fd, then a shell, or tcpdump writing pcap to its stdout. Checked by shape, as
# `nft list table` is: the fd number, interface and count vary, nothing else does.
NSENTER_NETNS = re.compile(r"--net=/proc/self/fd/[0-9]{1,9}")
SHELLS = ("bash", "sh")
# An interface name as the kernel accepts one (IFNAMSIZ 16 with the NUL; no '/' or
# whitespace), and never an option to tcpdump.
IFNAME = re.compile(r"[A-Za-z0-9_.:@+=][A-Za-z0-9_.:@+=-]{0,14}")

# podpath's own helpers, run as `python -m MODULE ARGS` by this interpreter: work that
# would hold the GIL and memory of the collecting process for seconds runs on another
# core, and its memory is returned when it exits.
OWN_MODULES = frozenset(
    {"podpath.collectors.nftables.listing", "podpath.collectors.runtime.cri_listing"}
)

# `nft -j -- list table FAMILY NAME` is allowed for these families and for names that
# are plain nft identifiers: nft joins its argv into one script line and parses it, so
# a table named `x; flush ruleset` would otherwise run a second command.
NFT_FAMILIES = frozenset({"ip", "ip6", "inet", "arp", "bridge", "netdev"})
NFT_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]{0,255}")
# Words nft's grammar would read as keywords rather than as a table name.
_NFT_RESERVED = frozenset({"ruleset", "tables", "table", "chain", "chains", "set", "sets", "map"})

# Searched after PATH for podpath's own binaries (root's PATH may lack the sbin dirs).
_SYSTEM_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")

# stderr text -> (gap kind, capability that would allow the read).
_STDERR_KINDS: tuple[tuple[re.Pattern[str], str, str | None], ...] = (
    (
        re.compile(r"permission denied|operation not permitted|must be root|CAP_NET_ADMIN", re.I),
        "permission",
        "CAP_NET_ADMIN",
    ),
    (
        re.compile(
            r"protocol not supported|not supported|can't open handler|can't initialize|no such file",
            re.I,
        ),
        "unavailable",
        None,
    ),
)


def is_allowed(program: str, args: Sequence[str]) -> bool:
    """True when `program args...` is on the allow-list."""
    argv = tuple(args)
    if argv in ALLOWED.get(program, frozenset()):
        return True
    return program == "nft" and _is_nft_list_table(argv)


def is_allowed_long_lived(program: str, args: Sequence[str]) -> bool:
    """True for `nsenter --net=/proc/self/fd/N -- SHELL` or `... -- tcpdump -i IF -c N -U -w -`."""
    argv = tuple(args)
    if program != "nsenter" or len(argv) < 3:
        return False
    if not NSENTER_NETNS.fullmatch(argv[0]) or argv[1] != "--":
        return False
    inner, rest = argv[2], argv[3:]
    if inner in SHELLS:
        return rest == ()
    return (
        inner == "tcpdump"
        and len(rest) == 7
        and rest[0] == "-i"
        and IFNAME.fullmatch(rest[1]) is not None
        and rest[2] == "-c"
        and rest[3].isdigit()
        and rest[4:] == ("-U", "-w", "-")
    )


def _is_nft_list_table(argv: tuple[str, ...]) -> bool:
    """True for `-j -- list table FAMILY NAME` with a known family and a plain name."""
    if len(argv) != 6 or argv[:4] != ("-j", "--", "list", "table"):
        return False
    family, name = argv[4], argv[5]
    return family in NFT_FAMILIES and is_safe_nft_name(name)


def is_safe_nft_name(name: str) -> bool:
    """True when `name` can be passed to nft as a table name without being re-parsed."""
    return NFT_IDENTIFIER.fullmatch(name) is not None and name not in _NFT_RESERVED


class CommandRefused(Exception):
    """A long-lived command that must not start, and why, in one sentence."""


@dataclass(frozen=True)
class CommandResult:
    """What one command printed, and why it failed when it did."""

    program: str
    argv: tuple[str, ...]  # as executed (binary path first)
    returncode: int | None
    stdout: str
    stderr: str
    duration: float
    truncated: bool = False
    timed_out: bool = False
    cancelled: bool = False
    # Why the output is missing or partial; None when the command succeeded.
    gap: Gap | None = None
    # Things worth telling the user that do not make the output wrong (e.g. fallbacks).
    warnings: tuple[Gap, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the command ran to completion with exit status 0 and full output."""
        return self.gap is None


@dataclass(frozen=True)
class CommandRunner:
    """Runs allow-listed programs: the running system's own binaries, never the node root's.

    Under a host root (`--host-root /host` in a debug pod, a mounted disk image) the
    tree is data, not code: a binary found there may have been planted, and running
    it as root hands the machine over (a script at DIR/usr/sbin/iptables-nft-save
    ran as uid 0 and its output was taken for the node's rules). The tools read the
    kernel, not files: run from podpath's own system in the node's network namespace
    (a debug pod shares it, hostNetwork), they see the node's rules. When podpath is
    in another network namespace than the node's, they would read the wrong one, so
    they are not run at all and a gap says why.
    """

    host_root: Path = Path("/")
    # Directories searched for podpath's own binaries; None means PATH plus the system dirs.
    bin_dirs: tuple[Path, ...] | None = None
    timeout: float = DEFAULT_TIMEOUT
    max_output: int = DEFAULT_MAX_OUTPUT
    env: dict[str, str] = field(
        default_factory=lambda: {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    )

    def which(self, program: str) -> Path | None:
        """Our own binary for `program`, or None when it is not installed (or only in the host root)."""
        if self.bin_dirs is not None:
            dirs = [str(d) for d in self.bin_dirs]
        else:
            dirs = [*os.environ.get("PATH", "").split(os.pathsep), *_SYSTEM_DIRS]
        # Relative PATH entries ("", ".") would search the working directory.
        search = os.pathsep.join(d for d in dirs if os.path.isabs(d) and not self._in_host_root(d))
        found = shutil.which(program, path=search)
        if found is None or self._in_host_root(found):
            return None
        return Path(found)

    def _in_host_root(self, path: str) -> bool:
        """True when `path` (symlinks resolved) lies inside a host root other than "/"."""
        root = self._host_root_real
        if root == "/":
            return False
        real = os.path.realpath(path)
        return real == root or real.startswith(root + "/")

    @functools.cached_property
    def _host_root_real(self) -> str:
        return os.path.realpath(self.host_root)

    @functools.cached_property
    def wrong_namespace(self) -> str | None:
        """Why the tools would read another network namespace than the node's, if they would."""
        if self._host_root_real == "/":
            return None
        node = _node_netns(self.host_root)
        try:
            st = os.stat("/proc/self/ns/net")
        except OSError:
            return None
        if node is None or node == (st.st_dev, st.st_ino):
            # Unreadable (a gap says so elsewhere), or the same: the tools read the node.
            return None
        return (
            f"podpath runs in network namespace {st.st_ino}, not the node's ({node[1]}), so "
            "these tools would read the wrong rules; run podpath in the node's network "
            "namespace (hostNetwork)"
        )

    def run(
        self, program: str, args: Sequence[str], cancel: threading.Event | None = None
    ) -> CommandResult:
        """Run an allow-listed command to completion (bounded by timeout and cancel)."""
        subject = " ".join((program, *args))
        if not is_allowed(program, args):
            # A programming error, but it must never run: report rather than raise.
            return _failed(program, (program, *args), Gap(subject, "command not allowed"))
        wrong = self.wrong_namespace
        if wrong is not None:
            return _failed(program, (program, *args), Gap(subject, wrong, kind="error"))
        own = self.which(program)
        if own is None:
            gap = Gap(subject, f"{program} is not installed", kind="missing-tool")
            return _failed(program, (program, *args), gap)
        ev = cancel if cancel is not None else threading.Event()
        return _execute(program, (str(own), *args), self, ev, subject)

    def run_module(
        self,
        module: str,
        args: Sequence[str],
        cancel: threading.Event | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run one of podpath's OWN_MODULES in a fresh interpreter, with run()'s bounds.

        `timeout` replaces the runner's own bound for this run.
        """
        subject = " ".join(("python -m", module, *args))
        argv = (sys.executable, "-m", module, *args)
        if module not in OWN_MODULES:
            return _failed("python", argv, Gap(subject, "command not allowed"))
        wrong = self.wrong_namespace
        if wrong is not None:
            return _failed("python", argv, Gap(subject, wrong, kind="error"))
        import podpath

        # The child imports this very podpath, whatever put it on our sys.path (not
        # resolved: an editable install's package is a tree of links into the source).
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(podpath.__file__)))
        env = {**self.env, "PYTHONPATH": package_parent}
        bounds = replace(self, env=env, timeout=self.timeout if timeout is None else timeout)
        ev = cancel if cancel is not None else threading.Event()
        return _execute("python", argv, bounds, ev, subject)

    def start(
        self,
        program: str,
        args: Sequence[str],
        *,
        pass_fds: Sequence[int] = (),
        stdout: int | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start an allow-listed long-lived command on the caller's terminal; refuse with why.

        Unlike run(), the process is the caller's to wait for: it stays in podpath's
        process group (an interactive shell takes the terminal, ctrl-c reaches a
        capture) and inherits the environment (TERM, HOME for the shell). nsenter and
        the program it runs are both this runner's own binaries, never a host root's.
        """
        argv = tuple(args)
        subject = " ".join((program, *argv))
        if not is_allowed_long_lived(program, argv):
            raise CommandRefused(f"{subject} is not a command podpath may start")
        if _STOPPING.is_set():
            raise CommandRefused(f"{program} not started: podpath is stopping")
        own = self.which(program)
        inner = self.which(argv[2])
        for name, found in ((program, own), (argv[2], inner)):
            if found is None:
                raise CommandRefused(f"{name} is not installed in {self._search_text()}")
        resolved = (str(own), *argv[:2], str(inner), *argv[3:])
        try:
            return subprocess.Popen(  # noqa: S603 - argv list checked above, no shell
                resolved, stdout=stdout, pass_fds=tuple(pass_fds), close_fds=True
            )
        except OSError as exc:
            raise CommandRefused(f"{program} failed: {exc.strerror}") from None

    def _search_text(self) -> str:
        """Where which() looks, as a PATH-like string for a message."""
        if self.bin_dirs is None:
            return "PATH or " + ":".join(_SYSTEM_DIRS)
        return ":".join(str(d) for d in self.bin_dirs)

    def submit(
        self, program: str, args: Sequence[str], cancel: threading.Event | None = None
    ) -> Future[CommandResult]:
        """Start a command on its own thread and return a future for its result."""
        argv = tuple(args)
        return _on_thread(lambda: self.run(program, argv, cancel), program)

    def submit_module(
        self,
        module: str,
        args: Sequence[str],
        cancel: threading.Event | None = None,
        timeout: float | None = None,
    ) -> Future[CommandResult]:
        """run_module on its own thread; a future for its result."""
        argv = tuple(args)
        return _on_thread(lambda: self.run_module(module, argv, cancel, timeout), "python")


# Commands run in sessions of their own (so a timeout kills what they spawned), out of
# reach of a signal sent to podpath's group: their process groups are kept here, for
# `stop_all` to kill when podpath is told to stop.
_RUNNING: set[int] = set()
# Reentrant: stop_all runs in a signal handler, maybe while this thread holds it.
_RUNNING_LOCK = threading.RLock()
_STOPPING = threading.Event()


def stop_all() -> None:
    """Kill every command still running and start no more (podpath is exiting on a signal)."""
    _STOPPING.set()
    # Under the lock, so a command that ends meanwhile waits to leave the set.
    with _RUNNING_LOCK:
        for pgid in _RUNNING:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                # Exiting already, or not ours to kill.
                continue


def _node_netns(host_root: Path) -> tuple[int, int] | None:
    """(dev, inode) of the network namespace of PID 1 in the host root's /proc, if readable."""
    from podpath.collectors.hostroot import CollectorError, HostRoot

    try:
        with HostRoot(str(host_root)) as host:
            st = os.stat("1/ns/net", dir_fd=host.proc_fd())
    except (OSError, CollectorError):
        return None
    return st.st_dev, st.st_ino


def _on_thread(call: Callable[[], CommandResult], name: str) -> Future[CommandResult]:
    fut: Future[CommandResult] = Future()

    def work() -> None:
        fut.set_running_or_notify_cancel()
        try:
            fut.set_result(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiter, not swallowed
            fut.set_exception(exc)

    threading.Thread(target=work, name=f"podpath-cmd-{name}", daemon=True).start()
    return fut


def _failed(
    program: str, argv: tuple[str, ...], gap: Gap, warnings: tuple[Gap, ...] = ()
) -> CommandResult:
    return CommandResult(program, argv, None, "", "", 0.0, gap=gap, warnings=warnings)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:300]
    return "no message"


def classify_stderr(subject: str, stderr: str, returncode: int) -> Gap:
    """Turn a failed command's stderr into a Gap with a kind and capability."""
    message = _first_line(stderr) if stderr.strip() else f"exit status {returncode}"
    for pattern, kind, capability in _STDERR_KINDS:
        if pattern.search(stderr):
            if kind == "unavailable":
                message = f"not available on this kernel ({message})"
            return Gap(subject, message, kind=kind, capability=capability)
    return Gap(subject, f"exit status {returncode}: {message}", kind="error")


@dataclass
class _Capture:
    """Mutable state of one running command's pipes (private to _execute)."""

    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    truncated: bool = False


def _execute(
    program: str,
    argv: tuple[str, ...],
    runner: CommandRunner,
    cancel: threading.Event,
    subject: str,
) -> CommandResult:
    """Run argv with the runner's bounds; never raises for the command's own failures."""
    start = time.monotonic()
    if _STOPPING.is_set():
        return _failed(program, argv, Gap(subject, "cancelled: podpath is stopping", kind="error"))
    try:
        proc = subprocess.Popen(  # noqa: S603 - argv list from the allow-list, no shell
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=runner.env,
            close_fds=True,
            # Own process group: a timeout kills the command and anything it spawned.
            start_new_session=True,
        )
    except FileNotFoundError:
        return _failed(program, argv, Gap(subject, f"{argv[0]} not found", kind="missing-tool"))
    except PermissionError as exc:
        return _failed(program, argv, Gap(subject, f"cannot execute: {exc}", kind="permission"))
    except OSError as exc:
        return _failed(program, argv, Gap(subject, f"cannot execute: {exc}", kind="error"))
    with _RUNNING_LOCK:
        _RUNNING.add(proc.pid)
    assert proc.stdout is not None
    _widen(proc.stdout.fileno())
    cap = _Capture()
    timed_out = cancelled = False
    try:
        timed_out, cancelled = _pump(proc, cap, runner, cancel, start)
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(proc.pid)
        if proc.poll() is None:
            _kill_group(proc)
        proc.wait()
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    duration = time.monotonic() - start
    # Decoded straight from the buffer: a bytes() copy first was 33 MB more at the peak
    # of a snapshot in nftables mode.
    stdout = cap.out.decode("utf-8", errors="surrogateescape")
    stderr = bytes(cap.err).decode("utf-8", errors="surrogateescape")
    rc = proc.returncode
    gap: Gap | None = None
    if cancelled:
        gap = Gap(subject, "cancelled", kind="error")
    elif timed_out:
        gap = Gap(subject, f"timed out after {runner.timeout:g} s", kind="timeout")
    elif cap.truncated:
        gap = Gap(subject, f"output exceeded {runner.max_output} bytes: truncated", kind="error")
    elif rc != 0:
        gap = classify_stderr(subject, stderr, rc)
    return CommandResult(
        program, argv, rc, stdout, stderr, duration, cap.truncated, timed_out, cancelled, gap
    )


def _widen(fd: int) -> None:
    """Give a command's stdout pipe room for 1 MiB of output.

    A thread of this process reads the pipe, and it runs only when it gets the GIL,
    which the collecting thread holds for up to the switch interval (5 ms) at a time:
    with 64 KiB of room, iptables-nft-save (15 MB at 10k Services) stopped at each
    full pipe and took 3.8 s instead of ~1.1 s beside the pods step, conntrack -L (8 MB)
    1.8 s instead of 0.25 s. Where the size is refused (a lower pipe-max-size, an
    unprivileged user's pipe quota), the default pipe still works.
    """
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except OSError:
        pass


def _pump(
    proc: subprocess.Popen[bytes],
    cap: _Capture,
    runner: CommandRunner,
    cancel: threading.Event,
    start: float,
) -> tuple[bool, bool]:
    """Read both pipes until EOF, the deadline, cancel or the cap; return (timed_out, cancelled)."""
    assert proc.stdout is not None and proc.stderr is not None
    deadline = start + runner.timeout
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    try:
        while sel.get_map():
            if cancel.is_set() or _STOPPING.is_set():
                return False, True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True, False
            for key, _ in sel.select(timeout=min(_POLL, remaining)):
                chunk = os.read(key.fd, _READ_CHUNK)
                if not chunk:
                    sel.unregister(key.fileobj)
                elif key.data == "out":
                    room = runner.max_output - len(cap.out)
                    cap.out += chunk[:room]
                    if len(chunk) > room:
                        # A flood: stop reading and kill it rather than buffer without bound.
                        cap.truncated = True
                        return False, False
                elif len(cap.err) < MAX_STDERR:
                    cap.err += chunk[: MAX_STDERR - len(cap.err)]
        # Pipes closed: the process is exiting; wait for it within the deadline.
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return True, False
        return False, False
    finally:
        sel.close()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process group this command leads (it was started with its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        # Already gone between poll() and killpg(): nothing left to stop.
        return
    except PermissionError:
        proc.kill()
