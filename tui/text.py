"""The one way node text reaches the screen: literal, with control characters made visible.

Textual and Rich parse markup in plain strings (a process named
`[@click=app.quit]x[/]` would fire an action) and pass ESC, CSI, OSC, C1 and bidi
controls straight to the terminal (see docs/reliability.md). Every string that comes
from a node or a snapshot goes through `clean` (to a visible plain string) and then
`literal_text` / `literal_content`, which never parse markup.
"""

from __future__ import annotations

from rich.text import Text
from textual.content import Content

from podpath.safe_text import visible


def clean(value: object) -> str:
    """A plain string with every control, bidi and undecodable character made visible."""
    return visible(value)


def literal_text(value: object, style: str = "") -> Text:
    """A Rich Text of node data, never markup-parsed, with controls made visible."""
    return Text(clean(value), style=style, end="", no_wrap=True)


def literal_content(value: object, style: str = "") -> Content:
    """A Textual Content of node data, never markup-parsed, with controls made visible."""
    return Content.styled(clean(value), style) if style else Content(clean(value))
