"""What the `podpath_image` fixture (conftest.py) hands to tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BuiltImage:
    """An image tarball made by image/build, and what it printed about it."""

    archive: Path
    summary: dict[str, Any]
