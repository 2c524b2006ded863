"""Istio's sidecar rules, as istio/istio's own golden file gives them (tests/fixtures/
sidecar): the iptables-nft commands that write them in a network namespace."""

from __future__ import annotations

from pathlib import Path

GOLDEN = Path(__file__).parent / "fixtures" / "sidecar" / "istio-kube-virt-interfaces.golden"


def istio_commands() -> list[list[str]]:
    """`iptables-nft -t TABLE RULE...` for each rule of the golden file, in its order: its
    `* TABLE` lines name the table, its `iptables-save` lines and COMMIT are the test's
    own steps, not rules."""
    table = "filter"
    commands = []
    for line in GOLDEN.read_text().splitlines():
        if line.startswith("* "):
            table = line[2:].strip()
        elif line.startswith("-"):
            commands.append(["iptables-nft", "-t", table, *line.split()])
    return commands
