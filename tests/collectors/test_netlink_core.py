"""The netlink core (framing, attributes, errors, the socket's checks), case by case.

What the kernel can be made to do on cue (late answers, a forged sender, error
replies with and without an extended ack, a datagram larger than the receive buffer)
is provoked on real NETLINK_ROUTE sockets inside a private `unshare --net` child
(`netlink_core_driver.py`). What it cannot (a malformed message, a dump flagged
interrupted on every attempt, an answer with another port id) is crafted
(`netlink_fakes.py`).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from netlink_fakes import PORTID, Request, Script, ScriptedKernel, done, error, msg, nla

from podpath.collectors.netlink.nlsocket import Dump, NetlinkSocket
from podpath.collectors.netlink.rtnetlink import RTM_GETLINK, RouteSocket
from podpath.collectors.netlink.rtnetlink_decode import decode_links
from podpath.collectors.netlink.wire import (
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLM_F_DUMP_INTR,
    DumpInconsistent,
    MalformedMessage,
    NetlinkError,
    attribute_list,
    attributes,
    error_reply,
    payloads,
    split_messages,
)
from podpath.collectors.nftables.netlink import NftSocket

DRIVER = Path(__file__).with_name("netlink_core_driver.py")
RTM_NEWLINK = 16
GOOD = nla(1, b"abcd") + nla(2, b"xy")
OVERRUN = struct.pack("=HH", 40, 3) + b"zz"  # says 40 bytes, has 6


def _link(seq: int, index: int, name: bytes, *, flags: int = 0x2, pid: int = PORTID) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, 0, 0) + nla(3, name + b"\0")
    return msg(RTM_NEWLINK, body, seq=seq, flags=flags, pid=pid)


def _names(dump: Dump) -> list[str]:
    return [link.name for link in decode_links(dump.buffers, 1)]


# --- attributes and framing, under each strictness ---------------------------------------


def test_strict_attribute_walk_raises_on_an_overrun() -> None:
    """'strict': an attribute longer than its block raises MalformedMessage."""
    data = GOOD + OVERRUN
    with pytest.raises(MalformedMessage, match="attribute length 40"):
        attributes(data, 0, len(data), "strict")


def test_lenient_attribute_walk_keeps_what_came_before() -> None:
    """'lenient': the walk stops at the overrun and returns the attributes before it."""
    data = GOOD + OVERRUN
    assert attributes(data, 0, len(data), "lenient") == {1: b"abcd", 2: b"xy"}


def test_attribute_below_its_header_size_is_malformed_in_both_senses() -> None:
    """A length under 4 (which would loop forever) raises strictly and stops leniently."""
    data = GOOD + struct.pack("=HH", 2, 9)
    with pytest.raises(MalformedMessage):
        attributes(data, 0, len(data), "strict")
    assert attributes(data, 0, len(data), "lenient") == {1: b"abcd", 2: b"xy"}


def test_list_walk_follows_the_same_strictness() -> None:
    """Nested lists keep order and repeats; an overrun raises or stops as asked."""
    data = nla(1, b"a") + nla(1, b"b") + OVERRUN
    with pytest.raises(MalformedMessage):
        attribute_list(data, "strict")
    assert attribute_list(data, "lenient") == [b"a", b"b"]


def test_unknown_attribute_types_are_not_malformation() -> None:
    """Types the reader does not know are returned, flags masked, in both modes."""
    data = nla(0x8000 | 0x3FF0, b"new!")
    assert attributes(data, 0, len(data), "strict") == {0x3FF0: b"new!"}


def test_message_running_past_its_datagram_is_malformed() -> None:
    """A message longer than the bytes read raises strictly; leniently the walk stops."""
    good = _link(1, 1, b"lo")
    cut = good + _link(1, 2, b"eth0")[:30]
    with pytest.raises(MalformedMessage, match="message length"):
        split_messages(cut, "strict")
    assert [m[0] for m in split_messages(cut, "lenient")] == [RTM_NEWLINK]


def test_stray_bytes_after_the_last_message_are_malformed() -> None:
    """Fewer than a header's bytes after the last message are not silently ignored."""
    with pytest.raises(MalformedMessage, match="stray bytes"):
        split_messages(_link(1, 1, b"lo") + b"\xff" * 7, "strict")


