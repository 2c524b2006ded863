"""nf_tables over netlink: one socket, the dumps a table listing needs, their attributes.

`nft -j list table` spends its 7-10 s at 10k kube-proxy Services in its own netlink
fetch and decoding; the kernel answers the same dumps in well under a second when they
are asked the right way (docs/performance.md). This module only moves bytes: it sends
nfnetlink requests through the netlink core (`collectors/netlink/nlsocket.py`, which
checks every answer and retries interrupted dumps) and turns attributes into small
typed records. What the expressions mean is delinearize's business.

Constants are the kernel's uapi values (linux/netfilter/nf_tables.h, nfnetlink.h).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from podpath.collectors.netlink.nlsocket import TIMEOUT, NetlinkSocket
from podpath.collectors.netlink.wire import (
    MalformedMessage,
    attribute,
    attribute_list,
    attributes,
    cstr,
    nested,
)

if TYPE_CHECKING:
    from podpath.collectors.netlink.nlsocket import Transport

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
AF_UNSPEC = 0

# Requests; each one's reply is the NFT_MSG_NEW* just below it (GETTABLE 1 -> NEWTABLE 0).
NFT_MSG_GETTABLE = 1
NFT_MSG_GETCHAIN = 4
NFT_MSG_GETRULE = 7
NFT_MSG_GETSET = 10
NFT_MSG_GETSETELEM = 13
NFT_MSG_GETGEN = 16
NFT_MSG_GETOBJ = 19
NFT_MSG_GETFLOWTABLE = 23

# Family keyword of each nfgenmsg.nfgen_family (NFPROTO_*), as nft prints it.
FAMILIES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}
# NF_INET_* hook numbers (linux/netfilter.h; 5, NF_INET_INGRESS, for inet and netdev), as
# nft names them.
HOOKS = ("prerouting", "input", "forward", "output", "postrouting", "ingress")
FAMILY_NUMBERS = {name: num for num, name in FAMILIES.items()}

_BE32 = struct.Struct(">I")
_BE32S = struct.Struct(">i")
_BE64 = struct.Struct(">Q")
_NFGENMSG = struct.Struct("=BBH")  # family, version (NFNETLINK_V0), resource id


# ---------------------------------------------------------------- attributes

# A NUL-terminated attribute string, surrogate-escaped (names are bytes to the kernel).
string = cstr


def be32(value: bytes) -> int:
    """A big-endian u32 attribute."""
    return int(_BE32.unpack(value)[0])


def be32s(value: bytes) -> int:
    """A big-endian s32 attribute (chain priorities, verdict codes)."""
    return int(_BE32S.unpack(value)[0])


def be64(value: bytes) -> int:
    """A big-endian u64 attribute (handles, counters, timeouts)."""
    return int(_BE64.unpack(value)[0])


def strattr(kind: int, value: str) -> bytes:
    """A NUL-terminated string attribute."""
    return attribute(kind, value.encode("utf-8", errors="surrogateescape") + b"\0")


def udata(blob: bytes) -> dict[int, bytes]:
    """libnftnl's user data TLVs (1-byte type, 1-byte length): comments and set hints."""
    out: dict[int, bytes] = {}
    off = 0
    while off + 2 <= len(blob):
        kind, length = blob[off], blob[off + 1]
        if off + 2 + length > len(blob):
            raise MalformedMessage(f"user data entry of {length} bytes at {off} overruns it")
        out[kind] = blob[off + 2 : off + 2 + length]
        off += 2 + length
    return out


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class NlTable:
    """NFT_MSG_NEWTABLE."""

    family: int
    name: str
    handle: int
    flags: int
    userdata: bytes | None


@dataclass(frozen=True)
class NlChain:
    """NFT_MSG_NEWCHAIN: base chains carry hook, priority, policy and type."""

    name: str
    handle: int
    flags: int
    hooknum: int | None
    priority: int | None
    devices: tuple[str, ...]
    policy: int | None
    type: str | None
    userdata: bytes | None


@dataclass(frozen=True)
class NlSet:
    """NFT_MSG_NEWSET (anonymous sets included: rules refer to them by name)."""

    name: str
    handle: int
    flags: int
    key_type: int
    key_len: int
    data_type: int | None
    data_len: int | None
    obj_type: int | None
    policy: int | None
    size: int | None
    field_lens: tuple[int, ...]
    timeout: int | None
    gc_interval: int | None
    userdata: bytes | None
    has_exprs: bool


