"""What rules other than kube-proxy's name: addresses, networks, address ranges and ports.

The doctor traces one pod of each network position and follows a Service's endpoints
that behave alike once (`podpath.doctor.classes`, `podpath.doctor.sweep`). A rule that
names an address, a network or a range (a NetworkPolicy's ipBlock or ipset, a host
firewall line, `-m iprange`, an nft set of prefixes) can treat what it covers apart
from the rest: a pod or an endpoint inside it must not stand for one outside it. An
address's *tags* say what names it: the address itself when a rule names it, and each
named network or range that holds it. Two addresses with the same tags are alike to
every such rule; a network that holds every pod (the pod CIDR) sets none apart.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from podpath.analysis.index import SnapshotIndex
from podpath.netfilter.ipvs import parse_ipvs_conn
from podpath.netfilter.owners import kube_managed_chain
from podpath.trace.routing import address

_V4 = r"\d{1,3}(?:\.\d{1,3}){3}"
_V6 = r"[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}"
# An address as rules and ipsets write one, with a prefix length (10.244.1.0/25), a
# netmask that is no prefix (iptables-save's 10.0.0.0/255.0.255.0, ip6tables-save's
# fd00::/ffff:0:ffff::) or as the start of a range (10.244.1.1-10.244.1.9). The
# look-arounds keep 10.244.0.3 from matching inside 10.244.0.35 or 110.244.0.3, and `:80`
# of `10.0.0.1:80` out of an IPv6 reading; as podpath.analysis.mentions reads them.
_NAMED = re.compile(
    rf"(?<![\w.:])({_V4}|{_V6})(?:/(\d{{1,3}})(?![\d.])|/({_V4}|{_V6})|-({_V4}|{_V6}))?"
    r"(?![\w.]|:[0-9a-fA-F]*:)"
)
# A port value as iptables and nft write one: `--dport 80`, `--dport 8000:9000`,
# `--dports 22,443,8000:9000` (multiport), `dport 8000-9000`, `dport { 22, 443 }`; and an
# ipset member's `,tcp:80`.
# nft also writes `dport != 80` and `dport vmap { 81 : drop }` (every number of a set or
# map read, an address's octets too: a port named in excess only costs a trace);
# conntrack's `--ctorigdstport 80` names the port a packet had before DNAT.
_PORTS = re.compile(
    r"(?:dports?|sports?|ports|ct(?:orig|repl)(?:src|dst)port)\s+(?:!=\s*)?(?:v?map\s+)?"
    r"(\{[^}]*\}|[\d:,-]+)"
    r"|,(?:tcp|udp|sctp):([\d-]+)"
)
_PORT_ITEM = re.compile(r"(\d+)(?:[:-](\d+))?")
# kube-proxy's nftables table: like its iptables chains (podpath.netfilter.owners
# `kube_managed_chain`), it names endpoints the same way for every pod, and the trace of
# a Service covers it; any other rule naming a pod sets it apart (kube-router's
# KUBE-ROUTER-*, KUBE-POD-FW-* and KUBE-NWPLCY-* chains too).
_KUBE_NFT_TABLES = frozenset({"kube-proxy"})
# `-m set --match-set NAME dir`: the ipsets other rules use (kube-proxy's IPVS-mode sets,
# KUBE-CLUSTER-IP and the like, name every VIP and endpoint, and only its rules use them).
_MATCH_SET = re.compile(r"--match-set\s+(\S+)")
# An ipset interface name or nft word: what is left of a word without quotes, braces and
# the commas of a set (`{ "veth0002", "cali*" }`).
_WORD = re.compile(r'[^\s,{}"]+')
_ALL_ONES = {4: 2**32 - 1, 6: 2**128 - 1}


@dataclass(frozen=True)
class _Range:
    family: int
    low: int
    high: int
    text: str


@dataclass
class NamedInRules:
    """The addresses, networks, ranges and ports that a node's other rules name."""

    addresses: frozenset[str]  # as ipaddress writes them (IPv6 compressed)
    ports: tuple[tuple[int, int], ...]  # each port or range named, as (first, last)
    words: frozenset[str]  # every word of the rules, unquoted (interface names among them)
    # The beginnings of interface names a wildcard names (`-i cali+`, `iifname "veth*"`).
    interface_prefixes: tuple[str, ...] = ()
    # (family, netmask) -> network address (masked) -> its text: a prefix is a netmask.
    networks: dict[tuple[int, int], dict[int, str]] = field(default_factory=dict)
    ranges: tuple[_Range, ...] = ()
    # How every IPv4 address a network or range holds begins (its first one to three
    # fixed octets, "10.244.0."; "" when it fixes none): an address that begins otherwise
    # needs no number (10k Service VIPs). A set: a 50k-prefix ipset is 50k starts.
    v4_starts: frozenset[str] = frozenset()
    _tags: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    _port_tags: dict[int | None, tuple[tuple[int, int], ...]] = field(
        default_factory=dict, repr=False
    )

    def port_tags(self, port: int | None) -> tuple[tuple[int, int], ...]:
        """The named ports and port ranges that hold this port (() when none does)."""
        found = self._port_tags.get(port)
        if found is None:
            found = self._port_tags[port] = tuple(
                [r for r in self.ports if port is not None and r[0] <= port <= r[1]]
            )
        return found

    def tags(self, address: str) -> tuple[str, ...]:
        """What names this address: itself when named, then each named network (by
        netmask) and range that holds it; () when nothing does."""
        found = self._tags.get(address)
        if found is None:
            found = self._tags[address] = self._read_tags(address)
        return found

    def _may_hold(self, address: str) -> bool:
        """Whether a named network or range may hold this IPv4 address: one begins as it
        does (three set lookups, whatever the number of networks)."""
        starts = self.v4_starts
        if "" in starts:
            return True
        a, b, c, _ = [*address.split(".", 3), "", "", ""][:4]
        first = f"{a}."
        return first in starts or f"{first}{b}." in starts or f"{first}{b}.{c}." in starts

    def _read_tags(self, address: str) -> tuple[str, ...]:
        own = [address] if address in self.addresses else []
        if ":" not in address and not self._may_hold(address):
            return tuple(own)
        if not self.networks and not self.ranges:
            return tuple(own)
        number = _number(address)
        if number is None:
            return tuple(own)
        family, value = number
        for (net_family, mask), numbers in self.networks.items():
            if net_family == family:
                text = numbers.get(value & mask)
                if text is not None:
                    own.append(text)
        own.extend(r.text for r in self.ranges if r.family == family and r.low <= value <= r.high)
        return tuple(own)


