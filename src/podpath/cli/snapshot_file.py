"""Writing a snapshot file: `codec.dumps`'s exact text, without a second copy of it in memory.

At 10k Services a snapshot holds tens of MB of tool output as strings (kube-proxy's nft
table is 33 MB of JSON). `json.dumps` collects each string's escaped form and then
joins everything into one more string, and writing that string encodes a third copy:
the peak of `podpath snapshot` (+85 MiB over the snapshot itself in nftables mode).
Here the document is encoded with each large string swapped for a placeholder, and the
file is written piece by piece, each large string escaped only when its turn comes.

The fields collected in this process can be encoded ahead (`Encoded`), while
iptables-save, nft and conntrack still run: only the tools' output is left to encode
once they are done, and their output is the large strings, escaped as they are written.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
from collections.abc import Iterator
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from podpath.snapshot.model import Snapshot

# Strings at least this long are escaped on their own as the file is written.
LARGE = 1 << 20
# Pieces reach the file in slices of this many characters: a text stream encodes each
# write into a bytes copy of its own.
WRITE_SLICE = 1 << 20


class Encoded:
    """Each field of a snapshot as JSON text, its large strings swapped for placeholders."""

    def __init__(self, snapshot: Snapshot, large: int = LARGE) -> None:
        self.snapshot = snapshot
        self.large = large
        # A random token: node data cannot contain it by chance or by design.
        self.token = secrets.token_hex(16)
        self.swapped: list[str] = []
        self.fields = {
            f.name: self.encode(getattr(snapshot, f.name)) for f in dataclasses.fields(snapshot)
        }

    def encode(self, value: Any) -> str:
        """One value as codec.dumps writes it inside the document, with placeholders."""
        from podpath.snapshot import codec

        doc = _swap_large(codec.to_jsonable(value), self.large, self.token, self.swapped)
        # The options of codec.dumps; a unit test holds the two byte for byte equal.
        return json.dumps(doc, ensure_ascii=True, allow_nan=False)


def json_pieces(
    snapshot: Snapshot, large: int = LARGE, ahead: Encoded | None = None
) -> Iterator[str]:
    """`codec.dumps(snapshot)` (no indent) as consecutive pieces of text.

    `ahead` holds fields encoded earlier (of a snapshot this one was made from by
    `dataclasses.replace`): a field still holding the very same value is not encoded again.
    Each field's text is yielded as it is (never joined with the others), and each
    large string escaped a slice at a time: an escaped copy of kube-proxy's nft table
    was 36 MB more at the peak of `podpath snapshot` in nftables mode.
    """
    enc = ahead if ahead is not None else Encoded(snapshot, large)
    yield "{"
    for n, f in enumerate(dataclasses.fields(snapshot)):
        value = getattr(snapshot, f.name)
        text = enc.fields[f.name] if value is getattr(enc.snapshot, f.name) else enc.encode(value)
        # A dict as json.dumps writes it without indent: ", " between items, ": " after keys.
        yield (", " if n else "") + encode_basestring_ascii(f.name) + ": "
        yield from _filled(text, enc)
    yield "}"


def _filled(text: str, enc: Encoded) -> Iterator[str]:
    """`text` in pieces, each placeholder replaced by its string, escaped."""
    done = 0
    for mark in re.finditer('"' + enc.token + r'-(\d+)"', text):
        yield text[done : mark.start()]
        yield from _escaped(enc.swapped[int(mark.group(1))])
        done = mark.end()
    # The whole text when it holds no placeholder: slicing it whole copies nothing.
    yield text[done:]


def _escaped(value: str) -> Iterator[str]:
    """`encode_basestring_ascii(value)` in pieces, escaped WRITE_SLICE characters at a time.

    The escape of a str is the escapes of its characters one by one (a character
    beyond the BMP is one character of a str, written as its surrogate pair), so the
    pieces join to the same text.
    """
    yield '"'
    for start in range(0, len(value), WRITE_SLICE):
        yield encode_basestring_ascii(value[start : start + WRITE_SLICE])[1:-1]
    yield '"'


# Values never swapped, kept without a call of _swap_large (~300k of them on the
# synthetic node: a call each was ~0.1 s of the snapshot's main thread).
_NOT_STR = frozenset({int, float, bool, type(None)})


def _swap_large(value: Any, large: int, token: str, swapped: list[str]) -> Any:
    """`value` with every str of `large` characters or more replaced by a placeholder."""
    kind = type(value)
    if kind is str:
        if len(value) < large:
            return value
        swapped.append(value)
        return f"{token}-{len(swapped) - 1}"
    if kind is dict:
        return {
            k: v
            if type(v) in _NOT_STR or (type(v) is str and len(v) < large)
            else _swap_large(v, large, token, swapped)
            for k, v in value.items()
        }
    if kind is list:
        return [
            v
            if type(v) in _NOT_STR or (type(v) is str and len(v) < large)
            else _swap_large(v, large, token, swapped)
            for v in value
        ]
    return value


def line_slices(pieces: Iterator[str]) -> Iterator[str]:
    """The pieces in slices of at most WRITE_SLICE characters, then the final newline."""
    for piece in pieces:
        for start in range(0, len(piece), WRITE_SLICE):
            yield piece[start : start + WRITE_SLICE]
    yield "\n"


def write_pieces(fp: TextIO, pieces: Iterator[str]) -> None:
    """Write the pieces and a final newline to a text stream, slice by slice."""
    for text in line_slices(pieces):
        fp.write(text)
