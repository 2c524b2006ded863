"""containerd bundles parsed ahead, by a forked child from the first and this process from
the last: read_containerd takes their records as a refresh takes the previous memo, and
the pods are the same as when every bundle is read at the pods step, whatever the child
did (finished, killed) and whatever changed in between."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest
from test_bundle_reuse import CT, ENV, LINKS, SB, Node, bundles_read  # noqa: F401 - a fixture

from podpath.collectors.hostroot import HostRoot
from podpath.collectors.runtime import pods as pods_module
from podpath.collectors.runtime.bundles_ahead import BundlesAhead
from podpath.collectors.runtime.environments import Environments
from podpath.collectors.runtime.pods import BundleMemo
from podpath.snapshot.model import Pod

APPS = 12


def _node(root: Path) -> Node:
    """A node of APPS app containers and one sandbox, each app's env in its own order."""
    node = Node(root)
    for n in range(APPS):
        cid = f"{n:02d}" + CT[2:]
        env = [f"HOSTNAME=web-{n}", *random.Random(n).sample(LINKS, len(LINKS)), *ENV[:1]]
        node.app["process"]["env"] = env
        node.write_bundle(cid, node.app)
        node.procs[cid] = (3000 + n, 7000 + n)
        node.write_state(cid)
    return node


def _pods(node: Node, previous: BundleMemo | None, envs: Environments) -> tuple[Pod, ...]:
    with HostRoot(str(node.root)) as host:
        pods, _ = pods_module.collect_pods(
            host, node.processes(), None, envs=envs, previous=previous, memo=BundleMemo(True)
        )
    return pods


def _ahead(node: Node, envs: Environments, kill: bool = False) -> BundleMemo:
    with HostRoot(str(node.root)) as host:
        ahead = BundlesAhead.start(host, redact=True)
        assert ahead is not None, "pytest runs one thread: the child can be forked"
        try:
            if kill:
                os.kill(ahead.child.pid, signal.SIGKILL)
            return ahead.memo(envs)
        finally:
            ahead.stop()


def test_every_bundle_is_parsed_ahead_as_read_containerd_reads_it(
    tmp_path: Path,
    bundles_read: list[str],  # noqa: F811 - the fixture
) -> None:
    node = _node(tmp_path)
    fresh = _pods(node, None, Environments())
    envs = Environments()
    memo = _ahead(node, envs)
    assert sorted(cid for _, cid in memo.parsed) == sorted(node.procs)
    assert envs.service_links == {}  # each container's links are in its record
    bundles_read.clear()
    again = _pods(node, memo, envs)
    assert bundles_read == []  # this process read none again
    assert again == fresh
    assert all(envs.service_links[cid] for cid in node.procs if cid != SB)


def test_a_killed_child_leaves_its_bundles_to_be_read_again(tmp_path: Path) -> None:
    node = _node(tmp_path)
    fresh = _pods(node, None, Environments())
    envs = Environments()
    memo = _ahead(node, envs, kill=True)
    assert _pods(node, memo, envs) == fresh


def test_what_changed_after_it_was_parsed_is_read_again(
    tmp_path: Path,
    bundles_read: list[str],  # noqa: F811 - the fixture
) -> None:
    """A container restarted (another init) and a bundle written again: read anew."""
    node = _node(tmp_path)
    envs = Environments()
    memo = _ahead(node, envs)
    node.procs[CT] = (1478, 9999)
    node.write_state(CT)
    rewritten = f"{3:02d}" + CT[2:]
    node.app["process"]["env"] = [*ENV, "NEW=1"]
    node.write_bundle(rewritten, node.app)
    bundles_read.clear()
    again = _pods(node, memo, envs)
    assert sorted(bundles_read) == sorted([CT, rewritten])
    assert again == _pods(node, None, Environments())


def test_nothing_is_forked_beside_another_thread(tmp_path: Path) -> None:
    """A child of a process with threads could inherit a lock another thread holds."""
    import threading

    node = _node(tmp_path)
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        with HostRoot(str(node.root)) as host:
            assert BundlesAhead.start(host, redact=True) is None
    finally:
        release.set()
        other.join()


@pytest.mark.parametrize("redact", [True, False])
def test_the_memo_is_for_its_redaction(tmp_path: Path, redact: bool) -> None:
    node = _node(tmp_path)
    envs = Environments(redact=redact)
    with HostRoot(str(node.root)) as host:
        ahead = BundlesAhead.start(host, redact=redact)
        assert ahead is not None
        try:
            memo = ahead.memo(envs)
        finally:
            ahead.stop()
    assert memo.redact == redact and len(memo.parsed) == len(node.procs)
    (app,) = [p.record for (_, cid), p in memo.parsed.items() if cid == CT]
    assert ("DB_PASSWORD=hunter2" in app.env) == (not redact)


def test_the_child_stops_at_the_bundle_this_process_took(tmp_path: Path) -> None:
    """Each side says in the shared page how far it is; the child parses from the first
    up to the last one this process has taken, and says where it stopped."""
    import mmap

    from podpath.collectors.runtime import bundles_ahead
    from podpath.collectors.runtime.pods import containerd_bundle_keys

    node = _node(tmp_path)
    page = mmap.mmap(-1, mmap.PAGESIZE)
    with HostRoot(str(node.root)) as host:
        keys = containerd_bundle_keys(host)
        assert len(keys) == APPS + 2
        bundles_ahead._WORD.pack_into(page, bundles_ahead._PARENT_LAST, 5)
        memo = bundles_ahead._from_the_first(host, keys, page, True)
    assert sorted(memo.parsed) == sorted(keys[:5])
    assert bundles_ahead._WORD.unpack_from(page, bundles_ahead._CHILD_NEXT)[0] == 6


class _DoneChild:
    """A child that has parsed nothing this process needs (its memo is empty)."""

    def result(self) -> tuple[bool, BundleMemo]:
        return True, BundleMemo(True)

    def stop(self) -> None:
        pass


def test_this_process_parses_down_to_the_bundle_the_child_is_at(tmp_path: Path) -> None:
    """The child at bundle 5 (it has parsed 0-4 and may be parsing 5): this process
    parses from the last down to 5, the bundle where they meet included, so none is
    left by both whatever each saw of the other."""
    import mmap

    from podpath.collectors.runtime import bundles_ahead
    from podpath.collectors.runtime.pods import containerd_bundle_keys

    node = _node(tmp_path)
    page = mmap.mmap(-1, mmap.PAGESIZE)
    with HostRoot(str(node.root)) as host:
        keys = containerd_bundle_keys(host)
        bundles_ahead._WORD.pack_into(page, bundles_ahead._CHILD_NEXT, 6)
        ahead = BundlesAhead(host, keys, page, _DoneChild())  # type: ignore[arg-type]
        memo = ahead.memo(Environments())
    assert sorted(memo.parsed) == sorted(keys[5:])
    assert bundles_ahead._WORD.unpack_from(page, bundles_ahead._PARENT_LAST)[0] == 4
