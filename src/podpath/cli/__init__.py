"""podpath's command line: the composition root that wires collectors, core and TUI.

Each subcommand lives in its own module with a `register(subparsers)` function; heavy
imports (collectors, Textual) happen inside the handlers so that `podpath ls` starts
fast and the core stays free of UI and netlink libraries.
"""

from __future__ import annotations

import gc
import os
import sys

from podpath import __version__

# argparse and typing are imported where they are used: until `main` has installed its
# signal handlers a Ctrl-C is a traceback, and their imports were most of that window.
# (mypy takes any TYPE_CHECKING as typing's.)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any

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
    "tui": "tui",
    "demo": "tui",
    "screenshot": "tui",
    "tour": "tui",
    "snapshot": "inspect",
    "ls": "inspect",
    "trace": "trace",
    "doctor": "doctor",
    "draw": "draw",
    "lab": "lab",
}


def _terminal_width() -> int:
    """`shutil.get_terminal_size().columns`, the same way, without importing shutil."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def _parser_class() -> type[argparse.ArgumentParser]:
    """An ArgumentParser class (and so every subcommand's) using `_HelpFormatter` by default."""
    import argparse

    class _HelpFormatter(argparse.HelpFormatter):
        """argparse's help formatter, given the terminal width.

        Every `add_argument` builds a formatter, and argparse's own asks shutil for the
        width: that import (with bz2 and lzma) cost ~4 ms of each `podpath ls`.
        """

        def __init__(
            self,
            prog: str,
            indent_increment: int = 2,
            max_help_position: int = 24,
            width: int | None = None,
        ) -> None:
            super().__init__(
                prog,
                indent_increment,
                max_help_position,
                _terminal_width() - 2 if width is None else width,
            )

    class _Parser(argparse.ArgumentParser):
        """An ArgumentParser using `_HelpFormatter` by default, that names itself in its result."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("formatter_class", _HelpFormatter)
            super().__init__(*args, **kwargs)
            # A subcommand's parser is made with this class too, and its defaults are
            # copied over its parent's: `command_parser` ends as the innermost one chosen.
            self.set_defaults(command_parser=self)

    return _Parser


# Commands that run once and exit without the cycle collector: `ls` allocates tens of
# thousands of small acyclic objects (processes, namespaces, rows), freed by reference
# counting; the collector's passes over them were ~7% of `podpath ls namespaces`. The
# doctor's passes rescanned the loaded snapshot and parsed rules: 0.3-0.5 s of its CPU
# at 10k Services, with the same peak RSS without them.
NO_GC_COMMANDS = frozenset({"ls", "doctor"})


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with `only`, just that command's module is registered."""
    import importlib

    parser = _parser_class()(
        prog="podpath",
        description="Explore one Kubernetes node's networking: namespaces, pods, veths, "
        "routes, NAT rules, conntrack, and packet traces.",
    )
    parser.add_argument("--version", action="version", version=f"podpath {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = (
        [COMMAND_MODULES[only]]
        if only in COMMAND_MODULES
        else ["tui", "inspect", "trace", "doctor", "draw", "lab"]
    )
    for name in dict.fromkeys(wanted):
        importlib.import_module(f"podpath.cli.{name}").register(sub)
    return parser


def _command_word(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line, if any (the first non-option word)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `podpath` console script."""
    # Before any other work: a Ctrl-C while a command's modules are imported ends as
    # "interrupted", never as a traceback (the TUI and the lab get theirs back in _main).
    caught = _catch_signals()
    previous = _EARLY_PREVIOUS or caught
    try:
        if _EARLY_SIGNALS:
            raise Terminated(_EARLY_SIGNALS[0])
        return _main(sys.argv[1:] if argv is None else argv, previous, argv is None)
    except Terminated as exc:
        return _terminated(exc)
    except SystemExit:
        _restore_signals(previous)  # --help, --version, a usage error: back to Python's
        raise
    except Exception as exc:
        wrapped = _wrapped_termination(exc)
        if wrapped is None:
            raise
        return _terminated(wrapped)
    finally:
        _quiet_if_closed(sys.stdout)


def _main(argv: Sequence[str], previous: dict[int, Any], whole_process: bool) -> int:
    """Run the command of `argv`; `whole_process` when this process ends after it."""
    words = list(argv)
    if not words or (words[0].startswith("-") and words[0] not in ("-h", "--help", "--version")):
        # Bare `podpath [--snapshot F | --host-root D]` opens the TUI, as k9s opens on
        # the cluster.
        words = ["tui", *words]
    command = _command_word(words)
    collecting = gc.isenabled()
    if command in NO_GC_COMMANDS:
        gc.disable()
    try:
        args = _parse(build_parser(command), words)
        if args.command not in STOPPABLE_COMMANDS:
            _restore_signals(previous)
        code = _run(args)
    finally:
        if collecting:
            gc.enable()
        if whole_process:
            # The process ends next. Its final collections walk every object still
            # alive -- 2.4 s of CPU after a trace of 10k Services' nft ruleset -- and
            # reference counting frees them anyway: frozen objects are not walked.
            gc.freeze()
    if whole_process and command in EXIT_AT_ONCE_COMMANDS:
        _exit_at_once(code)
    return code


# One-shot commands that hold nothing to clean up once they return (no atexit hooks,
# no threads, every file closed): the process may end without freeing its heap.
EXIT_AT_ONCE_COMMANDS = frozenset({"trace", "doctor"})


def _exit_at_once(code: int) -> None:
    """End the process now, its output flushed, without freeing the heap."""
    # Freeing a trace's snapshot and rules one object at a time took 20-30 ms of a
    # 0.3 s `trace --snapshot --cache`; the doctor's (10k Services, their traces) ~20 ms.
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return  # a closed or broken stream: let the interpreter's own exit report it
    from podpath import dataclass_code

    dataclass_code.save()  # its atexit hook does not run after os._exit
    os._exit(code)


def _parse(parser: argparse.ArgumentParser, words: list[str]) -> argparse.Namespace:
    """parse_args, but an unknown option is reported with the usage of the command given it."""
    args, extras = parser.parse_known_args(words)
    if extras:
        chosen: argparse.ArgumentParser = getattr(args, "command_parser", parser)
        chosen.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def _signals() -> Any:
    """The _signal module: the C module that `signal` wraps, with the same functions.

    `import signal` imports enum (~2 ms, during which a Ctrl-C would still be a
    traceback), and a handler that imports it while enum is half imported fails.
    """
    return __import__("_signal")


def _catch_signals(handler: Any = None) -> dict[int, Any]:
    """Make SIGINT, SIGTERM and SIGHUP raise Terminated (or call `handler`); return the
    handlers they had."""
    signal = _signals()
    previous: dict[int, Any] = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, handler or _on_signal)
    except ValueError:  # main() called off the main thread (a test): leave signals alone
        return {}
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    """Give the signals back the handlers `_catch_signals` found."""
    signal = _signals()

    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _quiet_if_closed(stream: Any) -> None:
    """Flush `stream`; if its reader has gone (`| head`), send what is left to /dev/null.

    Otherwise the flush at exit fails again and Python prints "Exception ignored ...
    BrokenPipeError" (the recipe of the signal module's documentation, "Note on SIGPIPE").
    """
    try:
        stream.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except ValueError:  # already closed: nothing is left to flush
        return


def say(message: str) -> None:
    """One line on stderr, unless nobody reads it any more (`2>&1 | head`)."""
    try:
        print(message, file=sys.stderr)
    except BrokenPipeError:
        _quiet_if_closed(sys.stderr)


# Commands that exit on SIGINT, SIGTERM or SIGHUP with their cleanup run: a file
# being written is left whole, commands started are killed. The TUI and the lab handle
# signals themselves.
STOPPABLE_COMMANDS = frozenset({"snapshot", "ls", "trace", "doctor", "draw"})


class Terminated(BaseException):
    """SIGINT, SIGTERM or SIGHUP arrived: unwind like KeyboardInterrupt, then exit 128 + signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


# The signal that `_on_signal` turned into Terminated. CPython drops an exception raised
# while it runs a weakref callback or a __del__ ("Exception ignored in: <function
# _get_module_lock.<locals>.cb>", when the signal lands as an import's lock is freed): the
# command then goes on with its tools killed, so `_run` and the writers of output files
# look here too (`raise_lost_signal`; tests/unit/test_lost_signal.py).
_SIGNALLED: list[int] = []


def _on_signal(signum: int, _frame: object) -> None:
    """Stop the external commands first (threads wait for them while the stack unwinds), then unwind."""
    signal = _signals()

    for ignored in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(ignored, signal.SIG_IGN)  # a second signal must not cut the cleanup short
    _SIGNALLED.append(signum)
    _stop_commands()
    # Not KeyboardInterrupt, even for SIGINT: one that passes through an import (run by
    # exec) makes CPython end the process by SIGINT at exit, whatever it returns.
    raise Terminated(signum)


def raise_lost_signal() -> None:
    """Raise Terminated again if a signal arrived and its exception was dropped.

    Called before what must not happen once podpath is stopping, such as replacing an
    output file with what the killed tools left.
    """
    if _SIGNALLED:
        raise Terminated(_SIGNALLED[0])


def _stop_commands() -> None:
    """Kill the external commands still running (they run in sessions of their own)."""
    # A module still being imported has no stop_all yet, and has started nothing.
    stop = getattr(sys.modules.get("podpath.collectors.commands"), "stop_all", None)
    if stop is not None:
        stop()


def _terminated(exc: Terminated) -> int:
    """Exit status and one line for a signal that stopped the command."""
    _stop_commands()
    say("podpath: interrupted" if exc.signum == 2 else "podpath: terminated")
    return 128 + exc.signum


def _wrapped_termination(exc: BaseException) -> Terminated | None:
    """The Terminated that CPython wrapped in another exception, if any.

    A signal handled while a class is being made (a dataclass defined by a module
    imported late) raises inside `__set_name__`, which Python 3.11 reports as
    RuntimeError("Error calling __set_name__ ...") with the Terminated as its cause.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, Terminated):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _run(args: argparse.Namespace) -> int:
    handler = args.handler
    if args.command in STOPPABLE_COMMANDS:
        _catch_signals()
    try:
        code: int = handler(args)
        raise_lost_signal()
    except Terminated as exc:
        return _terminated(exc)
    except Exception as exc:  # noqa: BLE001 - each kind is reported by _failed
        if _SIGNALLED:  # the command failed because its tools were killed: a signal's exit
            return _terminated(Terminated(_SIGNALLED[0]))
        return _failed(args, exc)
    except KeyboardInterrupt:
        _stop_commands()
        say("podpath: interrupted")
        return 130
    return code


def _failed(args: argparse.Namespace, exc: Exception) -> int:
    """Exit status and one line for a command that raised `exc`."""
    if isinstance(exc, CliError):
        from podpath.safe_text import visible

        # Messages quote file names and node data: control characters are shown, not sent.
        say(f"podpath: {visible(exc)}")
        return exc.code
    if isinstance(exc, BrokenPipeError):
        # `podpath ls ... | head` closes stdout early: not an error worth a traceback.
        _quiet_if_closed(sys.stdout)
        return EXIT_OK
    wrapped = _wrapped_termination(exc)
    if wrapped is not None:
        return _terminated(wrapped)
    from podpath.crash_report import sentence, write_report

    what = str(args.command)
    say(f"podpath: {sentence(exc, what, write_report(exc, what))}")
    return EXIT_FAILURE


def _started_as_podpath() -> bool:
    """Whether this process is the `podpath` program: its script, or `python -m podpath`."""
    entry = sys.modules.get("__main__")
    spec = getattr(entry, "__spec__", None)
    script = os.path.basename(str(getattr(entry, "__file__", "")))
    return getattr(spec, "name", None) == "podpath.__main__" or script == "podpath"


# Signals that arrived between the end of this module and the start of `main`, where
# nothing can unwind: `main` sees them first thing, before it starts any work.
_EARLY_SIGNALS: list[int] = []


def _on_early_signal(signum: int, _frame: object) -> None:
    """Remember the signal for `main` (the script is between `import` and `main()`)."""
    _EARLY_SIGNALS.append(signum)


# Caught as soon as this module has run, when it runs as the program (not when a test or
# another program imports it): the imports of a command's modules come next.
_AS_PROGRAM = _started_as_podpath()
_EARLY_PREVIOUS: dict[int, Any] = _catch_signals(_on_early_signal) if _AS_PROGRAM else {}

if _AS_PROGRAM:
    # Every command's modules define dataclasses: their methods' code is kept between
    # runs (podpath.dataclass_code), installed only now that a Ctrl-C is caught.
    from podpath import dataclass_code

    dataclass_code.install()
