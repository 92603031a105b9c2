"""The content key store's exception tree.

Each leaf also inherits a :mod:`headend.errors` category, so the faces map it to a
status in their one place: the front door answers 404 for an unknown key id (or
one of another channel: the two are indistinguishable on purpose) and 403 for a
revoked one, which a box must not retry.
"""

from __future__ import annotations

from headend.errors import (
    FailedPrecondition,
    HeadendError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)


class ContentKeyError(HeadendError):
    """Raised for any content key failure; never raised directly, only through a leaf."""


class InvalidScope(ContentKeyError, InvalidArgument):
    """Raised when a scope is not ``channel/<id>`` or ``asset/<id>`` with a well-formed id."""


class ContentKeyNotFound(ContentKeyError, NotFound):
    """Raised when a key id is unknown, deleted, or belongs to another scope."""


class ContentKeyRevoked(ContentKeyError, PermissionDenied):
    """Raised when an operator revoked the key: it exists but is never handed out again."""


class ContentKeyUnreadable(ContentKeyError, FailedPrecondition):
    """Raised when a stored record does not unwrap: tampered with, moved to another key id
    or scope, or wrapped under a KEK that is no longer in ``CONTENT_KEKS``."""


class KeyProviderUnavailable(ContentKeyError, Unavailable):
    """Raised when the key provider (the DRM vendor's key server) cannot answer, or answers
    with something that is not a usable key for what was asked."""


class ContentKeyStoreUnavailable(ContentKeyError, Unavailable):
    """Raised when the store's Redis cannot be reached (after the client's own retries)."""


class InvalidCpixDocument(ContentKeyError, InvalidArgument):
    """Raised when a CPIX document is too large, not well-formed, declares a DTD or
    entities, is in the wrong namespace, or lacks what the exchange needs."""

    def __init__(self, reason: str) -> None:
        super().__init__("cpix", reason)
