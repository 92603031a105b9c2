"""The error categories every package's exception tree builds on.

Each package declares its own tree (``EpgError`` -> ``ChannelNotFound`` ...)
whose leaves also inherit one category below. The gRPC harness
(``headend.rpc``) and the HTTP faces map categories to status codes, each in
exactly one place, so domain code never names a transport status.
"""

from __future__ import annotations

from collections.abc import Mapping


class HeadendError(Exception):
    """Raised for any domain failure; never raised directly, only through a category."""

    def __init__(self, message: str, *, details: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, str] = dict(details or {})


class InvalidArgument(HeadendError):
    """Raised when a request field is malformed, out of range or missing."""

    def __init__(
        self, field: str, reason: str, *, details: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{field}: {reason}", details=details)
        self.field = field
        self.reason = reason


class NotFound(HeadendError):
    """Raised when the named entity does not exist (or is not visible to the caller)."""


class AlreadyExists(HeadendError):
    """Raised when creating an entity whose identity is taken."""


class FailedPrecondition(HeadendError):
    """Raised when the system is not in the state the operation requires."""


class Aborted(HeadendError):
    """Raised when an optimistic-concurrency version no longer matches."""


class PermissionDenied(HeadendError):
    """Raised when an authenticated principal acts outside its scope."""


class Unauthenticated(HeadendError):
    """Raised when credentials are missing, malformed, unknown or revoked."""


class ResourceExhausted(HeadendError):
    """Raised when a quota or limit (streams, batch size, capacity) is reached."""


class Unavailable(HeadendError):
    """Raised when a dependency (Redis, FFmpeg, an edge) cannot serve right now."""
