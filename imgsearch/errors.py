"""Domain errors shared by every service.

Domain code raises these; the serving layer maps each class to one gRPC status
code (imgsearch.serving.interceptor), so handlers stay free of status logic and
no exception text of an *unexpected* error ever reaches a client.
"""

from __future__ import annotations


class ImgsearchError(Exception):
    """Base class: an error whose message is safe and useful to show a client."""

    status_name = "INTERNAL"


class InvalidInput(ImgsearchError):
    """The request is malformed or names bad data (INVALID_ARGUMENT)."""

    status_name = "INVALID_ARGUMENT"


class TooLarge(ImgsearchError):
    """The request exceeds a size limit (RESOURCE_EXHAUSTED)."""

    status_name = "RESOURCE_EXHAUSTED"


class Overloaded(ImgsearchError):
    """The work queue is full; retry later (RESOURCE_EXHAUSTED)."""

    status_name = "RESOURCE_EXHAUSTED"


class NotReady(ImgsearchError):
    """The model is still loading or the server is draining (UNAVAILABLE)."""

    status_name = "UNAVAILABLE"


class Unavailable(ImgsearchError):
    """A dependency (model service, Qdrant) cannot be reached (UNAVAILABLE)."""

    status_name = "UNAVAILABLE"


class NotFound(ImgsearchError):
    """A named entity does not exist (NOT_FOUND)."""

    status_name = "NOT_FOUND"


class FailedPrecondition(ImgsearchError):
    """The system is not in a state that allows the call (FAILED_PRECONDITION)."""

    status_name = "FAILED_PRECONDITION"


class PermissionDenied(ImgsearchError):
    """The caller may not do this (PERMISSION_DENIED)."""

    status_name = "PERMISSION_DENIED"


class Unauthenticated(ImgsearchError):
    """No or wrong credentials (UNAUTHENTICATED)."""

    status_name = "UNAUTHENTICATED"


class DeadlineExceeded(ImgsearchError):
    """The caller's deadline passed before the work finished."""

    status_name = "DEADLINE_EXCEEDED"