def test_message_without_its_family_header_is_malformed() -> None:
    """A NEWLINK too short for struct ifinfomsg raises strictly, is skipped leniently."""
    short = msg(RTM_NEWLINK, b"\0" * 8, seq=1)
    with pytest.raises(MalformedMessage, match="family header"):
        list(payloads([short], RTM_NEWLINK, 16, "strict"))
    assert list(payloads([short], RTM_NEWLINK, 16, "lenient")) == []


def test_rtnetlink_decoder_refuses_half_a_link() -> None:
    """A link message with an overrunning attribute is an error, never a Link without it."""
    body = struct.pack("=BxHiII", 0, 1, 5, 0, 0) + nla(3, b"eth0\0") + OVERRUN
    with pytest.raises(MalformedMessage):
        decode_links([msg(RTM_NEWLINK, body, seq=1)], 1)


# --- error replies ------------------------------------------------------------------------


def _error_fields(data: bytes) -> NetlinkError | None:
    ((mtype, flags, _seq, _pid, off, end),) = split_messages(data, "strict")
    return error_reply(data, off, end, mtype, flags)


def test_error_without_extended_ack_is_the_errno_alone() -> None:
    """NLMSG_ERROR with no ack attributes: errno and strerror, no kernel text."""
    err = _error_fields(error(1, -errno.ENODEV))
    assert err is not None and err.errno == errno.ENODEV
    assert err.ack_message is None and str(err) == os.strerror(errno.ENODEV)


def test_error_with_extended_ack_carries_the_kernels_text() -> None:
    """A capped NLMSG_ERROR with NLMSGERR_ATTR_MSG: the text follows the echoed header."""
    tail = nla(1, b"Invalid values in header for get link request\0") + nla(2, b"\x10\0\0\0")
    err = _error_fields(error(1, -errno.EINVAL, flags=NLM_F_CAPPED | NLM_F_ACK_TLVS, tail=tail))
    assert err is not None and err.errno == errno.EINVAL
    assert err.ack_message == "Invalid values in header for get link request"
    assert str(err) == f"{os.strerror(errno.EINVAL)} ({err.ack_message})"


def test_uncapped_error_skips_the_whole_echoed_request() -> None:
    """Without NLM_F_CAPPED the request's payload is echoed too; the text comes after it."""
    tail = nla(1, b"bad attribute\0")
    data = error(1, -errno.EINVAL, flags=NLM_F_ACK_TLVS, tail=tail, echoed=b"\x01" * 12)
    err = _error_fields(data)
    assert err is not None and err.ack_message == "bad attribute"


def test_dump_done_with_an_error_and_extended_ack() -> None:
    """A dump's NLMSG_DONE with a negative code is an error; its ack text follows the code."""
    tail = nla(1, b"ipv4: Invalid values in header for address dump request\0")
    err = _error_fields(done(1, -errno.EINVAL, flags=0x2 | NLM_F_ACK_TLVS, tail=tail))
    assert err is not None and err.errno == errno.EINVAL
    assert err.ack_message == "ipv4: Invalid values in header for address dump request"


def test_malformed_ack_attributes_still_give_the_errno() -> None:
    """A broken optional part (walked leniently) never hides the error code."""
    err = _error_fields(error(1, -errno.EPERM, flags=NLM_F_CAPPED | NLM_F_ACK_TLVS, tail=OVERRUN))
    assert err is not None and err.errno == errno.EPERM and err.ack_message is None


def test_ack_and_clean_done_are_not_errors() -> None:
    """Code 0 (an ack, or the end of a dump) is no error."""
    assert _error_fields(error(1, 0)) is None
    assert _error_fields(done(1)) is None


# --- the socket's checks, on crafted answers ---------------------------------------------


def _links_then_done(*names: bytes, flags: int = 0x2) -> Script:
    def script(_n: int, req: Request) -> list[bytes]:
        links = b"".join(_link(req.seq, i, name, flags=flags) for i, name in enumerate(names, 1))
        return [links, done(req.seq, flags=flags)]

    return script


