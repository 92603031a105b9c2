"""A live channel's SCTE-35 cues kept for catch-up: what Redis holds, and where a window's
playlist shows them.

The live side (``transcode.live.scte35``) turns each splice signal into an
``EXT-X-DATERANGE`` attached to the segment whose boundary it landed on; that range and
the boundary (the segment's start) are one :class:`StoredCue`. They are kept in
``tc:cues:{cctv1}``, a sorted set scored by the boundary under the channel's hash tag,
written through the channel store's writer (fenced by the node's lease, like archive
entries) and trimmed to the channel's catch-up period as new ones are written; the whole
set lapses that long after the last one (an unfenced trim: dropping what is past
retention again changes nothing).

A catch-up window gets the same ranges on the same segments (:func:`dateranges_for`): each
cue on the first segment starting at or after its boundary, and a range that began
before the window but still runs (an out whose return is later) on its first segment,
as RFC 8216bis section 4.4.5.1 keeps a date range while a segment it covers is listed.
Pure but for :func:`read_cues` and :func:`trim_cues`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from transcode import hls
from transcode.archive import RedisWrite, channel_tag
from transcode.domain import ArchiveEntry

# A boundary this close to a segment's start is that segment's (float noise of stored times).
BOUNDARY_SLACK = timedelta(milliseconds=1)
# How far before a window a still-running range is looked for, and how many cues one read
# returns at most (a window's cues are a handful; a flood of bogus ones is cut here).
LOOKBEHIND = timedelta(hours=3)
MAX_READ = 1000
# Past its catch-up period a channel's cue set lapses this long after its last write.
_EXPIRY_SLACK_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class StoredCue:
    """A date range as a live playlist showed it, and the boundary (segment start) it is on."""

    at: datetime
    range: hls.DateRange


def cues_key(channel: str) -> str:
    """The sorted set of a channel's cues, scored by boundary (epoch seconds)."""
    return f"tc:cues:{channel_tag(channel)}"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def cue_member(cue: StoredCue) -> str:
    """``at|id|start|duration|planned|kind|hex``: one member, no second lookup."""
    r = cue.range
    kind, payload = next(
        (k, p) for k, p in (("o", r.scte35_out), ("i", r.scte35_in), ("c", r.scte35_cmd)) if p
    )
    return (
        f"{cue.at.timestamp():.6f}|{r.id}|{r.start_date.timestamp():.6f}|"
        f"{_number(r.duration)}|{_number(r.planned_duration)}|{kind}|{payload.hex()}"
    )


def parse_member(member: bytes | str) -> StoredCue:
    """The cue a member holds; ``ValueError`` for one that is not a cue's."""
    text = member.decode() if isinstance(member, bytes) else member
    at, ident, start, duration, planned, kind, payload = text.split("|")
    field = {"o": "scte35_out", "i": "scte35_in", "c": "scte35_cmd"}[kind]
    return StoredCue(
        datetime.fromtimestamp(float(at), UTC),
        hls.DateRange(
            id=ident,
            start_date=datetime.fromtimestamp(float(start), UTC),
            duration=float(duration) if duration else None,
            planned_duration=float(planned) if planned else None,
            **{field: bytes.fromhex(payload)},
        ),
    )


def cue_writes(channel: str, cues: Sequence[StoredCue]) -> list[RedisWrite]:
    """The writes keeping ``cues`` (made through the channel store's writer)."""
    return [
        RedisWrite("ZADD", cues_key(channel), (repr(c.at.timestamp()), cue_member(c))) for c in cues
    ]


async def trim_cues(
    redis: aioredis.Redis, channel: str, *, cutoff: datetime, catchup_days: int
) -> None:
    """Drop the cues before ``cutoff`` (the archive's retention) and let the set lapse once
    every one it holds is past the catch-up period."""
    client: Any = redis
    key = cues_key(channel)
    async with client.pipeline(transaction=False) as pipe:
        pipe.zremrangebyscore(key, "-inf", f"({cutoff.timestamp()!r}")
        pipe.expire(key, catchup_days * 86400 + _EXPIRY_SLACK_SECONDS)
        await pipe.execute()


async def read_cues(
    redis: aioredis.Redis, channel: str, start: datetime, end: datetime
) -> list[StoredCue]:
    """The channel's cues on boundaries in ``[start - LOOKBEHIND, end]`` (at most
    ``MAX_READ``); a member that is not a cue's is skipped."""
    client: Any = redis
    raw = await client.zrangebyscore(
        cues_key(channel),
        (start - LOOKBEHIND).timestamp(),
        end.timestamp(),
        start=0,
        num=MAX_READ,
    )
    out = []
    for member in raw:
        try:
            out.append(parse_member(member))
        except (ValueError, KeyError):
            continue
    return out


def closes(ranges: Iterable[hls.DateRange]) -> dict[str, datetime]:
    """When each range with a known return ends, by ID (a return carries its DURATION)."""
    return {r.id: r.start_date + timedelta(seconds=r.duration) for r in ranges
            if r.duration is not None}  # fmt: skip


def still_runs(r: hls.DateRange, at: datetime, ends: Mapping[str, datetime]) -> bool:
    """True when range ``r`` covers media from ``at`` on (``ends``: :func:`closes`)."""
    end = ends.get(r.id, r.end)
    return end is None or end > at


def dateranges_for(
    entries: Sequence[ArchiveEntry], cues: Sequence[StoredCue]
) -> list[tuple[hls.DateRange, ...]]:
    """The date ranges before each of ``entries`` (a window of one rung, in order)."""
    out: list[list[hls.DateRange]] = [[] for _ in entries]
    if not entries:
        return []
    starts = [e.start for e in entries]
    ends = closes(c.range for c in cues)
    for cue in sorted(cues, key=lambda c: c.at):
        index = bisect.bisect_left(starts, cue.at - BOUNDARY_SLACK)
        if index == len(entries) or cue.at >= entries[-1].end:
            continue  # after the window
        if index == 0 and cue.at < starts[0] - BOUNDARY_SLACK:
            if not still_runs(cue.range, starts[0], ends):
                continue  # over before the window
        out[index].append(cue.range)
    return [tuple(ranges) for ranges in out]
