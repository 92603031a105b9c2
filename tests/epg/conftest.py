"""EPG fixtures: the service on the test Redis, a gRPC server on port 0, and guide builders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from epg.domain import Channel, Programme, Text
from epg.service import EpgService
from epg.store import EpgStore
from headend.auth import PLAYBACK, KeyStore, Principal
from tests.epg.support import Grpc, serve_epg

__all__ = ["Grpc"]  # re-exported: tests import it from here

BROADCASTER = Principal("broadcaster", "gdtv")
OTHER = Principal("broadcaster", "hntv")
CARRIER = Principal("carrier", "acme")
DEVICE = Principal("device", "aa:bb:cc:dd:ee:ff")
PLAYER = PLAYBACK  # the front door and the origin
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def store(redis: aioredis.Redis) -> EpgStore:
    """The EPG store on the test database, with a short change history."""
    return EpgStore(redis, changes_maxlen=1000)


@pytest.fixture
def service(store: EpgStore) -> EpgService:
    """The EPG use cases with small bounds so limits are easy to hit."""
    return EpgService(store=store, max_batch=500, max_import_bytes=2_000_000, watch_block_ms=50)


def channel(cid: str = "gd1.gdtv.cn", owner: str = "gdtv", **kw: Any) -> Channel:
    """A valid channel."""
    base: dict[str, Any] = {
        "id": cid,
        "number": 1,
        "names": (Text("zh", "广东卫视"), Text("en", "Guangdong TV")),
        "owner": owner,
        "catchup_days": 7,
        "group": "satellite",
        "logo_url": "https://img.example.cn/gd1.png",
    }
    base.update(kw)
    return Channel(**base)


def prog(
    start: datetime,
    minutes: int = 30,
    *,
    ch: str = "gd1.gdtv.cn",
    pid: str = "",
    title: str = "新闻联播",
    **kw: Any,
) -> Programme:
    """A valid programme (id derived from channel and start unless given)."""
    return Programme(
        id=pid,
        channel_id=ch,
        start=start,
        stop=start + timedelta(minutes=minutes),
        titles=(Text("zh", title),),
        **kw,
    )


def day_of(
    start: datetime, count: int, minutes: int = 30, *, ch: str = "gd1.gdtv.cn"
) -> list[Programme]:
    """``count`` back-to-back programmes from ``start``."""
    return [
        prog(start + timedelta(minutes=minutes * i), minutes, ch=ch, title=f"节目 {i}")
        for i in range(count)
    ]


@pytest.fixture
async def grpc_epg(redis: aioredis.Redis, keys: KeyStore, tokens: Any) -> AsyncIterator[Grpc]:
    """The EPG served on port 0 with real auth; stopped in teardown."""
    async with serve_epg(redis, keys, tokens) as served:
        yield served


def code(err: grpc.aio.AioRpcError) -> grpc.StatusCode:
    """The status code of a failed call."""
    return err.code()
