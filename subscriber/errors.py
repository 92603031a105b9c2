"""The subscriber service's exception tree; each leaf also carries a ``headend.errors`` category."""

from __future__ import annotations

from headend.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    HeadendError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)


class SubscriberError(HeadendError):
    """Raised for any subscriber-service failure; never raised directly."""


class InvalidField(SubscriberError, InvalidArgument):
    """Raised when a request field (MAC, region code, date, limit, id...) is malformed."""


class CarrierNotFound(SubscriberError, NotFound):
    """Raised when a carrier does not exist."""


class CarrierExists(SubscriberError, AlreadyExists):
    """Raised when creating a carrier whose id is taken."""


class CarrierNotActive(SubscriberError, FailedPrecondition):
    """Raised when a suspended carrier tries to change its data."""


class EntitlementNotFound(SubscriberError, NotFound):
    """Raised when revoking a package the subscriber is not entitled to."""


class SubscriberNotFound(SubscriberError, NotFound):
    """Raised when the carrier has no subscriber with that id."""


class SubscriberExists(SubscriberError, AlreadyExists):
    """Raised when creating a subscriber whose id the carrier already uses."""


class VersionMismatch(SubscriberError, Aborted):
    """Raised when an expected version no longer matches (a concurrent change won)."""


class SubscriberTerminated(SubscriberError, FailedPrecondition):
    """Raised when changing a terminated subscriber (terminated is final)."""


class DeviceNotFound(SubscriberError, NotFound):
    """Raised when no box with that MAC is bound to the caller's carrier."""


class MacAlreadyBound(SubscriberError, AlreadyExists):
    """Raised when a MAC is already bound (anywhere; the holder is never named)."""


class DeviceBlocked(SubscriberError, FailedPrecondition):
    """Raised when activating or replacing into a blocked box."""


class DeviceLoginFailed(SubscriberError, Unauthenticated):
    """Raised when a MAC and device secret do not match an activated box."""


class PlaybackDenied(SubscriberError, FailedPrecondition):
    """Raised when a lease is started for a box that may not play the channel."""


class StreamLimitReached(SubscriberError, ResourceExhausted):
    """Raised when a subscriber already uses all its concurrent streams."""


class LeaseNotFound(SubscriberError, NotFound):
    """Raised when a lease id is unknown, ended, expired or another box's (its slot is free)."""


class DeviceProfileNotFound(SubscriberError, NotFound):
    """Raised when a carrier has no device profile with that id."""


class ModelInAnotherProfile(SubscriberError, FailedPrecondition):
    """Raised when a profile names a model another profile of its carrier names."""


class TooManyDeviceProfiles(SubscriberError, ResourceExhausted):
    """Raised when a new profile would pass the per-carrier bound on profiles."""


class IdempotencyKeyReused(SubscriberError, InvalidArgument):
    """Raised when an idempotency key is reused with a different request."""


class RequestInProgress(SubscriberError, Aborted):
    """Raised when a request with the same idempotency key is still running."""


class ImportTooLarge(SubscriberError, ResourceExhausted):
    """Raised when an import chunk or stream exceeds its size bound."""


class StoreUnavailable(SubscriberError, Unavailable):
    """Raised when Redis cannot be reached; retry later (with the same idempotency key)."""
