"""The CLI's progress line: which part of a live node is being read, on stderr.

Shown only when stderr is a terminal, on one line rewritten in place and erased
when the work is done; redirected or piped, nothing is written (scripts read stderr
for gaps and errors only).
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

ERASE = "\r\x1b[K"  # to the line's start, then clear it


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
        self.stream.write(f"{ERASE}podpath: {self.verb} {what}{step}…")
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


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream: no progress
        return False
