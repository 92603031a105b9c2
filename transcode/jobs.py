"""A VOD packaging job's values and rules: its state, progress, encryption, attached
subtitle files, the events WatchJob streams, dead letters, and the retry backoff.

Pure: no Redis, no gRPC. The queue (``transcode.queue``) stores these, the worker runs
them, and the service and its face convert them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import urlsplit

from headend.errors import InvalidArgument
from headend.languages import validate_language
from headend.text import validate_text
from transcode.domain import MAX_TRACK_TITLE, MAX_TRACKS
from transcode.errors import InvalidRequest

# The subtitle files a VOD job may attach: formats FFmpeg converts to WebVTT.
SUBTITLE_FILE_SUFFIXES = frozenset({".srt", ".vtt", ".ass", ".ssa"})


class PackageFormat(enum.Enum):
    """How an asset's segments are packaged: MPEG-TS, or CMAF (fMP4: an init segment and
    ``.m4s`` segments per single-track rendition, one set serving HLS and MPEG-DASH)."""

    TS = "TS"
    CMAF = "CMAF"


def validate_format(package_format: PackageFormat, encrypted: bool) -> PackageFormat:
    """Refuse CMAF with encryption: whole-segment AES-128 is an MPEG-TS scheme, and CMAF
    needs CENC/cbcs sample encryption, which is not built yet."""
    if package_format is PackageFormat.CMAF and encrypted:
        raise InvalidRequest(
            "format",
            "CMAF cannot be encrypted yet (AES-128 whole-segment encryption is MPEG-TS only; "
            "CMAF needs CENC/cbcs): submit it clear, or as TS",
        )
    return package_format


class JobState(enum.Enum):
    """Where a VOD packaging job is in its life."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        """True once the job has ended (a failed or cancelled one may be retried)."""
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a running job has got."""

    percent: float = 0.0
    speed: float = 0.0
    eta_seconds: float = 0.0
    phase: str = ""


@dataclass(frozen=True, slots=True)
class JobEncryption:
    """A VOD asset encrypted with AES-128: its content key changes every ``rotation_seconds``
    of media (bounds: :func:`check_rotation`)."""

    rotation_seconds: int


@dataclass(frozen=True, slots=True)
class SubtitleFile:
    """A subtitle file (SRT, WebVTT, SSA/ASS) attached to a VOD job, published as a
    WebVTT rendition of the asset."""

    uri: str
    language: str
    title: str = ""


def is_subtitle_file(uri: str) -> bool:
    """Whether a path's or URL's file name says a subtitle format FFmpeg reads as text."""
    path = urlsplit(uri).path if "://" in uri else uri
    name = path.rpartition("/")[2]
    return "." in name and name[name.rfind(".") :].lower() in SUBTITLE_FILE_SUFFIXES


def validate_subtitle_file(field: str, uri: str) -> str:
    """Check that an attached subtitle file's name says a format FFmpeg reads as text."""
    if not is_subtitle_file(uri):
        raise InvalidRequest(
            field, f"not a subtitle file ({', '.join(sorted(SUBTITLE_FILE_SUFFIXES))}): {uri}"
        )
    return uri


def validate_subtitle_files(files: tuple[SubtitleFile, ...]) -> None:
    """Check the subtitle files attached to a job: at most MAX_TRACKS, each a subtitle file's
    name, a language tag and a short title."""
    if len(files) > MAX_TRACKS:
        raise InvalidRequest("subtitles", f"at most {MAX_TRACKS} subtitle files")
    for index, file in enumerate(files):
        where = f"subtitles[{index}]"
        validate_subtitle_file(f"{where}.uri", file.uri)
        try:
            validate_language(f"{where}.language", file.language)
            validate_text(f"{where}.title", file.title, max_chars=MAX_TRACK_TITLE)
        except InvalidArgument as err:
            raise InvalidRequest(err.field, err.reason) from err


@dataclass(frozen=True, slots=True)
class Job:
    """One VOD packaging job: a source packaged into ``vod/<asset>``."""

    id: str
    source: str
    asset: str
    profile: str
    state: JobState
    created_at: datetime
    updated_at: datetime
    progress: Progress = field(default_factory=Progress)
    reason: str = ""
    deliveries: int = 0
    worker: str = ""
    cancel_requested: bool = False
    output: str = ""
    encryption: JobEncryption | None = None  # None: a clear asset
    subtitles: tuple[SubtitleFile, ...] = ()
    audio_language: str = ""  # the default of several audio tracks ("": the source's)
    format: PackageFormat = PackageFormat.TS

    def with_state(self, state: JobState, now: datetime, reason: str = "") -> Job:
        """A copy moved to ``state``."""
        return replace(self, state=state, updated_at=now, reason=reason or self.reason)


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One step of a job as WatchJob streams it."""

    job_id: str
    state: JobState
    progress: Progress
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A job that failed for good, as the dead-letter stream recorded it, with the job now."""

    job: Job  # as it is now: a retried job is no longer FAILED
    reason: str
    deliveries: int  # when it was dead-lettered
    dead_at: datetime

    @property
    def job_id(self) -> str:
        """The dead-lettered job's id."""
        return self.job.id


def retry_delay(deliveries: int, *, base_seconds: float, max_seconds: float) -> float:
    """Exponential backoff before delivery ``deliveries + 1`` (1 -> base, 2 -> 2*base ...)."""
    return min(max_seconds, base_seconds * 2 ** max(0, deliveries - 1))
