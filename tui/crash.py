"""What the app does with an error it did not expect: one sentence, details in a file it names.

Textual's own crash screen prints a Rich traceback with every frame's locals, and the
locals of podpath's frames hold the snapshot: pods, container environment names, rule
comments, straight to the terminal (and into scrollback and screen recordings). podpath
instead writes the traceback, without locals, to a new private file and says only
which error happened and where the details are.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import traceback

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style

from podpath import __version__
from podpath.safe_files import UnsafePath, create_new, state_dir
from podpath.tui.text import clean


def write_report(error: BaseException, context: str) -> str | None:
    """Write the error's traceback (no locals) to a new private file; its path, or None."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    lines = [
        f"podpath {__version__}, Python {platform.python_version()}, {platform.platform()}",
        f"argv: {sys.argv!r}",
        f"while {context}:",
        "",
        *traceback.format_exception(error),
    ]
    try:
        out = create_new(f"crash-{stamp}-{os.getpid()}-{id(error):x}.txt", state_dir("crashes"))
    except (OSError, UnsafePath):
        return None
    try:
        with os.fdopen(
            out.fd, "w", encoding="utf-8", errors="backslashreplace", closefd=False
        ) as fp:
            fp.write("\n".join(line.rstrip("\n") for line in lines) + "\n")
    except OSError:
        return None
    finally:
        out.close()
    return out.path


def sentence(error: BaseException, context: str, report: str | None) -> str:
    """One line for the user: what failed, with which error, and where the details are."""
    what = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    where = f"details in {report}" if report else "the details could not be written"
    return clean(f"{context} failed unexpectedly ({what[:300]}); {where}")


class Crash(Exception):
    """An unexpected error, rendered on exit as one sentence instead of a traceback."""

    def __init__(self, error: BaseException, context: str) -> None:
        self.report = write_report(error, context)
        self.text = sentence(error, context, self.report)
        super().__init__(self.text)
        self.__cause__ = error

    def __rich__(self) -> OneLine:
        """What Textual prints when the app exits because of this error."""
        return OneLine(f"podpath: {self.text}")


class OneLine:
    """A line of text rendered as it is: never wrapped or folded (a path in it stays whole)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """The text as one segment and a newline, whatever the console's width."""
        yield Segment(self.text, Style(bold=True, color="red"))
        yield Segment.line()
