"""The tour's recording made ready for an animated SVG: fewer frames, spaces kept.

`podpath tour --record` writes an asciicast v2 file (asciinema's format: a JSON header
line, then one `[time, "o", text]` line per write). Textual repaints in many small
writes, so a 100 s tour holds thousands of events; svg-term draws one frame per event
and ran out of memory on 3,300 of them. Writes that follow each other closely are
joined into one event: the terminal ends in the same state, a viewer sees the same
screens. svg-term keeps runs of spaces in its text only through a CSS rule that its
own optimiser drops, and not every SVG renderer honours; `xml:space` keeps columns
aligned everywhere.
"""

from __future__ import annotations

import json
import re

FRAME_GAP = 0.2  # seconds: writes closer than this are one frame
_ROOT_SVG = re.compile(r"<svg\b")


class CastError(ValueError):
    """A recording that is not an asciicast v2 file."""


def coalesce(cast: str, gap: float = FRAME_GAP) -> str:
    """The recording with output events closer than `gap` seconds joined (input dropped)."""
    lines = cast.splitlines()
    try:
        header = json.loads(lines[0]) if lines else None
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("version") != 2:
        raise CastError("not an asciicast v2 recording (no version 2 header line)")
    frames: list[list[object]] = []
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        try:
            at, kind, data = json.loads(line)
            at = float(at)
        except (json.JSONDecodeError, TypeError, ValueError):
            raise CastError(f"line {number} of the recording is not an event") from None
        if kind != "o" or not isinstance(data, str):
            continue  # keyboard input and markers are not drawn
        last = frames[-1] if frames else None
        if last is not None and at - float(str(last[0])) < gap:
            last[2] = str(last[2]) + data
        else:
            frames.append([at, "o", data])
    out = [json.dumps(header)] + [json.dumps(f, ensure_ascii=False) for f in frames]
    return "\n".join(out) + "\n"


def preserve_spaces(svg: str) -> str:
    """The SVG with `xml:space="preserve"` on its root, so runs of spaces keep their width."""
    if 'xml:space="preserve"' in svg[:500]:
        return svg
    fixed, count = _ROOT_SVG.subn('<svg xml:space="preserve"', svg, count=1)
    if count != 1:
        raise CastError("the converter's output is not SVG")
    return fixed
