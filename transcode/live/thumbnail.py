"""A live channel's thumbnail: one small JPEG of its latest segment, kept in Redis only.

The operator console shows a mosaic of every channel; this is its picture. At most every
``TC_THUMBNAIL_SECONDS`` the publisher hands a just-published segment of its lowest video
rung to :class:`Thumbnailer`, which decodes its first key frame with a ``nice``d FFmpeg
in a background task (one at a time: a segment offered while a capture runs is skipped,
never queued), bounded in time and in output size, and stores the JPEG with the segment's
publish time in ``tc:thumb:{ch}`` (the channel's hash tag) for ``_TTL_SECONDS``: a channel
that stops publishing loses its picture within minutes, so the console never shows a
stale one as current.

Pictures are taken only while someone looks: reading a channel's thumbnail
(:meth:`ThumbnailStore.get`, what ``GetChannelThumbnail`` does) marks it wanted for
``WANTED_SECONDS`` (``tc:thumbwant:{ch}``), and a capture that finds it unwanted ends
before FFmpeg starts. Each capture is an FFmpeg start (tens of milliseconds of CPU), as
much as a stream-copied channel's whole work for several seconds: a node nobody watches in
the console spends one Redis ``EXISTS`` per channel and interval, nothing more.

The segment is taken *clear*: the publisher opens the clear file before an encrypted
channel's clear files are removed, and the open file is FFmpeg's stdin, so encrypted
channels have thumbnails too. The JPEG goes from FFmpeg's stdout to Redis and is never
written under the origin root: boxes fetch files from there, and must not get frames of a
premium channel in clear. ``GetChannelThumbnail`` reads it (:class:`ThumbnailStore`).

The key is written plainly, not through the channel's fenced writer: a picture is not
state a new owner relies on, and the publisher offers none once its lease is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from datetime import UTC, datetime
from typing import IO, Any

import redis.asyncio as aioredis

from headend.procs import with_death_signal
from transcode.archive import channel_tag
from transcode.domain import Thumbnail
from transcode.errors import ThumbnailNotFound
from transcode.ffmpeg_cmd import thumbnail_command
from transcode.live.metrics import LiveMetrics
from transcode.runner import finish, kill_group

log = logging.getLogger(__name__)

MAX_WIDTH = 320
# A 320-pixel JPEG is a few tens of kilobytes; more means something is wrong.
MAX_BYTES = 256 * 1024
_TIMEOUT_SECONDS = 10.0
_TTL_SECONDS = 300
# A channel read in the console stays wanted this long (the console reads every 5 s).
WANTED_SECONDS = 60
# Below the live FFmpeg: a capture yields the CPU to the channels' encoders.
_NICENESS = 10


def thumbnail_key(channel_id: str) -> str:
    """The hash holding a channel's latest thumbnail (``jpeg``, ``at``)."""
    return f"tc:thumb:{channel_tag(channel_id)}"


def wanted_key(channel_id: str) -> str:
    """Present while someone reads the channel's thumbnails."""
    return f"tc:thumbwant:{channel_tag(channel_id)}"


