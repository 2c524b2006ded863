"""Writing a snapshot file: `codec.dumps`'s exact text, without a second copy of it in memory.

At 10k Services a snapshot holds tens of MB of tool output as strings (kube-proxy's nft
table is 33 MB of JSON). `json.dumps` collects each string's escaped form and then
joins everything into one more string, and writing that string encodes a third copy:
the peak of `podpath snapshot` (+85 MiB over the snapshot itself in nftables mode).
Here the document is encoded with each large string swapped for a placeholder, and the
file is written piece by piece, each large string escaped only when its turn comes.
"""

from __future__ import annotations

import json
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


def json_pieces(snapshot: Snapshot, large: int = LARGE) -> Iterator[str]:
    """`codec.dumps(snapshot)` (no indent) as consecutive pieces of text."""
    from podpath.snapshot import codec

    # A random token: node data cannot contain it by chance or by design.
    token = secrets.token_hex(16)
    swapped: list[str] = []
    doc = _swap_large(codec.to_jsonable(snapshot), large, token, swapped)
    # The options of codec.dumps; a unit test holds the two byte for byte equal.
    text = json.dumps(doc, ensure_ascii=True, allow_nan=False)
    done = 0
    for number, value in enumerate(swapped):
        # Placeholders are met in the order json.dumps walks the document (dict order,
        # then list order), which is the order _swap_large took them out.
        mark = encode_basestring_ascii(f"{token}-{number}")
        at = text.index(mark, done)
        yield text[done:at]
        yield encode_basestring_ascii(value)
        done = at + len(mark)
    yield text[done:]


def _swap_large(value: Any, large: int, token: str, swapped: list[str]) -> Any:
    """`value` with every str of `large` characters or more replaced by a placeholder."""
    if type(value) is str:
        if len(value) < large:
            return value
        swapped.append(value)
        return f"{token}-{len(swapped) - 1}"
    if type(value) is dict:
        return {k: _swap_large(v, large, token, swapped) for k, v in value.items()}
    if type(value) is list:
        return [_swap_large(v, large, token, swapped) for v in value]
    return value


def write_pieces(fp: TextIO, pieces: Iterator[str]) -> None:
    """Write the pieces and a final newline, each in slices of WRITE_SLICE characters."""
    for piece in pieces:
        for start in range(0, len(piece), WRITE_SLICE):
            fp.write(piece[start : start + WRITE_SLICE])
    fp.write("\n")
