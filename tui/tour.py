"""Named key sequences that show each main screen from the home screen.

One list drives `podpath screenshot --all` (the screenshots/ in the README), the SVG
snapshot tests, and anything that tours the app, so they always agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _type(text: str) -> tuple[str, ...]:
    return tuple(text)


def _jump(name: str) -> tuple[str, ...]:
    return ("colon", *_type(name), "enter")


def _filter_open(text: str) -> tuple[str, ...]:
    # `/text`, enter returns to the table, enter opens the only match.
    return ("slash", *_type(text), "enter", "enter")


# Key sequences name only what every lab-made node has (a web Deployment behind the
# default/web Service), so they work on the bundled demo recorded from the lab and on
# the tests' fixed snapshot alike.
_POD = (*_jump("pods"), *_filter_open("web"))
_TRACE = (*_jump("pods"), "slash", *_type("web"), "enter", "t", *_type("default/web"), "enter")
_NAT = (*_jump("ipt"), "enter", *_filter_open("nat"))

SHOTS: dict[str, tuple[str, ...]] = {
    "node": (),
    "pods": _jump("pods"),
    "pod-containers": _POD,
    "pod-interfaces": (*_POD, "right"),
    "pod-routes": (*_POD, "right", "right"),
    "pod-rules": (*_POD, "right", "right", "right"),
    "pod-neighbours": (*_POD, "right", "right", "right", "right"),
    "pod-nat": (*_POD, "right", "right", "right", "right", "right"),
    "pod-conntrack": (*_POD, "right", "right", "right", "right", "right", "right"),
    "services": _jump("svc"),
    "service": (*_jump("svc"), *_filter_open("web:http")),
    "netfilter-chains": _NAT,
    "netfilter-rules": (*_NAT, *_filter_open("KUBE-SERVICES")),
    "trace": _TRACE,
    "trace-and": (*_TRACE, "a"),
    "trace-reply": (*_TRACE, "p"),
    # "-view": screenshots/map.svg and trace-map.svg are `podpath draw`'s pictures.
    "trace-map-view": (*_TRACE, "m"),
    "map-view": _jump("map"),
    "namespaces": _jump("ns"),
    "links": _jump("links"),
    "routes": _jump("routes"),
    "netconf": _jump("netconf"),
    "tc": _jump("tc"),
    "conntrack": _jump("ct"),
    "cni": _jump("cni"),
    "problems": _jump("problems"),
    "help": (*_jump("pods"), "question_mark"),
}

# The order a scripted tour (`podpath tour`) shows them in: the article's story.
TOUR: tuple[str, ...] = (
    "node",
    "pods",
    "pod-containers",
    "pod-interfaces",
    "pod-routes",
    "pod-rules",
    "pod-neighbours",
    "pod-nat",
    "services",
    "service",
    "netfilter-rules",
    "trace",
    "trace-and",
    "trace-reply",
    "trace-map-view",
    "conntrack",
    "links",
    "map-view",
    "problems",
)


async def press_and_settle(pilot: Any, keys: Iterable[str]) -> None:
    """Press keys as a user would, each key's work (a trace, a parse) done before the next."""
    for key in keys:
        await pilot.press(key)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
