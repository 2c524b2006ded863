"""Mutants of a snapshot file: broken bytes, and well-formed JSON with values out of place.

Byte mutants test the loader (every one must load or be refused with a sentence);
tree mutants keep the JSON valid and mostly well-typed, so many load, and test what
reads a snapshot afterwards: the index, every listing, the trace engine.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

_TOKENS = (
    *(b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"null", b"true", b"-0", b"1e999"),
    *(b"NaN", b"-Infinity", b"\x00", b"\xff", b"\xc3", b"\\u0000", b"\\ud800", b"\\udcff"),
    *(b" ", b"\n", b'"x": 1,', b'"schema_version": 2,', b"9" * 60, b"[" * 40, b"]" * 40),
)


def byte_mutant(base: bytes, rng: random.Random) -> bytes:
    """1-4 random edits: a byte changed, a token inserted, a span cut, copied or truncated."""
    data = bytearray(base)
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        at = rng.randrange(len(data))
        op = rng.randrange(6)
        if op == 0:
            data[at] = rng.randrange(256)
        elif op == 1:
            data[at:at] = rng.choice(_TOKENS)
        elif op == 2:
            del data[at : at + rng.randint(1, 64)]
        elif op == 3:
            del data[at:]
        elif op == 4:
            src = rng.randrange(len(data))
            data[at:at] = data[src : src + rng.randint(1, 400)]
        else:
            other = rng.randrange(len(data))
            a, b = sorted((at, other))
            data[a:b] = data[a:b][::-1]
    return bytes(data)


_STRINGS = (
    *("", "-", "0", "garbage", "10.0.0.1/99", "::ffff:1.2.3.4", "999.1.1.1", "fe80::1%eth0"),
    *("0.0.0.0/0", "default", "\x1b]2;PWNED\x07", "[@click=app.quit]", "\udcff", "a" * 5000),
    *("KUBE-SVC-XXXX", "*nat\n:X - [0:0]\n-A X -j Y\nCOMMIT\n", '{"nftables": [1]}'),
    *("ipv4 2 tcp 6 1 ESTABLISHED src=1 dst=2", "-A KUBE-SERVICES -j", "veth", "bridge"),
)
_INTS = (0, -1, 1, 2**31, 2**32 + 1, -(2**63), 10**39, 65536, 4026531840)


def _replacement(rng: random.Random, old: Any) -> Any:
    """A value of the same JSON type mostly (so it loads), another type sometimes."""
    if rng.random() < 0.15:
        return rng.choice([None, True, 0, -1.5, "x", [], {}, [[[]]], {"k": [1, "v"]}])
    if isinstance(old, bool):
        return not old
    if isinstance(old, int):
        return rng.choice(_INTS)
    if isinstance(old, float):
        return rng.choice([0.0, -1.0, 1e300, 2.5])
    if isinstance(old, str):
        return rng.choice(_STRINGS)
    if isinstance(old, list):
        if old and rng.random() < 0.5:
            return old * rng.randint(2, 5)  # the same items again: duplicates
        return [] if rng.random() < 0.5 else old[: len(old) // 2]
    if isinstance(old, dict):
        return {} if rng.random() < 0.3 else old
    return old


def _paths(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(tree, dict):
        for key, value in tree.items():
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(tree, list):
        for i, value in enumerate(tree[:8]):
            out.extend(_paths(value, (*prefix, i)))
    return out


def _set(tree: Any, path: tuple[Any, ...], change: Callable[[Any], Any]) -> None:
    parent = tree
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = change(parent[path[-1]])


def tree_mutant(base: dict[str, Any], rng: random.Random) -> bytes:
    """1-5 values replaced (same type mostly), keys dropped or added; valid JSON."""
    tree = json.loads(json.dumps(base))
    paths = [p for p in _paths(tree) if len(p) > 1]
    for path in rng.sample(paths, k=min(len(paths), rng.randint(1, 5))):
        try:
            if rng.random() < 0.1 and isinstance(path[-1], str):
                parent = tree
                for step in path[:-1]:
                    parent = parent[step]
                parent.pop(path[-1], None)
                parent["unknown_" + path[-1]] = [[{"x": 1}]] * 3
            else:
                _set(tree, path, lambda old: _replacement(rng, old))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or reshaped this path
    return json.dumps(tree).encode()
