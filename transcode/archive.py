"""The live archive: a Redis index of every published segment, catch-up playlists, retention.

Keys (all ``tc:archive:``; ``{cctv1}`` is the channel's Redis Cluster hash tag,
:func:`channel_tag`):

- ``tc:archive:{cctv1}:720p`` — one rung's sorted set scored by segment start
  (epoch seconds); each member is ``seq|start|duration|size|path|disc`` (then
  ``|key_id`` for an encrypted segment) so a window is one ``ZRANGEBYSCORE`` with
  no second lookup.
- ``tc:archive:{cctv1}:rungs`` — hash rung -> JSON facts the master
  playlist needs (codecs, resolution, frame rate), written when a channel starts.
- ``tc:archive:{cctv1}`` — hash of the channel's archive facts: ``catchup_days``.
- ``tc:archived`` — set of the archived channels' ids, read by retention: a global
  index in a slot of its own.

A live channel's keys (these, its status in ``transcode.live.store``, its lease in
``transcode.farm``) share the channel's tag, so one transaction or one fenced script
writes any of them together, on one Redis or a Cluster. The global index cannot join
them: registering writes the channel's own keys first and adds it to ``tc:archived``
after (:func:`index_channel`), and retention skips a listed channel whose facts are
missing. Adding an id again changes nothing, so the index is written unfenced: a stale
owner can only list a channel that is already listed.

Segment files live under the origin root at the stored relative ``path``
(``live/{channel}/{rung}/{seq}.ts``); the live window and the archive share
them, so archiving costs no copy.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

import redis.asyncio as aioredis

from headend.clock import utc_now
from headend.contentkeys import ContentKeyError, key_uri, scope_for_channel
from headend.lua import script
from transcode import hls
from transcode.domain import ArchiveEntry, Window, retention_cutoff, select_window
from transcode.errors import ArchiveNotFound
from transcode.measure import bits_per_second
from transcode.tracks import AUDIO_GROUP, SUBTITLES_GROUP, Track, renditions

log = logging.getLogger(__name__)

CHANNELS = "tc:archived"
# Index lookups start this far before the window so a segment that began
# before ``from`` but overlaps it is still found.
_LOOKBEHIND_SECONDS = 30.0
# A window that ended this recently may still be reloaded by players that watched it grow.
SETTLED = timedelta(minutes=1)
# A live video rung's I-frame playlist, beside its ``index.m3u8`` (``transcode.live.window``).
LIVE_IFRAMES = "iframes.m3u8"
# CODECS entries of audio (AAC, AC-3, E-AC-3, Opus), left out of an I-frame variant's.
_AUDIO_CODECS = ("mp4a.", "ac-3", "ec-3", "Opus", "opus")


def channel_tag(channel: str) -> str:
    """The hash tag every key of one live channel carries (``{cctv1}``): its archive, status
    and lease keys hash to one Cluster slot, so one script or transaction may hold them."""
    return f"{{{channel}}}"


def tag_of(key: str) -> str:
    """What Redis Cluster hashes of ``key``: its first ``{...}`` if not empty, else all of it."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1 : end] if start >= 0 and end > start + 1 else key


def index_key(channel: str, rung: str) -> str:
    """The sorted set of one rung's archived segments."""
    return f"tc:archive:{channel_tag(channel)}:{rung}"


def rungs_key(channel: str) -> str:
    """The hash of one channel's rung facts."""
    return f"tc:archive:{channel_tag(channel)}:rungs"


def facts_key(channel: str) -> str:
    """The hash of one channel's archive facts (``catchup_days``)."""
    return f"tc:archive:{channel_tag(channel)}"


@dataclass(frozen=True, slots=True)
class RungInfo:
    """What a master playlist says about a rung or an audio or subtitle rendition
    (``transcode.tracks``) besides its measured bandwidth."""

    name: str
    codecs: str
    width: int
    height: int
    frame_rate: float
    kind: Literal["video", "audio", "subtitles"] = "video"
    language: str = ""
    title: str = ""
    default: bool = False

    @staticmethod
    def of_track(track: Track) -> RungInfo:
        """A rendition's facts."""
        return RungInfo(track.name, "", 0, 0, 0.0, track.kind, track.language, track.title,
                        track.default)  # fmt: skip

    def track(self) -> Track:
        """The rendition these facts describe (a rung is none)."""
        if self.kind == "video":
            raise ValueError(f"{self.name} is a rung, not a rendition")
        return Track(self.kind, self.name, 0, self.language, self.title, self.default)


