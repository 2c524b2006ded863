"""Whose rule is it: Services, NetworkPolicies, CNI plugins and host firewalls in real dumps."""

from __future__ import annotations

from pathlib import Path

from podpath.netfilter.iptables_save import parse_ruleset
from podpath.netfilter.nft import parse_nft
from podpath.netfilter.owners import Owner, iptables_owner, nft_owner
from podpath.trace.matches import MatchEnv
from podpath.trace.model import Packet
from podpath.trace.netfilter import NfEnv, walk_table

REALWORLD = Path(__file__).resolve().parents[1] / "fixtures" / "realworld"


def _owners(name: str, table: str = "filter") -> dict[tuple[str, int], Owner]:
    return _owners_of((REALWORLD / "iptables" / name).read_text(), table)


def _owners_of(dump: str, table: str) -> dict[tuple[str, int], Owner]:
    """The owner of each rule of one table of an iptables-save dump, by (chain, position)."""
    rs = parse_ruleset(dump, table)
    out = {}
    for t in rs.tables:
        for chain in rs.chains(t):
            for rule in rs.rules(t, chain.name):
                target = rule.target.name if rule.target else None
                out[(chain.name, rule.position)] = iptables_owner(
                    t, chain.name, rule.comments, target
                )
    return out


def test_kube_proxy_rules_name_their_service() -> None:
    """Every KUBE-SVC/SEP/EXT/FW rule of the real proxier dump names its ns/name:port."""
    owners = _owners("k8s-proxier-test-overall-rules-restore-input.txt", "nat")
    svc = {k: o for k, o in owners.items() if k[0].startswith(("KUBE-SVC-", "KUBE-SEP-"))}
    assert svc and all(o.kind == "service" and o.agent == "kube-proxy" for o in svc.values())
    assert {o.name for o in svc.values()} >= {"ns1/svc1:p80", "ns4/svc4:p80", "ns5/svc5:p80"}
    assert owners[("KUBE-MARK-MASQ", 1)].kind == "kube-proxy"


def test_kube_router_policy_chains_name_the_policy() -> None:
    """kube-router's KUBE-NWPLCY rules name NS/NAME from their comments."""
    owners = _owners("kube-router-netpol-builder-expected-rules.txt")
    assert {o.text for o in owners.values()} == {
        "NetworkPolicy nsA/simple-egress (kube-router)",
        "NetworkPolicy nsA/simple-ingress-egress (kube-router)",
    }


def test_calico_endpoint_chains_and_policy_drop() -> None:
    """Calico's per-endpoint chains are its CNI; their final drop is 'no policy accepted'."""
    owners = _owners("aks-calico-policy-chains-grep-fragment.txt")
    drop = next(o for (c, _), o in owners.items() if c.startswith("cali-tw-") and "none" in o.name)
    assert drop.kind == "network-policy" and "azve0cf0fbcf9f" in drop.name
    assert owners[("cali-fw-azve0cf0fbcf9f", 1)] == Owner(
        "cni", "Calico", "workload endpoint azve0cf0fbcf9f", "chain cali-fw-azve0cf0fbcf9f"
    )
    felix = _owners("calico-felix-fv-cali-iptables-dump-v1.8.4.txt")
    hooks = [o for (c, _), o in felix.items() if c in ("FORWARD", "INPUT")]
    assert hooks and all(o.agent == "Calico" for o in hooks)


def test_portmap_masq_agent_and_host_firewall() -> None:
    """portmap's CNI-HOSTPORT chains, ip-masq-agent's chain, and anything else: the host."""
    assert iptables_owner("nat", "CNI-HOSTPORT-DNAT", ()).agent == "portmap CNI"
    assert iptables_owner("nat", "IP-MASQ-AGENT", ()).agent == "ip-masq-agent"
    assert iptables_owner("filter", "nixos-fw", ()).agent == "NixOS firewall"
    assert iptables_owner("filter", "my-own", ()).kind == "host-firewall"


def test_nft_owners_kube_proxy_calico_and_foreign() -> None:
    """nft rules: kube-proxy's chains name the Service, Calico's table is Calico's."""
    assert nft_owner(
        "ip", "kube-proxy", "endpoint-X-ns1/svc1/tcp/p80__10.180.0.1/80", None
    ) == Owner(
        "service", "kube-proxy", "ns1/svc1:p80", "chain endpoint-X-ns1/svc1/tcp/p80__10.180.0.1/80"
    )
    calico = parse_nft(
        (REALWORLD / "nftables" / "calico-felix-fv-table-ip-calico-nft-list.txt").read_text()
    )
    agents = {nft_owner(r.family, r.table, r.chain, r.comment).agent for r in calico.rules}
    assert agents == {"Calico"}


