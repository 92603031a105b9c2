"""The transcode package's exception tree: ``TranscodeError`` and its leaves.

Each leaf also inherits one category from ``headend.errors`` so the transport
faces map it to a status code in one place. Other engineers append leaves at
the end of this module; nothing above their additions is renamed.
"""

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
    Unauthenticated,
    Unavailable,
)


class TranscodeError(HeadendError):
    """Raised for any transcoding or packaging failure; only through a leaf below."""


class InvalidPlaylist(TranscodeError, InvalidArgument):
    """Raised when a playlist value breaks an HLS rule (e.g. a fixed target duration too short)."""


class InvalidProfile(TranscodeError, InvalidArgument):
    """Raised when a ladder profile or one of its rungs has an out-of-range or missing field."""


class SourceNotFound(TranscodeError, NotFound):
    """Raised when the source file or URL does not exist or cannot be opened."""


class CorruptSource(TranscodeError, FailedPrecondition):
    """Raised when ffprobe or FFmpeg cannot read the source (corrupt or truncated media)."""


class UnsupportedSource(TranscodeError, FailedPrecondition):
    """Raised when the source lacks video or audio, or uses a codec the ladder cannot take."""


class EncodeFailed(TranscodeError, FailedPrecondition):
    """Raised when FFmpeg exits non-zero for a reason other than the source or the disk."""


class DiskFull(TranscodeError, ResourceExhausted):
    """Raised when writing the output fails because the file system is full (ENOSPC)."""


class ToolUnavailable(TranscodeError, Unavailable):
    """Raised when the ffmpeg or ffprobe binary is missing or cannot be started."""


# --- control plane (queue, workers, live channels, archive, origin) ---


class InvalidRequest(TranscodeError, InvalidArgument):
    """Raised when a job, channel or catch-up request field is malformed or out of range."""


class JobNotFound(TranscodeError, NotFound):
    """Raised when no job has the requested id."""


class JobExists(TranscodeError, AlreadyExists):
    """Raised when submitting a job whose id is already taken."""


class JobNotRetryable(TranscodeError, FailedPrecondition):
    """Raised when retrying a job that is queued, running or succeeded (only a failed or
    cancelled job is queued again)."""


class ChannelNotFound(TranscodeError, NotFound):
    """Raised when no live channel has the requested id."""


class ChannelRunning(TranscodeError, FailedPrecondition):
    """Raised when starting a live channel that is already running."""


class ThumbnailNotFound(TranscodeError, NotFound):
    """Raised when a live channel has no recent thumbnail (not running, none captured yet,
    or capturing is off: ``TC_THUMBNAIL_SECONDS=0``)."""


class ArchiveNotFound(TranscodeError, NotFound):
    """Raised when a channel has no archived segments for the requested window."""


class ContentNotFound(TranscodeError, NotFound):
    """Raised when the origin has no playlist or segment at the requested path."""


class ProgrammeNotFound(TranscodeError, NotFound):
    """Raised when the EPG has no programme with the requested id on the requested channel."""


class CatchupNotAllowed(TranscodeError, PermissionDenied):
    """Raised when the EPG marks the requested programme as not available for catch-up."""


class EpgUnavailable(TranscodeError, Unavailable):
    """Raised when the EPG service cannot be reached to resolve a programme."""


class SourceRefused(TranscodeError, InvalidArgument):
    """Raised when a job or channel source, or an output path, is outside the allow-lists."""


class OriginForbidden(TranscodeError, PermissionDenied):
    """Raised when a client outside ``ORIGIN_ALLOWED_NETWORKS`` asks the origin for content."""


class StoreUnavailable(TranscodeError, Unavailable):
    """Raised when the origin cannot reach Redis (archive index, live windows) for a request."""


class NodeNotFound(TranscodeError, NotFound):
    """Raised when a transcode node is not registered (never started, or gone past its TTL)."""


class LeaseLost(TranscodeError, FailedPrecondition):
    """Raised when a channel's write is refused: the node's lease on it expired or another
    node holds it now (the write's fencing token is stale)."""


class IngestUnauthenticated(TranscodeError, Unauthenticated):
    """Raised when an origin ingest PUT lacks a valid signature (``ORIGIN_INGEST_SECRET``)."""


class IngestStale(TranscodeError, Aborted):
    """Raised when an origin ingest PUT carries a fencing token lower than the channel's
    current owner's or than one the origin already accepted for the channel."""


class IngestTooLarge(TranscodeError, ResourceExhausted):
    """Raised when an origin ingest PUT's body is larger than the origin takes for its kind."""


class InvalidSubtitles(TranscodeError, InvalidArgument):
    """Raised when a subtitle track is malformed or past the WebVTT bounds, a cue cannot be
    written as WebVTT, or the source has no subtitle stream of the requested index."""
