"""ipsets as `ipset save` and `ipset list` print them, and set membership for `-m set`.

`ipset save` writes `create NAME TYPE OPTIONS` then `add NAME MEMBER [comment "..."]`;
`ipset list` writes `Name:`/`Type:`/... headers and a `Members:` block. A member is
the set type's dimensions joined by commas: `10.96.0.10,udp:53` in kube-proxy's
KUBE-CLUSTER-IP (hash:ip,port), `10.244.0.5,tcp:80,10.244.0.5` in KUBE-LOOP-BACK
(hash:ip,port,ip), `30080` in bitmap:port sets, `10.0.0.0/8` in hash:net.
`-m set --match-set NAME dst,dst` compares each dimension with the packet field its
flag names (iptables-extensions(8), the set match).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_COMMENT = re.compile(r'\s+comment\s+"(?:[^"\\]|\\.)*"')
_OPTIONS_AFTER_MEMBER = re.compile(r"\s+(?:timeout|packets|bytes|skbmark|skbprio|nomatch)\b.*$")


@dataclass(frozen=True)
class IpSet:
    """One ipset: its type (`hash:ip,port`) and members, verbatim without comments."""

    name: str
    type: str
    members: tuple[str, ...] = ()

    @property
    def dimensions(self) -> tuple[str, ...]:
        """`("ip", "port")` of hash:ip,port."""
        return tuple(self.type.partition(":")[2].split(","))


def parse_ipsets(text: str) -> dict[str, IpSet]:
    """Sets by name from `ipset save` or `ipset list` output."""
    if re.search(r"^Name: ", text, re.M):
        return _parse_list(text)
    sets: dict[str, IpSet] = {}
    members: dict[str, list[str]] = {}
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 3 and parts[0] == "create":
            sets[parts[1]] = IpSet(parts[1], parts[2].split()[0])
            members.setdefault(parts[1], [])
        elif len(parts) >= 3 and parts[0] == "add":
            members.setdefault(parts[1], []).append(_member(parts[2]))
    return {name: IpSet(name, s.type, tuple(members.get(name, ()))) for name, s in sets.items()}


def _parse_list(text: str) -> dict[str, IpSet]:
    out: dict[str, IpSet] = {}
    name = kind = ""
    members: list[str] = []
    in_members = False
    for line in [*text.splitlines(), "Name: "]:
        if line.startswith("Name: "):
            if name:
                out[name] = IpSet(name, kind, tuple(members))
            name, kind, members, in_members = line[6:].strip(), "", [], False
        elif line.startswith("Type: "):
            kind = line[6:].strip()
        elif line.startswith("Members:"):
            in_members = True
        elif in_members and line.strip():
            members.append(_member(line))
    return out


def _member(text: str) -> str:
    text = _COMMENT.sub("", text)
    return _OPTIONS_AFTER_MEMBER.sub("", text).strip()


def member_matches(ipset: IpSet, values: tuple[str | int | None, ...]) -> bool | None:
    """Whether the packet's values (one per flag of --match-set) are in the set.

    None when a value is unknown or the set type is not modelled.
    """
    dims = ipset.dimensions
    if not dims or any(v is None for v in values):
        return None
    want = list(values[: len(dims)])
    if len(want) < len(dims):
        return None
    for member in ipset.members:
        parts = member.split(",")
        if len(parts) != len(dims):
            continue
        verdict = _member_is(dims, parts, want)
        if verdict is None:
            return None
        if verdict:
            return True
    return False


def _member_is(
    dims: tuple[str, ...], parts: list[str], want: list[str | int | None]
) -> bool | None:
    for dim, part, value in zip(dims, parts, want, strict=True):
        if dim in ("ip", "net"):
            if not _in_network(str(value), part):
                return False
        elif dim == "port":
            proto, _, port = part.rpartition(":")
            got_proto, _, got_port = str(value).rpartition(":")
            if proto and got_proto and proto != got_proto:
                return False
            lo, _, hi = port.partition("-")
            if not lo.isdigit() or not got_port.isdigit():
                return None
            if not int(lo) <= int(got_port) <= int(hi or lo):
                return False
        else:
            return None  # mac, iface, mark: not modelled
    return True


def _in_network(address: str, member: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(member, strict=False)
    except ValueError:
        lo, sep, hi = member.partition("-")
        if not sep:
            return False
        try:
            a, low, high = (ipaddress.ip_address(x) for x in (address, lo, hi))
        except ValueError:
            return False
        return low.version == a.version == high.version and int(low) <= int(a) <= int(high)
