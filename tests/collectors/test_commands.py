"""The command runner: allow-list, timeouts, output caps, stderr -> Gap."""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from podpath.collectors.commands import CommandRunner, classify_stderr, is_allowed


def fake(bin_dir: Path, name: str, body: str) -> Path:
    """Write an executable /bin/sh script `name` into bin_dir."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def runner(
    bin_dir: Path, timeout: float = 20.0, max_output: int = 64 << 20, host_root: Path = Path("/")
) -> CommandRunner:
    """A runner that only finds programs in bin_dir."""
    return CommandRunner(
        host_root=host_root, bin_dirs=(bin_dir,), timeout=timeout, max_output=max_output
    )


def test_legacy_save_with_table_option_is_refused() -> None:
    """`iptables-legacy-save -t mangle` creates the table, so it is not on the allow-list."""
    assert is_allowed("iptables-legacy-save", ())
    assert not is_allowed("iptables-legacy-save", ("-t", "mangle"))
    assert not is_allowed("ip6tables-legacy-save", ("-t", "raw"))


def test_only_listed_programs_and_arguments_are_allowed() -> None:
    """Unknown programs and unlisted arguments are refused; the listed ones pass."""
    assert is_allowed("nft", ("-j", "--", "list", "ruleset"))
    assert is_allowed("conntrack", ("-L", "-o", "extended"))
    assert not is_allowed("nft", ("flush", "ruleset"))
    assert not is_allowed("conntrack", ("-F",))
    assert not is_allowed("ipvsadm", ("-Ln",))
    assert not is_allowed("sh", ("-c", "true"))


def test_nft_flowtables_listing_is_allowed_but_not_with_extra_words() -> None:
    """`nft -j -- list flowtables` (nft's metainfo, cheaply) runs; nothing appended to it does."""
    assert is_allowed("nft", ("-j", "--", "list", "flowtables"))
    assert not is_allowed("nft", ("-j", "--", "list", "flowtables", "ip"))
    assert not is_allowed("nft", ("list", "flowtables"))


def test_nft_table_names_that_nft_would_reparse_are_refused() -> None:
    """nft joins argv into one script line, so names with `;`, spaces or `-` are refused."""
    assert is_allowed("nft", ("-j", "--", "list", "table", "ip", "kube-proxy"))
    assert not is_allowed("nft", ("-j", "--", "list", "table", "ip", "x; flush ruleset"))
    assert not is_allowed("nft", ("-j", "--", "list", "table", "ip", "-x"))
    assert not is_allowed("nft", ("-j", "--", "list", "table", "ip", "$(touch /tmp/PWN)"))
    assert not is_allowed("nft", ("-j", "--", "list", "table", "evil", "t"))


def test_refused_command_is_never_executed(tmp_path: Path) -> None:
    """A command off the allow-list returns a gap and its binary does not run."""
    canary = tmp_path / "ran"
    fake(tmp_path / "bin", "iptables-legacy-save", f"touch {canary}")
    result = runner(tmp_path / "bin").run("iptables-legacy-save", ("-t", "mangle"))
    assert result.gap is not None and "not allowed" in result.gap.reason
    assert not canary.exists()


def test_hanging_command_times_out_and_its_children_die(tmp_path: Path) -> None:
    """A fake iptables-nft-save that sleeps is killed at the timeout, children included."""
    pidfile = tmp_path / "child.pid"
    fake(tmp_path / "bin", "iptables-nft-save", f"sleep 30 & echo $! > {pidfile}; wait")
    start = time.monotonic()
    result = runner(tmp_path / "bin", timeout=0.5).run("iptables-nft-save", ())
    assert time.monotonic() - start < 5
    assert result.timed_out and result.gap is not None and result.gap.kind == "timeout"
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and not _dead(child):
        time.sleep(0.05)
    assert _dead(child)


def _dead(pid: int) -> bool:
    """True when pid is gone or a zombie (killed, not yet reaped by its new parent)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_fake_binary_first_in_path_is_the_one_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without injected bin_dirs, PATH decides: a fake first in PATH that hangs times out."""
    fake(tmp_path / "bin", "iptables-nft-save", "sleep 30")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ.get('PATH', '')}")
    result = CommandRunner(timeout=0.5).run("iptables-nft-save", ())
    assert result.argv == (str(tmp_path / "bin" / "iptables-nft-save"),)
    assert result.gap is not None and result.gap.kind == "timeout"


def test_failing_command_becomes_an_error_gap_with_its_stderr(tmp_path: Path) -> None:
    """Exit status 1 gives a gap carrying the tool's own message."""
    fake(
        tmp_path / "bin",
        "iptables-nft-save",
        "echo 'iptables-nft-save: something broke' >&2; exit 1",
    )
    result = runner(tmp_path / "bin").run("iptables-nft-save", ())
    assert result.returncode == 1
    assert result.gap is not None and result.gap.kind == "error"
    assert "something broke" in result.gap.reason


