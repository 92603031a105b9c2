"""Control-plane values and rules: live channels, archive entries, time windows (a VOD
job's are ``transcode.jobs``'s).

Pure: no Redis, no gRPC, no aiohttp. Stores and faces convert to and from
these frozen dataclasses.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from headend.clock import utc_now
from headend.contentkeys import MAX_ROTATION_SECONDS, MIN_ROTATION_SECONDS
from headend.errors import InvalidArgument
from headend.ids import CHANNEL_ID_MAX, CHANNEL_ID_RULE, is_channel_id
from headend.languages import validate_language, validate_languages
from headend.regions import problem as region_problem
from headend.text import validate_text
from transcode.errors import InvalidRequest
from transcode.sourceurl import parse_source, validate_live_source

if TYPE_CHECKING:  # jobs imports this module; its enum is only compared by value here
    from transcode.jobs import PackageFormat

# Audio renditions, and subtitle renditions, one channel or asset may have.
MAX_TRACKS = 8
MAX_TRACK_TITLE = 64

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Channel ids follow the CDN controller's path rule (the edges match it in URLs).
_RUNG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
# Catch-up windows are bounded so one request cannot render a whole archive.
MAX_CATCHUP_DAYS = 30
# What each kind of source can be read from (the allow-lists pick among these).
MAX_BACKUP_SOURCES = 7
# A channel's status keeps this many of its latest source switches.
SOURCE_HISTORY = 10
# A card's text (lines split on "\n").
MAX_CARD_CHARS = 500


def validate_tracks_languages(
    audio_languages: tuple[str, ...],
    subtitle_languages: tuple[str, ...],
    default: str,
    *,
    prefix: str,
) -> None:
    """Check the languages of a channel's or job's tracks (each a language tag, at most
    MAX_TRACKS per kind) and the default audio language (one of them, when they are given)."""
    try:
        validate_languages(f"{prefix}audio_languages", audio_languages, limit=MAX_TRACKS)
        validate_languages(f"{prefix}subtitle_languages", subtitle_languages, limit=MAX_TRACKS)
        if default:
            validate_language(f"{prefix}audio_language", default)
    except InvalidArgument as err:
        raise InvalidRequest(err.field, err.reason) from err
    if default and audio_languages and default not in audio_languages:
        raise InvalidRequest(f"{prefix}audio_language", "must be one of audio_languages")


def validate_id(field_name: str, value: str) -> str:
    """Check a job, asset or channel id: lower-case, URL- and path-safe, <= 63 chars."""
    if not _ID.fullmatch(value):  # fullmatch: "$" alone would let a trailing newline in
        raise InvalidRequest(field_name, "must match [a-z0-9][a-z0-9_-]{0,62}")
    return value


def validate_channel_id(field_name: str, value: str) -> str:
    """Check a live channel id (the platform-wide rule in ``headend.ids``)."""
    if not is_channel_id(value):
        raise InvalidRequest(field_name, f"must be {CHANNEL_ID_RULE}, <= {CHANNEL_ID_MAX} chars")
    return value


def validate_rung(value: str) -> str:
    """Check a rung name (it becomes a directory and a URL path segment)."""
    if not _RUNG.fullmatch(value):
        raise InvalidRequest("rung", "must match [a-z0-9][a-z0-9_.-]{0,31}")
    return value


class ChannelState(enum.Enum):
    """What a live channel is showing."""

    STOPPED = "STOPPED"
    STARTING = "STARTING"
    LIVE = "LIVE"
    SLATE = "SLATE"
    # Running, but something is wrong (a full disk, Redis unreachable): the reason says what.
    DEGRADED = "DEGRADED"
    # The channel's supervisor failed and is being restarted (with backoff).
    RECOVERING = "RECOVERING"


def check_rotation(seconds: int, field: str) -> int:
    """``seconds`` of media per content key: 0 (the default) or within the key store's bounds."""
    low, high = MIN_ROTATION_SECONDS, MAX_ROTATION_SECONDS
    if seconds and not low <= seconds <= high:
        raise InvalidRequest(field, f"must be 0 (the default) or between {low} and {high}")
    return seconds


@dataclass(frozen=True, slots=True)
class ChannelEncryption:
    """Whether a live channel's segments are AES-128 encrypted, and how often its key rotates."""

    enabled: bool = False
    # Seconds of media per content key; 0: the node's CONTENT_KEY_ROTATION_SECONDS.
    rotation_seconds: int = 0

    def validate(self) -> ChannelEncryption:
        """Check the rotation period; returns self for chaining."""
        check_rotation(self.rotation_seconds, "channel.encryption.rotation_seconds")
        return self


