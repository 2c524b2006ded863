"""A runtime's files laid out under a test's host root, from the real dumps among the fixtures."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from podpath.collectors.runtime.pods import CONTAINERD_RUNC

REALWORLD = Path(__file__).resolve().parents[1] / "fixtures" / "realworld"
# The kind node's coredns pod of the crictl dumps (runtime/kind-containerd-crictl-*).
SB = "3eff2d8d3a4f3d3c0d1c4d4737c21b397bf7cbf77fd8a0fe370f6a59129cd535"
CT = "f3a240d625b1e97b859e29f81360fd79538021c46eaafb325dc0fa195c8e4b6a"
PAUSE_PID, PAUSE_START, APP_PID = 1322, 6322, 1478


def load(name: str) -> dict[str, Any]:
    """A JSON fixture by its path under tests/fixtures/realworld."""
    data: dict[str, Any] = json.loads((REALWORLD / name).read_text())
    return data


def write(root: Path, path: str, data: object) -> None:
    """A file at `path` under `root`: text as it is, anything else as JSON."""
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(data if isinstance(data, str) else json.dumps(data))


def kind_specs() -> tuple[dict[str, Any], dict[str, Any]]:
    """(sandbox, app) runtime specs of the kind node's coredns pod, copies free to change."""
    sandbox = load("runtime/kind-containerd-crictl-inspectp-coredns-systemd.json")
    app = load("runtime/kind-containerd-crictl-inspect-container-coredns.json")
    return copy.deepcopy(sandbox["info"]["runtimeSpec"]), copy.deepcopy(app["info"]["runtimeSpec"])


def write_containerd_pod(
    root: Path, tasks: str, sandbox: dict[str, Any], app: dict[str, Any] | None = None
) -> None:
    """The coredns pod as containerd leaves it: bundles under `tasks`, the pause's runc state.

    The app's PID is in its bundle's init.pid (the shim's), as when runc's state is gone.
    """
    write(root, f"{tasks}/{SB}/config.json", sandbox)
    write(
        root,
        f"{CONTAINERD_RUNC}/{SB}/state.json",
        {"init_process_pid": PAUSE_PID, "init_process_start": PAUSE_START},
    )
    if app is not None:
        write(root, f"{tasks}/{CT}/config.json", app)
        write(root, f"{tasks}/{CT}/init.pid", str(APP_PID))
