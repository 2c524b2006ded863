"""The one sanitiser: node text reaches the screen literally, controls made visible."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from podpath.tui.text import clean, literal_content, literal_text

UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def test_escape_becomes_a_visible_symbol() -> None:
    """ESC is shown as \\x1b, so a CSI sequence is inert text."""
    assert clean("\x1b[31mred") == "\\x1b[31mred"


def test_osc_title_and_bel_are_visible() -> None:
    """An OSC 0 title sequence keeps none of its control bytes."""
    assert clean("\x1b]0;pwned\x07") == "\\x1b]0;pwned\\x07"


def test_c1_controls_are_hex_escaped() -> None:
    """C1 controls (a one-byte CSI is \\x9b) become \\xNN."""
    assert clean("a\x9b31mb\x85") == "a\\x9b31mb\\x85"


def test_bidi_overrides_are_escaped() -> None:
    """Trojan-source bidi overrides and isolates are shown as code points."""
    assert clean("ab\u202ecba\u2066x\u2069") == "ab\\u202ecba\\u2066x\\u2069"


def test_undecodable_bytes_show_their_byte() -> None:
    """A surrogateescape'd byte shows as the byte it was."""
    raw = b"eth\xff0".decode("utf-8", "surrogateescape")
    assert clean(raw) == "eth\\xff0"


def test_del_and_newline_are_visible() -> None:
    """DEL and LF cannot break a table row."""
    assert clean("a\x7fb\nc") == "a\\x7fb\\x0ac"


def test_plain_text_is_unchanged() -> None:
    """Ordinary names pass untouched (including non-ASCII letters)."""
    assert (
        clean("kube-system/coredns-5d78c9869d-b2wxs ünïcødé")
        == "kube-system/coredns-5d78c9869d-b2wxs ünïcødé"
    )


def test_markup_is_not_parsed_by_literal_text() -> None:
    """A click action in markup stays literal text with no style or meta."""
    text = literal_text("[@click=app.quit]x[/]")
    assert text.plain == "[@click=app.quit]x[/]"
    assert not text.spans


def test_markup_is_not_parsed_by_literal_content() -> None:
    """Content from node text keeps brackets and has no spans."""
    content = literal_content("[link=https://evil]eth0[/link] [b]")
    assert content.plain == "[link=https://evil]eth0[/link] [b]"
    assert not content.spans


def test_rendered_output_has_no_escape_byte() -> None:
    """Rendering hostile text through Rich emits no ESC from the data itself."""
    console = Console(color_system=None, width=200, file=None, record=True)
    console.print(literal_text("\x1b]52;c;ZXZpbA==\x07\x1b[2J\u202e"))
    assert "\x1b" not in console.export_text()


@given(st.text())
def test_clean_output_never_holds_unsafe_characters(value: str) -> None:
    """For any string, the cleaned form holds no control, bidi or surrogate character."""
    assert not UNSAFE.search(clean(value))


def test_literal_lines_keep_the_files_newlines_only() -> None:
    """A config file's own newlines stay; an ESC inside a line is made visible."""
    from podpath.tui.screens.text_view import literal_lines

    assert literal_lines('{\n "name": "\x1b[2J"\n}').plain == '{\n "name": "\\x1b[2J"\n}'


def test_a_backslash_is_shown_doubled() -> None:
    """A name holding the four characters `\\x1b` never looks like one holding ESC."""
    assert clean("pw\\x1b[2J") == "pw\\\\x1b[2J"
    assert clean("pw\x1b[2J") == "pw\\x1b[2J"
    assert clean("pw\\x1b[2J") != clean("pw\x1b[2J")


_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})")


def _unescape(shown: str) -> str:
    """Read a shown string back (the way a user reads it): each escape to its character."""

    def one(m: re.Match[str]) -> str:
        body = m.group(1)
        if body == "\\":
            return "\\"
        code = int(body[1:], 16)
        return chr(code + 0xDC00) if body[0] == "x" and code > 0x9F else chr(code)

    return _ESCAPE.sub(one, shown)


@given(st.text())
def test_what_is_shown_reads_back_to_exactly_the_value(value: str) -> None:
    """The escapes are unambiguous: two different strings are never shown alike."""
    assert _unescape(clean(value)) == value


def test_a_filter_finds_what_is_shown() -> None:
    """Rows are filtered by their text as displayed: escapes can be typed to find them."""
    from podpath.tui.rows.model import page, row

    rows = [
        row("esc", "web\u202eevil.exe\n\x1b[2J"),
        row("literal", "web\\x1b[2J"),
        row("plain", "web"),
    ]
    for needle, found in (
        ("\\x1b[2J", {"esc", "literal"}),
        ("\\u202eevil", {"esc"}),
        ("\\X0A", {"esc"}),
        ("web\\\\x1b", {"literal"}),
        ("exe\\x0a\\x1b", {"esc"}),
    ):
        assert {r.key for r in page(rows, needle).rows} == found, needle