class MulticastProtocol(enum.Enum):
    """How a multicast output's TS packets are framed: seven per datagram either way."""

    RTP = "rtp"  # RFC 3551 payload type 33 (MP2T) behind a 12-byte RTP header
    UDP = "udp"


# RFC 5771: 224.0.0.0/24 is the local network control block (routers' own protocols).
_MULTICAST_CONTROL = ipaddress.IPv4Network("224.0.0.0/24")
MULTICAST_DEFAULT_TTL = 16
MULTICAST_MUX_KBPS = (500, 80_000)
MAX_MULTICAST_REGIONS = 256


@dataclass(frozen=True, slots=True)
class Multicast:
    """A live channel's RTP/UDP multicast output on a carrier's managed network: one rung
    as an MPEG-TS SPTS at a constant mux rate (``transcode.live.multicast``)."""

    group: str
    port: int
    protocol: MulticastProtocol = MulticastProtocol.RTP
    ttl: int = MULTICAST_DEFAULT_TTL
    interface: str = ""  # IPv4 address of the sending interface ("": the route's)
    rung: str = ""  # "": the highest rung that fits the mux rate (the top one without one)
    mux_rate_kbps: int = 0  # 0: the rung's measured peak plus 20 %, up to the next 100 kb/s
    regions: tuple[str, ...] = ()  # boxes here get the multicast URL in their lineup

    @property
    def url(self) -> str:
        """What a box on the managed network opens (``rtp://@239.1.1.1:5000``)."""
        return f"{self.protocol.value}://@{self.group}:{self.port}"

    def validate(self) -> Multicast:
        """Check every field; returns self for chaining."""
        try:
            group = ipaddress.IPv4Address(self.group)
        except ValueError:
            raise InvalidRequest("channel.multicast.group", "must be an IPv4 address") from None
        if not group.is_multicast or group in _MULTICAST_CONTROL or str(group) != self.group:
            raise InvalidRequest(
                "channel.multicast.group",
                "must be a multicast group in 224.0.0.0/4 outside 224.0.0.0/24 (239.x.y.z "
                "for a managed network)",
            )
        if not 1 <= self.port <= 65535:
            raise InvalidRequest("channel.multicast.port", "must be between 1 and 65535")
        if not 1 <= self.ttl <= 255:
            raise InvalidRequest("channel.multicast.ttl", "must be between 1 and 255")
        if self.interface:
            try:
                ipaddress.IPv4Address(self.interface)
            except ValueError:
                raise InvalidRequest(
                    "channel.multicast.interface", "must be an interface's IPv4 address"
                ) from None
        if self.rung and not _RUNG.fullmatch(self.rung):
            raise InvalidRequest("channel.multicast.rung", "must match [a-z0-9][a-z0-9_.-]{0,31}")
        low, high = MULTICAST_MUX_KBPS
        if self.mux_rate_kbps and not low <= self.mux_rate_kbps <= high:
            raise InvalidRequest(
                "channel.multicast.mux_rate_kbps", f"must be 0 (derived) or {low} to {high}"
            )
        if len(self.regions) > MAX_MULTICAST_REGIONS:
            raise InvalidRequest(
                "channel.multicast.regions", f"at most {MAX_MULTICAST_REGIONS} regions"
            )
        for index, code in enumerate(self.regions):
            why = region_problem(code)
            if why is not None:
                raise InvalidRequest(f"channel.multicast.regions[{index}]", why)
        return self


@dataclass(frozen=True, slots=True)
class Card:
    """A generated picture instead of a source: text on a dark card and, where given, an
    audio file (``file:///``, under the media roots) played in a loop ("": silence)."""

    text: str
    audio_uri: str = ""

    def validate(self) -> Card:
        """Check the text (1 to MAX_CARD_CHARS, newlines allowed) and the audio's scheme
        (the allow-lists check its path); returns self for chaining."""
        try:
            validate_text(
                "channel.card.text", self.text, max_chars=MAX_CARD_CHARS, multiline=True,
                required=True,
            )  # fmt: skip
        except InvalidArgument as err:
            raise InvalidRequest(err.field, err.reason) from err
        if self.audio_uri:
            if not self.audio_uri.startswith("file:///"):
                raise InvalidRequest("channel.card.audio_uri", "must be file:///path or empty")
            parse_source("channel.card.audio_uri", self.audio_uri, ("file",))
        return self


