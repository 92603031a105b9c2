"""HLS ingest: nodes PUT the files they publish into this origin's own root.

``PUT /ingest/live/{channel}/master.m3u8``, ``.../{rung}/index.m3u8``,
``.../{rung}/{sequence}.ts`` and a CMAF channel's ``master-cmaf.m3u8``, ``manifest.mpd``,
``.../{track}/cmaf.m3u8``, ``.../{track}/init-{sha8}.mp4`` and ``.../{track}/{seq}.m4s``
(the same names the origin serves; :func:`transcode.ingest.parse_path` has the full list).
A PUT is taken only when it is:

- from a peer inside ``ORIGIN_ALLOWED_NETWORKS`` (the app's guard, as every route);
- signed with ``ORIGIN_INGEST_SECRET`` (:mod:`transcode.ingest`), else 401;
- for a path the origin would serve (channel id, rung and file name rules), else 404;
- no larger than its kind's limit (segments; playlists, the MPD and the few-hundred-byte
  CMAF init segments), else 413;
- fenced: its token is not lower than the channel's owner token in Redis
  (``tc:owner:{cctv1}``, read at most every ``owner_cache_seconds``) nor than the
  highest token this origin has accepted for the channel, else 409. The last check
  and the write happen under one per-channel lock, so a stale owner's late file never
  replaces the new owner's.

Files are written atomically (a hidden temporary, then a rename) walking the root one
component at a time with ``O_NOFOLLOW``, like :func:`guard.open_under` reads them.

CMAF segments are live only (never indexed for catch-up, so retention never sees them):
when a track's ``cmaf.m3u8`` is written, the track's ``.m4s`` files older than the origin
still serves (:data:`guard.LIVE_BEHIND_SEGMENTS` before the playlist's first) are removed,
as the node removes its own (``transcode.live.cmaf``). Init segments stay (a few, tiny).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from headend.settings import (
    Env,
    SettingsError,
    env_float,
    env_int,
    env_secret,
    split_list,
)
from transcode import hls_parse, ingest
from transcode.errors import (
    IngestStale,
    IngestTooLarge,
    IngestUnauthenticated,
    InvalidPlaylist,
    StoreUnavailable,
)
from transcode.farm.ownership import owner_key, parse_owner
from transcode.names import CMAF_PLAYLIST
from transcode.origin.guard import LIVE_BEHIND_SEGMENTS

log = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 16
_MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """The origin's ingest face; off (no PUT route) without a secret."""

    secrets: tuple[bytes, ...] = ()
    max_segment_bytes: int = 64 * _MIB
    max_playlist_bytes: int = _MIB
    clock_skew_seconds: float = 300.0
    owner_cache_seconds: float = 0.25
    retention_interval_seconds: float = 60.0

    @property
    def enabled(self) -> bool:
        """True when PUTs are taken (a secret is set)."""
        return bool(self.secrets)

    @classmethod
    def from_env(cls, env: Env) -> IngestSettings:
        """Read ``ORIGIN_INGEST_SECRET`` (comma list: all accepted, for rotation),
        ``ORIGIN_INGEST_MAX_SEGMENT_BYTES``, ``ORIGIN_INGEST_MAX_PLAYLIST_BYTES``,
        ``ORIGIN_INGEST_CLOCK_SKEW_SECONDS`` and ``ORIGIN_RETENTION_INTERVAL_SECONDS``."""
        return cls(
            secrets=secrets_from(env, "ORIGIN_INGEST_SECRET"),
            max_segment_bytes=env_int(
                env, "ORIGIN_INGEST_MAX_SEGMENT_BYTES", 64 * _MIB, low=1024, high=1 << 31
            ),
            max_playlist_bytes=env_int(
                env, "ORIGIN_INGEST_MAX_PLAYLIST_BYTES", _MIB, low=1024, high=64 * _MIB
            ),
            clock_skew_seconds=env_float(
                env, "ORIGIN_INGEST_CLOCK_SKEW_SECONDS", 300.0, low=1.0, high=86400.0
            ),
            retention_interval_seconds=env_float(
                env, "ORIGIN_RETENTION_INTERVAL_SECONDS", 60.0, low=0.1, high=86400.0
            ),
        )