def named_in_rules(index: SnapshotIndex) -> NamedInRules:
    """Everything a node's rules other than kube-proxy's name: netfilter's rules and
    sets, its ipsets' members, the clients xt_recent and IPVS persistence pin, and the
    root namespace's policy routing rules (networks and ports)."""
    reader = _Reader()
    used: set[str] = set()
    for text in other_rule_texts(index):
        reader.read(text)
        reader.read_ports(text)
        reader.words.update(_WORD.findall(text))
        used.update(_MATCH_SET.findall(text))
    for port_set in _nft_port_sets(index):
        reader.read_ports(f"dports {{ {port_set} }}")
    if index.snapshot.ipsets is not None:
        _read_ipsets(reader, index.snapshot.ipsets.text, used)
    for client in _pinned_clients(index):
        reader.read(client)
    root = index.root_netns
    for rule in root.rules if root is not None else ():
        # A rule naming a pod's own address (`from 10.244.0.5/32`, AWS VPC CNI's) is in
        # that pod's class key already (podpath.doctor.classes, with its address left
        # out: one class for every such pod); a network or a port range sets apart what
        # it holds.
        for prefix in (rule.src, rule.dst):
            if prefix is not None and not _is_host(prefix):
                reader.read_network(prefix)
        for ports in (rule.sport, rule.dport):
            if len(ports) == 2:
                reader.ports.setdefault((ports[0], ports[1]), None)
    return reader.done()


