"""Read the conntrack table with `conntrack -L -o extended` (kept as text, parsed on demand).

Measured at 50k entries: `conntrack -L -o extended` 0.2 s, pyroute2 4.4-22.5 s
(docs/performance.md), so the tool it is. The text is stored as printed; podpath.conntrack
parses it lazily. conntrack-tools 1.4.7 lists every family by default (the extended
format labels each line ipv4/ipv6); older tools listed only IPv4, so for them, or when
the version is unknown, `-f ipv6` is read too.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from podpath.collectors.commands import CommandResult, CommandRunner
from podpath.snapshot.model import ConntrackDump, Gap

LIST_ARGS = ("-L", "-o", "extended")
LIST_IPV6_ARGS = ("-L", "-f", "ipv6", "-o", "extended")
# "conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown." (on stderr)
_VERSION = re.compile(r"conntrack v(\d+)\.(\d+)\.(\d+)")
# First version seen here to dump all families by default.
_ALL_FAMILIES_SINCE = (1, 4, 7)


@dataclass(frozen=True)
class ConntrackResult:
    """The conntrack table as text (None when unreadable) and what could not be read."""

    dump: ConntrackDump | None
    gaps: tuple[Gap, ...]


def tool_version(stderr: str) -> tuple[int, int, int] | None:
    """The conntrack-tools version from its stderr summary line, if printed."""
    m = _VERSION.search(stderr)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def collect_conntrack(
    runner: CommandRunner, cancel: threading.Event | None = None
) -> ConntrackResult:
    """Read the conntrack table of the collector's network namespace (IPv4 and IPv6)."""
    first = runner.run("conntrack", LIST_ARGS, cancel)
    gaps = list(first.warnings)
    if first.gap is not None:
        # A kernel without conntrack gives kind="unavailable" (classify_stderr): not an error.
        return ConntrackResult(None, (*gaps, first.gap))
    text = first.stdout
    source = " ".join(("conntrack", *LIST_ARGS))
    version = tool_version(first.stderr)
    has_ipv6 = "\nipv6 " in "\n" + text
    if not has_ipv6 and (version is None or version < _ALL_FAMILIES_SINCE):
        extra = _read_ipv6(runner, cancel)
        gaps.extend(extra.warnings)
        if extra.gap is not None:
            gaps.append(extra.gap)
        else:
            text = _append(text, extra.stdout)
            source += "; conntrack " + " ".join(LIST_IPV6_ARGS)
    return ConntrackResult(ConntrackDump(text, source), tuple(gaps))


def _read_ipv6(runner: CommandRunner, cancel: threading.Event | None) -> CommandResult:
    return runner.run("conntrack", LIST_IPV6_ARGS, cancel)


def _append(text: str, more: str) -> str:
    if not more:
        return text
    if text and not text.endswith("\n"):
        text += "\n"
    return text + more