def secrets_from(env: Env, name: str) -> tuple[bytes, ...]:
    """A comma list of shared secrets, each at least 32 bytes."""
    raw = env_secret(env, name)
    if raw is None:
        return ()
    values = tuple(s.encode() for s in split_list(raw))
    if any(len(v) < ingest.MIN_SECRET_BYTES for v in values):
        raise SettingsError(name, f"each secret needs at least {ingest.MIN_SECRET_BYTES} bytes")
    return values


class IngestMetrics:
    """Files taken and refused, on the origin's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.files = Counter(
            "origin_ingest_files_total",
            "Files written by ingest PUTs, by kind (segment, init, playlist).",
            ["kind"],
            registry=registry,
        )
        self.fenced = Counter(
            "origin_ingest_fenced_total",
            "Ingest PUTs refused because their fencing token was stale, by channel.",
            ["channel"],
            registry=registry,
        )


class Fence:
    """The lowest token an origin still accepts per channel: the owner's in Redis (cached
    briefly) and the highest it has accepted itself."""

    def __init__(self, redis: aioredis.Redis, *, cache_seconds: float) -> None:
        self._redis: Any = redis
        self._cache_seconds = cache_seconds
        self._owners: dict[str, tuple[float, tuple[str, int] | None]] = {}
        self._accepted: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, channel: str) -> asyncio.Lock:
        """Held from the last check of a PUT to the end of its write."""
        return self._locks.setdefault(channel, asyncio.Lock())

    async def owner(self, channel: str) -> tuple[str, int] | None:
        """(node, token) of the channel's owner in Redis, at most ``cache_seconds`` old."""
        now = time.monotonic()
        cached = self._owners.get(channel)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        owner = parse_owner(await self._redis.get(owner_key(channel)))
        if len(self._owners) > 100_000:
            self._owners.clear()
        self._owners[channel] = (now, owner)
        return owner

    async def check_owner(self, channel: str, writer: ingest.Writer) -> None:
        """Refuse a writer older than the channel's owner in Redis."""
        owner = await self.owner(channel)
        if owner is None:
            return
        node, token = owner
        if writer.token < token or (writer.token == token and writer.node != node):
            raise IngestStale(
                f"channel {channel}: token {writer.token} of node {writer.node} is stale "
                f"(owner {node} holds {token})",
                details={"channel_id": channel},
            )

    def check_accepted(self, channel: str, writer: ingest.Writer) -> None:
        """Refuse a writer older than one this origin has accepted (under the lock)."""
        highest = self._accepted.get(channel, -1)
        if writer.token < highest:
            raise IngestStale(
                f"channel {channel}: token {writer.token} of node {writer.node} is lower "
                f"than {highest}, already accepted",
                details={"channel_id": channel},
            )

    def accepted(self, channel: str, writer: ingest.Writer) -> None:
        """Record a written file's token (under the lock)."""
        if writer.token > self._accepted.get(channel, -1):
            self._accepted[channel] = writer.token