class RedisWrite(NamedTuple):
    """One Redis write to a live channel's own keys (``ZADD``, ``HSET``; ``ZREM``,
    ``ZREMRANGEBYSCORE`` and ``PEXPIRE`` for its signal queue), as a value so it can be
    sent plainly or fenced by the channel's lease (``transcode.farm``)."""

    command: str
    key: str
    args: tuple[str, ...]


def written_channel(writes: Sequence[RedisWrite]) -> str:
    """The one channel whose keys ``writes`` change; ``ValueError`` when they span several
    hash tags (one step of writes must fit in one Cluster slot, see :func:`channel_tag`)."""
    tags = {tag_of(w.key) for w in writes}
    if len(tags) != 1:
        raise ValueError(f"writes of one step span several hash tags: {sorted(tags)}")
    return tags.pop()


def record_writes(channel: str, entries: Sequence[tuple[str, ArchiveEntry]]) -> list[RedisWrite]:
    """The writes indexing published segments (rung, entry)."""
    return [
        RedisWrite(
            "ZADD", index_key(channel, rung), (repr(entry.start.timestamp()), _member(entry))
        )
        for rung, entry in entries
    ]


def register_writes(
    channel: str, *, catchup_days: int, rungs: Sequence[RungInfo]
) -> list[RedisWrite]:
    """The writes recording a channel's catch-up period and its rungs' facts (then list it
    with :func:`index_channel`)."""
    writes = [RedisWrite("HSET", facts_key(channel), ("catchup_days", str(catchup_days)))]
    if rungs:
        fields: list[str] = []
        for r in rungs:
            facts: dict[str, object] = {"codecs": r.codecs, "w": r.width, "h": r.height,
                                        "fps": r.frame_rate}  # fmt: skip
            if r.kind != "video":
                facts.update(kind=r.kind, lang=r.language, title=r.title, default=r.default)
            fields += [r.name, json.dumps(facts, ensure_ascii=False)]
        writes.append(RedisWrite("HSET", rungs_key(channel), tuple(fields)))
    return writes


async def write_plainly(redis: aioredis.Redis, writes: Sequence[RedisWrite]) -> None:
    """Make one channel's ``writes`` in one transaction, unfenced (a channel no node lease
    guards)."""
    if not writes:
        return
    written_channel(writes)
    async with redis.pipeline(transaction=True) as pipe:
        for w in writes:
            pipe.execute_command(w.command, w.key, *w.args)
        await pipe.execute()


async def index_channel(redis: aioredis.Redis, channel: str) -> None:
    """List ``channel`` in ``tc:archived``, after :func:`register_writes` are made."""
    await redis.sadd(CHANNELS, channel)


def _member(entry: ArchiveEntry) -> str:
    member = (
        f"{entry.sequence}|{entry.start.timestamp():.6f}|{entry.duration:.6f}|"
        f"{entry.size}|{entry.path}|{int(entry.discontinuity)}"
    )
    # A clear segment's member stays as it was before encryption existed.
    return f"{member}|{entry.key_id}" if entry.key_id else member


def _entry(member: bytes | str) -> ArchiveEntry:
    text = member.decode() if isinstance(member, bytes) else member
    seq, start, duration, size, path, disc, *key = text.split("|")
    return ArchiveEntry(
        sequence=int(seq),
        start=datetime.fromtimestamp(float(start), UTC),
        duration=float(duration),
        size=int(size),
        path=path,
        discontinuity=disc == "1",
        key_id=key[0] if key else "",
    )


