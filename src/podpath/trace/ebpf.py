"""eBPF programs on the path: where the kernel hands a packet to a program podpath cannot run.

A packet received on a device meets its XDP program first, then the tc ingress
classifiers (clsact/ingress qdisc); a packet sent meets the tc egress classifiers.
An eBPF dataplane (Cilium's bpf_lxc, bpf_host, bpf_overlay) decides there -- drop,
redirect to another device, rewrite a Service address, or pass to the stack -- so the
trace cannot honestly go on as if routing or iptables decided. The hop names the
program (id, name, tag, object section) and the branch ends uncertain.
"""

from __future__ import annotations

from dataclasses import dataclass

from podpath.snapshot.model import BpfProgram, Link, NetNamespace
from podpath.trace.model import Hop, JsonValue


@dataclass(frozen=True)
class Attachment:
    """One eBPF program attached at one hook of one device."""

    hook: str  # "xdp", "tc ingress", "tc egress"
    program: BpfProgram | None  # None: a classic BPF classifier, or the program is unknown
    direct_action: bool = False
    kind: str = "bpf"


def attached(ns: NetNamespace, link: Link, direction: str) -> list[Attachment]:
    """The eBPF programs a packet meets on `link` in `direction` (ingress or egress), in order."""
    found: list[Attachment] = []
    if direction == "ingress" and link.xdp is not None:
        found.append(Attachment(f"xdp ({link.xdp.mode})", link.xdp.program, kind="xdp"))
    filters = [
        f
        for f in ns.tc_filters
        if f.ifindex == link.ifindex and f.hook == direction and f.kind == "bpf"
    ]
    for f in sorted(filters, key=lambda f: (f.chain, f.pref)):
        found.append(Attachment(f"tc {direction}", f.program, f.direct_action))
    return found


def describe(program: BpfProgram | None) -> str:
    """A program as tc and bpftool would name it."""
    if program is None:
        return "a classic BPF classifier"
    parts = [program.name or "unnamed program"]
    facts = [f"id {program.id}" if program.id is not None else None]
    facts.append(f"tag {program.tag}" if program.tag else None)
    facts.append(program.section)
    return f"{parts[0]} ({', '.join(f for f in facts if f)})"


def ebpf_hop(node: str, netns: int, link: Link, at: Attachment) -> Hop:
    """The hop where an eBPF program takes the decision."""
    what = describe(at.program)
    text = f"{at.hook} of {link.name}: eBPF program {what} decides; podpath cannot run eBPF"
    details: tuple[str, ...] = (
        "the program may drop the packet, redirect it to another device, or rewrite it "
        "(e.g. a Service address) before routing or iptables see it",
    )
    if at.direct_action:
        details += ("direct-action: the program's return code is the verdict (TC_ACT_*)",)
    program = at.program
    data: dict[str, JsonValue] = {
        "netns": netns,
        "dev": link.name,
        "hook": at.hook,
        "program_id": program.id if program else None,
        "program_name": program.name if program else None,
        "program_tag": program.tag if program else None,
        "section": program.section if program else None,
        "direct_action": at.direct_action,
    }
    return Hop("ebpf", node, text, details, (), data)
