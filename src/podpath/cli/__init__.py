"""podpath's command line: the composition root that wires collectors, core and TUI.

Each subcommand lives in its own module with a `register(subparsers)` function; heavy
imports (collectors, Textual) happen inside the handlers so that `podpath ls` starts
fast and the core stays free of UI and netlink libraries.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from podpath import __version__

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A failure to report as one clear sentence on stderr, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# Subcommand -> the module that registers it. Only the module a command line needs is
# imported, so `podpath ls namespaces` does not pay for Textual's or asyncio's imports.
COMMAND_MODULES: dict[str, str] = {
    "tui": "tui", "demo": "tui", "screenshot": "tui", "tour": "tui",
    "snapshot": "inspect", "ls": "inspect",
    "trace": "trace",
    "lab": "lab",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with `only`, just that command's module is registered."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="podpath",
        description="Explore one Kubernetes node's networking: namespaces, pods, veths, "
        "routes, NAT rules, conntrack, and packet traces.",
    )
    parser.add_argument("--version", action="version", version=f"podpath {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = [COMMAND_MODULES[only]] if only in COMMAND_MODULES else ["tui", "inspect", "trace", "lab"]
    for name in dict.fromkeys(wanted):
        importlib.import_module(f"podpath.cli.{name}").register(sub)
    return parser


def _command_word(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line, if any (the first non-option word)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `podpath` console script."""
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or (words[0].startswith("-") and words[0] not in ("-h", "--help", "--version")):
        # Bare `podpath [--snapshot F | --host-root D]` opens the TUI, as k9s opens on
        # the cluster.
        words = ["tui", *words]
    args = build_parser(_command_word(words)).parse_args(words)
    handler = args.handler
    try:
        code: int = handler(args)
    except CliError as exc:
        print(f"podpath: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("podpath: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `podpath ls ... | head` closes stdout early: not an error worth a traceback.
        sys.stderr.close()
        return EXIT_OK
    return code
