"""containerd's bundles parsed on both cores: a forked child from the first, this process
from the last, while the snapshot reads everything else.

Decoding each container's runtime spec and taking its Service-link variables out of its
environment is most of a snapshot's pods step where Services are many: on the 10k-Service
benchmark node each app container's spec holds ~26,700 variables (0.9 MB), in an order
of its own (kubelet ranges over a Go map), ~7 ms a container, ~2 s for 250 pods, while
the second core idles once the external tools are done (docs/performance.md, "The pods
step"). A child forked before the tools' threads start parses the bundles of the
well-known state dirs from the first; when this process reaches its pods step it parses
them from the last, until the two meet. read_containerd then takes each record from
their memo exactly as a refresh takes the previous snapshot's (only where the init is
alive with the same start time and config.json is unchanged), and reads anything else
itself.

The two tell each other how far they are through a shared page: the child the next
bundle it takes, this process the last one it took. Neither waits for the other. The
child stops at a bundle this process has taken; this process stops only below a bundle
the child has gone past (so parsed), and so parses the one where they meet even if the
child does too: whatever order the two see each other's words in, no bundle is left by
both. One left anyway (the child killed) is read by read_containerd: the snapshot is the
same either way, as it is when the child cannot be forked (the process has threads,
podpath.forked) or fails.
"""

from __future__ import annotations

import mmap
import pickle
import struct
from dataclasses import dataclass

from podpath.collectors.hostroot import HostRoot
from podpath.collectors.runtime.environments import Environments
from podpath.collectors.runtime.pods import BundleMemo, containerd_bundle_keys, parse_bundle_ahead
from podpath.forked import Forked, can_fork

# In the shared page: the child's next bundle (it counts up), then this process's last
# (it counts down); aligned 8-byte words, each written by one side only.
_CHILD_NEXT = 0
_PARENT_LAST = 8
_WORD = struct.Struct("q")


@dataclass
class BundlesAhead:
    """The bundles, the shared page, and the child parsing them from the first."""

    host: HostRoot
    keys: list[tuple[str, str]]
    page: mmap.mmap
    child: Forked[BundleMemo]

    @classmethod
    def start(cls, host: HostRoot, redact: bool) -> BundlesAhead | None:
        """Fork the child, or None where this process may not fork (it has threads)."""
        if not can_fork():
            return None
        keys = containerd_bundle_keys(host)
        if len(keys) < 2:
            return None  # nothing to share
        page = mmap.mmap(-1, mmap.PAGESIZE)  # anonymous and shared with the child
        _WORD.pack_into(page, _CHILD_NEXT, 0)
        _WORD.pack_into(page, _PARENT_LAST, len(keys))
        child = Forked.start(
            lambda: _from_the_first(host, keys, page, redact), pickle.dumps, pickle.loads
        )
        if child is None:
            page.close()
            return None
        return cls(host, keys, page, child)

    def memo(self, envs: Environments) -> BundleMemo:
        """Parse from the last bundle until the child's, then add what the child parsed."""
        memo = BundleMemo(envs.redact)
        for last in range(len(self.keys) - 1, -1, -1):
            _WORD.pack_into(self.page, _PARENT_LAST, last)
            if last + 1 < _WORD.unpack_from(self.page, _CHILD_NEXT)[0]:
                break  # the child has taken the next one: it parsed this one first
            parse_bundle_ahead(memo, self.host, self.keys[last], envs)
        done, theirs = self.child.result()
        if done and isinstance(theirs, BundleMemo) and theirs.redact == memo.redact:
            memo.parsed.update(theirs.parsed)
        return memo

    def stop(self) -> None:
        """Kill the child if it still runs, reap it, close its pipe and the page."""
        self.child.stop()
        self.page.close()


def _from_the_first(
    host: HostRoot, keys: list[tuple[str, str]], page: mmap.mmap, redact: bool
) -> BundleMemo:
    """In the child: parse bundles from the first until this process's last."""
    memo = BundleMemo(redact)
    envs = Environments(redact=redact)
    for first, key in enumerate(keys):
        _WORD.pack_into(page, _CHILD_NEXT, first + 1)
        if first >= _WORD.unpack_from(page, _PARENT_LAST)[0]:
            break  # this process has taken it
        parse_bundle_ahead(memo, host, key, envs)
    return memo
