"""Build a lab, send real traffic, record the bundled demo snapshots, redraw every picture.

The lab name is fixed so pod names (derived from it) are stable between recordings.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from podpath.cli.lab import record_lab
from podpath.lab import LabSpec, running_lab

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "src" / "podpath" / "data" / "demo-snapshot.json"
SPEC = LabSpec("podpath-demo", nodes=2, pods=3, services=4, overlay="vxlan")


def main() -> int:
    """Record, copy, redraw."""
    with running_lab(SPEC) as lab, tempfile.TemporaryDirectory() as tmp:
        web = lab.service("default/web")[0]
        dns = lab.service("kube-system/kube-dns")[0]
        for pod in lab.pods:
            # Real connections so conntrack holds DNAT'd entries, as on a busy node.
            lab.probe(pod.ref, web.cluster_ip, web.port)
            lab.probe(pod.ref, dns.cluster_ip, dns.port, proto="udp")
        written = record_lab(lab, tmp)
        shutil.copyfile(Path(tmp) / "node1.json", DEMO)
        shutil.copyfile(Path(tmp) / "node2.json", DEMO.with_name("demo-snapshot-node2.json"))
        print("recorded", ", ".join(written), "->", DEMO)
    subprocess.run(
        # Without --snapshot, `screenshot` shows the bundled demo, titled as such.
        [sys.executable, "-m", "podpath", "screenshot", "--all", "-o", str(REPO / "screenshots")],
        check=True,
    )
    # The map, a trace drawn on it, and the tour's recording with its animation.
    subprocess.run(
        [sys.executable, str(REPO / "screenshots" / "draw_pictures.py"), "--tour"], check=True
    )
    print("screenshots redrawn in", REPO / "screenshots", "- look at each before committing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
