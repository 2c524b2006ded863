"""podpath: a keyboard-driven explorer for one Kubernetes node's networking."""

from __future__ import annotations

__version__ = "0.1.0"
