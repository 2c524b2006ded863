"""procfs: processes, their namespaces (lsns-style) and the node's own facts."""
