"""The cue service's exceptions: leaves of ``EpgError`` (the EPG server serves cues), each
with the ``headend.errors`` category that becomes its gRPC status."""

from __future__ import annotations

from epg.errors import EpgError
from headend.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)


class InvalidCue(EpgError, InvalidArgument):
    """Raised when a cue field (named as in the request: ``cue.blackout_regions[2]``) or a
    list's window is bad."""


class CueNotFound(EpgError, NotFound):
    """Raised when the channel has no cue with the id."""


class CueExists(EpgError, AlreadyExists):
    """Raised when inserting an id the channel already uses for a different cue."""


class CueEnded(EpgError, FailedPrecondition):
    """Raised when cancelling a cue that has ended or was cancelled already."""


class CueChanged(EpgError, Aborted):
    """Raised when another change to the cue came between the read and the write (the
    service reads again and retries a few times first)."""


class TooManyCues(EpgError, ResourceExhausted):
    """Raised when the channel already keeps the most cues not yet ended."""
