"""A signal whose exception CPython drops still ends the command as that signal.

CPython runs a Python signal handler at the next bytecode boundary of the main thread;
if that boundary is inside a weakref callback or a `__del__`, the handler's exception is
printed as "Exception ignored in: ..." and the interrupted code goes on. CI saw it once:
SIGTERM landed while an import's lock was freed (`_get_module_lock.<locals>.cb`), the
tools were killed, and `podpath snapshot -o FILE` exited 0 having replaced FILE with
what they left (tests/reliability/test_signals.py). Each case runs in a child Python, as
the program does: the handlers and the tools' stop are the process's own.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# Delivers SIGTERM while CPython runs a weakref callback, so that the handler's
# Terminated is dropped there; the child then runs `_run` as `main` does.
CHILD = textwrap.dedent(
    """
    import argparse, os, signal, sys, weakref

    from podpath import cli

    class Thing:
        pass

    def lose_signal():
        def callback(_ref):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(10_000):  # the handler runs at one of these boundaries
                pass

        thing = Thing()
        ref = weakref.ref(thing, callback)
        del thing
        return ref

    def handler(args):
        lose_signal()
        print("command went on", file=sys.stderr)
        {body}

    args = argparse.Namespace(command="snapshot", handler=handler)
    sys.exit(cli._run(args))
    """
)


def _child(body: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """The child above, its command's body after the lost signal being `body`."""
    return _python(CHILD.format(body=body.strip().replace("\n", "\n    ")), *argv)


def _python(script: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_signal_is_lost_where_the_test_sends_it() -> None:
    """The premise: the handler's exception ends the callback only; the command goes on."""
    done = _child("return 0")
    assert "Exception ignored in" in done.stderr
    assert "Terminated: 15" in done.stderr
    assert "command went on" in done.stderr


def test_a_command_that_goes_on_still_exits_as_the_signal() -> None:
    done = _child("return 0")
    assert done.returncode == 128 + 15, done.stderr
    assert done.stderr.rstrip().endswith("podpath: terminated")


def test_a_command_that_fails_after_it_exits_as_the_signal() -> None:
    """Its tools were killed: the error that follows is the signal's, not a crash report."""
    done = _child("raise RuntimeError('a part went missing')")
    assert done.returncode == 128 + 15, done.stderr
    assert "podpath: terminated" in done.stderr
    assert "crash" not in done.stderr.lower()
    assert "a part went missing" not in done.stderr


def test_the_snapshot_file_is_not_replaced_after_a_lost_signal(tmp_path: Path) -> None:
    out = tmp_path / "node.json"
    previous = b'{"previous": "content"}\n'
    out.write_bytes(previous)
    body = textwrap.dedent(
        """
        from podpath.cli.inspect import _write_snapshot
        from podpath.snapshot.model import SCHEMA_VERSION, NodeFacts, Snapshot

        snapshot = Snapshot(SCHEMA_VERSION, 0.0, NodeFacts("node-1", "6.18"), 1)
        _write_snapshot(snapshot, sys.argv[1], None)
        return 0
        """
    )
    done = _child(body, str(out))
    assert done.returncode == 128 + 15, done.stderr
    assert out.read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.json"]


def test_without_a_signal_the_snapshot_file_is_written(tmp_path: Path) -> None:
    """The same child, no signal: the check at the end of the chunks lets the file through."""
    out = tmp_path / "node.json"
    out.write_bytes(b"old\n")
    script = textwrap.dedent(
        """
        import sys
        from podpath.cli.inspect import _write_snapshot
        from podpath.snapshot.model import SCHEMA_VERSION, NodeFacts, Snapshot

        snapshot = Snapshot(SCHEMA_VERSION, 0.0, NodeFacts("node-1", "6.18"), 1)
        _write_snapshot(snapshot, sys.argv[1], None)
        """
    )
    done = _python(script, str(out))
    assert done.returncode == 0, done.stderr
    assert b'"node-1"' in out.read_bytes()
