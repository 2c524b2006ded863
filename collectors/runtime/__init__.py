"""Container runtime state: pods and containers from containerd/CRI-O files and cgroups."""
