"""One place that turns exceptions into gRPC statuses and records metrics.

Domain errors (imgsearch.errors) carry a client-safe message and map to their
status code. Anything else is a bug or a fault: it is logged with its
traceback and the client gets INTERNAL with a generic message, never the
exception text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from imgsearch.errors import ImgsearchError
from imgsearch.serving.metrics import ServiceMetrics

log = logging.getLogger(__name__)


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and client-facing message for an exception."""
    if isinstance(exc, ImgsearchError):
        return grpc.StatusCode[exc.status_name], str(exc)
    return grpc.StatusCode.INTERNAL, "internal error (see server log)"


class ErrorAndMetricsInterceptor(aio.ServerInterceptor):
    """Maps exceptions to statuses; counts requests by method and code."""

    def __init__(self, metrics: ServiceMetrics | None = None) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        if method in ("Check", "Watch", "ServerReflectionInfo"):
            return handler  # health and reflection need no wrapping
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(method, handler.stream_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                self._wrap_stream(method, handler.stream_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _wrap_unary(self, method: str, behaviour: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapper(request: Any, context: aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return await behaviour(request, context)
            except Exception as exc:
                code = self._status_for(exc, context)
                await self._abort(method, exc, context)
            finally:
                self._record(method, code, started)

        return wrapper

    def _wrap_stream(self, method: str, behaviour: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapper(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                async for response in behaviour(request, context):
                    yield response
            except Exception as exc:
                code = self._status_for(exc, context)
                await self._abort(method, exc, context)
            finally:
                self._record(method, code, started)

        return wrapper

    @staticmethod
    def _status_for(exc: Exception, context: aio.ServicerContext) -> grpc.StatusCode:
        if isinstance(exc, aio.AbortError):
            code = context.code()
            return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
        return status_of(exc)[0]

    async def _abort(self, method: str, exc: Exception, context: aio.ServicerContext) -> None:
        if isinstance(exc, aio.AbortError):
            raise exc  # the handler aborted deliberately; keep its status
        code, message = status_of(exc)
        if code == grpc.StatusCode.INTERNAL:
            log.error("%s failed", method, exc_info=exc)
        else:
            log.info("%s -> %s: %s", method, code.name, message)
        await context.abort(code, message)

    def _record(self, method: str, code: grpc.StatusCode, started: float) -> None:
        if self._metrics is None:
            return
        self._metrics.requests.labels(method, code.name).inc()
        self._metrics.latency.labels(method).observe(time.perf_counter() - started)
