"""The CDN controller's exception tree; each leaf also inherits one category."""

from __future__ import annotations

from headend.errors import (
    AlreadyExists,
    FailedPrecondition,
    HeadendError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
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


class PlaylistRefused(CdnError, Unavailable):
    """Raised when a parent's playlist read by the prefetch sidecar is too large,
    malformed, or names a URI outside the channel's live directory."""


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


class FrontDoorError(CdnError):
    """Raised for any front door refusal; never raised directly. ``details["reason"]``
    is the short machine-readable reason a box acts on."""

    def __init__(self, message: str, *, reason: str, **details: str) -> None:
        super().__init__(message, details={"reason": reason, **details})


class LoginFailed(FrontDoorError, Unauthenticated):
    """Raised when a box's MAC and device secret do not match a bound, activated box."""


class PlaybackForbidden(FrontDoorError, PermissionDenied):
    """Raised when a box may not play: not entitled, suspended, blocked, expired..."""


class BlackedOut(FrontDoorError, PermissionDenied):
    """Raised when the programme asked for is blacked out in the box's region."""


class CatchupRefused(FrontDoorError, PermissionDenied):
    """Raised when a catch-up window is not allowed (programme barred, too old, disabled)."""


class BadPlayRequest(FrontDoorError, InvalidArgument):
    """Raised when a box's request names a malformed window, programme or lease."""

    def __init__(self, field_name: str, message: str, *, reason: str = "bad_request") -> None:
        InvalidArgument.__init__(self, field_name, message, details={"reason": reason})


class RateLimited(FrontDoorError, ResourceExhausted):
    """Raised when a box or address is over a request or login rate limit (429)."""


class LeaseReplaced(FrontDoorError, FailedPrecondition):
    """Raised when a player polls a lease its box replaced by starting another stream."""


class FormatUnavailable(FrontDoorError, FailedPrecondition):
    """Raised when a box asks for a channel as CMAF-HLS or DASH and cannot have it: the
    channel is not published as CMAF, or its picture is switched to another feed (an
    emergency alert, a blackout's slate), which only MPEG-TS HLS shows. ``details["hls"]``
    is the channel's MPEG-TS master, which plays."""


class StreamLimit(FrontDoorError, ResourceExhausted):
    """Raised when the subscriber's concurrent streams are all in use (429, Retry-After)."""


class UpstreamUnavailable(FrontDoorError, Unavailable):
    """Raised when the EPG or subscriber service cannot answer (503, Retry-After)."""


class ProgrammeUnknown(FrontDoorError, NotFound):
    """Raised when a catch-up request names a programme the EPG does not have."""


class BoxTokenRejected(FrontDoorError, Unauthenticated):
    """Raised when a request carries no box token, or a bad or expired one (401)."""


class ChannelOffAir(FrontDoorError, NotFound):
    """Raised when a channel the box may watch is not being transcoded right now."""


class KeyUnknown(FrontDoorError, NotFound):
    """Raised when a box asks for a content key id that is unknown or not the channel's
    (or asset's) it names: the two are indistinguishable on purpose."""
