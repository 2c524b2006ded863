"""The image, built once per session by image/build, and its root filesystem unpacked.

image/build caches the Debian root filesystem and the dependency wheels (~/.cache/
podpath-image): the first session that builds it needs the Debian mirror and PyPI and
takes a minute or two; later ones build offline in well under a minute (the podpath
layer is rebuilt from this checkout every time, gzip level 1 here).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from built_image import BuiltImage, UnpackedImage

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "image" / "build"
# image/oci_archive.py is a script of the build, not a module of podpath, and tests/tui
# holds the tmux helpers: tests here import both by name (mypy finds them through
# mypy_path; pytest only puts this folder on sys.path).
sys.path.insert(0, str(REPO / "image"))
sys.path.insert(0, str(REPO / "tests" / "tui"))
TAG = "podpath:test"


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if os.geteuid() != 0 or missing:
        pytest.skip(f"needs root and {', '.join(tools)} (missing: {', '.join(missing) or '-'})")


@pytest.fixture(scope="session")
def podpath_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltImage]:
    """podpath's image, built from this checkout by image/build."""
    _require("mmdebstrap")
    out = tmp_path_factory.mktemp("image")
    env = {**os.environ, "PYTHON": sys.executable, "PODPATH_IMAGE_GZIP_LEVEL": "1"}
    done = subprocess.run(
        [str(BUILD), "-o", str(out), "--tag", TAG],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    archive = Path(done.stdout.strip().splitlines()[-1])
    summary = json.loads(archive.with_suffix(".json").read_text())
    try:
        yield BuiltImage(archive, summary)
    finally:
        shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="session")
def image_rootfs(
    podpath_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UnpackedImage]:
    """The image's layers extracted in order, as a runtime's snapshotter would."""
    from oci_archive import unpack

    root = tmp_path_factory.mktemp("rootfs")
    config = unpack(podpath_image.archive, root)
    try:
        yield UnpackedImage(root, tuple(config["config"]["Env"]))
    finally:
        shutil.rmtree(root, ignore_errors=True)
