"""Whether a kernel feature is there without loading a module for it.

Some reads make the kernel request_module() what they need: a sock_diag request for a
missing handler, a NETLINK_NETFILTER socket without nfnetlink, an nf_tables request
without nf_tables. podpath never changes a node, so such a read is made only where
`present` finds every module it needs already in the kernel: built in, loaded, or a
kernel without module support (no /proc/modules), which loads nothing.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping

from podpath.collectors.hostroot import CollectorError, HostRoot


def present(host: HostRoot, release: str, modules: Mapping[str, str]) -> bool:
    """True when each module (name -> its path in modules.builtin, e.g. nf_tables ->
    kernel/net/netfilter/nf_tables.ko) is loaded or built in, or the kernel loads none."""
    try:
        loaded = host.proc_read("modules").decode("ascii", "replace")
    except CollectorError as exc:
        # ENOENT: a kernel without CONFIG_MODULES loads nothing; any other error: unknown.
        return exc.errno == errno.ENOENT
    missing = set(modules) - {line.split(" ", 1)[0] for line in loaded.splitlines()}
    if not missing:
        return True
    for base in ("/lib/modules", "/usr/lib/modules"):
        try:
            builtin = host.read_text(f"{base}/{release}/modules.builtin").split()
        except CollectorError:
            continue
        return {modules[name] for name in missing} <= set(builtin)
    return False
