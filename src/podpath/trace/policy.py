"""What a NetworkPolicy engine's rules decided for a packet: which policy allowed or denied it.

A policy engine's verdict is spread over several rules: kube-router's pod firewall
runs every policy selecting the pod (each marks 0x10000 when it allows the packet),
then REJECTs an unmarked packet with a rule that names only the pod. The drop is
therefore explained by the policies run on the way, and an allowed packet by the
rule that marked it.
"""

from __future__ import annotations

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


def allow_note(owner: Owner, rule_text: str) -> str:
    """The note on a taken rule by which a NetworkPolicy (or none) allowed the packet, or "".

    Written on the rule's hop as the walk takes it (once per rule evaluated): a Service
    with 250 endpoints gives 250 outcomes of ~250 hops each, which a pass over every
    outcome's hops would read again and again.
    """
    if owner.kind != "network-policy" or _ALLOW_MARK not in rule_text:
        return ""
    if "/" in owner.name:
        return f"NetworkPolicy {owner.name} ({owner.agent}) allows this packet"
    if owner.name == KUBE_ROUTER_UNSELECTED:
        return f"no NetworkPolicy selects this pod in this direction: allowed ({owner.agent})"
    return ""
