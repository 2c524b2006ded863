"""One computation in a forked child, its result read back over a pipe.

On a 2-core node a second process is the only way to use the second core for Python
work (threads share one GIL). A forked child sees this process's memory as it was at
fork time, computes, writes its result, serialised, to a pipe and leaves with
`os._exit`, running none of the parent's cleanup. Used for the /proc scan's parts
(`podpath.collectors.parallel`, results in `marshal`) and the doctor's node facts beside
its sweep (`podpath.doctor`, findings in `pickle`).

fork() is used only while this process has a single thread: a child of a
multi-threaded process inherits locks that other threads may hold (the TUI prepares its
views on a worker thread next to Textual's). A child that fails for any reason (fork
refused, killed, bad output) reports no result, and the caller computes it itself, so
no result is ever lost.

A child may be given up from another thread (`cancel`: the TUI quits while its worker
waits for the doctor's findings): a lock makes reaping and killing one step each, so a
pid is never signalled after it was reaped (and could belong to another process).
"""

from __future__ import annotations

import gc
import marshal
import os
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

R = TypeVar("R")


def can_fork() -> bool:
    """Whether a child may be forked safely: fork exists and this process has one thread."""
    return hasattr(os, "fork") and threading.active_count() == 1


class Forked(Generic[R]):
    """One forked child computing one value; `result` collects it, `stop` always reaps it."""

    def __init__(self, pid: int, read_fd: int, loads: Callable[[bytes], object]) -> None:
        self.pid = pid
        self.read_fd = read_fd
        self.loads = loads
        self.reaped = False
        self._reaping = threading.Lock()

    @classmethod
    def start(
        cls,
        work: Callable[[], R],
        dumps: Callable[[Any], bytes] = marshal.dumps,
        loads: Callable[[bytes], object] = marshal.loads,
    ) -> Forked[R] | None:
        """Fork a child that writes `dumps(work())` to a pipe; None if it cannot be forked.

        `loads` must read what `dumps` wrote (marshal for plain values, pickle for objects).
        """
        if not can_fork():
            return None
        try:
            read_fd, write_fd = os.pipe()
        except OSError:
            return None
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            return None
        if pid == 0:  # pragma: no cover - runs in the child, which never returns
            code = 1
            try:
                # A collection would touch every object of the parent's heap and so
                # copy each of its pages; the child lives only as long as `work`.
                gc.disable()
                os.close(read_fd)
                view = memoryview(dumps(work()))
                while view:
                    view = view[os.write(write_fd, view) :]
                code = 0
            finally:
                # Never run the parent's code (finally blocks, atexit, buffered stdout)
                # in the child: leave at once. A failure is reported by the exit code and
                # the parent computes the value itself.
                os._exit(code)
        os.close(write_fd)
        return cls(pid, read_fd, loads)

    def result(self) -> tuple[bool, R | None]:
        """(True, value) once the child has exited cleanly with its result, else (False, None)."""
        chunks = []
        try:
            while chunk := os.read(self.read_fd, 1 << 20):
                chunks.append(chunk)
        except OSError:
            return False, None
        status = self._reap()
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            return False, None
        try:
            # The child ran `work` and wrote its value with the matching `dumps`.
            return True, cast(R, self.loads(b"".join(chunks)))
        except Exception:  # noqa: BLE001 - any undecodable output means "compute it here"
            return False, None

    def _reap(self) -> int:
        """Wait for the child (it has closed its pipe: it is leaving); its wait status."""
        with self._reaping:
            _, status = os.waitpid(self.pid, 0)
            self.reaped = True
            return status

    def cancel(self) -> None:
        """Kill the child if it is not reaped yet; safe from another thread than the one
        in `result`, which then reads the end of the pipe and reports no result."""
        with self._reaping:
            if not self.reaped:
                _kill(self.pid)

    def stop(self) -> None:
        """Kill the child if it still runs (an exception or Ctrl-C here), reap it, close its pipe."""
        with self._reaping:
            if not self.reaped:
                _kill(self.pid)
                os.waitpid(self.pid, 0)
                self.reaped = True
        os.close(self.read_fd)


def _kill(pid: int) -> None:
    """SIGKILL a child of ours that is not reaped (so the pid is still its own)."""
    import signal  # only on this rare path: signal's enums cost an import

    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # not for a child not yet reaped (a zombie takes signals): harmless
