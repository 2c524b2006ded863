"""HostRoot keeps every read inside the host root (docs/reliability.md row 11)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from podpath.collectors.hostroot import (
    CollectorError,
    HostRoot,
    NotAvailable,
    PermissionDenied,
    Vanished,
    translate,
)

CANARY = "OUTSIDE-THE-ROOT"
INSIDE = "inside-the-root"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside the fake root holding a canary where absolute links would land."""
    out = tmp_path / "outside"
    (out / "run" / "netns").mkdir(parents=True)
    (out / "run" / "netns" / "cni-x").write_text(CANARY)
    (out / "canary").write_text(CANARY)
    return out


@pytest.fixture
def fake_root(tmp_path: Path, outside: Path) -> Path:
    """A fake /host like a debug pod sees: var/run -> /run (absolute) and hostile links."""
    root = tmp_path / "host"
    (root / "run" / "netns").mkdir(parents=True)
    (root / "run" / "netns" / "cni-x").write_text(INSIDE)
    (root / "var").mkdir()
    (root / "etc").mkdir()
    (root / "etc" / "canary").write_text(INSIDE)
    # Absolute symlink: naive joins land in the reader's /run.
    (root / "var" / "run").symlink_to("/run")
    # Absolute link to the real location of the outside canary: must be re-rooted.
    (root / "escape").symlink_to(str(outside / "canary"))
    # Relative link climbing above the root: ".." must clamp at the root.
    (root / "climb").symlink_to("../../../../../../../.." + str(outside / "canary"))
    (root / "etc" / "dotdot").symlink_to("../../../../../../etc/canary")
    (root / "loop").symlink_to("loop")
    return root


@pytest.fixture(params=["openat2", "walk"])
def host(request: pytest.FixtureRequest, fake_root: Path) -> Iterator[HostRoot]:
    """The fake root read with each resolution strategy."""
    h = HostRoot(str(fake_root), use_openat2=request.param == "openat2")
    if request.param == "openat2" and h.resolver != "openat2":
        h.close()
        pytest.skip("openat2 not available on this kernel")
    assert h.resolver == request.param
    yield h
    h.close()


def test_absolute_symlink_resolves_inside_root(host: HostRoot) -> None:
    """/var/run/netns/cni-x reads the root's /run, not the reader's /run."""
    assert host.read_text("/var/run/netns/cni-x") == INSIDE


def test_absolute_symlink_to_outside_path_is_rerooted(host: HostRoot) -> None:
    """A link to an absolute outside path is resolved under the root, so it misses."""
    with pytest.raises(Vanished):
        host.read_text("/escape")


def test_dotdot_clamps_at_root(host: HostRoot) -> None:
    """`..` above the root stays at the root, as in a chroot."""
    assert host.read_text("/etc/dotdot") == INSIDE
    with pytest.raises(Vanished):
        host.read_text("/climb")
    assert host.read_text("/../../etc/canary") == INSIDE


def test_no_read_returns_the_canary(host: HostRoot, fake_root: Path) -> None:
    """No path of the fake root, followed any way, yields the outside canary."""
    for path in (
        "/escape",
        "/climb",
        "/var/run/netns/cni-x",
        "/var/run/../canary",
        "/etc/dotdot",
        "/var/run/netns/../../canary",
    ):
        try:
            assert CANARY not in host.read_text(path)
        except Vanished:
            pass


def test_listdir_scandir_follow_inside(host: HostRoot) -> None:
    """Directory listings go through the same resolution."""
    assert host.listdir("/var/run/netns") == ["cni-x"]
    entries = {e.name: e for e in host.scandir("/")}
    assert entries["var"].is_dir and entries["escape"].is_symlink


def test_readlink_exists_stat(host: HostRoot, fake_root: Path) -> None:
    """readlink returns the raw target; exists/stat resolve inside the root."""
    assert host.readlink("/var/run") == "/run"
    assert host.exists("/var/run/netns/cni-x")
    assert not host.exists("/escape")
    assert host.stat("/var/run/netns/cni-x").st_ino == (fake_root / "run/netns/cni-x").stat().st_ino
    assert host.stat("/var/run", follow=False).st_ino == os.lstat(fake_root / "var/run").st_ino


def test_real_path_is_inside_root(host: HostRoot, fake_root: Path) -> None:
    """real_path gives the reader-view path under the root."""
    assert host.real_path("/var/run/netns/cni-x") == str(fake_root / "run/netns/cni-x")


def test_symlink_loop_is_an_error_not_a_hang(host: HostRoot) -> None:
    """A self-referencing link fails cleanly."""
    with pytest.raises(Exception) as info:
        host.read_text("/loop")
    assert not isinstance(info.value, RecursionError)


def test_surrogateescape_text(host: HostRoot, fake_root: Path) -> None:
    """Invalid UTF-8 survives decoding reversibly."""
    (fake_root / "bad").write_bytes(b"a\xffb")
    text = host.read_text("/bad")
    assert text.encode("utf-8", "surrogateescape") == b"a\xffb"


def test_translate_errors() -> None:
    """OSErrors map to domain errors in one place, with the capability for /proc."""
    import errno

    assert isinstance(translate(OSError(errno.ENOENT, "x"), "/a"), Vanished)
    assert isinstance(translate(OSError(errno.ESRCH, "x"), "/a"), Vanished)
    denied = translate(OSError(errno.EACCES, "x"), "/proc/12/ns/net")
    assert isinstance(denied, PermissionDenied) and denied.capability == "CAP_SYS_PTRACE"
    assert denied.to_gap().kind == "permission"
    assert isinstance(translate(OSError(errno.ENOSYS, "x"), "/a"), NotAvailable)


def test_slash_root_reads_proc() -> None:
    """The default root reads the real /proc through the proc fd."""
    with HostRoot("/") as h:
        assert h.proc == "/proc"
        assert h.proc_readlink("self/ns/net").startswith("net:[")
        assert h.read_text("/proc/self/comm")


def test_canonical_is_host_view(host: HostRoot) -> None:
    """canonical() resolves /var/run -> /run inside the root and answers in host terms."""
    assert host.canonical("/var/run/netns/cni-x") == "/run/netns/cni-x"
    assert host.canonical("/var/run/netns/missing") == "/var/run/netns/missing"


def test_dotdot_survives_mount_churn(fake_root: Path) -> None:
    """openat2's EAGAIN (a mount anywhere during a `..` lookup) is retried, not an error."""
    if os.geteuid() != 0:
        pytest.skip("mount churn needs root")
    loop = "while :; do mount -t tmpfs ppchurn /mnt && umount /mnt; done"
    churn = subprocess.Popen(["unshare", "--mount", "--", "sh", "-c", loop])
    try:
        with HostRoot(str(fake_root)) as h:
            assert h.resolver == "openat2"
            for _ in range(3000):
                assert h.read_text("/etc/dotdot") == INSIDE
    finally:
        churn.kill()
        churn.wait()


def test_a_fifo_is_refused_not_waited_on(host: HostRoot, fake_root: Path) -> None:
    """A FIFO where a state file should be: an error at once (it used to wait for a writer)."""
    os.mkfifo(fake_root / "run" / "state.json")
    with pytest.raises(CollectorError, match="FIFO"):
        host.read_text("/run/state.json")
