"""Every view of the app, in one table: what the app, `:`, home, help and ctrl+p read.

A view has a jump name (k9s style, with aliases), a label, a factory that builds its
screen from an optional argument (a filter, a pod, a Service), and the count home
shows beside it. Adding a screen means adding its module and one `View` here; nothing
else lists the screens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual.screen import Screen

from podpath.tui.screens.cni import CniScreen
from podpath.tui.screens.conntrack import ConntrackScreen
from podpath.tui.screens.ipvs import IpvsScreen
from podpath.tui.screens.links import LinksScreen
from podpath.tui.screens.map import MapScreen
from podpath.tui.screens.namespaces import NamespacesScreen
from podpath.tui.screens.netconf import NetconfScreen
from podpath.tui.screens.netfilter import NetfilterScreen
from podpath.tui.screens.node import NodeScreen
from podpath.tui.screens.pod import PodScreen
from podpath.tui.screens.pods import PodsScreen
from podpath.tui.screens.problems import ProblemsScreen
from podpath.tui.screens.routing import RoutingScreen
from podpath.tui.screens.service import ServiceScreen
from podpath.tui.screens.services import ServicesScreen
from podpath.tui.screens.tc import TcScreen
from podpath.tui.screens.trace import TraceScreen
from podpath.tui.state import SERVICES, Loaded
from podpath.wording import count

# The home view's name: opening it returns to home instead of stacking a second one.
HOME = "node"

# What home shows for a count that waits for the parse worker.
PENDING = "…"
# The problems count while the doctor's sweep runs (the facts' findings are counted).
CHECKING = "checking paths…"


@dataclass(frozen=True)
class View:
    """One screen the user can open by name."""

    name: str  # what `:` takes, e.g. "svc"
    label: str  # home's menu and the command palette, e.g. "Services"
    screen: Callable[[str], Screen[None]]  # the argument ("" for none) -> a new screen
    about: str  # one line for help and the palette
    aliases: tuple[str, ...] = ()
    # Home's count for a snapshot; None while it waits for the parse worker.
    count: Callable[[Loaded], object] | None = None
    # Detail views need an argument (which pod, which Service): not on home or `:`.
    detail: bool = False


def _once(stage: str, count: Callable[[Loaded], object]) -> Callable[[Loaded], object]:
    """A count that needs a stage of the parse worker: None (pending) until that stage is done."""
    return lambda loaded: count(loaded) if loaded.has(stage) else None


def _problems_count(loaded: Loaded) -> object:
    """The doctor's count once its sweep is done; before, the facts' as a lower bound."""
    found = loaded.problems
    if found is not None:
        return len(found)
    facts = loaded.fact_problems
    # Every finding of the facts is among the doctor's: "2+" is never more than its count.
    return None if facts is None else f"{len(facts)}+ {CHECKING}"


def _rules(loaded: Loaded) -> int | None:
    return loaded.rule_count()  # None (pending) until a big node's rules are counted


def _routing_count(loaded: Loaded) -> str:
    root = loaded.index.root_netns
    return f"{len(root.rules)} / {len(root.routes)}" if root is not None else ""


def _filters(loaded: Loaded) -> int:
    return sum(len(ns.tc_filters) for ns in loaded.snapshot.netns)


def _virtual_services(loaded: Loaded) -> str:
    # "-": no IPVS state at all (the screen says why), as against 0 virtual services.
    ipvs = loaded.snapshot.ipvs
    if ipvs is None:
        return "-"
    # Counted in the text, as analysis.index counts them for the mode: home must not parse.
    kinds = ("TCP ", "UDP ", "SCTP", "FWM ")
    return f"{sum(1 for line in ipvs.ip_vs.splitlines() if line[:4] in kinds)}"


VIEWS: tuple[View, ...] = (
    View(HOME, "Node", lambda arg: NodeScreen(), "the node's facts and this menu", ("home",)),
    View(
        "pods",
        "Pods",
        PodsScreen,
        "every pod sandbox: IP, netns, pause PID, host veth, bridge",
        ("po", "pod"),
        lambda ld: len(ld.snapshot.pods),
    ),
    View(
        "svc",
        "Services",
        ServicesScreen,
        "Services as kube-proxy programmed them: VIP:port -> endpoints",
        ("services", "service"),
        _once(SERVICES, lambda ld: len(ld.parsed.services())),
    ),
    View(
        "ipvs",
        "IPVS virtual services",
        IpvsScreen,
        "IPVS virtual services: schedulers, real servers, weights",
        ("lvs", "ipvsadm"),
        _virtual_services,
    ),
    View(
        "ns",
        "Namespaces",
        NamespacesScreen,
        "every namespace of every type, as lsns lists them",
        ("namespaces",),
        lambda ld: len(ld.snapshot.namespaces),
    ),
    View(
        "links",
        "Links",
        LinksScreen,
        "the root namespace's links: bridges, ports, overlays",
        ("link",),
        # What :links lists: the root namespace's links (pods' own are on their screens).
        lambda ld: len(ld.index.root_netns.links) if ld.index.root_netns else 0,
    ),
    View(
        "routes",
        "Rules and routes",
        RoutingScreen,
        "policy rules, then every table's routes (ip rule, ip route)",
        ("rules", "route", "rule"),
        _routing_count,
    ),
    View(
        "netconf",
        "IP sysctls (netconf)",
        NetconfScreen,
        "forwarding, rp_filter, proxy_arp per netns and device",
        ("sysctl", "sysctls"),
        lambda ld: sum(len(ns.netconf) for ns in ld.snapshot.netns),
    ),
    View(
        "tc",
        "Traffic control (tc)",
        TcScreen,
        "qdiscs and filters per netns and device; eBPF programs",
        ("qdisc", "qdiscs", "bpf"),
        lambda ld: count(_filters(ld), "filter"),
    ),
    View(
        "map",
        "Node map",
        MapScreen,
        "podpath draw as a tree: pods, veths, bridges, overlay, uplink",
        ("draw",),
        lambda ld: f"{1 + len(ld.peers)} node{'s' if ld.peers else ''}",
    ),
    View(
        "ipt",
        "Netfilter rules",
        NetfilterScreen,
        "iptables and nftables: backend, table, chain, rule",
        ("iptables", "netfilter", "nf", "nft"),
        _rules,
    ),
    View(
        "ct",
        "Conntrack entries",
        ConntrackScreen,
        "the conntrack table: original and reply, NAT explained",
        ("conntrack",),
        lambda ld: ld.conntrack_count(),
    ),
    View(
        "cni",
        "CNI configs / IPAM",
        CniScreen,
        "CNI config files and host-local IPAM reservations",
        ("ipam",),
        lambda ld: f"{len(ld.snapshot.cni.configs)} / {len(ld.snapshot.cni.allocations)}",
    ),
    View(
        "trace",
        "Trace a packet",
        TraceScreen,
        "follow a packet hop by hop, each kernel decision explained",
        count=lambda ld: "",
    ),
    View(
        "problems",
        "Problems",
        ProblemsScreen,
        "gaps, warnings and leaks, each with why",
        ("pb",),
        _problems_count,
    ),
    View("pod", "Pod", PodScreen, "one pod in tabs", detail=True),
    View("service", "Service", ServiceScreen, "one Service: endpoints and chain walk", detail=True),
)


def find(name: str) -> View | None:
    """The view called `name` (its canonical name, detail views included)."""
    return next((v for v in VIEWS if v.name == name), None)


def home() -> View:
    """The home view (the Node screen)."""
    found = find(HOME)
    assert found is not None, "the registry has no home view"
    return found


def jump_views() -> tuple[View, ...]:
    """The views `:` and the palette offer, in home's order."""
    return tuple(v for v in VIEWS if not v.detail)


def jump_words() -> list[str]:
    """Every name and alias `:` accepts, for completion."""
    return sorted({w for v in jump_views() for w in (v.name, *v.aliases)})


def resolve(text: str) -> tuple[View, str] | None:
    """The view and argument for what was typed after `:` (`pods web` -> Pods filtered by web)."""
    word, _, argument = text.strip().lstrip(":").partition(" ")
    word = word.lower()
    for view in jump_views():
        if word == view.name or word in view.aliases:
            return view, argument.strip()
    return None


def count_text(view: View, loaded: Loaded | None) -> str:
    """Home's count cell for a view: the count, "…" while pending, "" for none."""
    if view.count is None or loaded is None:
        return ""
    value = view.count(loaded)
    return PENDING if value is None else f"{value}"
