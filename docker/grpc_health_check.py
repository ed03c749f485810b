"""Container health check: exit 0 when a gRPC server reports SERVING.

The images carry no grpc_health_probe binary; Docker and docker compose run
this instead (Kubernetes uses its native `grpc:` probes). Plaintext only, like
the Kubernetes probes: with TLS on, health-check the pod another way.

    python /opt/imgsearch/grpc_health_check.py 127.0.0.1:50051 imgsearch.v1.Embedder
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING


def check(address: str, service: str = "", timeout_s: float = 3.0) -> bool:
    """True when `service` ("" = the whole server) at `address` is SERVING."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as exc:
            print(f"{address} {service or '(server)'}: {exc.code().name}", file=sys.stderr)
            return False
    if reply.status != SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        print(f"{address} {service or '(server)'}: {status}", file=sys.stderr)
        return False
    return True


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print("usage: grpc_health_check.py HOST:PORT [SERVICE]", file=sys.stderr)
        return 2
    return 0 if check(argv[0], argv[1] if len(argv) > 1 else "") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