@dataclass(frozen=True)
class NlElement:
    """One set element: key (and key_end), data or verdict, flags, user data."""

    key: bytes | None
    key_end: bytes | None
    data: bytes | None
    verdict: tuple[int, str | None] | None
    flags: int
    timeout: int | None
    expiration: int | None
    userdata: bytes | None
    extra: tuple[int, ...]  # attribute types this reader does not decode (expressions...)


@dataclass(frozen=True)
class NlRule:
    """NFT_MSG_NEWRULE: its expressions as (name, attributes-block) pairs, raw."""

    handle: int
    exprs: bytes  # the NFTA_RULE_EXPRESSIONS payload (a list of NFTA_LIST_ELEM)
    userdata: bytes | None
    extra: tuple[int, ...]


# NFTA_* attribute numbers used below.
_TABLE_NAME, _TABLE_FLAGS, _TABLE_HANDLE, _TABLE_USERDATA = 1, 2, 4, 6
_CHAIN_TABLE, _CHAIN_HANDLE, _CHAIN_NAME, _CHAIN_HOOK, _CHAIN_POLICY = 1, 2, 3, 4, 5
_CHAIN_TYPE, _CHAIN_FLAGS, _CHAIN_USERDATA = 7, 10, 12
_HOOK_NUM, _HOOK_PRIORITY, _HOOK_DEV, _HOOK_DEVS = 1, 2, 3, 4
_RULE_TABLE, _RULE_CHAIN, _RULE_HANDLE, _RULE_EXPRESSIONS, _RULE_USERDATA = 1, 2, 3, 4, 7
# Rule attributes that carry nothing to print: table/chain/handle, compat info,
# position, padding, rule id (NFTA_RULE_ID), position id.
_RULE_IGNORED = frozenset({1, 2, 3, 5, 6, 8, 9, 10, 11})
_SET_TABLE, _SET_NAME, _SET_FLAGS, _SET_KEY_TYPE, _SET_KEY_LEN = 1, 2, 3, 4, 5
_SET_DATA_TYPE, _SET_DATA_LEN, _SET_POLICY, _SET_DESC, _SET_TIMEOUT = 6, 7, 8, 9, 11
_SET_GC_INTERVAL, _SET_USERDATA, _SET_OBJ_TYPE, _SET_HANDLE = 12, 13, 15, 16
_SET_EXPR, _SET_EXPRESSIONS = 17, 18
_SET_DESC_SIZE, _SET_DESC_CONCAT = 1, 2
_FIELD_LEN = 1
_ELEM_LIST_TABLE, _ELEM_LIST_SET, _ELEM_LIST_ELEMENTS = 1, 2, 3
_ELEM_KEY, _ELEM_DATA, _ELEM_FLAGS, _ELEM_TIMEOUT, _ELEM_EXPIRATION = 1, 2, 3, 4, 5
_ELEM_USERDATA, _ELEM_KEY_END = 6, 10
_ELEM_KNOWN = frozenset({1, 2, 3, 4, 5, 6, 8, 10})  # 8: padding
_DATA_VALUE, _DATA_VERDICT = 1, 2
_VERDICT_CODE, _VERDICT_CHAIN = 1, 2
_GEN_ID = 1
_OBJ_TABLE = 1
_FLOWTABLE_TABLE = 1


def data_value(data: bytes) -> bytes:
    """The bytes of an NFTA_DATA_VALUE inside an NFTA_*_DATA attribute."""
    found = nested(data, "strict").get(_DATA_VALUE)
    if found is None:
        raise MalformedMessage("a data attribute without a value")
    return found


def data_verdict(data: bytes) -> tuple[int, str | None] | None:
    """(verdict code, chain) of an NFTA_DATA_VERDICT inside a data attribute, or None."""
    found = nested(data, "strict").get(_DATA_VERDICT)
    if found is None:
        return None
    verdict = nested(found, "strict")
    chain = verdict.get(_VERDICT_CHAIN)
    return be32s(verdict[_VERDICT_CODE]), string(chain) if chain is not None else None


def _table(family: int, a: dict[int, bytes]) -> NlTable:
    return NlTable(
        family,
        string(a[_TABLE_NAME]),
        be64(a[_TABLE_HANDLE]),
        be32(a[_TABLE_FLAGS]) if _TABLE_FLAGS in a else 0,
        a.get(_TABLE_USERDATA),
    )


