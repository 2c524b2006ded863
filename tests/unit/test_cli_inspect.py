"""`podpath ls` and `podpath snapshot` as a user meets them: clear errors, safe output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from podpath.cli.inspect import json_listing
from podpath.safe_text import visible
from podpath.snapshot import codec
from podpath.snapshot.model import (
    SCHEMA_VERSION,
    IptablesDump,
    Namespace,
    NodeFacts,
    Snapshot,
)

KUBE_RULES = """*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-X - [0:0]
:KUBE-SEP-A - [0:0]
:KUBE-SEP-B - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-X
-A KUBE-SVC-X -m comment --comment "default/web:http -> 10.244.0.2:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-A
-A KUBE-SVC-X -m comment --comment "default/web:http -> 10.244.1.2:8080" -j KUBE-SEP-B
-A KUBE-SEP-A -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.0.2:8080
-A KUBE-SEP-B -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.1.2:8080
COMMIT
"""


def _podpath(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podpath", *args], capture_output=True, text=True, timeout=120
    )


def _write(tmp_path: Path, snapshot: Snapshot) -> str:
    path = tmp_path / "snap.json"
    path.write_text(codec.dumps(snapshot))
    return str(path)


def _snapshot(**kwargs: object) -> Snapshot:
    return Snapshot(SCHEMA_VERSION, 0.0, NodeFacts("node-1", "6.18"), 1, **kwargs)  # type: ignore[arg-type]


def test_visible_shows_escapes_and_keeps_plain_text() -> None:
    """ESC, OSC, C1, bidi and undecodable bytes become escapes; plain text is untouched."""
    assert visible("eth0\x1b]0;x\x07\x9b\u202e") == "eth0\\x1b]0;x\\x07\\x9b\\u202e"
    assert visible(b"a\xff".decode("utf-8", "surrogateescape")) == "a\\xff"
    assert visible("[b]eth0[/b] ünïcode") == "[b]eth0[/b] ünïcode"


def test_unreadable_snapshot_is_exit_2_with_one_sentence(tmp_path: Path) -> None:
    """A garbage snapshot file gives exit 2 and one line on stderr, no traceback."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1, "taken_at": NaN}')
    out = _podpath("ls", "pods", "--snapshot", str(bad))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "NaN" in out.stderr


def test_missing_host_root_is_exit_2() -> None:
    """A host root that does not exist is a usage error."""
    out = _podpath("snapshot", "--host-root", "/nonexistent-podpath-root", "-o", "/dev/null")
    assert out.returncode == 2
    assert "not a directory" in out.stderr


def test_hostile_names_are_printed_inert(tmp_path: Path) -> None:
    """Escape sequences in a command name reach stdout as visible escapes in text and JSON."""
    ns = Namespace("net", 4026531840, 4, 1, 1, 0, "root", "\x1b]52;c;cHduZWQ=\x07[@click=x]")
    path = _write(tmp_path, _snapshot(namespaces=(ns,)))
    text = _podpath("ls", "namespaces", "--snapshot", path)
    assert text.returncode == 0
    assert "\x1b" not in text.stdout and "\\x1b]52;c;cHduZWQ=\\x07[@click=x]" in text.stdout
    raw = _podpath("ls", "namespaces", "--snapshot", path, "--json")
    assert "\x1b" not in raw.stdout
    assert json.loads(raw.stdout)["namespaces"][0]["command"] == ns.command


def test_ls_services_from_a_snapshot(tmp_path: Path) -> None:
    """Services come out of the snapshot's iptables text with each endpoint's share."""
    dump = IptablesDump("nft", "ipv4", ("iptables-nft-save",), KUBE_RULES)
    path = _write(tmp_path, _snapshot(iptables=(dump,)))
    out = _podpath("ls", "services", "--snapshot", path, "--json")
    assert out.returncode == 0, out.stderr
    (svc,) = json.loads(out.stdout)["services"]
    assert (svc["namespace"], svc["name"], svc["cluster_ip"], svc["port"]) == (
        "default",
        "web",
        "10.96.0.10",
        80,
    )
    assert [(e["ip"], e["port"], e["probability"]) for e in svc["endpoints"]] == [
        ("10.244.0.2", 8080, 0.5),
        ("10.244.1.2", 8080, 0.5),
    ]


def test_gaps_go_to_stderr_and_exit_0(tmp_path: Path) -> None:
    """A snapshot with gaps still lists (exit 0) and names each gap on stderr."""
    from podpath.snapshot.model import Gap

    gap = Gap("/proc/42/ns", "permission denied", "permission", "CAP_SYS_PTRACE")
    out = _podpath("ls", "pods", "--snapshot", _write(tmp_path, _snapshot(gaps=(gap,))))
    assert out.returncode == 0
    assert "needs CAP_SYS_PTRACE" in out.stderr
    # `ls gaps` is the list itself: on stdout, not a second time on stderr.
    out = _podpath("ls", "gaps", "--snapshot", _write(tmp_path, _snapshot(gaps=(gap,))))
    assert (out.returncode, out.stderr) == (0, "")
    assert "CAP_SYS_PTRACE" in out.stdout


def test_mixed_backends_are_warned_about(tmp_path: Path) -> None:
    """Rules in both the legacy and the nft iptables backend give a warning on stderr."""
    legacy = IptablesDump(
        "legacy",
        "ipv4",
        ("iptables-legacy-save",),
        "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.0.0.1/32 -j DROP\nCOMMIT\n",
    )
    nft = IptablesDump("nft", "ipv4", ("iptables-nft-save",), KUBE_RULES)
    out = _podpath(
        "ls", "iptables", "--snapshot", _write(tmp_path, _snapshot(iptables=(legacy, nft)))
    )
    assert out.returncode == 0, out.stderr
    assert (
        "warning: rules in several iptables backends: iptables-legacy, iptables-nft" in out.stderr
    )
    assert "legacy" in out.stdout and "KUBE-SVC-X" in out.stdout


_SCALARS = st.one_of(st.text(), st.integers(), st.booleans(), st.none())
_ROWS = st.lists(
    st.dictionaries(
        st.text(),
        st.one_of(
            _SCALARS,
            st.lists(_SCALARS),
            st.floats(allow_nan=False),
            st.dictionaries(st.text(), _SCALARS),
        ),
        max_size=6,
    ),
    max_size=5,
)


@given(st.text(), _ROWS)
def test_json_listing_is_byte_for_byte_what_json_writes(
    kind: str, rows: list[dict[str, Any]]
) -> None:
    """The fast JSON writer of `ls --json` (or its fallback) equals json.dumps exactly,
    escape sequences and markup included."""
    assert json_listing(kind, rows) == json.dumps({kind: rows}, ensure_ascii=True, indent=2)


def test_json_listing_keeps_escapes_inert() -> None:
    text = json_listing("namespaces", [{"command": "\x1b[31m[bold]x", "pids": [1, True, None]}])
    assert "\x1b" not in text and "\\u001b[31m[bold]x" in text
    assert json.loads(text) == {
        "namespaces": [{"command": "\x1b[31m[bold]x", "pids": [1, True, None]}]
    }
