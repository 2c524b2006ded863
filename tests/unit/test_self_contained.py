"""The repository stands on its own: nothing in it reads or cites what a clone lacks."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Built from parts so this file does not match itself.
WORKSPACE = re.compile(r"\.\./" + "shared|" + "shared/" + r"(fixtures|docs|seed)")
# A numbered issue of a tracker a reader cannot see; public issues are cited as owner/repo#N.
TRACKER = re.compile(r"(?<![\w/#])[Ii]ssue" + r" #?\d+")
# Verbatim third-party data: it cites its own upstreams' issues and docs (SOURCES.md).
THIRD_PARTY = REPO / "tests" / "fixtures" / "realworld"
DOC_LINK = re.compile(r"docs/([\w.-]+\.md)")


def _tracked_text_files() -> list[Path]:
    """Every file a clone holds (git's list, so build and cache folders do not count)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    files = []
    for name in out.decode().split("\0"):
        path = REPO / name
        if name and path.is_file() and path.suffix not in {".pcap", ".cast", ".svg"}:
            files.append(path)
    return files


def _lines_matching(pattern: re.Pattern[str], *, own_only: bool = False) -> list[str]:
    found = []
    for path in _tracked_text_files():
        if own_only and path.is_relative_to(THIRD_PARTY):
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    return found


def test_nothing_refers_to_the_teams_workspace() -> None:
    """No code, test, doc or comment reads or mentions the workspace beside the clone."""
    assert _lines_matching(WORKSPACE) == []


def test_no_private_tracker_references() -> None:
    """Comments cite the project's docs/ or public issues (owner/repo#N), never "issue N"."""
    assert _lines_matching(TRACKER, own_only=True) == []


def test_cited_docs_exist() -> None:
    """Every page of docs/ that a file of the project cites is in the repository."""
    missing = set()
    for line in _lines_matching(DOC_LINK, own_only=True):
        for name in DOC_LINK.findall(line.split(": ", 1)[1]):
            if not (REPO / "docs" / name).is_file():
                missing.add(f"docs/{name} ({line.split(':')[0]})")
    assert sorted(missing) == []
