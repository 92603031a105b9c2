"""The EPG service's exception tree; each leaf also carries a ``headend.errors`` category."""

from __future__ import annotations

from headend.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    HeadendError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)


class EpgError(HeadendError):
    """Raised for any EPG failure; only its leaves below are raised."""


class InvalidChannel(EpgError, InvalidArgument):
    """Raised when a channel field is malformed or out of range."""


class InvalidProgramme(EpgError, InvalidArgument):
    """Raised when a programme field is malformed, naive, too long or has no duration."""


class InvalidTimeRange(EpgError, InvalidArgument):
    """Raised when a query window is empty, reversed or too long."""


class InvalidQuery(EpgError, InvalidArgument):
    """Raised when a query's text, limit, page size or page token is malformed."""


class UnknownTimezone(EpgError, InvalidArgument):
    """Raised when a timezone name is not in the IANA tz database."""


class InvalidSlotRule(EpgError, InvalidArgument):
    """Raised when a recurring slot rule is malformed."""


class InvalidXmltv(EpgError, InvalidArgument):
    """Raised when an XMLTV file is malformed, truncated, or declares entities."""


class ImportRejected(EpgError, InvalidArgument):
    """Raised when a strict import finds bad programmes, so nothing is imported."""


class BatchTooLarge(EpgError, ResourceExhausted):
    """Raised when a programme batch exceeds the configured maximum size."""


class ImportTooLarge(EpgError, ResourceExhausted):
    """Raised when an XMLTV upload (or its decompressed content) exceeds the size bound."""


class ChannelNotFound(EpgError, NotFound):
    """Raised when a channel id is not in the catalogue (or not visible to the caller)."""


class ProgrammeNotFound(EpgError, NotFound):
    """Raised when a programme id is not scheduled (or not visible to the caller)."""


class ChannelExists(EpgError, AlreadyExists):
    """Raised when creating a channel whose id is taken."""


class ProgrammeIdInUse(EpgError, AlreadyExists):
    """Raised when a programme id is already used on another channel."""


class ScheduleConflict(EpgError, FailedPrecondition):
    """Raised when a write overlaps scheduled programmes under the refuse policy."""


class ChannelNotEmpty(EpgError, FailedPrecondition):
    """Raised when deleting a channel that still has programmes, without force."""


class VersionMismatch(EpgError, Aborted):
    """Raised when an update's expected channel version is not the stored one."""


class NotAllowed(EpgError, PermissionDenied):
    """Raised when a principal acts on channels it does not own, or lacks the role."""
