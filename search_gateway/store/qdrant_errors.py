"""Which qdrant-client exceptions mean "Qdrant cannot serve now" (StoreUnavailable).

Everything else (a bad request, a bug) propagates unchanged, so it surfaces as
INTERNAL with a logged traceback instead of a misleading "retry later".
"""

from __future__ import annotations

import contextlib

from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

# HTTP statuses meaning "the server is there but cannot serve now": retried.
_RETRYABLE_HTTP = {429, 502, 503, 504}


def unavailable_reason(exc: BaseException) -> tuple[str | None, bool]:
    """(reason, retryable) when exc means Qdrant cannot serve; (None, False) otherwise."""
    if isinstance(exc, ResponseHandlingException):  # transport failure under the REST client
        return f"{type(exc.source).__name__}: {exc.source}", True
    if isinstance(exc, ResourceExhaustedResponse):
        return "rate limited", True
    if isinstance(exc, UnexpectedResponse) and exc.status_code is not None:
        if exc.status_code in _RETRYABLE_HTTP:
            return f"HTTP {exc.status_code}", True
        if exc.status_code in (401, 403):
            return f"HTTP {exc.status_code}: the API key was refused", False
        return None, False
    with contextlib.suppress(ImportError):
        import grpc

        if isinstance(exc, grpc.RpcError) and isinstance(exc, grpc.Call):
            code = exc.code()
            if code in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            ):
                return f"gRPC {code.name}", True
            if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                return f"gRPC {code.name}: the API key was refused", False
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return f"{type(exc).__name__}: {exc}", True
    return None, False