class ThumbnailStore:
    """Live channels' thumbnails in Redis."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis: Any = redis  # replies are decoded here (redis-py's unions)

    async def save(self, thumbnail: Thumbnail) -> None:
        """Keep ``thumbnail`` as its channel's latest, for a few minutes."""
        key = thumbnail_key(thumbnail.channel_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"jpeg": thumbnail.jpeg,
                                    "at": repr(thumbnail.captured_at.timestamp())})  # fmt: skip
            pipe.expire(key, _TTL_SECONDS)
            await pipe.execute()

    async def wanted(self, channel_id: str) -> bool:
        """True while someone reads the channel's thumbnails."""
        return bool(await self._redis.exists(wanted_key(channel_id)))

    async def get(self, channel_id: str) -> Thumbnail:
        """The channel's latest thumbnail; ``ThumbnailNotFound`` when none is recent. The
        channel's node takes fresh ones for the next ``WANTED_SECONDS``."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(wanted_key(channel_id), b"1", ex=WANTED_SECONDS)
            pipe.hgetall(thumbnail_key(channel_id))
            _, raw = await pipe.execute()
        if not raw or b"jpeg" not in raw:
            raise ThumbnailNotFound(
                f"channel {channel_id} has no recent thumbnail", details={"channel_id": channel_id}
            )
        at = datetime.fromtimestamp(float(raw[b"at"]), UTC)
        return Thumbnail(channel_id, bytes(raw[b"jpeg"]), at)


async def capture_jpeg(segment: IO[bytes], *, timeout_seconds: float = _TIMEOUT_SECONDS) -> bytes:
    """The first key frame of the MPEG-TS ``segment`` (an open file, read by FFmpeg as its
    stdin) as a JPEG at most ``MAX_WIDTH`` wide; ``RuntimeError`` when FFmpeg fails or writes
    more than ``MAX_BYTES``, ``TimeoutError`` past ``timeout_seconds`` (FFmpeg is killed)."""
    argv = ["nice", "-n", str(_NICENESS), *thumbnail_command(MAX_WIDTH)]
    proc = await asyncio.create_subprocess_exec(
        *with_death_signal(argv, signal.SIGKILL),
        stdin=segment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout_seconds):
            jpeg, err = await asyncio.gather(_read_bounded(proc.stdout), _read_bounded(proc.stderr))
            code = await proc.wait()
    except BaseException:
        kill_group(proc.pid)
        await finish(proc.wait())
        raise
    if code != 0 or not jpeg:
        raise RuntimeError(f"ffmpeg exited {code}: {err.decode(errors='replace').strip()[-300:]}")
    return jpeg


async def _read_bounded(stream: asyncio.StreamReader | None) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while stream is not None and (chunk := await stream.read(65536)):
        size += len(chunk)
        if size > MAX_BYTES:
            raise RuntimeError(f"ffmpeg wrote more than {MAX_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class Thumbnailer:
    """Takes one channel's thumbnails in the background, at most every ``interval_seconds``
    (0: never) and only while they are wanted, one capture at a time."""

    def __init__(
        self,
        channel_id: str,
        *,
        store: ThumbnailStore,
        interval_seconds: float,
        metrics: LiveMetrics | None = None,
    ) -> None:
        self.channel_id = channel_id
        self._store = store
        self._interval = interval_seconds
        self._metrics = metrics
        self._last = -float("inf")  # monotonic time of the last capture started
        self._task: asyncio.Task[None] | None = None

    def due(self) -> bool:
        """True when a capture may start now (on, the interval passed, none running)."""
        if self._interval <= 0 or (self._task is not None and not self._task.done()):
            return False
        return time.monotonic() - self._last >= self._interval

    def capture(self, segment: IO[bytes], published_at: datetime) -> None:
        """Start capturing the open ``segment`` (closed when done) in the background."""
        self._last = time.monotonic()
        self._task = asyncio.create_task(self._capture(segment, published_at))

    async def _capture(self, segment: IO[bytes], published_at: datetime) -> None:
        try:
            with segment:
                if not await self._store.wanted(self.channel_id):
                    return
                jpeg = await capture_jpeg(segment)
            await self._store.save(Thumbnail(self.channel_id, jpeg, published_at))
        except (RuntimeError, OSError, aioredis.RedisError, TimeoutError) as err:
            log.warning("live thumbnail not captured", extra={"channel": self.channel_id,
                                                              "error": str(err)})  # fmt: skip
            if self._metrics is not None:
                self._metrics.thumbnails.labels(self.channel_id, "failed").inc()
            return
        if self._metrics is not None:
            self._metrics.thumbnails.labels(self.channel_id, "captured").inc()

    async def settled(self) -> None:
        """Return once the capture under way, if any, has ended (stored or failed)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def close(self) -> None:
        """Stop a capture under way (its FFmpeg is killed)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
