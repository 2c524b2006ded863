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


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand registered."""
    from podpath.cli import inspect, lab, trace, tui

    parser = argparse.ArgumentParser(
        prog="podpath",
        description="Explore one Kubernetes node's networking: namespaces, pods, veths, "
        "routes, NAT rules, conntrack, and packet traces.",
    )
    parser.add_argument("--version", action="version", version=f"podpath {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (tui, inspect, trace, lab):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `podpath` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        # Bare `podpath` opens the TUI on the live node, like k9s opens on the cluster.
        args = parser.parse_args(["tui", *(argv or [])])
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
