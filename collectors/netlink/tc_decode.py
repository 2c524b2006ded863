"""Decode traffic-control dumps (RTM_NEWQDISC, RTM_NEWTFILTER) into snapshot objects.

What `tc -j qdisc show` and `tc -j filter show dev X ingress|egress` print, read from
the same netlink messages. For an eBPF classifier (cls_bpf) the kernel reports the
program's id and tag and tc's section name (TCA_BPF_ID, TCA_BPF_TAG, TCA_BPF_NAME);
the program's own name needs the bpf() syscall (`bpf_info`). Constants are the
kernel's uapi values (linux/rtnetlink.h, pkt_sched.h, pkt_cls.h).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from podpath.collectors.netlink.rtnetlink_decode import u32
from podpath.collectors.netlink.wire import attributes, cstr, nested, payloads
from podpath.snapshot.model import BpfProgram, TcFilter, TcQdisc

RTM_NEWQDISC = 36
RTM_NEWTFILTER = 44

TCA_KIND, TCA_OPTIONS, TCA_CHAIN = 1, 2, 11
TCA_BPF_OPS_LEN, TCA_BPF_NAME, TCA_BPF_FLAGS, TCA_BPF_TAG, TCA_BPF_ID = 4, 7, 8, 10, 11
TCA_BPF_FLAG_ACT_DIRECT = 1

TC_H_ROOT = 0xFFFFFFFF
TC_H_INGRESS = 0xFFFFFFF1  # the parent of the ingress and clsact qdiscs
TC_H_CLSACT = TC_H_INGRESS
TC_H_MIN_INGRESS = 0xFFF2
TC_H_MIN_EGRESS = 0xFFF3
INGRESS_PARENT = (TC_H_CLSACT & 0xFFFF0000) | TC_H_MIN_INGRESS  # ffff:fff2
EGRESS_PARENT = (TC_H_CLSACT & 0xFFFF0000) | TC_H_MIN_EGRESS  # ffff:fff3

_TCMSG = struct.Struct("=BxxxiIII")  # family, ifindex, handle, parent, info
_BE16 = struct.Struct("!H")

# Ethertypes as tc names them (iproute2 lib/ll_proto.c).
_PROTOCOLS = {
    0x0003: "all",
    0x0800: "ip",
    0x86DD: "ipv6",
    0x0806: "arp",
    0x8100: "802.1Q",
    0x88A8: "802.1ad",
    0x8847: "mpls_uc",
}


def handle_str(handle: int) -> str:
    """A tc handle as tc prints it: `1:`, `1:2`, `ffff:fff2`."""
    major, minor = handle >> 16, handle & 0xFFFF
    return f"{major:x}:" if minor == 0 else f"{major:x}:{minor:x}"


def parent_str(parent: int) -> str:
    """A qdisc's parent as tc prints it: root, ingress (ffff:fff1) or a class id."""
    if parent == TC_H_ROOT:
        return "root"
    if parent == TC_H_INGRESS:
        return "ingress"
    return handle_str(parent)


def hook_of(parent: int) -> str:
    """Where a filter sits: the clsact/ingress hooks by name, else its parent handle."""
    if parent in (INGRESS_PARENT, TC_H_INGRESS & 0xFFFF0000):
        return "ingress"
    if parent == EGRESS_PARENT:
        return "egress"
    return handle_str(parent)


def protocol_str(ethertype: int) -> str:
    """A filter's protocol as tc names it (the hex ethertype when tc has no name)."""
    return _PROTOCOLS.get(ethertype, f"0x{ethertype:04x}")


def decode_qdiscs(buffers: Iterable[bytes]) -> list[TcQdisc]:
    """RTM_NEWQDISC messages -> TcQdisc objects."""
    out: list[TcQdisc] = []
    for buf, off, end in payloads(buffers, RTM_NEWQDISC, _TCMSG.size, "strict"):
        _family, ifindex, handle, parent, _info = _TCMSG.unpack_from(buf, off)
        a = attributes(buf, off + _TCMSG.size, end, "strict")
        kind = a.get(TCA_KIND)
        if kind is None:
            continue
        out.append(TcQdisc(ifindex, cstr(kind), handle_str(handle), parent_str(parent)))
    return out


def decode_filters(buffers: Iterable[bytes]) -> list[TcFilter]:
    """RTM_NEWTFILTER messages -> TcFilter objects.

    A dump lists each (pref, protocol) head before its filters; a head has no handle
    and no options (tc prints it as the bare first line) and is skipped here.
    """
    out: list[TcFilter] = []
    for buf, off, end in payloads(buffers, RTM_NEWTFILTER, _TCMSG.size, "strict"):
        _family, ifindex, handle, parent, info = _TCMSG.unpack_from(buf, off)
        a = attributes(buf, off + _TCMSG.size, end, "strict")
        kind_raw, options = a.get(TCA_KIND), a.get(TCA_OPTIONS)
        if kind_raw is None or (handle == 0 and options is None):
            continue
        kind = cstr(kind_raw)
        chain = a.get(TCA_CHAIN)
        direct, program = False, None
        if kind == "bpf" and options is not None:
            direct, program = _bpf_options(options)
        out.append(
            TcFilter(
                ifindex=ifindex,
                hook=hook_of(parent),
                kind=kind,
                # tcm_info holds the priority in the upper 16 bits, the ethertype
                # (network byte order) in the lower ones (TC_H_MAKE(prio << 16, proto)).
                protocol=protocol_str(_BE16.unpack(struct.pack("=H", info & 0xFFFF))[0]),
                pref=info >> 16,
                chain=u32(chain) if chain is not None and len(chain) >= 4 else 0,
                handle=f"0x{handle:x}" if handle else None,
                direct_action=direct,
                program=program,
            )
        )
    return out


def _bpf_options(options: bytes) -> tuple[bool, BpfProgram | None]:
    a = nested(options, "strict")
    flags = a.get(TCA_BPF_FLAGS)
    direct = bool(flags is not None and len(flags) >= 4 and u32(flags) & TCA_BPF_FLAG_ACT_DIRECT)
    prog_id, tag, name = a.get(TCA_BPF_ID), a.get(TCA_BPF_TAG), a.get(TCA_BPF_NAME)
    if prog_id is None and TCA_BPF_OPS_LEN in a:
        return direct, None  # classic BPF bytecode: no program object to name
    return direct, BpfProgram(
        id=u32(prog_id) if prog_id is not None and len(prog_id) >= 4 else None,
        tag=tag.hex() if tag else None,
        section=cstr(name) if name is not None else None,
    )