def _chain(a: dict[int, bytes]) -> NlChain:
    hooknum = priority = None
    devices: tuple[str, ...] = ()
    hook = a.get(_CHAIN_HOOK)
    if hook is not None:
        h = nested(hook, "strict")
        hooknum = be32(h[_HOOK_NUM]) if _HOOK_NUM in h else None
        priority = be32s(h[_HOOK_PRIORITY]) if _HOOK_PRIORITY in h else None
        if _HOOK_DEV in h:
            devices = (string(h[_HOOK_DEV]),)
        elif _HOOK_DEVS in h:
            devices = tuple(string(d) for d in attribute_list(h[_HOOK_DEVS], "strict"))
    return NlChain(
        string(a[_CHAIN_NAME]),
        be64(a[_CHAIN_HANDLE]),
        be32(a[_CHAIN_FLAGS]) if _CHAIN_FLAGS in a else 0,
        hooknum,
        priority,
        devices,
        be32(a[_CHAIN_POLICY]) if _CHAIN_POLICY in a else None,
        string(a[_CHAIN_TYPE]) if _CHAIN_TYPE in a else None,
        a.get(_CHAIN_USERDATA),
    )


def _set(a: dict[int, bytes]) -> NlSet:
    size = None
    field_lens: tuple[int, ...] = ()
    desc = a.get(_SET_DESC)
    if desc is not None:
        d = nested(desc, "strict")
        size = be32(d[_SET_DESC_SIZE]) if _SET_DESC_SIZE in d else None
        if _SET_DESC_CONCAT in d:
            fields = attribute_list(d[_SET_DESC_CONCAT], "strict")
            field_lens = tuple(be32(nested(f, "strict")[_FIELD_LEN]) for f in fields)

    def opt32(kind: int) -> int | None:
        return be32(a[kind]) if kind in a else None

    return NlSet(
        string(a[_SET_NAME]),
        be64(a[_SET_HANDLE]),
        opt32(_SET_FLAGS) or 0,
        be32(a[_SET_KEY_TYPE]) if _SET_KEY_TYPE in a else 0,
        be32(a[_SET_KEY_LEN]),
        opt32(_SET_DATA_TYPE),
        opt32(_SET_DATA_LEN),
        opt32(_SET_OBJ_TYPE),
        opt32(_SET_POLICY),
        size,
        field_lens,
        be64(a[_SET_TIMEOUT]) if _SET_TIMEOUT in a else None,
        opt32(_SET_GC_INTERVAL),
        a.get(_SET_USERDATA),
        _SET_EXPR in a or _SET_EXPRESSIONS in a,
    )


def _element(a: dict[int, bytes]) -> NlElement:
    data = verdict = None
    raw = a.get(_ELEM_DATA)
    if raw is not None:
        verdict = data_verdict(raw)
        if verdict is None:
            data = data_value(raw)
    return NlElement(
        data_value(a[_ELEM_KEY]) if _ELEM_KEY in a else None,
        data_value(a[_ELEM_KEY_END]) if _ELEM_KEY_END in a else None,
        data,
        verdict,
        be32(a[_ELEM_FLAGS]) if _ELEM_FLAGS in a else 0,
        be64(a[_ELEM_TIMEOUT]) if _ELEM_TIMEOUT in a else None,
        be64(a[_ELEM_EXPIRATION]) if _ELEM_EXPIRATION in a else None,
        a.get(_ELEM_USERDATA),
        tuple(sorted(set(a) - _ELEM_KNOWN)),
    )


def _rule(a: dict[int, bytes]) -> NlRule:
    return NlRule(
        be64(a[_RULE_HANDLE]),
        a.get(_RULE_EXPRESSIONS, b""),
        a.get(_RULE_USERDATA),
        tuple(sorted(set(a) - _RULE_IGNORED - {_RULE_EXPRESSIONS, _RULE_USERDATA})),
    )


# ---------------------------------------------------------------- the socket


def _need(a: dict[int, bytes], kind: int, what: str) -> bytes:
    found = a.get(kind)
    if found is None:
        raise MalformedMessage(f"{what} without attribute {kind}")
    return found


