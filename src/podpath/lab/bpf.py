"""A real eBPF object for the lab: compiled with LLVM's `llc` from a few lines of IR.

The lab cannot run Cilium, but it can attach what Cilium attaches: a tc classifier
in direct-action mode on a pod's host-side veth (clsact ingress, Cilium's
`bpf_lxc.o:[from-container]`), or an XDP program on a device. The programs here only
pass packets (TC_ACT_OK, XDP_PASS): what the lab proves is how podpath detects and
names an eBPF dataplane, never what the program decides. `llc` comes with Debian's
`llvm` package; no C compiler is needed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from podpath.lab.records import LabError

TC_ACT_OK = 0
XDP_PASS = 2

# A function in its own ELF section that returns a constant; the license section
# lets the kernel accept it, llvm.used keeps both from being dropped.
_IR = """target datalayout = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"
target triple = "bpf"

define dso_local i32 @{name}(i8* nocapture readnone %ctx) #0 section "{section}" {{
entry:
  ret i32 {verdict}
}}

@_license = dso_local global [4 x i8] c"GPL\\00", section "license", align 1
@llvm.used = appending global [2 x i8*] [i8* getelementptr inbounds ([4 x i8], [4 x i8]* @_license, i32 0, i32 0), i8* bitcast (i32 (i8*)* @{name} to i8*)], section "llvm.metadata"
attributes #0 = {{ norecurse nounwind readnone }}
"""


# tc loads objects through libbpf, which wants a bpf filesystem to pin into: the node
# gets a fresh one of its own over its private /sys, never the machine's /sys/fs/bpf
# (whose mount entries a node inherits but cannot reach under its own sysfs).
MOUNT_BPFFS = ["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"]


def llc() -> str | None:
    """Path of LLVM's static compiler, when installed."""
    return shutil.which("llc") or next(
        (str(p) for p in sorted(Path("/usr/bin").glob("llc-*"), reverse=True)), None
    )


def compile_program(path: Path, function: str, section: str, verdict: int = TC_ACT_OK) -> Path:
    """Write an eBPF object at `path` whose one program `function` in `section` returns `verdict`."""
    compiler = llc()
    if compiler is None:
        raise LabError("compiling an eBPF program needs llc (apt-get install llvm)")
    source = path.with_suffix(".ll")
    source.write_text(_IR.format(name=function, section=section, verdict=verdict))
    done = subprocess.run(
        [compiler, "-march=bpf", "-filetype=obj", str(source), "-o", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise LabError(f"llc failed to compile the eBPF program: {done.stderr.strip()[-500:]}")
    return path
