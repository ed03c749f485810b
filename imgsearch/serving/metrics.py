"""Prometheus metrics, one registry per server (so tests can run several
servers in one process), exported on a separate HTTP port.

These are the numbers an operator scales by: request rate and errors by
status, latency, how full the model batches are, and how deep the queue is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass
class ServiceMetrics:
    """The metric families of one service."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    batch_size: Histogram
    batch_seconds: Histogram
    queue_wait: Histogram
    queue_depth: Gauge
    items: Counter

    @classmethod
    def create(cls, service: str) -> ServiceMetrics:
        reg = CollectorRegistry()
        prefix = f"imgsearch_{service}"
        return cls(
            registry=reg,
            requests=Counter(
                f"{prefix}_requests",
                "RPCs handled, by method and gRPC status code.",
                ["method", "code"],
                registry=reg,
            ),
            latency=Histogram(
                f"{prefix}_request_seconds",
                "RPC latency, by method.",
                ["method"],
                buckets=_LATENCY_BUCKETS,
                registry=reg,
            ),
            batch_size=Histogram(
                f"{prefix}_batch_size",
                "Items per model batch (dynamic batching).",
                ["kind"],
                buckets=_BATCH_BUCKETS,
                registry=reg,
            ),
            batch_seconds=Histogram(
                f"{prefix}_batch_seconds",
                "Model time per batch.",
                ["kind"],
                buckets=_LATENCY_BUCKETS,
                registry=reg,
            ),
            queue_wait=Histogram(
                f"{prefix}_queue_wait_seconds",
                "Time the oldest item of a batch waited in the queue.",
                ["kind"],
                buckets=_LATENCY_BUCKETS,
                registry=reg,
            ),
            queue_depth=Gauge(
                f"{prefix}_queue_depth",
                "Items waiting for a model batch.",
                ["kind"],
                registry=reg,
            ),
            items=Counter(
                f"{prefix}_items",
                "Items (images, texts) processed by the model.",
                ["kind"],
                registry=reg,
            ),
        )

    def batch_observer(self, kind: str):  # type: ignore[no-untyped-def]
        """A DynamicBatcher `on_batch` callback recording this kind's batches."""

        def observe(size: int, wait_s: float, run_s: float) -> None:
            self.batch_size.labels(kind).observe(size)
            self.batch_seconds.labels(kind).observe(run_s)
            self.queue_wait.labels(kind).observe(wait_s)
            self.items.labels(kind).inc(size)

        return observe

    def depth_observer(self, kind: str):  # type: ignore[no-untyped-def]
        gauge = self.queue_depth.labels(kind)
        return gauge.set

    def serve_http(self, port: int, host: str = "0.0.0.0") -> int | None:
        """Exports the metrics on http://host:port/metrics.

        Port 0 picks a free port; a negative port disables the exporter.
        Returns the bound port, or None when disabled.
        """
        if port < 0:
            return None
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        bound = int(server.server_address[1])
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound
