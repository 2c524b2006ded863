"""A tool that prints something else than what it should is a gap, never a crash.

docs/reliability.md row 14. An `nft` that printed text where JSON was expected (another
version, a wrapper script, a planted binary) raised ValueError out of the snapshot.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Collects netfilter in a fresh network namespace with the fake tools first in PATH.
_COLLECT = """
import json, sys
from pathlib import Path
from podpath.collectors.commands import CommandRunner
from podpath.collectors.netfilter import collect_netfilter
runner = CommandRunner(bin_dirs=(Path(sys.argv[1]), Path("/usr/sbin"), Path("/usr/bin")))
result = collect_netfilter(runner)
print(json.dumps([[g.subject, g.reason, g.kind] for g in result.gaps]))
"""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_nft_printing_garbage_is_a_gap(tmp_path: Path) -> None:
    """`nft -j list ...` answering with plain text gives an error gap and the rest still runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    nft = bin_dir / "nft"
    nft.write_text("#!/bin/sh\necho 'table ip filter { }'\n")
    nft.chmod(0o755)
    done = subprocess.run(
        ["unshare", "-n", "--", sys.executable, "-c", _COLLECT, str(bin_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    gaps = json.loads(done.stdout)
    assert [g for g in gaps if g[0].startswith("nft -j") and "unexpected output" in g[1]], gaps
