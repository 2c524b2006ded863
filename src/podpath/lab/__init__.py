"""The lab: isolated Kubernetes-like nodes built from real kernel parts, runc and CNI.

Public API (stable; other modules and the tests code against it):

    from podpath.lab import LabSpec, up, down, status, load, running_lab
    with running_lab(LabSpec("mylab", nodes=2)) as lab:
        lab.exec("node1", ["ip", "-j", "link"])
        lab.probe("web-...", "default/web")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
    from podpath.lab.records import (
        LabError,
        LabRecord,
        LabSpec,
        NodeRecord,
        PodRecord,
        ServiceRecord,
    )

# Each public name -> the module that defines it. Loaded on first use (PEP 562) so that
# a lab module importing a sibling (`from podpath.lab import cni`) never runs lab.lab,
# which imports those siblings back: the package holds no import cycle.
_EXPORTS = {
    "Lab": "podpath.lab.lab",
    "LabCommandError": "podpath.lab.lab",
    "LabNode": "podpath.lab.lab",
    "LabSummary": "podpath.lab.lab",
    "down": "podpath.lab.lab",
    "load": "podpath.lab.lab",
    "missing_requirements": "podpath.lab.lab",
    "running_lab": "podpath.lab.lab",
    "status": "podpath.lab.lab",
    "up": "podpath.lab.lab",
    "ProbeResult": "podpath.lab.probe",
    "LabError": "podpath.lab.records",
    "LabRecord": "podpath.lab.records",
    "LabSpec": "podpath.lab.records",
    "NodeRecord": "podpath.lab.records",
    "PodRecord": "podpath.lab.records",
    "ServiceRecord": "podpath.lab.records",
}

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


def __getattr__(name: str) -> object:
    """One public name, imported from its module the first time it is asked for."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    """The public names, as if they had been imported eagerly."""
    return sorted([*globals(), *_EXPORTS])