def test_late_answers_to_an_abandoned_request_are_skipped() -> None:
    """Messages with another sequence number are not part of this dump."""

    def script(_n: int, req: Request) -> list[bytes]:
        late = _link(req.seq - 1, 9, b"late") + done(req.seq - 1)
        return [late, *_links_then_done(b"lo")(_n, req)]

    sock = RouteSocket(transport=ScriptedKernel(script))
    assert _names(sock.dump_table(RTM_GETLINK)) == ["lo"]


def test_messages_for_another_port_id_are_skipped() -> None:
    """A message with our sequence number but another port id is not an answer to us."""

    def script(_n: int, req: Request) -> list[bytes]:
        other = _link(req.seq, 9, b"other", pid=PORTID + 1)
        return [other, *_links_then_done(b"lo")(_n, req)]

    sock = RouteSocket(transport=ScriptedKernel(script))
    assert _names(sock.dump_table(RTM_GETLINK)) == ["lo"]


def test_interrupted_dump_is_retried_and_the_clean_attempt_kept() -> None:
    """NLM_F_DUMP_INTR on the first attempt: dumped again; the second, clean one is returned."""
    kernel = ScriptedKernel(
        lambda n, req: _links_then_done(b"old", flags=0x2 | (NLM_F_DUMP_INTR if n == 0 else 0))(
            n, req
        )
    )
    dump = RouteSocket(transport=kernel).dump_table(RTM_GETLINK)
    assert (dump.inconsistent, dump.attempts, len(kernel.sent)) == (False, 2, 2)
    assert _names(dump) == ["old"]


def test_dump_interrupted_every_time_is_marked_inconsistent() -> None:
    """Flagged on every attempt: the last attempt is returned marked inconsistent."""
    kernel = ScriptedKernel(_links_then_done(b"lo", flags=0x2 | NLM_F_DUMP_INTR))
    dump = RouteSocket(transport=kernel).dump_table(RTM_GETLINK, attempts=3)
    assert (dump.inconsistent, dump.attempts, len(kernel.sent)) == (True, 3, 3)
    with pytest.raises(DumpInconsistent, match="every one of 3 dumps"):
        dump.checked()


def test_nf_tables_refuses_a_dump_that_stays_interrupted() -> None:
    """The nf_tables reader never lists a dump the kernel kept flagging: it raises."""

    def script(_n: int, req: Request) -> list[bytes]:
        table = msg(0xA00, b"\x02\0\0\0" + nla(1, b"t\0"), seq=req.seq, flags=0x2 | 0x10)
        return [table + done(req.seq, flags=0x2 | 0x10)]

    with pytest.raises(DumpInconsistent):
        NftSocket(transport=ScriptedKernel(script)).table_names()


def test_error_ending_a_dump_raises_and_the_socket_serves_the_next_one() -> None:
    """NLMSG_ERROR in a dump raises it; the next request is answered normally."""

    def script(n: int, req: Request) -> list[bytes]:
        if n == 0:
            return [_link(req.seq, 1, b"lo"), error(req.seq, -errno.EBUSY)]
        return _links_then_done(b"lo")(n, req)

    sock = RouteSocket(transport=ScriptedKernel(script))
    with pytest.raises(NetlinkError) as caught:
        sock.dump_table(RTM_GETLINK)
    assert caught.value.errno == errno.EBUSY
    assert _names(sock.dump_table(RTM_GETLINK)) == ["lo"]


def test_malformed_part_raises_after_reading_the_dump_to_its_end() -> None:
    """A malformed part raises; the rest of that dump is drained so the next one is clean."""

    def script(n: int, req: Request) -> list[bytes]:
        if n == 0:
            broken = _link(req.seq, 1, b"lo")[:-6]
            return [broken, _link(req.seq, 2, b"x"), done(req.seq)]
        return _links_then_done(b"lo")(n, req)

    kernel = ScriptedKernel(script)
    sock = RouteSocket(transport=kernel)
    with pytest.raises(MalformedMessage):
        sock.dump_table(RTM_GETLINK)
    assert kernel.queue == []
    assert _names(sock.dump_table(RTM_GETLINK)) == ["lo"]


