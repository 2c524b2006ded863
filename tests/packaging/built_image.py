"""What the `podpath_image` and `image_rootfs` fixtures (conftest.py) hand to tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BuiltImage:
    """An image tarball made by image/build, and what it printed about it."""

    archive: Path
    summary: dict[str, Any]


@dataclass(frozen=True)
class UnpackedImage:
    """An image's layers extracted into one directory, and its config's Env."""

    root: Path
    env: tuple[str, ...]