def _read_ipsets(reader: _Reader, text: str, used: set[str]) -> None:
    """The members of the ipsets other rules use (`ipset save` text): their addresses,
    networks and ranges, their ports (`10.0.0.1,tcp:80`; a bitmap:port set's `443`)."""
    ports_only: set[str] = set()
    for line in text.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 3 or parts[1] not in used:
            continue
        if parts[0] == "create" and parts[2].startswith("bitmap:port"):
            ports_only.add(parts[1])
        elif parts[0] == "add":
            member = parts[2]
            if parts[1] in ports_only:
                reader.read_ports(f"dports {member}")
            else:
                reader.read(member)
                reader.read_ports(member)


def _is_host(prefix: str) -> bool:
    """`10.244.0.5/32`, `fd00::5/128` or a bare address: one host, not a network (a
    length that is no number, from a damaged snapshot, names nothing either)."""
    address, _, length = prefix.partition("/")
    return not length.isdigit() or int(length) == (128 if ":" in address else 32)


def other_rule_texts(index: SnapshotIndex) -> Iterable[str]:
    """Every rule line that is not in a kube-proxy or kubelet chain or table."""
    for _dump, ruleset in index.rulesets:
        for table in ruleset.tables:
            for chain in ruleset.chain_names(table):
                if not kube_managed_chain(chain):
                    yield from ruleset.lines_of(table, chain)
    nft = index.nft_ruleset
    if nft is not None:
        for rule in nft.rules:
            if rule.table not in _KUBE_NFT_TABLES:
                yield rule.text
        for s in nft.sets:
            # kube-proxy's own sets name endpoints alike for every pod, except its
            # affinity sets, which pin clients (pods) to endpoints.
            if s.table not in _KUBE_NFT_TABLES or s.name.startswith("affinity-"):
                for element in s.elements:
                    # A map's values name addresses too (`dnat to ip daddr map @m`).
                    yield " ".join((*element.key, element.value or ""))


def _nft_port_sets(index: SnapshotIndex) -> Iterable[str]:
    """The ports of the named sets and maps of tables other than kube-proxy's, as a list
    (`tcp dport @blocked` names its set's elements: their column of type inet_service;
    a map's values, the same way)."""
    nft = index.nft_ruleset
    for s in nft.sets if nft is not None else ():
        if s.table in _KUBE_NFT_TABLES:
            continue
        columns = [i for i, kind in enumerate(s.type) if kind == "inet_service"]
        if columns:
            yield ", ".join(e.key[i] for e in s.elements for i in columns if i < len(e.key))
        # A map's values: `ipv4_addr . inet_service` (a DNAT map's address and port).
        values = [
            i for i, kind in enumerate((s.map_type or "").split(" . ")) if kind == "inet_service"
        ]
        if values:
            parts = [(e.value or "").split(" . ") for e in s.elements]
            yield ", ".join(p[i] for p in parts for i in values if i < len(p))


def _pinned_clients(index: SnapshotIndex) -> Iterable[str]:
    """The clients the kernel pins to one endpoint: xt_recent lists and IPVS persistence
    templates (nftables' affinity sets are read with the other sets)."""
    for recent in index.snapshot.xt_recent or ():
        for entry in recent.entries:
            yield entry.address
    ipvs = index.snapshot.ipvs
    if ipvs is not None and ipvs.ip_vs_conn:
        for conn in parse_ipvs_conn(ipvs.ip_vs_conn):
            if conn.template:
                yield conn.client


