"""The hostile-string corpus through every source: nothing reaches the terminal, nothing fires.

docs/reliability.md row 9. Every corpus value (hostile_corpus.py) sits in processes,
namespaces, pods, containers, interfaces, iptables comments and chains, nft tables,
chains and comments, conntrack, CNI configs and allocations, gaps and the node's name.
Every `ls` listing (text and JSON), a trace and every main TUI screen must show them
with each control character made visible, and must not run anything they say.
"""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hostile_corpus import UNSAFE, hostile_snapshot

from podpath.cli import main
from podpath.listing import kinds
from podpath.snapshot import codec

DEMO = Path(codec.__file__).resolve().parents[1] / "data" / "demo-snapshot.json"
CANARY = Path("/tmp/podpath-hostile-PWN")


@pytest.fixture(scope="module")
def hostile_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled demo snapshot with the corpus in every source, saved and loadable."""
    path = tmp_path_factory.mktemp("hostile") / "hostile.json"
    path.write_text(codec.dumps(hostile_snapshot(codec.load_path(str(DEMO)))))
    return path


def _leaks(text: str) -> list[str]:
    return sorted({repr(m.group()) for m in UNSAFE.finditer(text)})


@pytest.mark.parametrize("kind", list(kinds()))
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_listings_show_hostile_text_inert(
    hostile_file: Path, kind: str, as_json: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ls KIND` prints no control character from the data, on stdout or stderr."""
    argv = ["ls", kind, "--snapshot", str(hostile_file)] + (["--json"] if as_json else [])
    assert main(argv) == 0
    out = capsys.readouterr()
    assert _leaks(out.out) == [] and _leaks(out.err) == []
    assert not CANARY.exists()


