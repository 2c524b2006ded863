"""Where a lab's record lives on this machine: /run/podpath-lab/<name>/."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from podpath.lab import procs
from podpath.lab.records import LabError, LabRecord

STATE_ROOT = Path(os.environ.get("PODPATH_LAB_STATE", "/run/podpath-lab"))
RECORD_FILE = "lab.json"
OWNER_FILE = "owner.json"


def lab_dir(name: str) -> Path:
    """State directory of a lab."""
    return STATE_ROOT / name


def claim(name: str) -> Path:
    """Create a lab's state dir atomically; LabError when a lab of that name is live."""
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    d = lab_dir(name)
    try:
        d.mkdir()
    except FileExistsError:
        raise LabError(_busy_reason(name)) from None
    me = os.getpid()
    (d / OWNER_FILE).write_text(json.dumps({"pid": me, "start": procs.start_time(me)}))
    return d


def _busy_reason(name: str) -> str:
    record = read(name)
    if record is not None and any(procs.alive(n.init_pid, n.init_start) for n in record.nodes):
        return f"lab {name!r} is already up; run `podpath lab down --name {name}` first"
    owner = _owner(name)
    if owner is not None and procs.alive(*owner):
        return f"lab {name!r} is being built by process {owner[0]}"
    return (
        f"lab {name!r} has stale state in {lab_dir(name)}; "
        f"run `podpath lab down --name {name}` to clean it"
    )


def _owner(name: str) -> tuple[int, int] | None:
    try:
        raw = json.loads((lab_dir(name) / OWNER_FILE).read_text())
        return int(raw["pid"]), int(raw["start"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def write(record: LabRecord) -> None:
    """Persist a lab's record atomically (readers never see half a file)."""
    d = lab_dir(record.spec.name)
    tmp = d / f".{RECORD_FILE}.tmp"
    tmp.write_text(record.to_json())
    tmp.replace(d / RECORD_FILE)


def read(name: str) -> LabRecord | None:
    """A lab's record, or None when it has none (yet)."""
    try:
        text = (lab_dir(name) / RECORD_FILE).read_text()
    except FileNotFoundError:
        return None
    return LabRecord.from_json(text)


def names() -> list[str]:
    """Names of labs with a state dir."""
    if not STATE_ROOT.is_dir():
        return []
    return sorted(p.name for p in STATE_ROOT.iterdir() if p.is_dir())


def forget(name: str) -> None:
    """Remove a lab's state dir (and the state root when it is the last lab)."""
    shutil.rmtree(lab_dir(name), ignore_errors=True)
    try:
        STATE_ROOT.rmdir()
    except OSError:
        pass  # other labs still live here
