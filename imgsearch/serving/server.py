"""gRPC server bootstrap shared by every service.

`create_server` builds a grpc.aio server with the standard health service,
server reflection, the error/metrics interceptor and deliberate message-size
limits, bound to an address (port 0 in tests). `run_until_signal` serves until
SIGTERM/SIGINT, then drains: health flips to NOT_SERVING so load balancers
stop sending work, in-flight RPCs get `grace_s` to finish, and the caller's
shutdown hook releases models and stores.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from imgsearch.serving.auth import ApiKeys
from imgsearch.serving.interceptor import ServiceInterceptor
from imgsearch.serving.metrics import ServiceMetrics

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class ServiceBinding:
    """A servicer, the generated function that registers it, its full name."""

    servicer: Any
    add_to_server: Callable[[Any, aio.Server], None]
    full_name: str  # e.g. "imgsearch.v1.Embedder"


@dataclass
class RunningServer:
    """What `create_server` returns: the server, its bound port, its health."""

    server: aio.Server
    port: int
    health: HealthServicer
    service_names: tuple[str, ...]

    async def set_serving(self, serving: bool) -> None:
        """Sets the overall ("") and per-service health status."""
        status = SERVING if serving else NOT_SERVING
        for name in ("", *self.service_names):
            await self.health.set(name, status)


def server_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    """Channel options: explicit message limits and keepalive tolerance."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        # Clients (the gateway) keep connections warm with pings; accept them.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.so_reuseport", 0),
        # Close each connection after a minute (in-flight calls get a grace
        # period): clients then re-resolve DNS, so pods added by an autoscaler
        # receive traffic from round-robin clients within about a minute.
        ("grpc.max_connection_age_ms", 60_000),
        ("grpc.max_connection_age_grace_ms", 60_000),
    ]


async def create_server(
    address: str,
    bindings: Sequence[ServiceBinding],
    *,
    max_message_bytes: int,
    metrics: ServiceMetrics | None = None,
    credentials: grpc.ServerCredentials | None = None,
    api_keys: ApiKeys | None = None,
) -> RunningServer:
    """Builds and starts a server; health starts NOT_SERVING.

    Args:
        address: "host:port"; port 0 picks a free port (tests).
        bindings: the services to serve.
        max_message_bytes: largest request/response; bigger requests are
            refused by gRPC itself with RESOURCE_EXHAUSTED.
        metrics: where request counts and latencies go.
        credentials: TLS credentials; None serves plaintext.
        api_keys: when set, every RPC but health and reflection needs a key.
    """
    server = aio.server(
        interceptors=[ServiceInterceptor(metrics, api_keys)],
        options=server_options(max_message_bytes),
    )
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = tuple(b.full_name for b in bindings)
    for b in bindings:
        b.add_to_server(b.servicer, server)
    reflection.enable_server_reflection(
        (
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise OSError(f"cannot bind {address}")
    running = RunningServer(server=server, port=port, health=health, service_names=names)
    await running.set_serving(False)
    await server.start()
    log.info("listening on %s (port %d): %s", address, port, ", ".join(names))
    return running


async def drain(running: RunningServer, grace_s: float) -> None:
    """NOT_SERVING first, then let in-flight RPCs finish within grace_s."""
    await running.health.enter_graceful_shutdown()
    await running.server.stop(grace_s)


async def run_until_signal(
    running: RunningServer,
    grace_s: float,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serves until SIGTERM or SIGINT, then drains gracefully.

    Keep grace_s below the pod's terminationGracePeriodSeconds.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server_done = asyncio.ensure_future(running.server.wait_for_termination())
    stop_wait = asyncio.ensure_future(stop.wait())
    await asyncio.wait({server_done, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    log.info("shutting down: draining for up to %.0f s", grace_s)
    await drain(running, grace_s)
    if on_shutdown is not None:
        await on_shutdown()
    stop_wait.cancel()
    server_done.cancel()
    log.info("stopped")
