"""The multicast output's exception tree: ``MulticastError`` and its leaves."""

from __future__ import annotations

from headend.errors import FailedPrecondition, Unavailable
from transcode.errors import TranscodeError


class MulticastError(TranscodeError):
    """Raised for any multicast output failure; only through a leaf below."""


class SegmentRefused(MulticastError, FailedPrecondition):
    """Raised when a segment cannot be sent: too large, not whole 188-byte packets, sync
    lost, or no programme (PAT/PMT) in it. The segment is skipped, the stream goes on."""


class OutputUnavailable(MulticastError, Unavailable):
    """Raised when the channel's rung cannot be found on disk in time (no master playlist,
    no such rung) or the socket cannot be opened."""
