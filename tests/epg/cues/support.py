"""Builders for cue tests: a valid cue, a settable clock, the channels they go into."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from epg.cues.domain import Cue, CueKind
from epg.service import EpgService
from headend.auth import ADMIN
from tests.epg.support import channel

T0 = datetime(2030, 5, 1, 8, 0, tzinfo=UTC)
CH = "gd1.gdtv.cn"  # owned by gdtv
CH2 = "gd2.gdtv.cn"  # owned by gdtv
HN = "hn1.hntv.cn"  # owned by hntv


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def cue(cue_id: str = "c1", channel_id: str = CH, **changes: Any) -> Cue:
    """A valid two-minute break on ``channel_id`` an hour after ``T0``."""
    base = Cue(
        id=cue_id,
        channel_id=channel_id,
        kind=CueKind.BREAK,
        start=T0 + timedelta(hours=1),
        duration_seconds=120.0,
        description="mid-roll",
    )
    return dataclasses.replace(base, **changes)


async def make_channels(service: EpgService) -> None:
    """The two gdtv channels and one of hntv."""
    for number, (cid, owner) in enumerate(((CH, "gdtv"), (CH2, "gdtv"), (HN, "hntv")), 1):
        await service.create_channel(ADMIN, channel(cid, owner=owner, number=number))


async def snapshot(redis: aioredis.Redis) -> dict[Any, Any]:
    """Every key and its serialised value: proof that a refused call changed nothing."""
    return {key: await redis.dump(key) for key in sorted(await redis.keys("*"))}
