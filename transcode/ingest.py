"""The origin ingest protocol, shared by the node that pushes and the origin that takes files.

A node mirrors what it publishes to every origin with ``PUT /ingest/live/{channel}/...``
(segments, rung and I-frame playlists, master; a CMAF channel's init segments, ``.m4s``
segments, CMAF playlists and live MPD too). Each PUT carries the writer's node id and fencing
token and is signed with the shared ``ORIGIN_INGEST_SECRET``: HMAC-SHA256 over the
method, path, node, token, a timestamp and the body's SHA-256, so the secret never
travels and a captured request cannot carry another body. Pure: no I/O here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from transcode.domain import validate_channel_id, validate_rung
from transcode.errors import ContentNotFound, IngestUnauthenticated, InvalidRequest
from transcode.names import CMAF_IFRAMES, CMAF_INIT, CMAF_MASTER, CMAF_PLAYLIST, MPD_NAME

PREFIX = "/ingest"
NODE_HEADER = "X-Ingest-Node"
TOKEN_HEADER = "X-Ingest-Token"
TIME_HEADER = "X-Ingest-Time"
SHA256_HEADER = "X-Ingest-Content-SHA256"
SIGNATURE_HEADER = "Authorization"
_SCHEME = "HMAC-SHA256 "
# A node id as the farm allows it (no "|"), bounded; printable ASCII only.
_NODE = re.compile(r"[A-Za-z0-9_.:@-]{1,128}", re.ASCII)
_TOKEN = re.compile(r"[0-9]{1,18}", re.ASCII)
_HEX64 = re.compile(r"[0-9a-f]{64}", re.ASCII)
# A rung's MPEG-TS segment or a subtitle rendition's WebVTT file, zero-padded
# (``transcode.live.window``).
_SEGMENT = re.compile(r"([0-9]{10,15})\.(ts|vtt)", re.ASCII)
# A CMAF track's segment, unpadded (``transcode.live.window.cmaf_name``), and its init
# segment, named by its content (``transcode.live.cmaf``).
_CMAF_SEGMENT = re.compile(r"(0|[1-9][0-9]{0,14})\.m4s", re.ASCII)
MIN_SECRET_BYTES = 32
# A track's playlists: a rung's media and I-frame playlists (``transcode.live.window``), a
# CMAF track's media and I-frame playlists.
_RUNG_PLAYLISTS = frozenset({"index.m3u8", "iframes.m3u8", CMAF_PLAYLIST, CMAF_IFRAMES})
# A channel's own files: the TS master, the CMAF master and the live MPD.
_CHANNEL_FILES = frozenset({"master.m3u8", CMAF_MASTER, MPD_NAME})
# An origin leaves this file in its root: a pushing node refuses that root as its own.
ROOT_MARKER = ".origin-root"


@dataclass(frozen=True, slots=True)
class IngestPath:
    """Where an ingested file goes under an origin root: ``live/{channel}/...``."""

    channel: str
    rung: str | None
    name: str

    @property
    def parts(self) -> tuple[str, ...]:
        """The path components below the root."""
        middle = () if self.rung is None else (self.rung,)
        return ("live", self.channel, *middle, self.name)

    @property
    def kind(self) -> str:
        """``segment`` (``.ts``, ``.vtt``, ``.m4s``), ``init`` (a CMAF init segment) or
        ``playlist`` (playlists and the MPD): which size limit a PUT of it has."""
        if self.name.endswith((".ts", ".vtt", ".m4s")):
            return "segment"
        return "init" if self.name.endswith(".mp4") else "playlist"

    @property
    def is_segment(self) -> bool:
        """True for a media segment (the rest are playlists and init segments)."""
        return self.kind == "segment"


@dataclass(frozen=True, slots=True)
class Writer:
    """Who sends a PUT: the node and the fencing token of its lease on the channel."""

    node: str
    token: int


def parse_path(channel: str, tail: str) -> IngestPath:
    """The one set of files a node may push, named exactly as the origin reads them:
    ``master.m3u8``, ``master-cmaf.m3u8``, ``manifest.mpd``; per rung or track
    ``index.m3u8``, ``iframes.m3u8``, ``cmaf.m3u8``, ``cmaf-iframes.m3u8``,
    ``{sequence:010d}.ts`` or ``.vtt``, ``{sequence}.m4s`` (no leading zero) and
    ``init-{sha8}.mp4``."""
    try:
        validate_channel_id("channel", channel)
    except InvalidRequest as err:
        raise ContentNotFound(f"no channel {channel[:64]}") from err
    parts = tail.split("/")
    if len(parts) == 1 and parts[0] in _CHANNEL_FILES:
        return IngestPath(channel, None, parts[0])
    if len(parts) == 2:
        rung, name = parts
        try:
            validate_rung(rung)
        except InvalidRequest as err:
            raise ContentNotFound(f"no rung {rung[:64]}") from err
        if name in _RUNG_PLAYLISTS:
            return IngestPath(channel, rung, name)
        match = _SEGMENT.fullmatch(name)
        if match is not None and f"{int(match.group(1)):010d}.{match.group(2)}" == name:
            return IngestPath(channel, rung, name)
        if _CMAF_SEGMENT.fullmatch(name) or CMAF_INIT.fullmatch(name):
            return IngestPath(channel, rung, name)
    raise ContentNotFound(f"not an ingest path: {tail[:64]}")


def body_sha256(body: bytes) -> str:
    """The hex SHA-256 a PUT declares for its body."""
    return hashlib.sha256(body).hexdigest()


def _message(path: str, writer: Writer, timestamp: int, sha256: str) -> bytes:
    return f"PUT\n{path}\n{writer.node}\n{writer.token}\n{timestamp}\n{sha256}".encode()


def sign(secret: bytes, path: str, writer: Writer, timestamp: int, sha256: str) -> str:
    """The ``Authorization`` value of a PUT of a body with ``sha256`` to ``path``."""
    mac = hmac.new(secret, _message(path, writer, timestamp, sha256), hashlib.sha256)
    return _SCHEME + mac.hexdigest()


def headers(
    secret: bytes, path: str, writer: Writer, timestamp: int, body: bytes
) -> dict[str, str]:
    """Every header a signed PUT of ``body`` to ``path`` carries."""
    sha256 = body_sha256(body)
    return {
        NODE_HEADER: writer.node,
        TOKEN_HEADER: str(writer.token),
        TIME_HEADER: str(timestamp),
        SHA256_HEADER: sha256,
        SIGNATURE_HEADER: sign(secret, path, writer, timestamp, sha256),
    }


@dataclass(frozen=True, slots=True)
class Signed:
    """A PUT's checked claims: its writer and the SHA-256 its body must have."""

    writer: Writer
    sha256: str


