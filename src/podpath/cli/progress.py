"""The CLI's progress line: which part of a live node is being read, on stderr.

Shown only when stderr is a terminal, on one line rewritten in place and erased
when the work is done; redirected or piped, nothing is written (scripts read stderr
for gaps and errors only). The line is cut to the terminal's width, read again at
every update (a resize between updates is followed): `\r\x1b[K` clears only the row
the cursor is on, so a line that wrapped would leave its first rows behind.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from types import TracebackType
from typing import TextIO

ERASE = "\r\x1b[K"  # to the line's start, then clear it
ELLIPSIS = "…"
# When the width cannot be read (a terminal that reports 0 columns): the classic 80.
DEFAULT_COLUMNS = 80


class ProgressLine:
    """A `progress(what, done, total)` callable for the collectors, and a context that erases it."""

    def __init__(self, stream: TextIO | None = None, verb: str = "reading") -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.verb = verb
        self.shown = _is_terminal(self.stream)
        self.written = False

    def __call__(self, what: str, done: int, total: int) -> None:
        """Say that `what` is being read (the verb), as step done+1 of total (if several)."""
        if not self.shown:
            return
        step = f" ({done + 1}/{total})" if total > 1 else ""
        line = fit(f"podpath: {self.verb} {what}{step}{ELLIPSIS}", _columns(self.stream))
        self.stream.write(f"{ERASE}{line}")
        self.stream.flush()
        self.written = True

    def __enter__(self) -> ProgressLine:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Erase the line, so what is printed next starts on a clean one."""
        if self.written:
            self.stream.write(ERASE)
            self.stream.flush()
            self.written = False


def cells(char: str) -> int:
    """Terminal columns one character takes: 2 for wide East Asian, 0 for combining marks."""
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def fit(text: str, columns: int) -> str:
    """`text` cut to end before the last column (ending in … when cut).

    The last column is left empty: a character written there leaves some terminals in
    their pending-wrap state, and the next one (or a resize) starts a new row.
    """
    room = max(columns - 1, 1)
    if sum(cells(c) for c in text) <= room:
        return text
    out, used = [], cells(ELLIPSIS)
    for char in text:
        used += cells(char)
        if used > room:
            break
        out.append(char)
    return "".join(out) + ELLIPSIS


def _columns(stream: TextIO) -> int:
    """The terminal's width now (TIOCGWINSZ on the stream's descriptor)."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):  # not a real descriptor: assume 80
        return DEFAULT_COLUMNS
    return columns if columns > 0 else DEFAULT_COLUMNS


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream: no progress
        return False
