"""What the app does with an error it did not expect: one sentence, details in a file it names.

Textual's own crash screen prints a Rich traceback with every frame's locals, and the
locals of podpath's frames hold the snapshot: pods, container environment names, rule
comments, straight to the terminal (and into scrollback and screen recordings). podpath
instead writes the traceback, without locals, to a new private file and says only
which error happened and where the details are.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style

# Re-exported: the app reports worker failures with them too.
from podpath.crash_report import sentence as sentence
from podpath.crash_report import write_report as write_report


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
