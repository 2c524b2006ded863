"""What a "permission denied" means, given the capabilities podpath holds.

A gap names the capability that would allow a read ("needs CAP_SYS_PTRACE"), but that
is only true when the capability is missing. Holding it and still being refused has
other causes, which the hint would hide: the process belongs to another user
namespace (capabilities count only in one's own and its children), a security module
(AppArmor, SELinux, ...) refuses, or the kernel protects the process (a sandbox's
init, as PID 1 of a Firecracker VM is: root with CAP_SYS_PTRACE cannot read its ns).
"""

from __future__ import annotations

import re
from dataclasses import replace

from podpath.snapshot.model import Gap

# The initial user namespace maps every uid to itself (user_namespaces(7)).
_INITIAL_UID_MAP = ("0", "0", "4294967295")
# Security modules that decide access themselves; capability, yama (ptrace attach
# only, not the read checks of /proc/PID/ns), lockdown and landlock are not them.
_DECIDING_LSMS = ("apparmor", "selinux", "smack", "tomoyo", "bpf")
_NEEDS = re.compile(r" ?\(needs CAP_[A-Z_]+\)")


def in_initial_user_namespace(uid_map: str) -> bool:
    """Whether /proc/self/uid_map's text is the initial user namespace's."""
    lines = uid_map.split("\n")
    return len([line for line in lines if line.strip()]) == 1 and tuple(lines[0].split()) == (
        _INITIAL_UID_MAP
    )


def deciding_modules(lsm: str) -> list[str]:
    """The security modules of /sys/kernel/security/lsm that may refuse a read."""
    return [name for name in lsm.strip().split(",") if name in _DECIDING_LSMS]


def why_refused(capability: str, initial_userns: bool | None, modules: list[str]) -> str:
    """Why a read was refused although `capability` is held, as far as can be told."""
    held = f"refused although podpath holds {capability}"
    if initial_userns is False:
        return (
            f"{held}: podpath runs in a user namespace of its own, and capabilities do not "
            "reach what the node's user namespace owns"
        )
    if modules:
        return f"{held}: the {', '.join(modules)} security policy may refuse it"
    if initial_userns:
        return f"{held}: the kernel protects it (a sandboxed or otherwise protected process)"
    return f"{held}: a protected process, a security module or another user namespace"


def checked_gaps(
    gaps: tuple[Gap, ...], held: tuple[str, ...], uid_map: str, lsm: str
) -> tuple[Gap, ...]:
    """The gaps, each "needs X" kept only where X is missing, else the real reason given."""
    held_set = frozenset(held)
    initial = in_initial_user_namespace(uid_map) if uid_map.strip() else None
    out = []
    for gap in gaps:
        if gap.kind == "permission" and gap.capability in held_set:
            assert gap.capability is not None
            why = why_refused(gap.capability, initial, deciding_modules(lsm))
            gap = replace(gap, reason=f"{_NEEDS.sub('', gap.reason)}; {why}", capability=None)
        out.append(gap)
    return tuple(out)


def own_facts() -> tuple[str, str]:
    """This process's /proc/self/uid_map and the kernel's list of security modules ("" if unknown)."""
    texts = []
    for path in ("/proc/self/uid_map", "/sys/kernel/security/lsm"):
        try:
            with open(path, encoding="ascii", errors="replace") as fp:
                texts.append(fp.read(4096))
        except OSError:  # securityfs is often not mounted: nothing is known then
            texts.append("")
    return texts[0], texts[1]
