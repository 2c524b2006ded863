"""The CRI wire codec: proto3 encoding of the trimmed api.proto, and hostile bytes refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podpath.cri import wire
from podpath.cri.client import READ_ONLY, CriClient, CriError


def test_schema_has_the_upstream_field_numbers() -> None:
    """Spot checks against kubernetes/cri-api api.proto: numbers are what runtimes send."""
    s = wire.schema()
    assert s.by_name("ContainerStatus")["exit_code"].number == 7
    assert s.by_name("ContainerStatus")["image_id"].number == 17
    assert s.by_name("PodSandboxConfig")["linux"].number == 8
    assert s.by_name("LinuxPodSandboxConfig")["cgroup_parent"].number == 1
    assert s.by_name("ImageSpec")["user_specified_image"].number == 18
    assert s.enums["ContainerState"] == {
        0: "CONTAINER_CREATED",
        1: "CONTAINER_RUNNING",
        2: "CONTAINER_EXITED",
        3: "CONTAINER_UNKNOWN",
    }


def test_known_bytes_decode() -> None:
    """Hand-made protobuf bytes decode into the fields they name (string, enum, int64, map)."""
    # id="ab" (1), state=2 EXITED (3), exit_code=-1 (7, ten-byte varint), labels {"k": "v"} (12)
    data = (
        b"\x0a\x02ab"
        + b"\x18\x02"
        + b"\x38"
        + b"\xff" * 9
        + b"\x01"
        + b"\x62\x06\x0a\x01k\x12\x01v"
    )
    got = wire.decode("ContainerStatus", data)
    assert (got["id"], got["state"], got["exit_code"], got["labels"]) == (
        "ab",
        "CONTAINER_EXITED",
        -1,
        {"k": "v"},
    )


def test_absent_fields_are_proto3_defaults() -> None:
    """An empty message decodes with every default: state CREATED is the absent enum."""
    got = wire.decode("ContainerStatus", b"")
    assert got["state"] == "CONTAINER_CREATED" and got["exit_code"] == 0
    assert got["metadata"] == {} and got["labels"] == {} and got["mounts"] == []


def test_unknown_fields_are_skipped() -> None:
    """Fields a newer runtime adds (any wire type) do not break decoding."""
    extra = b"\xa8\x06\x05" + b"\xb1\x06" + b"\x00" * 8 + b"\xbd\x06" + b"\x00" * 4
    got = wire.decode("VersionResponse", b"\x0a\x02v1" + extra)
    assert got["version"] == "v1"


@given(
    name=st.text(max_size=40),
    attempt=st.integers(0, 2**32 - 1),
    labels=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=4),
    port=st.integers(-(2**31), 2**31 - 1),
)
def test_round_trip(name: str, attempt: int, labels: dict[str, str], port: int) -> None:
    """encode then decode gives the same message back."""
    msg = {
        "metadata": {"name": name, "uid": "u", "namespace": "n", "attempt": attempt},
        "labels": labels,
        "port_mappings": [{"protocol": "UDP", "container_port": port, "host_port": 1}],
    }
    got = wire.decode("PodSandboxConfig", wire.encode("PodSandboxConfig", msg))
    assert got["metadata"] == msg["metadata"] and got["labels"] == labels
    assert got["port_mappings"][0]["protocol"] == "UDP"
    assert got["port_mappings"][0]["container_port"] == port


@pytest.mark.parametrize(
    "data",
    [b"\x0a\x05ab", b"\x08", b"\x0b", b"\x80" * 11, b"\x12\x01\xff"],
    ids=["short-string", "short-varint", "group-wire-type", "overlong-varint", "bad-message"],
)
def test_hostile_bytes_raise_wire_error(data: bytes) -> None:
    """Truncated or malformed input is a WireError, never another exception."""
    with pytest.raises(wire.WireError):
        wire.decode("ContainerStatus", data)


def test_unknown_field_name_is_refused_on_encode() -> None:
    """A typo in a request is an error, not a silently dropped field."""
    with pytest.raises(wire.WireError, match="no field"):
        wire.encode("PodSandboxConfig", {"metdata": {}})


def test_read_only_client_refuses_writes() -> None:
    """A read-only client (the collectors') refuses every call not in READ_ONLY, unsent."""
    assert "RunPodSandbox" not in READ_ONLY and "ListContainers" in READ_ONLY
    with CriClient("/nonexistent/podpath.sock", read_only=True) as cri:
        with pytest.raises(CriError, match="only reads"):
            cri.call("StopPodSandbox", {"pod_sandbox_id": "x"})
        with pytest.raises(CriError, match="only reads"):
            cri.call_many("RemoveContainer", [{"container_id": "x"}])


def test_dead_socket_is_one_clear_error() -> None:
    """No runtime at the socket: CriError naming the call and socket, not a grpc traceback."""
    with CriClient("/nonexistent/podpath.sock", timeout=2) as cri:
        with pytest.raises(CriError, match="CRI Version on /nonexistent/podpath.sock: UNAVAILABLE"):
            cri.version()