def test_a_policy_drop_says_which_policy() -> None:
    """A packet dropped at the end of kube-router-style marking names the policy's owner."""
    text = (
        "*filter\n:FORWARD ACCEPT [0:0]\n:KUBE-POD-FW-AAAA - [0:0]\n:KUBE-NWPLCY-BBBB - [0:0]\n"
        '-A FORWARD -d 10.244.0.5/32 -m comment --comment "rule to jump traffic destined to POD '
        'name:web namespace: nsA to chain KUBE-POD-FW-AAAA" -j KUBE-POD-FW-AAAA\n'
        '-A KUBE-POD-FW-AAAA -m comment --comment "run through nw policy deny-all" -j KUBE-NWPLCY-BBBB\n'
        '-A KUBE-POD-FW-AAAA -m mark ! --mark 0x10000/0x10000 -m comment --comment "rule to REJECT '
        'traffic destined for POD name:web namespace: nsA" -j REJECT --reject-with icmp-port-unreachable\n'
        "COMMIT\n"
    )
    env = NfEnv(0, "node", "nft", MatchEnv(local_addresses=frozenset()))
    (out,) = walk_table(
        parse_ruleset(text),
        "filter",
        "FORWARD",
        Packet("10.244.0.9", "10.244.0.5", "tcp", 1, 80),
        env,
    )
    assert out.verdict == "REJECT"
    last = out.hops[-1].data["owner"]
    assert isinstance(last, dict) and last["name"] == "pod firewall of nsA/web"
    assert last["kind"] == "network-policy" and last["agent"] == "kube-router"


def test_aws_vpc_cni_chains_and_egress_cni_snat() -> None:
    """The AWS VPC CNI's chains, egress-cni's per-pod SNAT chain (not the bridge's ipMasq,
    though both carry `name: "NET" id: "..."`) and its FORWARD reject are the AWS CNI's."""
    dump = (
        "*nat\n"
        ":POSTROUTING ACCEPT [0:0]\n"
        ":AWS-SNAT-CHAIN-0 - [0:0]\n"
        ":CNI-E4-a87257f59d5867f73759a - [0:0]\n"
        ":CNI-0f5b9d4a1e2c3b4d5e6f7a8b - [0:0]\n"
        '-A POSTROUTING -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0\n'
        '-A POSTROUTING -s 169.254.172.2/32 -m comment --comment "name: \\"aws-cni\\" id: '
        '\\"b14\\"" -j CNI-E4-a87257f59d5867f73759a\n'
        '-A CNI-E4-a87257f59d5867f73759a -m comment --comment "name: \\"aws-cni\\" id: '
        '\\"b14\\"" -j SNAT --to-source 172.18.0.2 --random-fully\n'
        '-A CNI-0f5b9d4a1e2c3b4d5e6f7a8b -m comment --comment "name: \\"cbr0\\" id: \\"c1\\"" '
        "-j MASQUERADE\n"
        "COMMIT\n"
        "*filter\n"
        ":FORWARD ACCEPT [0:0]\n"
        "-A FORWARD -d 169.254.172.0/22 -m conntrack --ctstate NEW -m comment --comment "
        '"Block Node Local Pod access via IPv4" -j REJECT\n'
        "COMMIT\n"
    )
    out = {**_owners_of(dump, "nat"), **_owners_of(dump, "filter")}
    assert out[("POSTROUTING", 1)].agent == "AWS VPC CNI"
    egress = out[("CNI-E4-a87257f59d5867f73759a", 1)]
    assert (egress.kind, egress.agent, egress.name) == (
        "cni",
        "AWS VPC CNI egress-cni (SNAT)",
        "aws-cni",
    )
    assert out[("POSTROUTING", 2)].agent == "AWS VPC CNI egress-cni (SNAT)"
    assert out[("CNI-0f5b9d4a1e2c3b4d5e6f7a8b", 1)].agent == "bridge CNI (ipMasq)"
    block = out[("FORWARD", 1)]
    assert (block.kind, block.agent) == ("cni", "AWS VPC CNI"), block