class NftSocket(NetlinkSocket):
    """A NETLINK_NETFILTER socket of the calling thread's network namespace.

    Every reply is checked by the netlink core (sender, port id, sequence, errors);
    a dump the kernel flagged NLM_F_DUMP_INTR on every attempt raises
    DumpInconsistent, since a listing cannot be half old, half new. One dump at a
    time per socket (the kernel answers EBUSY to a second one), so callers that want
    parallel dumps open one socket per thread.
    """

    def __init__(self, timeout: float = TIMEOUT, transport: Transport | None = None) -> None:
        super().__init__(NETLINK_NETFILTER, timeout, transport)

    def _replies(self, msg: int, family: int, body: bytes) -> list[tuple[int, dict[int, bytes]]]:
        """(family, attributes) of each NFT_MSG_NEW* a dump request is answered with."""
        request = (NFNL_SUBSYS_NFTABLES << 8) | msg
        dump = self.dump(request, _NFGENMSG.pack(family, 0, 0) + body).checked()
        out = []
        for buf, mtype, off, end in dump.messages:
            if mtype != request - 1:
                continue  # not a listing: nothing to read
            if off + 4 > end:
                raise MalformedMessage("an nf_tables message without its nfgenmsg")
            out.append((buf[off], attributes(buf, off + 4, end, "strict")))
        return out

    def _get(self, msg: int, family: int, body: bytes) -> dict[int, bytes]:
        """The attributes of the one NFT_MSG_NEW* a request that is not a dump gets."""
        request = (NFNL_SUBSYS_NFTABLES << 8) | msg
        reply = self.call(request, _NFGENMSG.pack(family, 0, 0) + body)
        start = reply.offset + _NFGENMSG.size
        if reply.msg_type != request - 1 or start > reply.end:
            raise MalformedMessage(f"message type {reply.msg_type} in answer to {request}")
        return attributes(reply.buffer, start, reply.end, "strict")

    # -- the requests a table listing needs --------------------------------------------

    def generation(self) -> int:
        """The ruleset generation id (NFT_MSG_GETGEN)."""
        return be32(_need(self._get(NFT_MSG_GETGEN, AF_UNSPEC, b""), _GEN_ID, "NEWGEN"))

    def table_names(self) -> list[tuple[int, str]]:
        """(NFPROTO family, name) of every table of this namespace, in the kernel's order."""
        return [
            (family, string(_need(a, _TABLE_NAME, "NEWTABLE")))
            for family, a in self._replies(NFT_MSG_GETTABLE, AF_UNSPEC, b"")
        ]

    def table(self, family: int, name: str) -> NlTable:
        """One table's own attributes."""
        return _table(family, self._get(NFT_MSG_GETTABLE, family, strattr(_TABLE_NAME, name)))

    def _table_dump(
        self, msg: int, family: int, table: str, kind: int
    ) -> Iterator[dict[int, bytes]]:
        """A dump filtered to one table: by the kernel where it can, and here again.

        Kernels filter set, rule, object and flowtable dumps by NFTA_*_TABLE, but a
        chain dump lists the chains of every table of the family.
        """
        wanted = table.encode("utf-8", errors="surrogateescape")
        for _family, a in self._replies(msg, family, strattr(kind, table)):
            if a.get(kind, b"").split(b"\0", 1)[0] == wanted:
                yield a

    def chains(self, family: int, table: str) -> list[NlChain]:
        """Every chain of a table, in the kernel's (creation) order."""
        return [_chain(a) for a in self._table_dump(NFT_MSG_GETCHAIN, family, table, _CHAIN_TABLE)]

    def sets(self, family: int, table: str) -> list[NlSet]:
        """Every set and map of a table, anonymous ones included."""
        return [_set(a) for a in self._table_dump(NFT_MSG_GETSET, family, table, _SET_TABLE)]

    def elements(self, family: int, table: str, set_name: str) -> list[NlElement]:
        """The elements of one set, in the kernel's order."""
        body = strattr(_ELEM_LIST_TABLE, table) + strattr(_ELEM_LIST_SET, set_name)
        out: list[NlElement] = []
        for _family, a in self._replies(NFT_MSG_GETSETELEM, family, body):
            listed = a.get(_ELEM_LIST_ELEMENTS)
            if listed is not None:
                out.extend(_element(nested(e, "strict")) for e in attribute_list(listed, "strict"))
        return out

    def rules(self, family: int, table: str, chain: str) -> list[NlRule]:
        """The rules of one chain, in order.

        One dump per chain: a whole-table GETRULE dump makes the kernel walk the table
        from its first chain again for every 32 KiB part (2.7 s at 72k rules), while a
        dump naming table and chain finds the chain by hash (0.67 s for 36k chains).
        """
        body = strattr(_RULE_TABLE, table) + strattr(_RULE_CHAIN, chain)
        out = []
        for _family, a in self._replies(NFT_MSG_GETRULE, family, body):
            if string(a[_RULE_TABLE]) != table or string(a[_RULE_CHAIN]) != chain:
                raise MalformedMessage(f"a rule of another chain in the dump of {chain}")
            out.append(_rule(a))
        return out

    def has_objects(self, family: int, table: str) -> bool:
        """True when the table holds stateful objects (named counters, quotas...)."""
        return bool(list(self._table_dump(NFT_MSG_GETOBJ, family, table, _OBJ_TABLE)))

    def has_flowtables(self, family: int, table: str) -> bool:
        """True when the table holds flowtables."""
        return bool(list(self._table_dump(NFT_MSG_GETFLOWTABLE, family, table, _FLOWTABLE_TABLE)))
