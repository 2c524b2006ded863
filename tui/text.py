"""The one way node text reaches the screen: literal, with control characters made visible.

Textual and Rich parse markup in plain strings (a process named
`[@click=app.quit]x[/]` would fire an action) and pass ESC, CSI, OSC, C1 and bidi
controls straight to the terminal (see docs/reliability.md). Every string that comes
from a node or a snapshot goes through `clean` (to a visible plain string) and then
`literal_text` / `literal_content`, which never parse markup.
"""

from __future__ import annotations

import re

from rich.text import Text
from textual.content import Content

# C0 controls, DEL, C1 controls, bidi embeddings/overrides/isolates, marks that
# reorder or hide text, line/paragraph separators, and every surrogate (lone
# surrogates are undecodable bytes kept by surrogateescape).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _visible(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if code < 0x20:
        # Unicode "control pictures": ESC -> ␛, NUL -> ␀, LF -> ␊.
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"  # ␡
    if 0x80 <= code <= 0x9F:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:
        # A byte that was not UTF-8, kept by surrogateescape: show the byte.
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def clean(value: object) -> str:
    """A plain string with every control, bidi and undecodable character made visible."""
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE.sub(_visible, text)


def literal_text(value: object, style: str = "") -> Text:
    """A Rich Text of node data, never markup-parsed, with controls made visible."""
    return Text(clean(value), style=style, end="", no_wrap=True)


def literal_content(value: object, style: str = "") -> Content:
    """A Textual Content of node data, never markup-parsed, with controls made visible."""
    return Content.styled(clean(value), style) if style else Content(clean(value))
