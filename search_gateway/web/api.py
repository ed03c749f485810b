"""The JSON endpoints: proto messages in protobuf's JSON mapping, handled by
the gRPC GatewayServicer itself.

Each handler parses the body into the request message with json_format (bad
JSON or an unknown field is INVALID_ARGUMENT naming the problem), calls the
servicer method the gRPC server calls, and prints the response message. The
servicer raises domain errors; the app's middleware maps them to HTTP, so no
validation or tenancy rule lives here.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message
from grpc import aio

from imgsearch.errors import InvalidInput, NotFound
from imgsearch.v1 import gateway_pb2
from search_gateway.servicer import GatewayServicer

M = TypeVar("M", bound=Message)

JSON = "application/json"


class HttpCall:
    """The part of grpc.aio.ServicerContext the servicer reads (the deadline),
    for a call that arrived over HTTP. `timeout_s` comes from the optional
    `grpc-timeout`-like header `x-timeout-s`; None means no deadline."""

    def __init__(self, timeout_s: float | None) -> None:
        self._deadline = None if timeout_s is None else time.monotonic() + timeout_s

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def as_context(self) -> aio.ServicerContext:
        # The servicer only calls time_remaining(); see GatewayServicer.
        return cast(aio.ServicerContext, self)


def call_of(request: web.Request) -> aio.ServicerContext:
    raw = request.headers.get("x-timeout-s")
    if raw is None:
        return HttpCall(None).as_context()
    try:
        timeout = float(raw)
    except ValueError:
        raise InvalidInput(f"x-timeout-s must be a number of seconds, not {raw!r}") from None
    if not 0 < timeout <= 3600:
        raise InvalidInput("x-timeout-s must be within (0, 3600] seconds")
    return HttpCall(timeout).as_context()


def to_json(message: Message) -> web.Response:
    """The message in the standard JSON mapping, defaults printed (so pages
    and scripts need not know proto3's default values)."""
    text = json_format.MessageToJson(
        message, always_print_fields_with_no_presence=True, indent=None
    )
    return web.Response(text=text, content_type=JSON)


async def parse_body(request: web.Request, message: M) -> M:
    """Fills `message` from the JSON body (an empty body is the empty message)."""
    if request.content_type != JSON and request.can_read_body:
        # Also what makes a cross-site form post impossible: a browser sends
        # application/json cross-origin only after a CORS preflight we refuse.
        raise web.HTTPUnsupportedMediaType(text=f"send the body as {JSON}")
    text = await request.text()  # raises 413 past the app's client_max_size
    if not text.strip():
        return message
    try:
        return json_format.Parse(text, message)
    except json_format.ParseError as exc:
        name = message.DESCRIPTOR.full_name
        raise InvalidInput(f"body is not a valid {name} in JSON: {exc}") from None


Unary = Callable[[Any, aio.ServicerContext], Awaitable[Message]]


class JsonApi:
    """The handlers, bound to one servicer."""

    def __init__(self, servicer: GatewayServicer) -> None:
        self.servicer = servicer

    async def _unary(self, request: web.Request, method: Unary, message: Message) -> web.Response:
        parsed = await parse_body(request, message)
        return to_json(await method(parsed, call_of(request)))

    async def search(self, request: web.Request) -> web.Response:
        return await self._unary(request, self.servicer.Search, gateway_pb2.SearchRequest())

    async def get(self, request: web.Request) -> web.Response:
        return await self._unary(request, self.servicer.Get, gateway_pb2.GetRequest())

    async def delete(self, request: web.Request) -> web.Response:
        return await self._unary(request, self.servicer.Delete, gateway_pb2.DeleteRequest())

    async def stats(self, request: web.Request) -> web.Response:
        return to_json(await self.servicer.Stats(gateway_pb2.StatsRequest(), call_of(request)))

    async def point(self, request: web.Request) -> web.Response:
        """GET /v1/points/{id}: one Hit, 404 when unknown (or another tenant's)."""
        return to_json(await fetch_point(self.servicer, request.match_info["id"], request))

    async def ingest(self, request: web.Request) -> web.Response:
        """One image: an IngestRequest in, its IngestResult out (per-image
        failures are a FAILED result with 200, as in the gRPC stream)."""
        parsed = await parse_body(request, gateway_pb2.IngestRequest())

        async def one() -> AsyncIterator[gateway_pb2.IngestRequest]:
            yield parsed

        results = [r async for r in self.servicer.Ingest(one(), call_of(request))]
        return to_json(results[0])


async def fetch_point(
    servicer: GatewayServicer, point_id: str, request: web.Request
) -> gateway_pb2.Hit:
    """The caller's point `point_id` through Get (so tenancy is Get's rule)."""
    reply = await servicer.Get(gateway_pb2.GetRequest(ids=[point_id]), call_of(request))
    if not reply.points:
        raise NotFound(f"no point with id {point_id}")
    return reply.points[0]