def _open_dirs(root: Path, parts: Sequence[str]) -> int:
    """The directory ``root/parts...`` opened (made if missing), following no symlink."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            try:
                inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass  # made by a concurrent PUT
                inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_under(root: Path, parts: Sequence[str], data: bytes) -> None:
    """Write ``root/parts...`` atomically, creating directories, following no symlink."""
    fd = _open_dirs(root, parts[:-1])
    try:
        tmp = f".{parts[-1]}.{secrets.token_hex(6)}.tmp"
        out = os.open(tmp, _TMP_FLAGS, 0o644, dir_fd=fd)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(out, view) :]
            finally:
                os.close(out)
            # A rename replaces a symlink itself, never what it points at.
            os.replace(tmp, parts[-1], src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=fd)
            except OSError:
                pass
            raise
    finally:
        os.close(fd)


def prune_cmaf(root: Path, parts: Sequence[str], playlist: bytes) -> int:
    """Remove the ``.m4s`` files beside the CMAF playlist ``root/parts...`` (its body:
    ``playlist``) that are older than the origin serves; how many went. An unreadable
    playlist removes nothing."""
    try:
        first = hls_parse.parse_media(playlist.decode()).media_sequence
    except (InvalidPlaylist, UnicodeDecodeError, ValueError):
        return 0
    floor = first - LIVE_BEHIND_SEGMENTS
    fd = _open_dirs(root, parts[:-1])
    removed = 0
    try:
        for name in os.listdir(fd):
            stem, dot, ext = name.partition(".")
            if dot and ext == "m4s" and stem.isdigit() and int(stem) < floor:
                try:
                    os.unlink(name, dir_fd=fd)
                    removed += 1
                except FileNotFoundError:
                    continue
    finally:
        os.close(fd)
    return removed


class Ingest:
    """The PUT handler over one origin root."""

    def __init__(
        self,
        settings: IngestSettings,
        *,
        root: Path,
        redis: aioredis.Redis,
        registry: CollectorRegistry,
    ) -> None:
        self._settings = settings
        self._root = root
        self.fence = Fence(redis, cache_seconds=settings.owner_cache_seconds)
        self.metrics = IngestMetrics(registry)

    async def put(self, request: web.Request) -> web.StreamResponse:
        """Take one file: authenticate, check the path and the fence, read, write."""
        path = ingest.parse_path(request.match_info["channel"], request.match_info["tail"])
        values = {
            name: request.headers.get(name, "")
            for name in (
                ingest.NODE_HEADER,
                ingest.TOKEN_HEADER,
                ingest.TIME_HEADER,
                ingest.SHA256_HEADER,
                ingest.SIGNATURE_HEADER,
            )
        }
        signed = ingest.verify(
            self._settings.secrets,
            request.path,
            values,
            now=time.time(),
            skew_seconds=self._settings.clock_skew_seconds,
        )
        writer = signed.writer
        # An init segment (a few hundred bytes) has the playlists' small limit.
        limit = (
            self._settings.max_segment_bytes
            if path.is_segment
            else self._settings.max_playlist_bytes
        )
        try:
            await self.fence.check_owner(path.channel, writer)
            body = await _read_bounded(request, limit)
            if ingest.body_sha256(body) != signed.sha256:
                raise IngestUnauthenticated("ingest body does not match its signed SHA-256")
            async with self.fence.lock(path.channel):
                self.fence.check_accepted(path.channel, writer)
                await self._write(path, body)
                self.fence.accepted(path.channel, writer)
        except IngestStale as err:
            self.metrics.fenced.labels(path.channel).inc()
            log.warning(
                "ingest refused: stale token",
                extra={"channel": path.channel, "node": writer.node, "token": writer.token,
                       "reason": err.message},
            )  # fmt: skip
            raise
        self.metrics.files.labels(path.kind).inc()
        return web.Response(status=204, headers={"Cache-Control": "no-store"})

    async def _write(self, path: ingest.IngestPath, body: bytes) -> None:
        try:
            await asyncio.to_thread(write_under, self._root, path.parts, body)
        except OSError as err:
            log.warning(
                "ingest write failed",
                extra={"channel": path.channel, "file": "/".join(path.parts),
                       "error": str(err)},
            )  # fmt: skip
            reason = "disk full" if err.errno == errno.ENOSPC else "write failed"
            raise StoreUnavailable(f"origin cannot store the file: {reason}") from err
        if path.name == CMAF_PLAYLIST:
            try:
                await asyncio.to_thread(prune_cmaf, self._root, path.parts, body)
            except OSError as err:  # the file is in place: the next playlist prunes again
                log.warning("ingest: CMAF segments not pruned",
                            extra={"channel": path.channel, "error": str(err)})  # fmt: skip


async def _read_bounded(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise IngestTooLarge(f"body of {request.content_length} bytes is over {limit}")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise IngestTooLarge(f"body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
