"""Domain errors shared by every service.

Domain code raises these; the serving layer maps each class to one gRPC status
code (imgsearch.serving.interceptor), so handlers stay free of status logic and
no exception text of an *unexpected* error ever reaches a client.
"""

from __future__ import annotations

from typing import Any


class ImgsearchError(Exception):
    """Base class: an error whose message is safe and useful to show a client.

    A subclass names its gRPC status code in its class line
    (``class NotFound(ImgsearchError, status="NOT_FOUND")``); it is then the
    class attribute ``status_name``, and a subclass without one inherits its
    parent's."""

    status_name = "INTERNAL"

    def __init_subclass__(cls, status: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status_name = status


class InvalidInput(ImgsearchError, status="INVALID_ARGUMENT"):
    """The request is malformed or names bad data."""


class TooLarge(ImgsearchError, status="RESOURCE_EXHAUSTED"):
    """The request exceeds a size limit."""


class Overloaded(ImgsearchError, status="RESOURCE_EXHAUSTED"):
    """The work queue is full; retry later."""


class NotReady(ImgsearchError, status="UNAVAILABLE"):
    """The model is still loading or the server is draining."""


class Unavailable(ImgsearchError, status="UNAVAILABLE"):
    """A dependency (model service, Qdrant) cannot be reached."""


class NotFound(ImgsearchError, status="NOT_FOUND"):
    """A named entity does not exist."""


class FailedPrecondition(ImgsearchError, status="FAILED_PRECONDITION"):
    """The system is not in a state that allows the call."""


class PermissionDenied(ImgsearchError, status="PERMISSION_DENIED"):
    """The caller may not do this."""


class Unauthenticated(ImgsearchError, status="UNAUTHENTICATED"):
    """No or wrong credentials."""


class DeadlineExceeded(ImgsearchError, status="DEADLINE_EXCEEDED"):
    """The caller's deadline passed before the work finished."""
