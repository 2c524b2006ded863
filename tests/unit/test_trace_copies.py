"""The walk's hand-built copies of its dataclasses are dataclasses.replace, field for field.

The hot paths of a trace copy a flow, a walk state, an outcome, an env or a packet with a
few fields changed, for each endpoint of a Service (250 at a time); they build the copy
directly, as dataclasses.replace costs twice as much. Each copy is checked here against
replace on an object whose every field holds its own value: a field a copy drops,
swaps or resets (one added to the dataclass later, say) fails the test.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import pytest

from podpath.trace.flow import Flow
from podpath.trace.model import Packet
from podpath.trace.netfilter import NfEnv, NfOutcome, WalkState

COPIES: list[tuple[type[Any], str, tuple[str, ...]]] = [
    (Flow, "moved_on", ("packet", "probability", "hops", "nat", "uncertain")),
    (WalkState, "weighted", ("probability", "hops")),
    (WalkState, "rewritten", ("packet", "hops", "nat")),
    (WalkState, "moved", ("hops", "stack")),
    (NfOutcome, "extended", ("hops", "nat", "uncertain")),
    (NfEnv, "on", ("backend",)),
    (Packet, "to", ("dst", "dport")),
]


@pytest.mark.parametrize(("cls", "method", "changed"), COPIES)
def test_a_copy_is_replace_with_the_same_changes(
    cls: type[Any], method: str, changed: tuple[str, ...]
) -> None:
    every = cls(**{f.name: object() for f in fields(cls)})
    changes = {name: object() for name in changed}
    copy = getattr(every, method)(**changes)
    assert type(copy) is cls
    expected = replace(every, **changes)
    for f in fields(cls):
        assert getattr(copy, f.name) is getattr(expected, f.name), f.name
