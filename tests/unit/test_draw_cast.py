"""The tour's animation: a real asciinema recording turned into an animated SVG by svg-term."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from podpath.cli import CliError, main
from podpath.cli.draw import animate_cast, animation_path, svg_term
from podpath.draw.cast import CastError, coalesce, preserve_spaces

SVG = "{http://www.w3.org/2000/svg}"
HEADER = {"version": 2, "width": 40, "height": 5}

needs_tools = pytest.mark.skipif(
    svg_term() is None or shutil.which("asciinema") is None,
    reason="svg-term (./run setup installs it) or asciinema is missing",
)


def cast(*events: tuple[float, str, str]) -> str:
    """An asciicast v2 text from events."""
    return "\n".join([json.dumps(HEADER), *(json.dumps(list(e)) for e in events)]) + "\n"


def events(text: str) -> list[list[object]]:
    """The events of an asciicast text."""
    return [json.loads(line) for line in text.splitlines()[1:]]


def test_close_writes_become_one_frame_and_the_screen_ends_the_same() -> None:
    """Writes under 0.2 s apart are joined, input dropped; the output, in order, is unchanged."""
    text = cast(
        (0.0, "o", "a"),
        (0.05, "o", "b"),
        (0.1, "i", "q"),
        (0.15, "o", "\x1b[2J"),
        (0.6, "o", "c"),
        (0.9, "o", "d"),
    )
    out = events(coalesce(text))
    assert out == [[0.0, "o", "ab\x1b[2J"], [0.6, "o", "c"], [0.9, "o", "d"]]
    assert json.loads(coalesce(text).splitlines()[0]) == HEADER


def test_a_file_that_is_not_a_recording_is_refused() -> None:
    """No v2 header, or an event line that is not one: a CastError saying which."""
    with pytest.raises(CastError, match="not an asciicast v2"):
        coalesce('{"version": 1}\n')
    with pytest.raises(CastError, match="not an asciicast v2"):
        coalesce("")
    with pytest.raises(CastError, match="line 3"):
        coalesce(cast((0.0, "o", "a")) + "[oops\n")


def test_preserve_spaces_marks_the_root_once() -> None:
    """xml:space goes on the root <svg> only, and only once."""
    svg = '<?xml version="1.0"?><svg width="1"><svg x="0"></svg></svg>'
    fixed = preserve_spaces(svg)
    assert fixed.count('xml:space="preserve"') == 1
    assert fixed.index("xml:space") < fixed.index('<svg x="0"')
    assert preserve_spaces(fixed) == fixed
    with pytest.raises(CastError):
        preserve_spaces("<html></html>")


def test_animation_path_follows_the_cast() -> None:
    """tour.cast -> tour.svg; any other name gets .svg added."""
    assert animation_path(Path("a/tour.cast")) == Path("a/tour.svg")
    assert animation_path(Path("a/tour")) == Path("a/tour.svg")


@needs_tools
def test_a_real_recording_becomes_an_animated_svg_with_aligned_columns(tmp_path: Path) -> None:
    """asciinema records printf; svg-term animates it; the second column stays aligned."""
    recording = tmp_path / "r.cast"
    script = "printf 'NAME   IP\\n'; sleep 0.3; printf 'web-0  10.244.0.2\\n'"
    subprocess.run(
        ["asciinema", "rec", "--overwrite", "--cols", "40", "--rows", "5", "-c", script]
        + ["--", str(recording)],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    out = tmp_path / "r.svg"
    animate_cast(recording, out)
    root = ET.fromstring(out.read_bytes())
    assert root.attrib["{http://www.w3.org/XML/1998/namespace}space"] == "preserve"
    at = {"".join(t.itertext()): float(t.attrib.get("x", 0)) for t in root.iter(f"{SVG}text")}
    assert {"NAME", "IP", "web-0", "10.244.0.2"} <= set(at)
    # Both second-column words start at column 7, where the terminal put them.
    assert at["IP"] == at["10.244.0.2"] and at["IP"] == pytest.approx(7 * 1.002)
    assert "@keyframes" in out.read_text()


@needs_tools
def test_tour_record_writes_the_cast_and_its_animation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tour --record FILE.cast` runs asciinema, then svg-term on what it recorded: FILE.svg."""
    fake = tmp_path / "bin"
    fake.mkdir()
    # asciinema itself is tested above; this stand-in only writes a short recording where
    # `rec ... -- FILE` asks, so the wiring is checked without a 50 s tour.
    (fake / "asciinema").write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "with open(sys.argv[-1], 'w') as f:\n"
        f"    f.write(json.dumps({HEADER!r}) + '\\n' + json.dumps([0.1, 'o', 'podpath']) + '\\n')\n"
    )
    (fake / "asciinema").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    assert main(["tour", "--record", str(tmp_path / "t.cast")]) == 0
    root = ET.fromstring((tmp_path / "t.svg").read_bytes())
    assert "podpath" in {"".join(t.itertext()) for t in root.iter(f"{SVG}text")}


def test_missing_svg_term_keeps_the_cast_and_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without svg-term the recording stays and one sentence says how to get the animation."""
    recording = tmp_path / "t.cast"
    recording.write_text(cast((0.1, "o", "hi")))
    monkeypatch.setattr("podpath.cli.draw.svg_term", lambda: None)
    with pytest.raises(CliError, match="is recorded; the animated SVG needs svg-term"):
        animate_cast(recording, tmp_path / "t.svg")
    assert recording.exists() and not (tmp_path / "t.svg").exists()


def test_a_broken_recording_is_one_sentence(tmp_path: Path) -> None:
    """A file that is not a recording: CliError naming the file, before svg-term runs."""
    bad = tmp_path / "bad.cast"
    bad.write_text("not json\n")
    with pytest.raises(CliError, match="bad.cast: not an asciicast v2"):
        animate_cast(bad, tmp_path / "bad.svg")
