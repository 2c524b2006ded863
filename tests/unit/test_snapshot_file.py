"""The snapshot file writer: codec.dumps's exact text, written in pieces."""

from __future__ import annotations

import io
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from podpath.cli import snapshot_file
from podpath.cli.snapshot_file import Encoded, json_pieces, write_pieces
from podpath.snapshot import codec
from podpath.snapshot.model import (
    SCHEMA_VERSION,
    ConntrackDump,
    Gap,
    IptablesDump,
    Namespace,
    NftDump,
    NodeFacts,
    Snapshot,
)

# Text as nodes print it: quotes, backslashes, controls, non-ASCII, undecodable bytes.
_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(['"', "\\", "\x00", "\x1b", "\n", "\u202e", "\udcff"]),
    ),
    max_size=80,
)


def _snapshot(texts: list[str], name: str) -> Snapshot:
    dumps = tuple(IptablesDump("nft", "ipv4", ("iptables-nft-save", "-c"), t) for t in texts)
    return Snapshot(
        SCHEMA_VERSION,
        1.5,
        NodeFacts(name, "6.18"),
        4026531840,
        namespaces=(Namespace("net", 4026531840, 3, 1, None, 0, "root", name, 0, None, ()),),
        iptables=dumps,
        nft=NftDump(texts[0] if texts else "{}", 7),
        conntrack=ConntrackDump("".join(texts)),
        gaps=(Gap(name, "permission denied", "permission", "CAP_SYS_PTRACE"),),
    )


@given(st.lists(_TEXT, max_size=6), _TEXT, st.integers(min_value=0, max_value=40))
def test_pieces_join_to_what_codec_dumps_writes(texts: list[str], name: str, large: int) -> None:
    """Whatever strings are swapped out and written apart, the text is codec.dumps's."""
    snapshot = _snapshot(texts, name)
    assert "".join(json_pieces(snapshot, large=large)) == codec.dumps(snapshot)


@given(st.lists(_TEXT, max_size=4), st.lists(_TEXT, min_size=1, max_size=4), _TEXT)
def test_fields_encoded_ahead_give_the_same_text(
    local: list[str], tools: list[str], name: str
) -> None:
    """Fields encoded while the tools ran, then the tools' fields: codec.dumps's text."""
    before = _snapshot(local, name)
    after = replace(
        before,
        iptables=_snapshot(tools, name).iptables,
        conntrack=ConntrackDump("".join(tools)),
        gaps=(*before.gaps, Gap("conntrack", "timed out", "timeout")),
        duration=2.25,
    )
    ahead = Encoded(before, large=8)
    assert "".join(json_pieces(after, ahead=ahead)) == codec.dumps(after)


def test_large_strings_are_written_apart_and_the_file_loads() -> None:
    """Large strings are escaped a slice at a time; the written file loads back unchanged."""
    big = '"quoted" \x1b[31m \udcff ' * 150_000
    snapshot = _snapshot([big, "*filter\nCOMMIT\n"], "node-1")
    pieces = list(json_pieces(snapshot))
    assert codec.dumps(snapshot) == "".join(pieces)
    # No piece holds a whole large string's escape: at most a slice's (6 chars a char).
    assert max(len(p) for p in pieces) <= 6 * snapshot_file.WRITE_SLICE
    assert max(len(p) for p in pieces) < len(big)
    out = io.StringIO()
    write_pieces(out, iter(pieces))
    assert out.getvalue().endswith("}\n")
    assert codec.loads(out.getvalue()) == snapshot


@given(_TEXT, st.integers(min_value=1, max_value=5))
def test_large_strings_escaped_in_slices_give_the_same_text(text: str, chars: int) -> None:
    """Slices of any length escape to codec.dumps's text (surrogates, non-BMP included)."""
    snapshot = _snapshot([text + "\U0001f600" + text], "node-1")
    saved = snapshot_file.WRITE_SLICE
    snapshot_file.WRITE_SLICE = chars
    try:
        assert "".join(json_pieces(snapshot, large=1)) == codec.dumps(snapshot)
    finally:
        snapshot_file.WRITE_SLICE = saved
