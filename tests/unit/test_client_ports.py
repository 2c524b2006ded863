"""A client's unknown source port comes from its ip_local_port_range: a port match is
decided when that whole range is in the rule's ports or out of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from podpath.collectors.netlink.netconf_sysctls import read_port_range
from podpath.netfilter.iptables_save import parse_rule
from podpath.trace.matches import MatchEnv, evaluate_rule, range_in
from podpath.trace.model import Packet

DEFAULT = (32768, 60999)  # every new network namespace's (inet_init_net)
# kube-router's INPUT rule for node ports, met by every answer to the node itself.
NODE_PORTS = (
    '-A KUBE-ROUTER-INPUT -p tcp -m comment --comment "allow LOCAL TCP traffic to node ports"'
    " -m addrtype --dst-type LOCAL -m multiport --dports 30000:32767 -j RETURN"
)
REQUEST = Packet("10.244.0.5", "10.96.0.10", "tcp", None, 80)
ANSWER = Packet(
    "10.96.0.10", "10.244.0.5", "tcp", 80, None, ct_state="ESTABLISHED", direction="reply"
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("30000:32767", False),  # below the range
        ("1024:65535", True),  # the whole range
        ("32768:40000,40001:60999", True),  # in two parts, no gap
        ("32768:40000,40002:60999", None),  # a gap: some ports
        ("30000:40000", None),  # some
        ("80,443", False),
        ("http", None),  # a name: not known here
    ],
)
def test_range_in(spec: str, expected: bool | None) -> None:
    assert range_in(spec, *DEFAULT) is expected


def _matched(line: str, packet: Packet, ports: tuple[int, ...]) -> tuple[bool, bool]:
    rule = parse_rule("filter", line.split()[1], 1, line)
    local = frozenset({"10.244.0.5", "10.96.0.10"})
    got = evaluate_rule(rule, packet, MatchEnv(local, client_ports=ports))
    return got.matched, bool(got.unknown)


def test_the_answers_unknown_port_is_the_clients() -> None:
    """The answer's destination port is the client's: out of 30000:32767 in 32768-60999
    (decided: no match); unknown where the range was not read."""
    assert _matched(NODE_PORTS, ANSWER, DEFAULT) == (False, False)
    assert _matched(NODE_PORTS, ANSWER, ()) == (False, True)
    assert _matched(NODE_PORTS, ANSWER, (30500, 30600)) == (True, False)


def test_only_the_clients_own_port_comes_from_its_range() -> None:
    """The first packet's source port is the client's; its unknown destination port (a
    probe without one) is not, and stays unknown."""
    sports = "-A INPUT -p tcp -m tcp --sport 1024:65535 -j ACCEPT"
    assert _matched(sports, REQUEST, DEFAULT) == (True, False)
    dports = "-A INPUT -p tcp -m tcp --dport 1024:65535 -j ACCEPT"
    assert _matched(dports, Packet("10.244.0.5", "10.96.0.10", "tcp"), DEFAULT) == (False, True)
    # The answer's source port is the server's, known here.
    assert _matched("-A INPUT -p tcp -m tcp --sport 80 -j ACCEPT", ANSWER, DEFAULT) == (True, False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"32768\t60999\n", (32768, 60999)),
        (b"40000 40100\n", (40000, 40100)),
        (b"60999 32768\n", ()),  # out of order
        (b"1 70000\n", ()),  # past the last port
        (b"garbage\n", ()),
        (b"", ()),
    ],
)
def test_read_port_range(tmp_path: Path, text: bytes, expected: tuple[int, ...]) -> None:
    path = tmp_path / "ip_local_port_range"
    path.write_bytes(text)
    assert read_port_range(str(path)) == expected
    assert read_port_range(str(tmp_path / "missing")) == ()


# nftables: the same decision for a port, a range or an anonymous set of them (nft -j).
def _nft(field: str, right: object, op: str = "==") -> dict[str, object]:
    return {"left": {"payload": {"protocol": "tcp", "field": field}}, "right": right, "op": op}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_nft("dport", {"range": [30000, 32767]}), False),  # kube-router's, in nft
        (_nft("dport", {"range": [30000, 32767]}, "!="), True),
        (_nft("dport", {"set": [22, {"range": [1024, 65535]}]}), True),
        (_nft("dport", {"set": [22, 80]}), False),
        (_nft("dport", {"range": [40000, 65535]}), None),  # some of the range
        (_nft("dport", "@nodeports"), None),  # a named set: left to the lookup
        (_nft("sport", 80), None),  # the answer's source port is the server's, known
    ],
)
def test_nft_the_answers_unknown_port_is_the_clients(
    body: dict[str, object], expected: object
) -> None:
    from podpath.trace.nft import _client_port_match

    assert _client_port_match(body, ANSWER, DEFAULT) is expected
    assert _client_port_match(body, ANSWER, ()) is None


def test_nft_a_packet_without_ports_is_not_decided() -> None:
    """`th dport` of an ICMP packet reads other header bytes: not the client's port."""
    from podpath.trace.nft import _client_port_match

    ping = Packet("10.96.0.10", "10.244.0.5", "icmp", direction="reply")
    body = {"left": {"payload": {"protocol": "th", "field": "dport"}}, "right": 80}
    assert _client_port_match(body, ping, DEFAULT) is None
