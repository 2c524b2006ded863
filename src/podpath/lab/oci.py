"""OCI runtime specs shaped like the ones containerd's CRI plugin writes for pods."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# containerd's default capability set.
_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]

_MASKED = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
]
_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class PodMeta:
    """The pod identity that containerd stamps on every spec as annotations."""

    namespace: str
    name: str
    uid: str
    sandbox_id: str
    log_dir: str
    qos: str

    def cgroup(self, container_id: str) -> str:
        """kubelet's cgroupfs-driver path: /kubepods/<qos>/pod<uid>/<id>."""
        return f"/kubepods/{self.qos}/pod{self.uid}/{container_id}"


def _mounts(extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
        *extra,
    ]


def _base(meta: PodMeta, container_id: str, args: list[str]) -> dict[str, Any]:
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": [PATH_ENV],
            "cwd": "/",
            "capabilities": {k: list(_CAPS) for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": True,
            "oomScoreAdj": -998 if meta.qos == "guaranteed" else 1000,
        },
        "root": {"path": "rootfs", "readonly": True},
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}], "cpu": {"shares": 2}},
            "cgroupsPath": meta.cgroup(container_id),
            "maskedPaths": list(_MASKED),
            "readonlyPaths": list(_READONLY),
        },
    }


def sandbox_spec(meta: PodMeta, netns_path: str, hostname: str) -> dict[str, Any]:
    """Spec of the pod sandbox: /pause in the pod netns, new ipc/uts/pid/mnt namespaces."""
    # Debian's catatonit copied as /pause: -P is its pause mode (no child to run).
    spec = _base(meta, meta.sandbox_id, ["/pause", "-P"])
    spec["hostname"] = hostname
    spec["mounts"] = _mounts([])
    spec["annotations"] = {
        "io.kubernetes.cri.container-type": "sandbox",
        "io.kubernetes.cri.sandbox-id": meta.sandbox_id,
        "io.kubernetes.cri.sandbox-name": meta.name,
        "io.kubernetes.cri.sandbox-namespace": meta.namespace,
        "io.kubernetes.cri.sandbox-uid": meta.uid,
        "io.kubernetes.cri.sandbox-log-directory": meta.log_dir,
        "io.kubernetes.cri.sandbox-cpu-period": "100000",
        "io.kubernetes.cri.sandbox-cpu-quota": "0",
        "io.kubernetes.cri.sandbox-cpu-shares": "2",
        "io.kubernetes.cri.sandbox-memory": "0",
    }
    spec["linux"]["namespaces"] = [
        {"type": "pid"},
        {"type": "ipc"},
        {"type": "uts"},
        {"type": "mount"},
        {"type": "network", "path": netns_path},
    ]
    return spec


def container_spec(
    meta: PodMeta,
    container_id: str,
    name: str,
    image: str,
    args: list[str],
    sandbox_pid: int,
    mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    """Spec of an app container: joins the sandbox's net, ipc and uts; own mnt and pid."""
    spec = _base(meta, container_id, args)
    spec["process"]["env"] = [PATH_ENV, f"HOSTNAME={meta.name}"]
    spec["mounts"] = _mounts(mounts)
    spec["annotations"] = {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": name,
        "io.kubernetes.cri.image-name": image,
        "io.kubernetes.cri.sandbox-id": meta.sandbox_id,
        "io.kubernetes.cri.sandbox-name": meta.name,
        "io.kubernetes.cri.sandbox-namespace": meta.namespace,
        "io.kubernetes.cri.sandbox-uid": meta.uid,
    }
    spec["linux"]["namespaces"] = [
        {"type": "pid"},
        {"type": "ipc", "path": f"/proc/{sandbox_pid}/ns/ipc"},
        {"type": "uts", "path": f"/proc/{sandbox_pid}/ns/uts"},
        {"type": "mount"},
        {"type": "network", "path": f"/proc/{sandbox_pid}/ns/net"},
    ]
    return spec