class ArchiveIndex:
    """Archived segments per channel and rung, in Redis."""

    def __init__(self, redis: aioredis.Redis) -> None:
        # redis-py types every reply as a union of all RESP shapes; replies are decoded here.
        self._redis: Any = redis
        # One rung's member with a sequence number, or false: a binary search over ranks
        # (find_segment.lua), since publishing gives later starts higher numbers.
        self._find = redis.register_script(script("transcode", "find_segment"))

    async def register_channel(
        self, channel: str, *, catchup_days: int, rungs: Sequence[RungInfo]
    ) -> None:
        """Record a channel's catch-up period and its rungs' facts."""
        await write_plainly(
            self._redis, register_writes(channel, catchup_days=catchup_days, rungs=rungs)
        )
        await index_channel(self._redis, channel)

    async def rungs(self, channel: str) -> list[RungInfo]:
        """The channel's rungs, in name order."""
        raw = await self._redis.hgetall(rungs_key(channel))
        out = []
        for name, value in sorted(raw.items()):
            facts = json.loads(value)
            out.append(
                RungInfo(
                    name.decode(),
                    facts["codecs"],
                    facts["w"],
                    facts["h"],
                    facts["fps"],
                    facts.get("kind", "video"),
                    facts.get("lang", ""),
                    facts.get("title", ""),
                    bool(facts.get("default")),
                )
            )
        return out

    async def record(self, channel: str, rung: str, entry: ArchiveEntry) -> None:
        """Index one published segment."""
        await self._redis.zadd(index_key(channel, rung), {_member(entry): entry.start.timestamp()})

    async def record_many(self, channel: str, entries: Sequence[tuple[str, ArchiveEntry]]) -> None:
        """Index many published segments (rung, entry) in one round trip."""
        # Writing an entry again changes nothing (a sorted-set member is unique), so a
        # batch cut short by an outage is simply sent again.
        if not entries:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for rung, entry in entries:
                pipe.zadd(index_key(channel, rung), {_member(entry): entry.start.timestamp()})
            await pipe.execute()

    async def highest_sequence(self, channel: str) -> int:
        """The highest sequence number indexed in any of the channel's rungs (-1 if none)."""
        highest = -1
        for rung in await self.rungs(channel):
            # Publishing gives later starts higher numbers: the last member is the highest.
            last = await self._redis.zrange(index_key(channel, rung.name), -1, -1)
            if last:
                highest = max(highest, _entry(last[0]).sequence)
        return highest

    async def recent(self, channel: str, rung: str, count: int) -> list[ArchiveEntry]:
        """The last ``count`` segments indexed in a rung, oldest first."""
        raw = await self._redis.zrange(index_key(channel, rung), -count, -1) if count > 0 else []
        return [_entry(m) for m in raw]

    async def window(self, channel: str, rung: str, window: Window) -> list[ArchiveEntry]:
        """Segments overlapping ``[start, end)`` in start order."""
        raw = await self._redis.zrangebyscore(
            index_key(channel, rung),
            window.start.timestamp() - _LOOKBEHIND_SECONDS,
            f"({window.end.timestamp()}",
        )
        return select_window([_entry(m) for m in raw], window)

    async def find(self, channel: str, rung: str, sequence: int) -> ArchiveEntry | None:
        """The archived segment with this sequence number, or None."""
        member = await self._find(keys=[index_key(channel, rung)], args=[sequence])
        return None if member is None else _entry(member)

    async def expire(self, channel: str, rung: str, cutoff: datetime, root: Path) -> int:
        """Delete segments that end before ``cutoff``: index entries first, then their files."""
        key = index_key(channel, rung)
        raw = await self._redis.zrangebyscore(key, "-inf", cutoff.timestamp())
        expired = [m for m in raw if _entry(m).end <= cutoff]
        if not expired:
            return 0
        # Index first: a crash between the two leaves an unreferenced file (swept
        # below next time), never an index entry pointing at nothing.
        await self._redis.zrem(key, *expired)
        for member in expired:
            (root / _entry(member).path).unlink(missing_ok=True)
        return len(expired)

    async def catchup_days(self) -> dict[str, int]:
        """Every archived channel and its catch-up period (one listed without its facts, a
        registration cut short, is left out)."""
        channels = sorted(m.decode() for m in await self._redis.smembers(CHANNELS))
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel in channels:
                pipe.hget(facts_key(channel), "catchup_days")
            days = await pipe.execute()
        return {c: int(d) for c, d in zip(channels, days, strict=True) if d is not None}


def segment_key(entry: ArchiveEntry, channel: str, base_url: str) -> hls.SegmentKey | None:
    """An archived segment's key as a playlist names it (None: a clear segment)."""
    if not entry.key_id:
        return None
    return hls.SegmentKey(
        key_uri(base_url, scope_for_channel(channel), entry.key_id), entry.sequence
    )


WindowState = Literal["settled", "growing", "ended"]