@dataclass(frozen=True, slots=True)
class LiveChannel:
    """A live channel's configuration: sources (or a card), ladder, segmenting and catch-up."""

    id: str
    source: str  # the primary source ("" for a card)
    profile: str = "default"
    segment_seconds: int = 6
    window_segments: int = 6
    catchup_days: int = 7
    source_timeout_seconds: float = 3.0
    # The node group the channel must run in ("" = any node).
    node_group: str = ""
    # Taken in this order when the source (and every one before) is lost or impaired.
    backup_sources: tuple[str, ...] = ()
    encryption: ChannelEncryption = ChannelEncryption()
    # The source's audio and text subtitle streams, in order, by language
    # (``transcode.tracks``); two or more audio languages make audio renditions.
    audio_languages: tuple[str, ...] = ()
    subtitle_languages: tuple[str, ...] = ()
    audio_language: str = ""  # the default audio rendition ("": the first)
    # A generated card instead of sources: it is the picture, never replaced by the slate.
    card: Card | None = None
    # Also sent to a multicast group on a carrier's managed network (None: HTTP only).
    multicast: Multicast | None = None
    # Packagings besides the MPEG-TS every channel has (``PackageFormat.CMAF``: CMAF
    # segments remuxed from each TS one, CMAF-HLS and a live MPD, ``transcode.live.cmaf``).
    formats: tuple[PackageFormat, ...] = ()

    @property
    def cmaf(self) -> bool:
        """Whether the channel is also packaged as CMAF (HLS and MPEG-DASH)."""
        return any(f.value == "CMAF" for f in self.formats)

    @property
    def sources(self) -> tuple[str, ...]:
        """Every source in priority order: ``source`` first, then the backups (none for a
        card)."""
        return () if self.card is not None else (self.source, *self.backup_sources)

    def validate(self) -> LiveChannel:
        """Check every field; returns self for chaining."""
        validate_channel_id("channel.id", self.id)
        if self.node_group:
            validate_id("channel.node_group", self.node_group)
        if self.card is not None:
            if self.source or self.backup_sources:
                raise InvalidRequest("channel.card", "a card channel has no source or backups")
            self.card.validate()
        else:
            validate_live_source(self.source)
        if len(self.backup_sources) > MAX_BACKUP_SOURCES:
            raise InvalidRequest(
                "channel.backup_sources", f"at most {MAX_BACKUP_SOURCES} backup sources"
            )
        for index, backup in enumerate(self.backup_sources):
            validate_live_source(backup, field_name=f"channel.backup_sources[{index}]")
        if len(set(self.sources)) != len(self.sources):
            raise InvalidRequest("channel.backup_sources", "a source is listed twice")
        if not 1 <= self.segment_seconds <= 10:
            raise InvalidRequest("channel.segment_seconds", "must be between 1 and 10")
        if not 6 <= self.window_segments <= 100:
            raise InvalidRequest("channel.window_segments", "must be between 6 and 100")
        if not 0 <= self.catchup_days <= MAX_CATCHUP_DAYS:
            raise InvalidRequest(
                "channel.catchup_days", f"must be between 0 and {MAX_CATCHUP_DAYS}"
            )
        if not 0.5 <= self.source_timeout_seconds <= 60:
            raise InvalidRequest("channel.source_timeout_seconds", "must be between 0.5 and 60")
        self.encryption.validate()
        if self.multicast is not None:
            self.multicast.validate()
            if self.encryption.enabled:
                raise InvalidRequest(
                    "channel.multicast",
                    "an encrypted channel cannot be multicast: a managed network's boxes "
                    "have no CAS to get its keys, so they would receive it undecodable",
                )
        validate_tracks_languages(
            self.audio_languages, self.subtitle_languages, self.audio_language, prefix="channel."
        )
        if len(set(self.formats)) != len(self.formats):
            raise InvalidRequest("channel.formats", "a format is listed twice")
        if self.cmaf and self.encryption.enabled:
            raise InvalidRequest(
                "channel.formats",
                "an encrypted channel cannot be packaged as CMAF yet (its AES-128 whole-segment "
                "encryption is MPEG-TS only; CMAF needs CENC/cbcs): start it clear, or TS only",
            )
        return self


@dataclass(frozen=True, slots=True)
class SourceSwitch:
    """One switch of a live channel between its sources (index -1: the slate)."""

    at: datetime
    from_index: int
    to_index: int
    reason: str  # a short word: input_lost, frozen, black, silent, cc_errors, preferred ...
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RungRate:
    """One rung's (or audio rendition's) measured rate over a channel's live window."""

    name: str
    bandwidth: int  # bits per second, averaged


