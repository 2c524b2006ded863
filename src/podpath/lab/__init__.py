"""The lab: isolated Kubernetes-like nodes built from real kernel parts, runc and CNI.

Public API (stable; other modules and the tests code against it):

    from podpath.lab import LabSpec, up, down, status, load, running_lab
    with running_lab(LabSpec("mylab", nodes=2)) as lab:
        lab.exec("node1", ["ip", "-j", "link"])
        lab.probe("web-...", "default/web")
"""

from __future__ import annotations

from podpath.lab.lab import (
    Lab,
    LabCommandError,
    LabNode,
    LabSummary,
    down,
    load,
    missing_requirements,
    running_lab,
    status,
    up,
)
from podpath.lab.probe import ProbeResult
from podpath.lab.records import LabError, LabRecord, LabSpec, NodeRecord, PodRecord, ServiceRecord

__all__ = [
    "Lab",
    "LabCommandError",
    "LabError",
    "LabNode",
    "LabRecord",
    "LabSpec",
    "LabSummary",
    "NodeRecord",
    "PodRecord",
    "ProbeResult",
    "ServiceRecord",
    "down",
    "load",
    "missing_requirements",
    "running_lab",
    "status",
    "up",
]
