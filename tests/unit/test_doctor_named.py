"""What other rules name: addresses, networks, ranges, read from rule and ipset text."""

from __future__ import annotations

import ipaddress

from hypothesis import example, given
from hypothesis import strategies as st

from podpath.doctor.named import _WORD, NamedInRules, _interface_prefixes, _read_ipsets, _Reader

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _read(*texts: str) -> NamedInRules:
    reader = _Reader()
    for text in texts:
        reader.read(text)
    return reader.done()


def test_an_address_a_network_and_a_range_in_iptables_words() -> None:
    named = _read(
        "-A FORWARD -d 10.244.1.6/32 -j DROP",
        "-A FORWARD -s 10.244.2.0/25 -j REJECT",
        "-A INPUT -m iprange --src-range 10.244.3.10-10.244.3.20 -j DROP",
        "-A CNI-DN-1 -p tcp -j DNAT --to-destination 10.244.4.2:80",
    )
    assert named.addresses == {"10.244.1.6", "10.244.4.2"}
    assert named.tags("10.244.1.6") == ("10.244.1.6",)
    assert named.tags("10.244.2.127") == ("10.244.2.0/25",)
    assert named.tags("10.244.2.128") == ()
    assert named.tags("10.244.3.20") == ("10.244.3.10-10.244.3.20",)
    assert named.tags("10.244.3.21") == ()
    assert named.tags("10.244.4.2") == ("10.244.4.2",)


def test_ipv6_in_nft_words_and_what_is_no_address() -> None:
    named = _read(
        "ip6 daddr fd00:10:244:1::/64 drop",
        "ip6 saddr fd00:10:244:2::5 accept",
        "ether saddr 02:42:ac:11:00:02 accept",  # a MAC, which the IPv6 pattern also reads
        "ip daddr 0.0.0.0/0 accept",  # holds every address: sets none apart
        "ip daddr 110.244.0.35 accept",
    )
    assert named.tags("fd00:10:244:1::9") == ("fd00:10:244:1::/64",)
    assert named.tags("fd00:10:244:2::5") == ("fd00:10:244:2::5",)
    assert named.tags("fd00:10:244:3::5") == ()
    assert named.tags("10.244.0.3") == ()  # not inside 110.244.0.35, nor under 0.0.0.0/0
    assert "02:42:ac:11:00:02" not in named.addresses


def test_ports_lists_and_ranges_in_iptables_nft_and_ipset_words() -> None:
    """Every port of a multiport list, every range (iptables' `:`, nft's `-`), nft's
    anonymous sets and an ipset member's port are named, not only the first number."""
    reader = _Reader()
    for text in (
        "-A INPUT -p tcp -m multiport --dports 22,443,8000:9000 -j DROP",
        "-A INPUT -p udp -m udp ! --dport 53 -j REJECT",
        "tcp dport { 2379, 6443 } drop",
        "th sport 30000-32767 accept",
        "add KUBE-ROUTER-SVC 10.96.0.10,tcp:9153",
        "-A FORWARD -m conntrack --ctorigdstport 10250 -j DROP",
    ):
        reader.read_ports(text)
    named = reader.done()
    assert named.port_tags(443) == ((443, 443),)
    assert named.port_tags(8080) == ((8000, 9000),)
    assert named.port_tags(6443) == ((6443, 6443),)
    assert named.port_tags(31000) == ((30000, 32767),)
    assert named.port_tags(9153) == ((9153, 9153),)
    assert named.port_tags(53) == ((53, 53),)
    assert named.port_tags(10250) == ((10250, 10250),)
    assert named.port_tags(80) == named.port_tags(None) == ()


def test_a_range_of_one_address_names_it() -> None:
    """`--src-range 10.244.0.5-10.244.0.5` (and nft's `ip saddr A-A`) hold one address;
    its text fixes all four octets, and every one of its addresses begins with three."""
    named = _read("-m iprange --src-range 10.244.0.5-10.244.0.5 -j DROP")
    assert named.tags("10.244.0.5") == ("10.244.0.5-10.244.0.5",)
    assert named.tags("10.244.0.6") == ()


def test_only_the_ipsets_other_rules_use_are_read() -> None:
    """kube-proxy's own sets (KUBE-CLUSTER-IP: every VIP and port) are used by its rules
    only; a set a policy rule matches names its members, a bitmap:port set its ports."""
    reader = _Reader()
    text = "\n".join(
        [
            "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536",
            "add KUBE-CLUSTER-IP 10.96.0.10,tcp:53",
            "create allowed hash:net family inet hashsize 1024 maxelem 65536",
            "add allowed 10.244.1.0/25",
            "create blocked bitmap:port range 0-65535",
            "add blocked 8443",
        ]
    )
    _read_ipsets(reader, text, {"allowed", "blocked"})
    named = reader.done()
    assert named.tags("10.244.1.7") == ("10.244.1.0/25",)
    assert named.tags("10.96.0.10") == () and named.port_tags(53) == ()
    assert named.port_tags(8443) == ((8443, 8443),)


