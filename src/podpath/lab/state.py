"""Where a lab's record lives on this machine: /run/podpath-lab/<name>/.

Beside the record (lab.json, rewritten as the lab grows) is a ledger: one JSON line
appended for each process the lab starts (pid and start time) and each cgroup it
makes, before anything depends on it. A line is written whole by one O_APPEND write
and read on its own, so `lab down` still knows what to end and remove when the record
is unreadable or was never written.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from podpath.lab import procs
from podpath.lab.records import LabError, LabRecord

STATE_ROOT = Path(os.environ.get("PODPATH_LAB_STATE", "/run/podpath-lab"))
RECORD_FILE = "lab.json"
OWNER_FILE = "owner.json"
LEDGER_FILE = "ledger.jsonl"


@dataclass(frozen=True)
class Started:
    """A process the lab started: what it is, its PID here and its start time."""

    what: str
    pid: int
    start: int


@dataclass(frozen=True)
class Ledger:
    """What a lab's ledger holds, and the lines of it that could not be read."""

    processes: tuple[Started, ...] = ()
    cgroup_dirs: tuple[str, ...] = ()
    unreadable: tuple[int, ...] = ()  # line numbers


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
    try:
        record = read(name)
    except LabError:
        record = None
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
    except (OSError, UnicodeDecodeError) as exc:
        raise LabError(f"lab state is unreadable: {exc}") from exc
    return LabRecord.from_json(text)


def note_started(name: str, what: str, pid: int, start: int) -> None:
    """Append a started process to the lab's ledger."""
    _append(name, {"process": what, "pid": pid, "start": start})


def note_cgroups(name: str, dirs: Iterable[str]) -> None:
    """Append cgroup directories the lab made to its ledger."""
    for d in dirs:
        _append(name, {"cgroup": d})


def _append(name: str, entry: dict[str, object]) -> None:
    line = (json.dumps(entry) + "\n").encode()
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = os.open(lab_dir(name) / LEDGER_FILE, flags, 0o600)
    try:
        os.write(fd, line)  # one write of a short line: never interleaved, never half
    finally:
        os.close(fd)


def ledger(name: str) -> Ledger:
    """The lab's ledger; lines that are not what _append writes are counted, not trusted."""
    try:
        data = (lab_dir(name) / LEDGER_FILE).read_bytes()
    except FileNotFoundError:
        return Ledger()
    started: list[Started] = []
    dirs: list[str] = []
    bad: list[int] = []
    for number, line in enumerate(data.splitlines(), 1):
        try:
            entry = json.loads(line)
            if "process" in entry:
                pid, start = entry["pid"], entry["start"]
                if not (type(pid) is int and type(start) is int and pid > 0):
                    raise ValueError("not a pid and start time")
                started.append(Started(str(entry["process"]), pid, start))
            else:
                dirs.append(_cgroup_dir(entry["cgroup"]))
        except (ValueError, KeyError, TypeError):
            bad.append(number)
    return Ledger(tuple(started), tuple(dict.fromkeys(dirs)), tuple(bad))


def _cgroup_dir(path: object) -> str:
    # Only a directory of the lab's own shape is ever removed: <hierarchy>/.../podpath-lab-*/x.
    if not isinstance(path, str) or not path.startswith("/sys/fs/cgroup/"):
        raise ValueError("not a cgroup directory")
    if not Path(path).parent.name.startswith("podpath-lab-") or ".." in Path(path).parts:
        raise ValueError("not a lab cgroup directory")
    return path


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
