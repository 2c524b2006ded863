"""The trace engine: follow a packet through a snapshot, explaining every decision.

Public API:
    from podpath.trace.engine import trace          # trace(snapshots, probe, explain=False, reply=False) -> Trace
    from podpath.trace.probe import Probe, ProbeError
    from podpath.trace.model import Trace, Branch, Hop, Packet
    from podpath.trace.render import render_text, trace_json, dumps

Modules, one idea each: probe (what to trace), routing (policy rules + longest prefix +
the binary AND), links (neighbours, bridge FDB, VXLAN remotes), matches (iptables
matches), netfilter (iptables chain walker), nft (nftables walker), hooks (tables per
hook in priority order), reply (conntrack's reverse NAT), engine (the path), render.
"""
