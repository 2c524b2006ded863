"""A small client of the Kubernetes CRI v1 API (runtime.v1.RuntimeService) over gRPC.

`wire` encodes and decodes the messages of the trimmed api.proto as dicts; `channel`
carries unary gRPC calls over HTTP/2 on a unix socket (pure Python, with h2); `client`
calls a runtime's socket with them. The lab creates pods with it, exactly as kubelet
does; the collectors read pods with its read-only calls, as crictl does.
"""
