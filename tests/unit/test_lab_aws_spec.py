"""What `lab up --cni aws-vpc` accepts per IP family, and the IPv6 mode's conflist."""

from __future__ import annotations

import pytest

from podpath.lab import awsvpc
from podpath.lab.cni_plugin import egress_chain, secondary_eni
from podpath.lab.records import LabError, LabSpec


def test_aws_vpc_builds_ipv4_and_ipv6_and_refuses_dual_stack_pods() -> None:
    """The VPC CNI runs an IPv4 or an IPv6 cluster; `dual` is refused saying so."""
    LabSpec("x", cni="aws-vpc").validate()
    LabSpec("x", cni="aws-vpc", ip_family="ipv6").validate()
    with pytest.raises(LabError, match=r"no dual-stack pods.*--ip-family ipv4 or ipv6"):
        LabSpec("x", cni="aws-vpc", ip_family="dual").validate()


def test_ipv6_conflist_chains_egress_cni_after_aws_cni() -> None:
    """IPv6 mode: aws-cni over the node's /80 prefix, then egress-cni (its own host-local range
    and dataDir, SNAT to the node's IPv4), then portmap; IPv4 mode has no egress-cni."""
    conf = awsvpc.conflist(2, (6,), "172.18.0.3")
    aws, egress, portmap = conf["plugins"]
    assert aws["type"] == "aws-cni"
    (rng,) = aws["ipam"]["ranges"][0]
    assert rng["subnet"] == awsvpc.pod_prefix6(2) == "fd00:172:18:0:2::/80"
    assert egress["type"] == "egress-cni" and egress["nodeIP"] == "172.18.0.3"
    assert egress["ipam"]["ranges"] == [[{"subnet": "169.254.172.0/22"}]]
    assert egress["ipam"]["dataDir"] == "/run/cni/v6pd/egress-v4-ipam"
    assert portmap["type"] == "portmap"
    assert [p["type"] for p in awsvpc.conflist(2)["plugins"]] == ["aws-cni", "portmap"]


def test_egress_chain_and_eni_choice() -> None:
    """CNI-E4- + sha512 hex, 28 characters (iptables' limit); IPv6 pods are the primary ENI's."""
    chain = egress_chain("aws-cni", "abc")
    assert chain.startswith("CNI-E4-") and len(chain) == 28
    assert chain != egress_chain("aws-cni", "abd")
    assert not secondary_eni("fd00:172:18:0:1::3")
    assert secondary_eni("172.18.16.3") and not secondary_eni("172.18.16.4")


@pytest.mark.parametrize(
    ("cni", "overlay", "said"),
    [
        ("bridge", "vxlan", "vxlan"),
        ("calico", "host-gw", "host-gw"),
        ("ptp", "vxlan", "routes"),
        ("aws-vpc", "vxlan", "vpc"),
    ],
)
def test_lab_says_how_pods_cross_nodes_not_an_overlay_it_ignores(
    cni: str, overlay: str, said: str
) -> None:
    """`lab up` and `lab status` named --overlay's default (vxlan) for ptp and aws-vpc,
    which route across nodes without one."""
    assert LabSpec("x", cni=cni, overlay=overlay).crossing == said
