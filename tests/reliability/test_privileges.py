"""Privilege loss: read everything the privileges allow, and name what is missing.

docs/reliability.md row 10. As `nobody`, podpath tried to setns into the namespace it
was already in, which needs CAP_SYS_ADMIN, and showed its own links and routes as
empty although `ip link` works unprivileged. Runs inside a lab node, as nobody and as
root with an empty capability bounding set.
"""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from podpath.lab import Lab

pytestmark = pytest.mark.lab

NODE = "node1"
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
NO_CAPS = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--"]


def _podpath(lab: Lab, prefix: list[str], *args: str) -> tuple[str, str]:
    out = lab.exec(NODE, [*prefix, sys.executable, "-m", "podpath", *args], check=False)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return out.stdout, out.stderr


@pytest.mark.parametrize("prefix", [NOBODY, NO_CAPS], ids=["nobody", "no-capabilities"])
def test_own_links_and_routes_are_read_as_ip_reads_them(shared_lab: Lab, prefix: list[str]) -> None:
    """Without privileges, the links and routes of podpath's own netns equal `ip -j` run alike."""
    stdout, _ = _podpath(shared_lab, prefix, "ls", "links", "--json")
    links = json.loads(stdout)["links"]
    ip = json.loads(shared_lab.exec(NODE, [*prefix, "ip", "-j", "link"]).stdout)
    assert {(link["ifindex"], link["name"], link["mtu"]) for link in links} == {
        (link["ifindex"], link["ifname"], link["mtu"]) for link in ip
    }
    stdout, _ = _podpath(shared_lab, prefix, "ls", "routes", "--json")
    routes = json.loads(stdout)["routes"]
    main = json.loads(shared_lab.exec(NODE, [*prefix, "ip", "-j", "route"]).stdout)
    assert len(main) > 0
    ours = {r["dst"] for r in routes if r["table"] == 254 and r["family"] == 4}
    assert {r["dst"] if r["dst"] != "default" else "0.0.0.0/0" for r in main} <= ours


def _gaps(stderr: str) -> list[str]:
    return [line.strip() for line in stderr.splitlines() if line.startswith("  ")]


@pytest.mark.parametrize("prefix", [NOBODY, NO_CAPS], ids=["nobody", "no-capabilities"])
def test_every_missing_privilege_is_named(shared_lab: Lab, prefix: list[str]) -> None:
    """Each part that could not be read is a gap naming its capability, once; none looks complete."""
    stdout, stderr = _podpath(shared_lab, prefix, "snapshot", "-o", "-")
    snapshot: dict[str, Any] = json.loads(stdout)
    gaps = snapshot["gaps"]
    permission = [g for g in gaps if g["kind"] == "permission"]
    assert permission, gaps
    assert [g for g in permission if not g["capability"]] == []
    # Every pod's network namespace is read or has a gap saying why not.
    read = {path for ns in snapshot["netns"] for path in ns["paths"]}
    for pod in shared_lab.pods_on(NODE):
        if pod.netns_path not in read:
            assert any(pod.netns_path in g["subject"] for g in gaps), pod.netns_path
    # Netfilter and conntrack need CAP_NET_ADMIN, and say so rather than show nothing.
    assert snapshot["iptables"] == [] and snapshot["conntrack"] is None
    admin = {g["subject"].split()[0] for g in permission if g["capability"] == "CAP_NET_ADMIN"}
    assert {"iptables-nft-save", "conntrack"} <= admin
    # On stderr, each gap line names its capability once.
    lines = _gaps(stderr)
    assert lines
    for line in lines:
        assert len(re.findall(r"\(needs CAP_[A-Z_]+\)", line)) <= 1, line
        # A refusal is said as one: "permission denied", never a bare "permission".
        assert not re.search(r": permission(?! denied)", line), line
    # The node's containerd socket refuses nobody (EACCES): said as such, not "no answer".
    if prefix is NOBODY:
        cri = [g for g in gaps if g["subject"].startswith("CRI socket")]
        assert cri, gaps
        for gap in cri:
            assert (gap["kind"], gap["capability"]) == ("permission", "CAP_DAC_OVERRIDE"), gap
            assert gap["reason"].startswith("permission denied"), gap
