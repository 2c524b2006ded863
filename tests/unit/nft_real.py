"""The real nft, in a throw-away network namespace: load text, read back `nft -j` and `nft list`.

`unshare --net` gives nft a namespace of its own that disappears with the process, so
nothing touches the machine's ruleset. Tests use it to check podpath's grammar and
printer against nft itself, and to turn kube-proxy's `nft -f` dump into the JSON a
node's snapshot would hold.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

import pytest

from podpath.netfilter.nft import NftRuleset, parse_nft_text


def unavailable() -> str | None:
    """Why the real nft cannot be run here, or None."""
    if os.geteuid() != 0:
        return "needs root for unshare --net"
    for tool in ("unshare", "nft"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def require() -> None:
    """Skip (in CI: fail, see conftest) when the real nft cannot run."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)


@dataclass(frozen=True)
class Loaded:
    """What nft printed after loading a ruleset."""

    json: str  # nft -j list ruleset
    listing: str  # nft list ruleset


def load(commands: str) -> Loaded:
    """Load `nft -f` input in a fresh netns; nft's JSON and listing of the result."""
    require()
    script = "nft -f - && nft -j list ruleset && echo @@@@ && nft list ruleset"
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", script],
        input=commands,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    json_text, _, listing = done.stdout.partition("@@@@\n")
    return Loaded(json_text, listing)


def commands_for(text: str) -> tuple[NftRuleset, str]:
    """A text ruleset (nft list or nft -f form) as `nft -f` input that declares before use.

    kube-proxy's dump adds a chain after the rule that jumps to it, and the foreign
    ruleset relies on iptables' base chains: declaring every table, chain and set
    first makes both loadable without changing a rule.
    """
    rs = parse_nft_text(text)
    lines = [f"add table {t.family} {t.name}" for t in rs.tables]
    for c in rs.chains:
        base = f" {{ type {c.type} hook {c.hook} priority {c.prio} ; }}" if c.hook else ""
        lines.append(f"add chain {c.family} {c.table} {c.name}{base}")
    for s in rs.sets:
        flags = f"flags {','.join(s.flags)} ;" if s.flags else ""
        timeout = f"timeout {s.timeout}s ;" if s.timeout else ""
        typ = " . ".join(s.type) + (f" : {s.map_type}" if s.map_type else "")
        lines.append(
            f"add {s.kind} {s.family} {s.table} {s.name} {{ type {typ} ; {flags} {timeout} }}"
        )
        for e in s.elements:
            key = " . ".join(e.key) + (f' comment "{e.comment}"' if e.comment else "")
            lines.append(
                f"add element {s.family} {s.table} {s.name} {{ {key}"
                + (f" : {e.value}" if e.value else "")
                + " }"
            )
    lines += [f"add rule {r.family} {r.table} {r.chain} {r.text}" for r in rs.rules]
    return rs, "\n".join(lines) + "\n"