def verify(
    secrets: tuple[bytes, ...],
    path: str,
    values: dict[str, str],
    *,
    now: float,
    skew_seconds: float,
) -> Signed:
    """Check a PUT's headers (``values``: header -> value) against any of ``secrets``;
    ``IngestUnauthenticated`` for a missing, malformed, expired or wrong signature."""
    node, token = values.get(NODE_HEADER, ""), values.get(TOKEN_HEADER, "")
    stamp, sha256 = values.get(TIME_HEADER, ""), values.get(SHA256_HEADER, "")
    given = values.get(SIGNATURE_HEADER, "")
    if not (
        _NODE.fullmatch(node)
        and _TOKEN.fullmatch(token)
        and _TOKEN.fullmatch(stamp)
        and _HEX64.fullmatch(sha256)
        and given.startswith(_SCHEME)
        and len(given) <= 128
    ):
        raise IngestUnauthenticated("ingest needs a signed request (ORIGIN_INGEST_SECRET)")
    if abs(now - int(stamp)) > skew_seconds:
        raise IngestUnauthenticated("ingest request time is too far from the origin's clock")
    writer = Writer(node, int(token))
    for secret in secrets:
        if hmac.compare_digest(sign(secret, path, writer, int(stamp), sha256), given):
            return Signed(writer, sha256)
    raise IngestUnauthenticated("ingest signature does not match")