def test_hostile_values_are_listed_visibly(
    hostile_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The values are there, escaped: markup kept as text, ESC shown as \\x1b, bidi as \\u202e."""
    assert main(["ls", "pods", "--snapshot", str(hostile_file)]) == 0
    shown = capsys.readouterr().out
    assert "pw0-[@click=app.quit]pw[/]" in shown
    assert "pw4-pw\\x1b[2J\\x1b[31m" in shown
    assert "pw9-pw\\u202eexe.txt" in shown
    assert "pw11-pw\\xff\\xfe" in shown


@pytest.mark.parametrize(
    "source", ["hostile/pw0-[@click=app.quit]pw[/]", "default/web-wxqsvl5c8z-dzbh5"]
)
def test_trace_output_and_errors_are_inert(
    hostile_file: Path, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trace through the hostile rules, and one that fails on a hostile pod, print nothing raw."""
    code = main(
        [
            "trace",
            "--snapshot",
            str(hostile_file),
            "--from",
            source,
            "--to",
            "default/web:80",
            "--reply",
            "--explain",
        ]
    )
    assert code in (0, 2)
    out = capsys.readouterr()
    assert out.out or out.err
    assert _leaks(out.out) == [] and _leaks(out.err) == []


def _drawn(svg: str) -> str:
    """The text of a screenshot as drawn: SVG tags dropped, entities (&#160;) decoded."""
    return html.unescape(re.sub(r"<[^>]*>", "", svg)).replace("\xa0", " ")


# Screens by the keys a user types (README's `:` names), and the text each must show.
_SCREENS: dict[str, tuple[tuple[str, ...], str]] = {
    "home": ((), "node1\\x1b]2;PWNED\\x07"),
    "pods": (("colon", *"pods", "enter"), "hostile/pw0-[@click=app.quit]pw[/]"),
    "namespaces": (("colon", *"ns", "enter"), "[@click=app.quit]pw[/]"),
    "links": (("colon", *"links", "enter"), "pw\\x1b[2J\\x1b[31m"),
    "netfilter": (("colon", *"ipt", "enter"), "nft/ipv4"),
    "input-rules": (
        (
            "colon",
            *"ipt",
            "enter",
            "enter",
            "slash",
            *"filter",
            "enter",
            "enter",
            "slash",
            *"INPUT",
            "enter",
            "enter",
        ),
        "[@click=app.quit]pw[/]",
    ),
    "conntrack": (("colon", *"ct", "enter"), "10.96.0.100"),
    "cni": (("colon", *"cni", "enter"), "pw\\u202eexe.txt"),
    "problems": (("colon", *"problems", "enter"), "[link=https://evil.example]pw[/link]"),
    "services": (("colon", *"svc", "enter"), "default/web"),
}


# Screens whose rows hold the markup values ([@click=app.quit] among them) to click.
CLICKED = ("pods", "namespaces")


async def test_every_screen_shows_hostile_text_inert_and_clicks_fire_nothing(
    hostile_file: Path,
) -> None:
    """Each screen drawn by the app: no raw control character, the values visible; clicks do nothing."""
    from podpath.cli.tui import build_app, file_source

    app = build_app(file_source(str(hostile_file)))
    async with app.run_test(size=(160, 48)) as pilot:
        await app.workers.wait_for_complete()
        for name, (keys, shown) in _SCREENS.items():
            await pilot.press("escape", "escape", "escape")
            await pilot.pause()
            for key in keys:
                await pilot.press(key)
            await app.workers.wait_for_complete()
            await pilot.pause()
            svg = app.export_screenshot()
            assert _leaks(svg) == [], (name, _leaks(svg))
            assert shown in _drawn(svg), name
            if name in CLICKED:
                # Click each row: markup in node data must carry no action to fire.
                for row in range(2, 46, 3):
                    await pilot.click(offset=(8, row))
            assert app.is_running and app.return_code is None, name
    assert not CANARY.exists()


# Forks a child in a UTS namespace of its own (so it leads a namespace lsns lists) that
# execs sleep under a hostile argv[0]; prints the child's PID.
_SPAWN = r"""
import ctypes, os, sys
pid = os.fork()
if pid:
    print(pid)
    sys.exit(0)
os.setsid()
fd = os.open("/dev/null", os.O_RDWR)
for n in (0, 1, 2):
    os.dup2(fd, n)
if ctypes.CDLL(None, use_errno=True).unshare(0x04000000) != 0:
    os._exit(1)
os.execv("/bin/sleep", [sys.argv[1], "300"])
"""
_ARGV0 = "\x1b]2;PWNED\x07[@click=app.quit]pwarg\x1b[2J"
_IFNAME = "[b]pw\x1b[2J"  # an ifname: <= 15 bytes, no '/', ':' or space
_COMMENT = "\x1b]52;c;cHduZWQ=\x07[link=x]pw\u202e"


@pytest.mark.lab
def test_hostile_names_made_in_a_node_are_listed_inert(make_lab: Any) -> None:
    """A real process argv, interface, iptables comment and nft comment: every listing inert."""
    lab = make_lab(nodes=1, pods=1, services=2)
    node = "node1"
    pid = lab.exec(node, [sys.executable, "-c", _SPAWN, _ARGV0]).stdout.strip()
    try:
        lab.exec(node, ["ip", "link", "add", _IFNAME, "type", "veth", "peer", "name", "pwpeer0"])
        lab.exec(node, ["iptables", "-A", "INPUT", "-m", "comment", "--comment", _COMMENT])
        script = (
            "add table inet pwt; add chain inet pwt pwc { type filter hook input priority 0; }; "
            f'add rule inet pwt pwc counter comment "{_COMMENT}"'
        )
        lab.exec(node, ["nft", script])
        expected = {
            "namespaces": "\\x1b]2;PWNED\\x07[@click=app.quit]pwarg",
            "links": "[b]pw\\x1b[2J",
            "iptables": "\\x1b]52;c;cHduZWQ=\\x07[link=x]pw\\u202e",
            "nft": "\\x1b]52;c;cHduZWQ=\\x07[link=x]pw\\u202e",
        }
        for kind, shown in expected.items():
            for extra in ([], ["--json"]):
                out = lab.exec(node, [sys.executable, "-m", "podpath", "ls", kind, *extra])
                assert _leaks(out.stdout) == [] and _leaks(out.stderr) == [], (kind, extra)
                if not extra:
                    assert shown in out.stdout, kind
    finally:
        lab.exec(node, ["kill", "--", pid], check=False)


# A name like the one the hardening review could not find by typing what it saw.
_SEEN = "pwfind\u202eevil.exe\n\x1b[2J"


async def _filter(pilot: Any, needle: str, typed: bool) -> list[tuple[str, ...]]:
    """Open `/` on the current list, enter `needle`, and return the rows then shown."""
    from textual.widgets import Input

    screen = pilot.app.screen
    await pilot.press("slash")
    box = screen.query_one("#filter", Input)
    box.value = ""
    if typed:
        await pilot.press(*needle)  # key by key, as a user types it
    else:
        box.value = needle  # a 100 KB name is not typed
    await pilot.pause()
    table = screen.table
    return [table.row_texts(i) for i in range(table.row_count)]


async def test_every_hostile_string_is_found_by_typing_what_is_shown(hostile_file: Path) -> None:
    """Every corpus value, typed into `/` as it is displayed (escapes and all), finds its row.

    And the escapes are unambiguous: a backslash is shown doubled, so typing what a
    name holding ESC shows never finds one that holds the four characters `\\x1b`.
    """
    import dataclasses

    from hostile_corpus import CORPUS

    from podpath.cli.tui import build_app
    from podpath.safe_text import visible
    from podpath.tui.source import static_source

    snap = codec.load_path(str(hostile_file))
    seen = dataclasses.replace(snap.pods[-1], namespace="hostile", name=_SEEN, uid="seen")
    snap = dataclasses.replace(snap, pods=(*snap.pods, seen))
    app = build_app(static_source(snap, "snapshot", "hostile.json"))
    # (jump name, the text each corpus value is shown in): pods by name, uts namespaces
    # by their command, interfaces by their name.
    screens: dict[str, Callable[[int, str], str]] = {
        "pods": lambda i, v: f"hostile/pw{i}-{v}",
        "ns": lambda i, v: v,
        "links": lambda i, v: v[:64],
    }
    async with app.run_test(size=(160, 48)) as pilot:
        await app.workers.wait_for_complete()
        for name, shown_as in screens.items():
            await pilot.press("escape", "escape", "colon", *name, "enter")
            await pilot.pause()
            for i, value in enumerate(CORPUS.values()):
                needle = visible(shown_as(i, value))[:80]
                rows = await _filter(pilot, needle, typed=False)
                assert rows, (name, needle)
                assert all(needle.lower() in " ".join(r).lower() for r in rows), (name, needle)
                shown = [r for r in rows if visible(shown_as(i, value))[:80] in " ".join(r)]
                assert shown, (name, needle)
        await pilot.press("escape", "escape", "colon", *"pods", "enter")
        await pilot.pause()
        for needle in ("\\x1b[2J", "\\u202eevil", "\\x0a", "\\U202EEVIL"):
            rows = await _filter(pilot, needle, typed=True)
            assert any("pwfind" in r[0] for r in rows), needle
        # ESC's escape and a literal backslash-x-1-b are told apart, both ways.
        esc = await _filter(pilot, "pw\\x1b[2J", typed=True)
        literal = await _filter(pilot, "pw\\\\x1b[2J", typed=True)
        assert esc and literal
        assert not any("pw\\\\x1b" in r[0] for r in esc)
        assert all("pw\\\\x1b" in r[0] for r in literal)
    assert not CANARY.exists()
