"""The CDN controller's exception tree; each leaf also inherits one category."""

from __future__ import annotations

from headend.errors import (
    AlreadyExists,
    FailedPrecondition,
    HeadendError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)


class CdnError(HeadendError):
    """Raised for any CDN controller failure; never raised directly."""


class InvalidEdge(CdnError, InvalidArgument):
    """Raised when an edge field (id, region code, tier, capacity, address) is malformed."""


class InvalidRouteRequest(CdnError, InvalidArgument):
    """Raised when a routing request names a bad channel, region or path."""


class EdgeNotFound(CdnError, NotFound):
    """Raised when an edge id is not registered."""


class EdgeExists(CdnError, AlreadyExists):
    """Raised when registering an edge id that is already registered."""


class EdgeConflict(CdnError, FailedPrecondition):
    """Raised when an edge change is impossible in its current state (e.g. parent unknown)."""


class NotAdmin(CdnError, PermissionDenied):
    """Raised when a non-admin principal calls the CDN control plane."""


class NoEdgeAvailable(CdnError, Unavailable):
    """Raised when no healthy edge, mid tier or origin can serve a request."""


class RegistryUnavailable(CdnError, Unavailable):
    """Raised when Redis cannot be reached for a registry read or write."""


class TokenInvalid(CdnError, PermissionDenied):
    """Raised when a signed URL is malformed, signed by an unknown key or tampered with."""


class TokenWrongClient(CdnError, PermissionDenied):
    """Raised when a signed URL bound to one client IP is presented by another."""


class TokenExpired(CdnError, FailedPrecondition):
    """Raised when a signed URL is past its expiry (HTTP faces answer 410 Gone)."""


class EdgeStartError(CdnError, Unavailable):
    """Raised when a local nginx edge cannot start or does not answer /healthz."""
