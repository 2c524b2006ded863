"""Name the eBPF programs attached to interfaces: bpf(BPF_PROG_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD).

tc's netlink dump gives a classifier's program id, tag and section name; the
program's own name and type live in the kernel's bpf_prog_info, which `tc -j filter
show` and `bpftool prog show id N` fetch the same way: open the program by id (a
read-only reference, closed at once) and ask for its info. Opening by id needs
CAP_SYS_ADMIN (kernel/bpf/syscall.c, bpf_prog_get_fd_by_id); without it the ids and
tags from netlink remain and a gap names the capability. Program ids are global, so
this works from any namespace.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from dataclasses import replace

from podpath.snapshot.model import BpfProgram, Gap, NetNamespace, TcFilter

BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
# __NR_bpf by architecture (the syscall has no libc wrapper).
_NR_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "ppc64le": 361, "s390x": 351}
# bpf_prog_type values (include/uapi/linux/bpf.h) as bpftool names them.
PROG_TYPES = {
    1: "socket_filter",
    2: "kprobe",
    3: "sched_cls",
    4: "sched_act",
    5: "tracepoint",
    6: "xdp",
    8: "cgroup_skb",
    9: "cgroup_sock",
    13: "sock_ops",
    18: "cgroup_sock_addr",
}
_ATTR_SIZE = 128
_INFO_SIZE = 80  # struct bpf_prog_info up to and including name[16]
_INFO = struct.Struct("=II8s")  # type, id, tag

_libc = ctypes.CDLL(None, use_errno=True)


class BpfUnavailable(OSError):
    """The bpf() syscall cannot answer here (architecture, permission, kernel)."""


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    nr = _NR_BPF.get(platform.machine())
    if nr is None:
        raise BpfUnavailable(errno.ENOSYS, f"bpf() syscall number unknown on {platform.machine()}")
    ret = int(_libc.syscall(ctypes.c_long(nr), ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr))))
    if ret < 0:
        err = ctypes.get_errno()
        raise BpfUnavailable(err, os.strerror(err))
    return ret


def program_info(prog_id: int) -> BpfProgram:
    """The id, name, tag and type of a loaded program; BpfUnavailable when it cannot be read."""
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("=I", attr, 0, prog_id)
    fd = _bpf(BPF_PROG_GET_FD_BY_ID, attr)
    try:
        info = ctypes.create_string_buffer(_INFO_SIZE)
        attr = ctypes.create_string_buffer(_ATTR_SIZE)
        struct.pack_into("=IIQ", attr, 0, fd, _INFO_SIZE, ctypes.addressof(info))
        _bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    finally:
        os.close(fd)
    ptype, pid, tag = _INFO.unpack_from(info.raw, 0)
    name = info.raw[64:80].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    return BpfProgram(
        id=pid, name=name or None, tag=tag.hex(), type=PROG_TYPES.get(ptype, str(ptype))
    )


def _merge(known: BpfProgram | None, found: dict[int, BpfProgram]) -> BpfProgram | None:
    if known is None or known.id is None or known.id not in found:
        return known
    info = found[known.id]
    return replace(known, name=info.name, tag=known.tag or info.tag, type=info.type)


def name_programs(
    netns: tuple[NetNamespace, ...],
) -> tuple[tuple[NetNamespace, ...], tuple[Gap, ...]]:
    """The namespaces with each attached program's name and type filled in, and what failed."""
    ids = sorted(
        {
            p.id
            for ns in netns
            for p in [
                *(f.program for f in ns.tc_filters),
                *(lk.xdp.program for lk in ns.links if lk.xdp),
            ]
            if p is not None and p.id is not None
        }
    )
    if not ids:
        return netns, ()
    found: dict[int, BpfProgram] = {}
    gaps: list[Gap] = []
    for prog_id in ids:
        try:
            found[prog_id] = program_info(prog_id)
        except BpfUnavailable as exc:
            if exc.errno == errno.ENOENT:
                continue  # unloaded since the dump: the id and tag stay
            cap = "CAP_SYS_ADMIN" if exc.errno in (errno.EPERM, errno.EACCES) else None
            gaps.append(
                Gap(
                    f"bpf program {prog_id}",
                    f"names of attached eBPF programs not read: {exc.strerror}",
                    "permission" if cap else "unavailable",
                    cap,
                )
            )
            break  # the same reason holds for every other program
    if not found:
        return netns, tuple(gaps)
    out = []
    for ns in netns:
        filters = tuple(_named_filter(f, found) for f in ns.tc_filters)
        links = tuple(
            replace(lk, xdp=replace(lk.xdp, program=_merge(lk.xdp.program, found)))
            if lk.xdp is not None
            else lk
            for lk in ns.links
        )
        out.append(replace(ns, tc_filters=filters, links=links))
    return tuple(out), tuple(gaps)


def _named_filter(f: TcFilter, found: dict[int, BpfProgram]) -> TcFilter:
    return replace(f, program=_merge(f.program, found)) if f.program is not None else f