@dataclass(frozen=True, slots=True)
class Thumbnail:
    """A small JPEG of a live channel's latest segment, and when that segment was published."""

    channel_id: str
    jpeg: bytes
    captured_at: datetime


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """A live channel's current state as the supervisor reports it."""

    channel: LiveChannel
    state: ChannelState
    media_sequence: int = 0
    discontinuity_sequence: int = 0
    restarts: int = 0
    reason: str = ""
    updated_at: datetime = field(default_factory=utc_now)
    # The node running the channel and its fencing token ("" and 0 while no node owns it).
    node: str = ""
    token: int = 0
    # The source on air (index into ``channel.sources``; -1: none, e.g. the slate).
    source_index: int = -1
    # The latest switches between sources, oldest first (at most SOURCE_HISTORY).
    source_history: tuple[SourceSwitch, ...] = ()
    # When the newest segment was published (None: none yet), the playlists' target
    # duration, and each rung's and audio rendition's average rate over the live window.
    last_segment_at: datetime | None = None
    target_duration_seconds: int = 0
    rungs: tuple[RungRate, ...] = ()

    @property
    def source_url(self) -> str:
        """The source on air ("" when none is)."""
        sources = self.channel.sources
        return sources[self.source_index] if 0 <= self.source_index < len(sources) else ""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A live transcode node as it last advertised itself."""

    id: str
    group: str
    capacity: int
    load: int
    draining: bool = False
    channels: tuple[str, ...] = ()

    @property
    def room(self) -> int:
        """Capacity units still free."""
        return self.capacity - self.load


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One archived live segment of a channel's rung."""

    sequence: int
    start: datetime
    duration: float
    size: int
    path: str
    discontinuity: bool = False
    # The content key that encrypted it (IV: ``sequence``); "" for a clear segment.
    key_id: str = ""

    @property
    def end(self) -> datetime:
        """When the segment's media ends."""
        return self.start + timedelta(seconds=self.duration)


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open ``[start, end)`` time window for catch-up."""

    start: datetime
    end: datetime


# ASCII only: ``str.isdigit``, ``int`` and ``float`` also take other scripts' digits.
_EPOCH = re.compile(r"-?[0-9]{1,12}(?:\.[0-9]{1,9})?", re.ASCII)
_EPOCH_PATH = re.compile(r"[0-9]{1,12}", re.ASCII)
_ISO = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?"
    r"(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?",
    re.ASCII,
)
# Instants outside [1970, epoch 10^11) are refused: no catch-up lives there.
_LATEST_EPOCH = 10**11
_LATEST = datetime.fromtimestamp(_LATEST_EPOCH, UTC)
_EPOCH_START = datetime.fromtimestamp(0, UTC)


def parse_instant(field_name: str, raw: str, *, epoch_only: bool = False) -> datetime:
    """Read ISO-8601 with an explicit offset, or epoch seconds, as an aware UTC datetime."""
    text = raw.strip()
    if not text:
        raise InvalidRequest(field_name, "is required (ISO-8601 with offset or epoch seconds)")
    if epoch_only:
        if not _EPOCH_PATH.fullmatch(text):
            raise InvalidRequest(field_name, "must be epoch seconds (ASCII digits, at most 12)")
    elif len(text) > 40:
        raise InvalidRequest(field_name, "longer than 40 characters")
    if _EPOCH.fullmatch(text):
        seconds = float(text)
        if not 0 <= seconds < _LATEST_EPOCH:
            raise InvalidRequest(field_name, "epoch seconds out of range")
        return datetime.fromtimestamp(seconds, UTC)
    if not _ISO.fullmatch(text):
        raise InvalidRequest(field_name, f"not ISO-8601 or epoch seconds: {text[:40]!r}")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as err:
        raise InvalidRequest(field_name, f"not ISO-8601 or epoch seconds: {text[:40]!r}") from err
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRequest(field_name, "ISO-8601 time needs a UTC offset (e.g. +08:00 or Z)")
    try:
        value = value.astimezone(UTC)
    except OverflowError as err:
        raise InvalidRequest(field_name, "time out of range") from err
    if not _EPOCH_START <= value < _LATEST:
        raise InvalidRequest(field_name, "time out of range (1970 to the year 5138)")
    return value


def select_window(entries: list[ArchiveEntry], window: Window) -> list[ArchiveEntry]:
    """Segments that overlap ``[start, end)``, in order (whole segments only)."""
    return [e for e in entries if e.start < window.end and e.end > window.start]


# Retention never touches the last half hour, so a channel with no catch-up still
# keeps the segments its live window (<= 100 x 10 s) refers to.
MIN_RETENTION = timedelta(minutes=30)


def retention_cutoff(now: datetime, catchup_days: int) -> datetime:
    """Segments that end before this instant are past the channel's catch-up period."""
    return now - max(timedelta(days=catchup_days), MIN_RETENTION)
