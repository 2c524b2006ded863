"""The active CNI configuration's plugins, as the checks that read them need them.

A config file is a conflist (`{"plugins": [...]}`) or a single plugin's object; its text
is the node's, so it is parsed defensively: what is not JSON, or not objects, yields
nothing rather than an error.
"""

from __future__ import annotations

import json
from typing import Any

from podpath.snapshot.model import CniConfig, CniState


def active_config(cni: CniState) -> CniConfig | None:
    """The config the runtime would use, when the snapshot read it."""
    return next((c for c in cni.configs if c.path == cni.active), None)


def plugins(conf: CniConfig) -> list[dict[str, Any]]:
    """The plugin objects of a config, in chain order ([] when its text does not parse)."""
    try:
        doc = json.loads(conf.text)
    except ValueError:
        return []
    listed = doc.get("plugins") if isinstance(doc, dict) else None
    return [p for p in (listed if isinstance(listed, list) else [doc]) if isinstance(p, dict)]