def test_interface_words_and_wildcards_of_nft_sets() -> None:
    """nft writes names quoted and sets with commas: `{ "veth0002", "cali*" }`."""
    words = _WORD.findall('iifname { "veth0002", "cali*", "zzz*" } drop')
    assert {"veth0002", "cali*", "zzz*"} <= set(words)
    assert _interface_prefixes(words) == ("cali", "zzz")
    assert _interface_prefixes(["-i", "cali+", "eth0"]) == ("cali",)


def test_a_host_prefix_is_the_address_and_a_netmask_may_be_no_prefix() -> None:
    """iptables-save writes a host as /32, and a netmask that is no prefix as itself
    (10.0.0.0/255.0.255.0 holds 10.7.0.9, not 10.0.1.9); the mask is no address."""
    named = _read("-s 10.244.0.9/32 -j DROP", "-s 10.0.0.0/255.0.255.0 -j DROP")
    assert named.addresses == {"10.244.0.9"}
    assert named.tags("10.7.0.9") == ("10.0.0.0/255.0.255.0",)
    assert named.tags("10.0.1.9") == ()


def test_an_ipv6_netmask_that_is_no_prefix_holds_what_it_masks() -> None:
    """ip6tables-save writes a netmask that is no prefix as an address too:
    fd00::/ffff:0:ffff:: holds fd00:7:0::9 (its second group free), not fd00:0:1::9. It
    was read as the bare address fd00::, holding nothing."""
    named = _read(
        "-s fd00::/ffff:0:ffff:: -j DROP", "-d fd00::9/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    )
    assert named.tags("fd00:7::9") == ("fd00::/ffff:0:ffff::",)
    assert named.tags("fd00:0:1::9") == ()
    assert named.addresses == {"fd00::9"}


_Case = tuple[list[_Network], list[tuple[_Address, _Address]], list[_Address]]


def test_text_that_is_no_address_names_nothing_and_never_raises() -> None:
    """Rule text from a damaged or hostile snapshot: an octet over 255 in a netmask, a
    range's end or an address, a prefix longer than the family's."""
    named = _read(
        "-s 10.0.0.0/999.0.0.0 -j DROP",
        "-m iprange --src-range 10.0.0.1-10.0.0.999",
        "-d 10.0.0.1/64 -d 300.1.1.1",
    )
    assert not named.networks and not named.ranges and not named.addresses


@st.composite
def _named_and_probes(draw: st.DrawFn) -> _Case:
    """Networks and ranges of one family, and addresses in, at the edges of and around them."""
    bits = draw(st.sampled_from([32, 128]))
    values = st.integers(0, 2**bits - 1)
    address = ipaddress.IPv4Address if bits == 32 else ipaddress.IPv6Address
    pairs = draw(st.lists(st.tuples(values, st.integers(1, bits)), min_size=1, max_size=6))
    nets: list[_Network] = [ipaddress.ip_network((address(v), n), strict=False) for v, n in pairs]
    ends = draw(st.lists(st.tuples(values, values), max_size=3))
    ranges = [(address(min(a, b)), address(max(a, b))) for a, b in ends]
    edges = [int(n.network_address) for n in nets] + [int(n.broadcast_address) for n in nets]
    edges += [int(e) for pair in ranges for e in pair]
    near = [v + d for v in edges for d in (-1, 0, 1) if 0 <= v + d < 2**bits]
    probes = [address(v) for v in draw(st.lists(values, max_size=10)) + near]
    return nets, ranges, probes


@given(_named_and_probes())
@example(([ipaddress.ip_network("192.168.0.0/16")], [(ipaddress.ip_address("10.244.0.5"),) * 2],
          [ipaddress.ip_address("10.244.0.5"), ipaddress.ip_address("10.244.0.6")]))  # fmt: skip
def test_the_tags_are_the_networks_and_ranges_that_hold_the_address(case: _Case) -> None:
    """Against ipaddress, IPv4 and IPv6: an address's tags are exactly the named networks
    and ranges that hold it (and the address itself where it is named as a host)."""
    nets, ranges, probes = case
    named = _read(
        " ".join(f"-d {n}" for n in nets),
        " ".join(f"-m iprange --dst-range {a}-{b}" for a, b in ranges),
    )
    hosts = {str(n.network_address) for n in nets if n.prefixlen == n.max_prefixlen}
    for address in probes:
        want = {str(n) for n in nets if address in n and n.prefixlen < n.max_prefixlen}
        want.update(f"{a}-{b}" for a, b in ranges if int(a) <= int(address) <= int(b))
        if str(address) in hosts:
            want.add(str(address))
        assert set(named.tags(str(address))) == want, address
