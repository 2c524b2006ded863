"""Make text from a node safe to print: every control character made visible.

Interface names, rule comments, process arguments and OCI annotations are written
by whoever controls a pod or a rule. ESC, CSI, OSC, C1 and bidi controls in them
would otherwise reach the terminal (the bug class of kubectl CVE-2021-25743; see
docs/reliability.md). The CLI and the TUI both use `visible`, and the TUI's filter
searches what `visible` shows, so every name can be found by typing what is on screen.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, bidi embeddings/overrides/isolates, marks that
# reorder or hide text, line/paragraph separators, and every surrogate (lone
# surrogates are undecodable bytes kept by surrogateescape).
# The backslash itself is escaped too: a name holding the four characters `\x1b` is
# shown as `\\x1b` and never looks like one holding ESC.
_UNSAFE = re.compile(
    "[\\\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _show(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    code = ord(char)
    # Backslash escapes, as Python's repr and `ip` print them: unambiguous to read and
    # to copy, unlike Unicode control pictures that data could contain itself.
    if code <= 0x9F:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:
        # A byte that was not UTF-8, kept by surrogateescape: show the byte.
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def visible(value: object) -> str:
    """A plain string with every control, bidi and undecodable character made visible.

    The escapes are unambiguous (a backslash is shown doubled) and applying `visible`
    twice escapes twice: call it once, where the text is shown.
    """
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE.sub(_show, text)
