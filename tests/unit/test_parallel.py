"""The /proc scan's work splitter: parts run in forked children, results as if sequential."""

from __future__ import annotations

import os
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from podpath.collectors import parallel


@given(st.lists(st.integers(min_value=0, max_value=50)), st.integers(min_value=1, max_value=6))
def test_split_keeps_every_item_in_order(items: list[int], parts: int) -> None:
    runs = parallel.split(items, parts, lambda i: float(i + 1))
    assert [i for run in runs for i in run] == items
    assert len(runs) <= max(1, parts)
    assert all(runs) or items == []


def test_split_balances_by_weight() -> None:
    # One heavy item then many light ones: the heavy one gets a run of its own.
    runs = parallel.split([100] + [1] * 100, 2, float)
    assert runs[0] == [100]
    assert len(runs[1]) == 100


# Run in a fresh interpreter: fork is used only by a single-threaded process, and by
# then this test process may hold threads (and children) of other tests.
_IN_CHILDREN = """
import os
from podpath.collectors import parallel
from podpath.forked import can_fork

def work(part):
    return os.getpid(), [i * i for i in part]

assert can_fork()
results = parallel.run_parts(work, [[1, 2], [3, 4], [5, 6]])
assert [r[1] for r in results] == [[1, 4], [9, 16], [25, 36]], results
pids = [r[0] for r in results]
# The first part is computed here, each other part in a child of its own.
assert pids[0] == os.getpid() and len(set(pids[1:])) == 2 and os.getpid() not in pids[1:]
try:
    os.waitpid(-1, os.WNOHANG)
except ChildProcessError:
    print("ok")  # every child was reaped
"""


def test_parts_run_in_children_and_come_back_in_order() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _IN_CHILDREN],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")


_PARENT = os.getpid()


def _fails_in_children(part: list[int]) -> int:
    if os.getpid() != _PARENT:
        raise RuntimeError("a child that cannot compute its part")
    return sum(part)


def test_a_failing_child_has_its_part_computed_here() -> None:
    assert parallel.run_parts(_fails_in_children, [[1], [2, 3], [4]]) == [1, 5, 4]


def _unmarshallable(part: list[int]) -> object:
    return object() if os.getpid() != _PARENT else len(part)


def test_a_result_marshal_cannot_carry_is_recomputed_here() -> None:
    assert parallel.run_parts(_unmarshallable, [[1], [2, 3]]) == [1, 2]