def window_state(entries: Sequence[ArchiveEntry], window: Window, now: datetime) -> WindowState:
    """What a catch-up window's playlist is now: ``settled`` (over for more than
    :data:`SETTLED`: VOD, cached long), ``growing`` (its end is ahead and the archive has not
    reached it: start-over, timeshift) or ``ended`` (it grew, and its end has come: the
    same EVENT playlist with ENDLIST appended, as RFC 8216 asks of an EVENT that ends)."""
    if window.end < now - SETTLED:
        return "settled"
    if now >= window.end or (entries and entries[-1].end >= window.end):
        return "ended"
    return "growing"


def render_catchup_media(
    entries: Sequence[ArchiveEntry],
    *,
    channel: str,
    key_base_url: str,
    state: WindowState = "settled",
    dateranges: Sequence[tuple[hls.DateRange, ...]] = (),
) -> str:
    """A playlist of archived segments (URIs are the segment file names): VOD for a settled
    window; EVENT while it may still grow or has just ended (see :func:`window_state`),
    telling players to begin at its first segment (``EXT-X-START``), not at its live edge,
    with ENDLIST once it has ended. It is numbered from the first segment's sequence
    number, so an encrypted segment's IV is implied and only a key change (or a gap in the
    numbers) needs an ``EXT-X-KEY``; keys are named ``{key_base_url}/keys/{channel}/{key_id}``.
    ``dateranges``: each entry's SCTE-35 date ranges (``transcode.cues.dateranges_for``)."""
    if not entries:
        raise ArchiveNotFound("no archived segments in the window")
    segments = [
        hls.Segment(
            uri=Path(e.path).name,
            duration=e.duration,
            program_date_time=e.start,
            discontinuity=e.discontinuity and i > 0,
            key=segment_key(e, channel, key_base_url),
            dateranges=dateranges[i] if dateranges else (),
        )
        for i, e in enumerate(entries)
    ]
    return hls.render_media(catchup_playlist(segments, entries[0].sequence, state))


def catchup_playlist(
    segments: Sequence[hls.Segment], media_sequence: int, state: WindowState
) -> hls.MediaPlaylist:
    """A catch-up window's playlist of ``segments`` as its ``state`` makes it (see
    :func:`render_catchup_media`; cut views, :mod:`transcode.cuts`, are made the same way)."""
    return hls.MediaPlaylist(
        segments=segments,
        media_sequence=media_sequence,
        playlist_type="VOD" if state == "settled" else "EVENT",
        endlist=state != "growing",
        start_offset_seconds=None if state == "settled" else 0.0,
    )


def live_master(
    rungs: Sequence[RungInfo],
    measured: Mapping[str, tuple[Sequence[int], Sequence[float]]],
    *,
    query: str = "",
    iframes: Mapping[str, tuple[Sequence[int], Sequence[float]]] | None = None,
) -> hls.MasterPlaylist:
    """The master of a live channel or a catch-up window: one variant per rung with segments,
    lowest bandwidth first, and its audio and subtitle renditions that have segments
    (``measured`` maps a rung or rendition to its segments' sizes in bytes and durations in
    seconds). With audio renditions a variant's bandwidth adds the most demanding one's
    (RFC 8216 section 4.3.4.2) and names the group, as VOD does (``transcode.tracks``).
    ``iframes`` maps a video rung with an I-frame playlist (``{rung}/iframes.m3u8``) to its
    I-frames' sizes and durations: each gets an ``EXT-X-I-FRAME-STREAM-INF``, its bandwidth
    measured as VOD's is (catch-up windows have none: the archive holds no keyframes)."""
    have = [r for r in rungs if measured.get(r.name, ((), ()))[0]]
    tracks = [r.track() for r in have if r.kind != "video"]
    rates = {r.name: bits_per_second(*measured[r.name]) for r in have}
    audio = [t for t in tracks if t.kind == "audio"]
    audio_peak = max((rates[t.name][0] for t in audio), default=0)
    audio_average = max((rates[t.name][1] for t in audio), default=0)
    subtitles = any(t.kind == "subtitles" for t in tracks)
    video = [r for r in have if r.kind == "video"]
    variants = [
        hls.Variant(
            uri=f"{rung.name}/index.m3u8{query}",
            bandwidth=rates[rung.name][0] + audio_peak,
            average_bandwidth=rates[rung.name][1] + audio_average,
            codecs=rung.codecs,
            resolution=(rung.width, rung.height),
            frame_rate=rung.frame_rate,
            audio=AUDIO_GROUP if audio else None,
            subtitles=SUBTITLES_GROUP if subtitles else None,
        )
        for rung in video
    ]
    variants.sort(key=lambda v: v.bandwidth)
    keyframes = {
        r.name: bits_per_second(*iframes[r.name])
        for r in video
        if iframes is not None and iframes.get(r.name, ((), ()))[0]
    }
    iframe_variants = [
        hls.IFrameVariant(
            uri=f"{rung.name}/{LIVE_IFRAMES}{query}",
            bandwidth=keyframes[rung.name][0],
            average_bandwidth=keyframes[rung.name][1],
            codecs=_video_codecs(rung.codecs),
            resolution=(rung.width, rung.height),
        )
        for rung in video
        if rung.name in keyframes
    ]
    iframe_variants.sort(key=lambda v: v.bandwidth)
    return hls.MasterPlaylist(
        variants=variants,
        iframe_variants=iframe_variants,
        renditions=renditions(tracks, lambda t: f"{t.name}/index.m3u8{query}") if variants else (),
    )


