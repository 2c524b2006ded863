"""One computation in a forked child (podpath.forked): its value comes back, a failing or
unreadable child gives none (the caller computes it), and every child is reaped."""

from __future__ import annotations

import subprocess
import sys

# Run in a fresh interpreter: fork is used only by a single-threaded process, and by
# then this test process may hold threads of other tests.
_SCRIPT = """
import os, pickle, threading, time
from podpath.forked import Forked, can_fork

parent = os.getpid()
assert can_fork()

# A value pickle carries (a set of tuples), computed in the child.
child = Forked.start(lambda: {("pid", os.getpid())}, pickle.dumps, pickle.loads)
ok, value = child.result(); child.stop()
assert ok and value != {("pid", parent)}, value

def fails():
    raise RuntimeError("cannot compute")

child = Forked.start(fails)
assert child.result() == (False, None); child.stop()

# What marshal cannot carry: the child fails to write it.
child = Forked.start(lambda: object())
assert child.result() == (False, None); child.stop()

# Output the parent cannot read.
child = Forked.start(lambda: b"x", lambda v: v, pickle.loads)
assert child.result() == (False, None); child.stop()

# A child still running when the caller gives up is killed and reaped.
child = Forked.start(lambda: time.sleep(60))
started = time.monotonic(); child.stop()
assert time.monotonic() - started < 10

# Given up from another thread while result() waits for it: killed, result() gets none.
child = Forked.start(lambda: time.sleep(60))
got = []
reader = threading.Thread(target=lambda: got.append(child.result())); reader.start()
time.sleep(0.2)
started = time.monotonic(); child.cancel(); reader.join(10)
assert not reader.is_alive() and got == [(False, None)] and time.monotonic() - started < 10
child.stop(); child.cancel()  # reaped: neither signals the pid again
assert not os.path.exists(f"/proc/{child.pid}")

# No fork while another thread runs.
stop = threading.Event()
other = threading.Thread(target=stop.wait); other.start()
assert not can_fork() and Forked.start(lambda: 1) is None
stop.set(); other.join()

try:
    os.waitpid(-1, os.WNOHANG)
except ChildProcessError:
    print("ok")  # every child was reaped
"""


def test_a_forked_value_comes_back_and_every_child_is_reaped() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")
