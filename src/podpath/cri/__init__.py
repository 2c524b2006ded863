"""A small client of the Kubernetes CRI v1 API (runtime.v1.RuntimeService) over gRPC.

`wire` encodes and decodes the messages of the trimmed api.proto as dicts; `client`
calls a runtime's socket with grpcio. The lab creates pods with it, exactly as kubelet
does; the collectors read pods with its read-only calls, as crictl does.
"""
