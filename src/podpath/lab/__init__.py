"""The lab: isolated Kubernetes-like nodes built from real kernel parts, runc and CNI."""
