#!/usr/bin/env python3
"""Build podpath.pyz: podpath and its dependencies in one file, for nodes with Python 3.11+.

    python3 packaging/build_zipapp.py [--wheel podpath-*.whl] -o podpath.pyz
    scp podpath.pyz node: && ssh node sudo python3 podpath.pyz

A standard-library zipapp (PEP 441) of the wheel installed with its dependencies by
pip: nothing is unpacked on the node, nothing is written there. Python imports it all
from the zip, which works because podpath and everything it imports are pure Python
(a C extension cannot be imported from a zip; the tests import every podpath module
from the built file to keep it so). Modules are also stored compiled for the building
Python's version, so a node with that version starts without compiling; other 3.11+
versions compile from the sources, which are stored too.
"""

from __future__ import annotations

import argparse
import compileall
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import time
import zipapp
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Run by the zip's interpreter line: refuse an old Python in one sentence instead of
# failing on the first syntax it does not know.
MAIN = """\
import sys

if sys.version_info < (3, 11):
    sys.exit("podpath needs Python 3.11 or newer; this is " + sys.version.split()[0])

from podpath.cli import main

sys.exit(main())
"""


def _wheel(workdir: Path) -> Path:
    """podpath's wheel, built from this checkout."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(workdir), str(REPO)],
        check=True,
    )
    (wheel,) = workdir.glob("podpath-*.whl")
    return wheel


def build(wheel: Path | None, output: Path) -> Path:
    """Write the zipapp; return its path."""
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())
    with tempfile.TemporaryDirectory(prefix="podpath-pyz-") as tmp:
        work = Path(tmp)
        wheel = wheel or _wheel(work / "wheel")
        target = work / "app"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-compile"]
            + ["--disable-pip-version-check", "--only-binary=:all:"]
            + ["--target", str(target), str(wheel)],
            check=True,
        )
        shutil.rmtree(target / "bin", ignore_errors=True)  # scripts of the build's python
        (target / "__main__.py").write_text(MAIN)
        # Legacy layout (module.pyc beside module.py): zipimport does not read
        # __pycache__. unchecked-hash: no timestamps, no source hashing at import.
        compileall.compile_dir(
            target,
            quiet=1,
            legacy=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            ddir="",
        )
        for path in target.rglob("*"):
            os.utime(path, (epoch, epoch), follow_symlinks=False)
        output.parent.mkdir(parents=True, exist_ok=True)
        zipapp.create_archive(target, output, interpreter="/usr/bin/env python3", compressed=True)
    return output


def main() -> int:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--wheel", type=Path, help="podpath's wheel (default: build it)")
    p.add_argument("-o", "--output", type=Path, default=REPO / "build" / "podpath.pyz")
    args = p.parse_args()
    out = build(args.wheel, args.output)
    print(f"{out} ({out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
