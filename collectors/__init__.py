"""The only code in podpath that reads a node: procfs, netlink, runtime state, netfilter."""
