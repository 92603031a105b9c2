"""The archive index: every published segment of a live channel in Redis (the keys are in
the package's docstring), the writes a node makes, and the lookups catch-up reads with."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

import redis.asyncio as aioredis

from headend.lua import script
from transcode.domain import ArchiveEntry, Window, select_window
from transcode.tracks import Track

CHANNELS = "tc:archived"
# Index lookups start this far before the window so a segment that began
# before ``from`` but overlaps it is still found.
LOOKBEHIND_SECONDS = 30.0


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
            window.start.timestamp() - LOOKBEHIND_SECONDS,
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
