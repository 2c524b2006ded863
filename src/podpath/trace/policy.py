"""What a NetworkPolicy engine's rules decided for a packet: which policy allowed or denied it.

A policy engine's verdict is spread over several rules: kube-router's pod firewall
runs every policy selecting the pod (each marks 0x10000 when it allows the packet),
then REJECTs an unmarked packet with a rule that names only the pod. The drop is
therefore explained by the policies run on the way, and an allowed packet by the
rule that marked it.
"""

from __future__ import annotations

from dataclasses import replace

from podpath.netfilter.owners import KUBE_ROUTER_UNSELECTED, POLICY_JUMP, Owner
from podpath.trace.model import Hop

_POD_FIREWALL = "pod firewall of "
# kube-router's "a policy allowed it" mark (appendRuleToPolicyChain).
_ALLOW_MARK = "--set-xmark 0x10000/0x10000"


def _owner(hop: Hop) -> Owner | None:
    made = hop.data.get("owner") if hop.kind == "netfilter" else None
    if not isinstance(made, dict):
        return None
    return Owner(*(str(made.get(k) or "") for k in ("kind", "agent", "name", "how")))


def _taken(hop: Hop) -> bool:
    return hop.data.get("taken") is True


def denial(hops: tuple[Hop, ...]) -> str:
    """`; NetworkPolicies selecting ns/pod: ns/a, ns/b (kube-router); none allows it`, or ""."""
    last = next((o for h in reversed(hops) if (o := _owner(h)) is not None), None)
    if last is None or last.kind != "network-policy" or not last.name.startswith(_POD_FIREWALL):
        return ""
    pod = last.name[len(_POD_FIREWALL) :]
    namespace = pod.partition("/")[0]
    run: list[str] = []
    for hop in hops:
        owner = _owner(hop)
        if (
            owner
            and _taken(hop)
            and owner.agent == last.agent
            and owner.how.startswith(POLICY_JUMP)
        ):
            name = owner.name if "/" in owner.name else f"{namespace}/{owner.name}"
            if name not in run:
                run.append(name)
    if not run:
        return f"; no NetworkPolicy run for {pod} allowed it ({last.agent})"
    return (
        f"; NetworkPolicies selecting {pod}: {', '.join(run)} ({last.agent}); "
        "none allows this packet"
    )


def annotate(hops: tuple[Hop, ...]) -> tuple[Hop, ...]:
    """The hops, with a note on each rule by which a NetworkPolicy (or none) allowed the packet."""
    out: list[Hop] | None = None
    for i, hop in enumerate(hops):
        # Tested inline before an Owner is built: a Service with 250 endpoints gives 250
        # outcomes of ~250 hops each, and annotate sees every one of them.
        if hop.kind != "netfilter" or hop.data.get("taken") is not True:
            continue
        made = hop.data.get("owner")
        if not isinstance(made, dict) or made.get("kind") != "network-policy":
            continue
        owner = _owner(hop)
        assert owner is not None
        rule = str(hop.data.get("rule") or "")
        note = ""
        if _ALLOW_MARK in rule and "/" in owner.name:
            note = f"NetworkPolicy {owner.name} ({owner.agent}) allows this packet"
        elif _ALLOW_MARK in rule and owner.name == KUBE_ROUTER_UNSELECTED:
            note = f"no NetworkPolicy selects this pod in this direction: allowed ({owner.agent})"
        if note:
            out = list(hops) if out is None else out
            out[i] = replace(hop, details=(*hop.details, note))
    return hops if out is None else tuple(out)
