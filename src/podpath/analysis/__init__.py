"""Conclusions drawn from a snapshot that more than one front end shows.

Above the snapshot model and the parsers (netfilter, conntrack), below the trace
engine and the front ends: the CLI and the TUI ask these modules, never re-derive.
"""
