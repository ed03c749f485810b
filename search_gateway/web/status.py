"""gRPC status codes as HTTP statuses, and the error body.

The mapping is the one grpc-gateway and Google's HTTP APIs use
(google/rpc/code.proto), so HTTP clients can branch on familiar statuses and
gRPC clients recognise the `code`. The body has the shape of google.rpc.Status
in JSON: {"code": <int>, "message": "...", "details": []}; `status` adds the
code's name for people reading it with curl.
"""

from __future__ import annotations

import json

import grpc
from aiohttp import web

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}

# Statuses aiohttp raises itself (before a handler runs), as gRPC codes.
_FROM_HTTP: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
}


def code_for_http(status: int) -> grpc.StatusCode:
    """The gRPC code of an HTTP error status aiohttp produced."""
    if status in _FROM_HTTP:
        return _FROM_HTTP[status]
    return grpc.StatusCode.INTERNAL if status >= 500 else grpc.StatusCode.INVALID_ARGUMENT


def error_response(
    code: grpc.StatusCode, message: str, http_status: int | None = None
) -> web.Response:
    """A google.rpc.Status-shaped JSON error; `http_status` overrides the mapping
    where HTTP has a more precise word (413 for a body over the limit)."""
    body = {"code": code.value[0], "status": code.name, "message": message, "details": []}
    return web.Response(
        status=http_status or HTTP_STATUS[code],
        text=json.dumps(body),
        content_type="application/json",
    )