def test_datagram_larger_than_the_buffer_is_an_error_not_a_shorter_answer() -> None:
    """MSG_TRUNC: EMSGSIZE is raised instead of decoding the cut datagram."""
    huge = [msg(RTM_NEWLINK, b"\0" * (300 * 1024), seq=1), done(1)]
    sock = RouteSocket(transport=ScriptedKernel(lambda _n, _req: huge))
    with pytest.raises(NetlinkError) as caught:
        sock.dump_table(RTM_GETLINK)
    assert caught.value.errno == errno.EMSGSIZE


def test_batched_calls_answer_each_request_in_order() -> None:
    """Several requests in one write: each gets its own answer or its own error."""

    def script(n: int, req: Request) -> list[bytes]:
        if n == 1:
            return [error(req.seq, -errno.EINVAL)]
        return [msg(88, b"\0\0\0\0" + nla(1, struct.pack("=i", n)), seq=req.seq)]

    kernel = ScriptedKernel(script)
    answers = RouteSocket(transport=kernel).nsids([10, 11, 12])
    assert answers[0] == 0 and answers[2] == 2
    assert isinstance(answers[1], NetlinkError) and answers[1].errno == errno.EINVAL
    assert len(kernel.sent) == 3


def test_silent_kernel_times_out() -> None:
    """No answer at all is the socket's timeout, not a hang."""
    sock = NetlinkSocket(0, transport=ScriptedKernel(lambda _n, _req: []))
    with pytest.raises(TimeoutError):
        sock.call(RTM_GETLINK, b"\0" * 16)


# --- the same checks against the real kernel ----------------------------------------------


@pytest.fixture(scope="module")
def kernel_cases() -> Any:
    """Every real-socket case of netlink_core_driver.py, run once in a private netns."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("needs root and unshare")
        pytest.skip("needs root and unshare")
    res = subprocess.run(
        ["unshare", "--net", "--", sys.executable, str(DRIVER)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


@pytest.mark.lab
def test_kernel_late_answer_is_not_read_as_part_of_a_dump(kernel_cases: Any) -> None:
    """A real answer to an abandoned GETLINK waits in the socket; the dump skips it."""
    assert kernel_cases["late"] == {"dumped": ["lo"], "late_was_queued": True}


@pytest.mark.lab
def test_kernel_refuses_a_forged_answer_from_a_process(kernel_cases: Any) -> None:
    """A root process's NEWLINK to our port id (our seq): refused, since we listen to port 0.

    The same datagram reaches a socket that is not connected: the check is what stops it.
    """
    assert kernel_cases["forged"] == {
        "refused": True,
        "dumped": ["lo"],
        "unconnected_gets_it": True,
    }


@pytest.mark.lab
def test_kernel_error_without_extended_ack(kernel_cases: Any) -> None:
    """GETLINK of a missing ifindex: ENODEV, with no kernel text."""
    assert kernel_cases["enodev"] == {"errno": errno.ENODEV, "ack": None}


@pytest.mark.lab
def test_kernel_error_with_extended_ack(kernel_cases: Any) -> None:
    """With strict checking, a bad GETLINK header: EINVAL and the kernel's sentence."""
    got = kernel_cases["extack"]
    assert got["errno"] == errno.EINVAL
    assert got["ack"] == "Invalid values in header for get link request"


@pytest.mark.lab
def test_kernel_dump_error_with_extended_ack_then_next_dump(kernel_cases: Any) -> None:
    """A refused address dump raises with the kernel's text; the socket then dumps fine."""
    got = kernel_cases["dump_extack"]
    assert got["errno"] == errno.EINVAL and "address dump request" in got["ack"]
    assert got["next"] == ["lo"]


@pytest.mark.lab
def test_kernel_truncated_datagram_then_next_dump(kernel_cases: Any) -> None:
    """A receive buffer smaller than a dump part: EMSGSIZE; the socket is drained for reuse."""
    assert kernel_cases["truncated"] == {"errno": errno.EMSGSIZE, "next": ["lo"]}
