"""The one server interceptor: parse, authenticate, map errors, count.

For every RPC except health and reflection it
* parses the request itself, so a message that is not valid protobuf (bad
  wire data, invalid UTF-8 in a string) is INVALID_ARGUMENT with a reason,
  not gRPC's generic INTERNAL;
* checks the API key when authentication is on, and exposes the caller's
  tenant to the handler (imgsearch.serving.auth.current_tenant);
* turns exceptions into statuses: domain errors (imgsearch.errors) carry a
  client-safe message and their code; anything else is logged with its
  traceback and the client gets INTERNAL with a generic message;
* counts requests by method and status code, and their latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from imgsearch.errors import ImgsearchError, InvalidInput
from imgsearch.serving.auth import ApiKeys, is_open, set_tenant
from imgsearch.serving.metrics import ServiceMetrics

log = logging.getLogger(__name__)

Parse = Callable[[bytes], Any]


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and client-facing message for an exception."""
    if isinstance(exc, ImgsearchError):
        return grpc.StatusCode[exc.status_name], str(exc)
    return grpc.StatusCode.INTERNAL, "internal error (see server log)"


def _parser(deserializer: Parse | None, method: str) -> Parse:
    def parse(raw: bytes) -> Any:
        if deserializer is None:
            return raw
        try:
            return deserializer(raw)
        except (DecodeError, ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{method}: request is not a valid message ({exc})") from None

    return parse


async def _parsed_stream(raw: AsyncIterator[bytes], parse: Parse) -> AsyncIterator[Any]:
    async for item in raw:
        yield parse(item)


class ServiceInterceptor(aio.ServerInterceptor):
    def __init__(
        self, metrics: ServiceMetrics | None = None, api_keys: ApiKeys | None = None
    ) -> None:
        self._metrics = metrics
        self._api_keys = api_keys

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        if is_open(handler_call_details.method):
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        parse = _parser(handler.request_deserializer, method)
        kinds = (
            ("unary_unary", grpc.unary_unary_rpc_method_handler, False, False),
            ("unary_stream", grpc.unary_stream_rpc_method_handler, False, True),
            ("stream_unary", grpc.stream_unary_rpc_method_handler, True, False),
            ("stream_stream", grpc.stream_stream_rpc_method_handler, True, True),
        )
        for attr, make, stream_in, stream_out in kinds:
            behaviour = getattr(handler, attr)
            if behaviour is None:
                continue
            wrap = self._wrap_stream if stream_out else self._wrap_unary
            return make(
                wrap(method, behaviour, parse, stream_in),
                request_deserializer=None,  # parsed in the wrapper, see _parser
                response_serializer=handler.response_serializer,
            )
        return handler

    def _begin(self, request: Any, parse: Parse, stream_in: bool, context: Any) -> Any:
        if self._api_keys is not None:
            set_tenant(self._api_keys.authenticate(context.invocation_metadata()))
        return _parsed_stream(request, parse) if stream_in else parse(request)

    def _wrap_unary(
        self, method: str, behaviour: Callable[..., Any], parse: Parse, stream_in: bool
    ) -> Callable[..., Any]:
        async def wrapper(request: Any, context: aio.ServicerContext) -> Any:
            async with self._served(method, context):
                return await behaviour(self._begin(request, parse, stream_in, context), context)

        return wrapper

    def _wrap_stream(
        self, method: str, behaviour: Callable[..., Any], parse: Parse, stream_in: bool
    ) -> Callable[..., Any]:
        async def wrapper(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
            async with self._served(method, context):
                parsed = self._begin(request, parse, stream_in, context)
                async for response in behaviour(parsed, context):
                    yield response

        return wrapper

    @contextlib.asynccontextmanager
    async def _served(self, method: str, context: aio.ServicerContext) -> AsyncIterator[None]:
        """Around one call, unary or streaming: an error becomes the client's status
        (see _abort), and the call is counted with its final code and latency."""
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            yield
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED  # the caller left or its deadline passed
            raise
        except Exception as exc:
            code = self._status_for(exc, context)
            await self._abort(method, exc, context)
        finally:
            self._record(method, code, started)

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
