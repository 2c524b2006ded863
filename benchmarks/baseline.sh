#!/bin/sh
# The shell tools podpath replaces, as docs/performance.md lists them: lsns -J; per netns ip -j -d
# link, ip -j addr, ip -j route show table all, ip -j neigh; root ip -j -d
# link/addr/route/rule/neigh, bridge -j fdb; iptables-save; conntrack -L.
# `all-nft` adds kube-proxy's native nftables table, for the nftables-mode run (where
# iptables-save shows no Service rules). Run inside the node; output goes to stdout.
#   baseline.sh [all|all-nft|lsns|netns|root|iptables|netfilter|nft|conntrack]
set -u
part=${1:-all}

do_lsns() { lsns -J; }

do_netns() {
  # Every named pod netns, as the article walks them by hand.
  for path in /run/netns/*; do
    [ -e "$path" ] || continue
    ns=${path##*/}
    ip -n "$ns" -j -d link
    ip -n "$ns" -j addr
    ip -n "$ns" -j route show table all
    ip -n "$ns" -j neigh
  done
}

do_root() {
  ip -j -d link; ip -j addr; ip -j route show table all; ip -j rule; ip -j neigh
  bridge -j fdb
}

do_iptables() { iptables-save; }

do_nft() {
  # kube-proxy's native table. (`nft list tables` is not used: nft 1.0.6 downloads
  # every rule of every table to list their names, 24-32 s beside 110k iptables-nft rules.)
  nft -j list table ip kube-proxy 2>/dev/null
}

do_conntrack() { conntrack -L -o extended 2>/dev/null; }

case "$part" in
  all) do_lsns; do_netns; do_root; do_iptables; do_conntrack ;;
  all-nft) do_lsns; do_netns; do_root; do_iptables; do_nft; do_conntrack ;;
  lsns) do_lsns ;;
  netns) do_netns ;;
  root) do_root ;;
  iptables) do_iptables ;;
  netfilter) do_iptables; do_nft ;;
  nft) do_nft ;;
  conntrack) do_conntrack ;;
  *) echo "usage: baseline.sh [all|all-nft|lsns|netns|root|iptables|netfilter|nft|conntrack]" >&2; exit 2 ;;
esac
