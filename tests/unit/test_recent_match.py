"""A rule's `-m recent` options are one decision (xt_recent, kube-proxy's ClientIP
affinity): evaluate_rule decides it once and gives what each option's own
evaluate_match gives, negated or not, pinned, expired, absent or unknown."""

from __future__ import annotations

import itertools

import pytest

from podpath.netfilter.iptables_save import parse_rule
from podpath.snapshot.model import RecentEntry, RecentList
from podpath.trace.matches import MatchEnv, evaluate_match, evaluate_rule
from podpath.trace.model import Packet

CLIENT = "10.244.0.5"
RULES = {
    "rcheck": "-A KUBE-SVC-X -m recent --name KUBE-SEP-A --rcheck --seconds 10800 --reap"
    " -j KUBE-SEP-A",
    "negated": "-A KUBE-SVC-X -m recent ! --rcheck --name KUBE-SEP-A --seconds 10800 -j KUBE-SEP-A",
    "no-window": "-A KUBE-SVC-X -m recent --name KUBE-SEP-A --rcheck -j KUBE-SEP-A",
    "with-a-port": "-A KUBE-SVC-X -p tcp -m recent --name KUBE-SEP-A --rcheck --seconds 10"
    " -m tcp --dport 81 -j KUBE-SEP-A",
    "set": "-A KUBE-SEP-A -p tcp -m recent --set --name KUBE-SEP-A --mask 255.255.255.255"
    " --rsource -j DNAT --to-destination 10.244.1.7:8080",
}
LISTS = {
    "pinned": (RecentList("KUBE-SEP-A", (RecentEntry(CLIENT, 1, 5.0),)),),
    "expired": (RecentList("KUBE-SEP-A", (RecentEntry(CLIENT, 1, 20000.0),)),),
    "age-unknown": (RecentList("KUBE-SEP-A", (RecentEntry(CLIENT, 1, None),)),),
    "absent": (RecentList("KUBE-SEP-B", (RecentEntry(CLIENT, 1, 5.0),)), RecentList("KUBE-SEP-A")),
    "unread": None,
}


@pytest.mark.parametrize(("rule_name", "lists_name"), itertools.product(RULES, LISTS))
def test_a_rules_recent_options_decide_as_each_one_does(rule_name: str, lists_name: str) -> None:
    rule = parse_rule("nat", "KUBE-SVC-X", 1, RULES[rule_name])
    env = MatchEnv(frozenset(), recent=LISTS[lists_name])
    packet = Packet(CLIENT, "10.96.0.10", "tcp", 40000, 80)
    each = [evaluate_match(m, rule, packet, env) for m in rule.matches if m.module != "statistic"]
    got = evaluate_rule(rule, packet, env)
    assert got.matched == all(r is True for r in each)
    assert bool(got.unknown) == (False not in each and None in each)


def test_a_negated_rcheck_matches_a_client_not_pinned_and_not_one_pinned() -> None:
    rule = parse_rule("nat", "KUBE-SVC-X", 1, RULES["negated"])
    packet = Packet(CLIENT, "10.96.0.10", "tcp", 40000, 80)
    assert [m.negated for m in rule.matches if m.option == "rcheck"] == [True]
    pinned = evaluate_rule(rule, packet, MatchEnv(frozenset(), recent=LISTS["pinned"]))
    absent = evaluate_rule(rule, packet, MatchEnv(frozenset(), recent=LISTS["absent"]))
    assert (pinned.matched, absent.matched) == (False, True)
