"""Which qdrant-client failures become StoreUnavailable, and which are retried."""

from __future__ import annotations

import httpx
import pytest
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from search_gateway.store.qdrant_errors import unavailable_reason


def _http(status: int) -> UnexpectedResponse:
    return UnexpectedResponse(status, "reason", b"{}", httpx.Headers())


@pytest.mark.parametrize(
    ("exc", "reason", "retryable"),
    [
        (ResponseHandlingException(httpx.ConnectError("refused")), "ConnectError: refused", True),
        (_http(503), "HTTP 503", True),
        (_http(429), "HTTP 429", True),
        (_http(401), "HTTP 401: the API key was refused", False),
        (ConnectionRefusedError("nope"), "ConnectionRefusedError: nope", True),
        (_http(400), None, False),  # a bad request is a bug, not an outage
        (_http(404), None, False),
        (ValueError("x"), None, False),
    ],
)
def test_unavailable_reason(exc: BaseException, reason: str | None, retryable: bool) -> None:
    assert unavailable_reason(exc) == (reason, retryable)