def test_flooding_command_is_truncated_and_bounded(tmp_path: Path) -> None:
    """10 MB of output with a 1 MiB cap: stdout is exactly the cap and a gap says truncated."""
    fake(tmp_path / "bin", "iptables-nft-save", "head -c 10000000 /dev/zero | tr '\\0' 'x'")
    cap = 1024 * 1024
    result = runner(tmp_path / "bin", max_output=cap).run("iptables-nft-save", ())
    assert result.truncated
    assert len(result.stdout) == cap
    assert result.gap is not None and "truncated" in result.gap.reason


def test_permission_message_names_the_capability(tmp_path: Path) -> None:
    """The real unprivileged message of iptables-nft-save becomes a permission gap."""
    msg = "iptables-nft-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)"
    fake(tmp_path / "bin", "iptables-nft-save", f"echo '{msg}' >&2; exit 1")
    result = runner(tmp_path / "bin").run("iptables-nft-save", ())
    assert result.gap is not None
    assert (result.gap.kind, result.gap.capability) == ("permission", "CAP_NET_ADMIN")


def test_fixture_permission_stderr_is_classified() -> None:
    """The real-world `iptables-save` permission-denied stderr classifies as permission."""
    text = (
        Path(__file__).resolve().parents[1]
        / "fixtures/realworld/iptables/aks-iptables-save-nf_tables-permission-denied-stderr.txt"
    ).read_text()
    gap = classify_stderr("iptables-nft-save", text, 1)
    assert gap.kind == "permission" and gap.capability == "CAP_NET_ADMIN"
    assert "generation id" in gap.reason


def test_missing_binary_is_a_missing_tool_gap(tmp_path: Path) -> None:
    """No binary anywhere gives kind=missing-tool, not an exception."""
    (tmp_path / "bin").mkdir()
    result = runner(tmp_path / "bin").run("conntrack", ("-L", "-o", "extended"))
    assert result.gap is not None and result.gap.kind == "missing-tool"


def test_cancel_stops_a_running_command(tmp_path: Path) -> None:
    """Setting the cancel event ends a hanging command quickly."""
    fake(tmp_path / "bin", "iptables-nft-save", "sleep 30")
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    start = time.monotonic()
    result = runner(tmp_path / "bin", timeout=20).run("iptables-nft-save", (), cancel)
    assert time.monotonic() - start < 5
    assert result.cancelled and result.gap is not None


def test_submitted_commands_run_concurrently(tmp_path: Path) -> None:
    """Two 1-second commands submitted together finish in well under 2 seconds."""
    fake(tmp_path / "bin", "iptables-nft-save", "sleep 1; echo v4")
    fake(tmp_path / "bin", "ip6tables-nft-save", "sleep 1; echo v6")
    r = runner(tmp_path / "bin")
    start = time.monotonic()
    futures = [r.submit("iptables-nft-save", ()), r.submit("ip6tables-nft-save", ())]
    outputs = [f.result(timeout=10).stdout for f in futures]
    assert time.monotonic() - start < 1.8
    assert outputs == ["v4\n", "v6\n"]


def test_invalid_utf8_output_survives(tmp_path: Path) -> None:
    """Non-UTF-8 bytes are kept (surrogateescape), not replaced or fatal."""
    fake(tmp_path / "bin", "iptables-nft-save", "printf 'a\\377b\\n'")
    result = runner(tmp_path / "bin").run("iptables-nft-save", ())
    assert result.ok
    assert result.stdout.encode("utf-8", "surrogateescape") == b"a\xffb\n"


def test_a_commands_output_pipe_holds_a_mebibyte(tmp_path: Path) -> None:
    """The pipe a command writes to is widened to 1 MiB, so that a tool with megabytes
    to say does not stop each 64 KiB for the reader thread's turn at the GIL."""
    waits_for_room = (
        "import fcntl, time\n"
        "end = time.monotonic() + 10\n"
        "while fcntl.fcntl(1, fcntl.F_GETPIPE_SZ) < 1 << 20 and time.monotonic() < end:\n"
        "    time.sleep(0.01)\n"
        "print(fcntl.fcntl(1, fcntl.F_GETPIPE_SZ))\n"
    )
    fake(tmp_path / "bin", "iptables-nft-save", f"exec {sys.executable} -c '{waits_for_room}'")
    result = runner(tmp_path / "bin").run("iptables-nft-save", ())
    assert (result.gap, result.stdout) == (None, f"{1 << 20}\n")
