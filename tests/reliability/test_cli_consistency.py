"""The command line says the same things the same way: flags, usage, counts, exit codes.

Found by a review as a new user: `--proto icmp --to IP:80` kept the port, `lab probe`
spelt UDP differently from `trace`, an unknown option printed podpath's usage instead of
its command's, "the trace has 1 branches", and an unwritable --svg path exited 1 where
every other bad input exits 2.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from podpath.cli import build_parser
from podpath.snapshot import codec

DEMO = Path(codec.__file__).resolve().parents[1] / "data" / "demo-snapshot.json"
TRACE = ["trace", "--snapshot", str(DEMO), "--from", "node"]


def _podpath(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podpath", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_icmp_to_an_address_and_port_is_refused() -> None:
    """ICMP has no ports: `--to IP:80` is one sentence and exit 2, not a trace to IP:80."""
    out = _podpath(*TRACE, "--proto", "icmp", "--to", "10.244.0.2:80")
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == "podpath: ICMP has no ports: give 10.244.0.2 without ':80'\n"


def test_icmp_with_a_source_port_is_refused() -> None:
    """`--proto icmp --sport N` is one sentence and exit 2, not a silently ignored port."""
    out = _podpath(*TRACE, "--proto", "icmp", "--sport", "5", "--to", "10.244.0.2")
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == "podpath: ICMP has no ports: leave out --sport 5\n"


def test_icmp_probe_with_a_source_port_is_refused_by_the_engine() -> None:
    """The TUI's path (the engine itself) refuses an ICMP probe with a source port too."""
    from podpath.snapshot import codec
    from podpath.trace.engine import trace
    from podpath.trace.probe import Probe, ProbeError

    with pytest.raises(ProbeError, match="ICMP has no ports"):
        trace([codec.load_path(str(DEMO))], Probe("node", "10.244.0.2", "icmp", sport=5))


def test_icmp_to_a_service_pings_its_cluster_ip_without_a_port() -> None:
    """`--proto icmp --to ns/name` names the ClusterIP alone, as ping would."""
    out = _podpath(*TRACE, "--proto", "icmp", "--to", "default/web")
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    assert first.startswith("trace icmp from node node1")
    assert " to service default/web (10.96.0.100) on node1" in first


@pytest.mark.parametrize(
    ("flags", "proto"),
    [([], "tcp"), (["--udp"], "udp"), (["--proto", "udp"], "udp"), (["--proto", "tcp"], "tcp")],
)
def test_lab_probe_takes_trace_s_proto_flag_and_its_own(flags: list[str], proto: str) -> None:
    """`lab probe --proto udp` (as trace spells it) and `--udp` mean the same."""
    args = build_parser("lab").parse_args(["lab", "probe", *flags, "a", "b:53"])
    assert args.proto == proto


def test_lab_probe_refuses_both_spellings_at_once() -> None:
    """--udp and --proto together are a usage error (exit 2), not a silent choice."""
    out = _podpath("lab", "probe", "--udp", "--proto", "tcp", "a", "b")
    assert out.returncode == 2
    assert "not allowed with argument" in out.stderr


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["ls", "pods", "--bogus"], "usage: podpath ls "),
        (["trace", "--from", "a", "--to", "b", "--bogus"], "usage: podpath trace "),
        (["lab", "probe", "a", "b", "--bogus"], "usage: podpath lab probe "),
        (["--bogus"], "usage: podpath tui "),
    ],
)
def test_an_unknown_option_prints_its_commands_usage(argv: list[str], usage: str) -> None:
    """The usage printed is the command's that was given the option, as argparse does for it."""
    out = _podpath(*argv)
    assert out.returncode == 2
    assert out.stderr.startswith(usage), out.stderr
    assert out.stderr.splitlines()[-1].endswith("error: unrecognized arguments: --bogus")


def test_a_branch_count_of_one_is_singular(tmp_path: Path) -> None:
    """`--branch 9` of a one-branch trace: "the trace has 1 branch"."""
    out = _podpath(
        *TRACE, "--to", "10.244.0.2:80", "--svg", str(tmp_path / "x.svg"), "--branch", "9"
    )
    assert out.returncode == 2
    assert out.stderr == "podpath: --branch 9: the trace has 1 branch\n"


@pytest.mark.parametrize(
    "argv",
    [
        [*TRACE, "--to", "10.244.0.2:80", "--svg"],
        ["draw", "--snapshot", str(DEMO), "-o"],
        ["snapshot", "-o"],
    ],
    ids=["trace-svg", "draw", "snapshot"],
)
def test_an_unwritable_output_path_exits_2_like_other_bad_input(
    argv: list[str], tmp_path: Path
) -> None:
    """A file that cannot be written is the user's input: one sentence, exit 2."""
    target = tmp_path / "missing" / "out.svg"
    out = _podpath(*argv, str(target))
    assert out.returncode == 2, out.stderr
    assert (
        out.stderr.splitlines()[-1] == f"podpath: cannot write {target}: No such file or directory"
    )