class _Reader:
    """Collects what texts name, each distinct piece read once."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str, str, str]] = set()
        self.addresses: set[str] = set()
        self.ports: dict[tuple[int, int], None] = {}  # in the order first named
        self.words: set[str] = set()
        self.networks: dict[tuple[int, int], dict[int, str]] = {}
        self.ranges: dict[tuple[int, int, int], str] = {}

    def read(self, text: str) -> None:
        for piece in _NAMED.findall(text):
            if piece not in self.seen:
                self.seen.add(piece)
                self._add(*piece)

    def read_network(self, text: str) -> None:
        """A network given as such (an ip rule's `from 10.244.0.0/30`)."""
        self._add_network(text)

    def read_ports(self, text: str) -> None:
        for listed, member in _PORTS.findall(text):
            for first, last in _PORT_ITEM.findall(listed or member):
                low = int(first)
                self.ports.setdefault((low, max(low, int(last)) if last else low), None)

    def _add(self, start: str, length: str, netmask: str, end: str) -> None:
        first = address(start)
        if first is None:
            return  # e.g. a MAC address, which the IPv6 pattern also matches
        if end:
            self._add_range(first, end)
        elif netmask:
            self._add_masked(first, netmask)
        elif not length:
            self.addresses.add(str(first))
        else:
            self._add_network(f"{start}/{length}")

    def _add_network(self, text: str) -> None:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return  # a prefix longer than the family's
        if net.prefixlen == net.max_prefixlen:
            self.addresses.add(str(net.network_address))
        elif net.prefixlen:  # /0 holds every address: it sets none apart
            self._add_mask(net.version, int(net.netmask), int(net.network_address), str(net))

    def _add_masked(
        self, first: ipaddress.IPv4Address | ipaddress.IPv6Address, netmask: str
    ) -> None:
        """An address under a netmask that may be no prefix (iptables' `-s A/255.0.255.0`,
        ip6tables' `-s A/ffff:0:ffff::`)."""
        parsed = address(netmask)
        if parsed is None or parsed.version != first.version:
            return  # `999.0.0.0` is no netmask: the rule's text names nothing here
        mask = int(parsed)
        if mask == _ALL_ONES[first.version]:
            self.addresses.add(str(first))
        elif mask:
            self._add_mask(first.version, mask, int(first) & mask, f"{first}/{netmask}")

    def _add_mask(self, family: int, mask: int, network: int, text: str) -> None:
        self.networks.setdefault((family, mask), {}).setdefault(network & mask, text)

    def _add_range(self, first: ipaddress.IPv4Address | ipaddress.IPv6Address, end: str) -> None:
        last = address(end)
        if last is None:
            return
        if last.version == first.version and int(last) >= int(first):
            key = (first.version, int(first), int(last))
            self.ranges.setdefault(key, f"{first}-{last}")

    def done(self) -> NamedInRules:
        starts = {
            _v4_start(network, mask)
            for (family, mask), numbers in self.networks.items()
            if family == 4
            for network in numbers
        }
        starts.update(_v4_start(lo, ~(lo ^ hi)) for f, lo, hi in self.ranges if f == 4)
        return NamedInRules(
            frozenset(self.addresses),
            tuple(self.ports),
            frozenset(self.words),
            _interface_prefixes(self.words),
            self.networks,
            tuple(_Range(f, lo, hi, text) for (f, lo, hi), text in self.ranges.items()),
            frozenset(starts),
        )


def _interface_prefixes(words: Iterable[str]) -> tuple[str, ...]:
    """The interface wildcards among rule words: iptables' `cali+`, nft's `veth*`."""
    found = set()
    for word in words:
        if len(word) > 1 and word[-1] in "+*" and word[:-1].replace("-", "").isalnum():
            found.add(word[:-1])
    return tuple(sorted(found))


def _v4_start(network: int, mask: int) -> str:
    """The text every IPv4 address under this mask begins with: the first one to three
    octets the mask fixes whole, each with its dot ("" when it fixes none; a single
    address's range fixes four, and gives three, as `_may_hold` asks no more)."""
    octets = network.to_bytes(4, "big")
    fixed = 0
    while fixed < 3 and (mask >> (24 - 8 * fixed)) & 0xFF == 0xFF:
        fixed += 1
    return "".join(f"{octet}." for octet in octets[:fixed])


def _number(address: str) -> tuple[int, int] | None:
    """(family, the address as a number), None when it is no address."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        packed = socket.inet_pton(family, address)
    except OSError:
        return None
    return (6 if family == socket.AF_INET6 else 4), int.from_bytes(packed, "big")