def _video_codecs(codecs: str) -> str:
    """A variant's CODECS without its audio's: what an I-frame variant lists (RFC 8216
    section 4.3.4.3)."""
    return ",".join(c for c in codecs.split(",") if not c.startswith(_AUDIO_CODECS))


def render_master_for(
    rungs: Sequence[RungInfo], windows: Mapping[str, Sequence[ArchiveEntry]], *, query: str = ""
) -> str:
    """A catch-up master playlist over the rungs and renditions that have segments in their
    windows."""
    measured = {
        name: ([e.size for e in entries], [e.duration for e in entries])
        for name, entries in windows.items()
    }
    master = live_master(rungs, measured, query=query)
    if not master.variants:
        raise ArchiveNotFound("no archived segments in the window")
    return hls.render_master(master)


class RetiredKeys(Protocol):
    """Content keys retired with the archive (``headend.contentkeys.ContentKeyStore``)."""

    async def delete_before(self, scope: str, before: datetime) -> int: ...


class Retention:
    """Deletes each channel's segments older than its catch-up days, index and files together,
    and (with ``keys``) the content keys no segment left needs."""

    def __init__(self, index: ArchiveIndex, *, root: Path, keys: RetiredKeys | None = None) -> None:
        self._index = index
        self._root = root
        self._keys = keys

    async def run_once(self, now: datetime) -> int:
        """One pass over every archived channel; returns how many segments were removed."""
        removed = 0
        for channel, days in (await self._index.catchup_days()).items():
            cutoff = retention_cutoff(now, days)
            for rung in await self._index.rungs(channel):
                removed += await self._index.expire(channel, rung.name, cutoff, self._root)
                removed += await asyncio.to_thread(
                    _sweep, self._root / "live" / channel / rung.name, cutoff
                )
            if self._keys is not None:
                # A segment left ends after the cutoff, so it started less than a segment
                # before it: its key's period ends after ``cutoff - lookbehind``.
                before = cutoff - timedelta(seconds=_LOOKBEHIND_SECONDS)
                deleted = await self._keys.delete_before(scope_for_channel(channel), before)
                if deleted:
                    log.info("retention deleted content keys",
                             extra={"channel": channel, "keys": deleted})  # fmt: skip
        return removed

    async def run(self, *, interval_seconds: float, stop: asyncio.Event) -> None:
        """Pass every ``interval_seconds`` until ``stop`` is set."""
        while not stop.is_set():
            try:
                removed = await self.run_once(utc_now())
                if removed:
                    log.info("retention removed segments", extra={"segments": removed})
            except (aioredis.RedisError, OSError, ContentKeyError):
                log.exception("retention pass failed")
            try:
                await asyncio.wait_for(stop.wait(), interval_seconds)
            except TimeoutError:
                pass


def _sweep(directory: Path, cutoff: datetime) -> int:
    """Remove segment files older than ``cutoff`` that the index no longer references."""
    if not directory.is_dir():
        return 0
    removed = 0
    limit = cutoff.timestamp()
    for path in (*directory.glob("*.ts"), *directory.glob("*.vtt")):
        try:
            if path.stat().st_mtime < limit:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
