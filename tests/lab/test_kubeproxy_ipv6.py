"""The lab's kube-proxy rules for IPv6 Services: what ip6tables-restore accepts and ip6tables-save prints."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from podpath.lab.kubeproxy import join_host_port, restore_input, service_chains
from podpath.lab.records import ServiceRecord


def _svc6() -> ServiceRecord:
    vip, endpoints = "fd00:10:96::64", (("fd00:10:244::5", 80), ("fd00:10:244:1::7", 80))
    draft = ServiceRecord("default", "web", "http", "TCP", vip, 80, None, endpoints, "", ())
    svc, seps = service_chains(draft)
    return ServiceRecord(**{**draft.__dict__, "svc_chain": svc, "sep_chains": seps})


def test_endpoints_are_joined_like_net_join_host_port() -> None:
    """IPv6 endpoints are bracketed in comments, DNAT targets and the SEP hash input."""
    assert join_host_port("fd00::1", 80) == "[fd00::1]:80"
    assert join_host_port("10.0.0.1", 80) == "10.0.0.1:80"
    text = restore_input([_svc6()], family=6)
    assert "--to-destination [fd00:10:244::5]:80" in text
    assert "! -s fd00:10:244::/56 -j KUBE-MARK-MASQ" in text
    assert "127.0.0.0/8" not in text


def test_ip6tables_restore_accepts_the_ipv6_rules() -> None:
    """ip6tables-restore loads the rendering in a throw-away netns; ip6tables-save shows the DNAT."""
    if os.geteuid() != 0 or shutil.which("ip6tables-restore") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("needs root and ip6tables-restore")
        pytest.skip("needs root and ip6tables-restore")
    script = "ip6tables-restore --noflush && ip6tables-save -t nat"
    done = subprocess.run(
        ["unshare", "--net", "--", "sh", "-c", script],
        input=restore_input([_svc6()], family=6),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "-j DNAT --to-destination [fd00:10:244:1::7]:80" in done.stdout
    assert "-d fd00:10:96::64/128" in done.stdout
