"""Cue fixtures: the store and service on the test Redis with a clock the test moves, and
the channels cues go into."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from epg.cues.service import CueService
from epg.cues.store import CueStore
from epg.metrics import CueMetrics
from epg.service import EpgService
from epg.store import EpgStore
from tests.epg.cues.support import Clock, make_channels


@pytest.fixture
def clock() -> Clock:
    """Now is ``T0`` until the test moves it."""
    return Clock()


@pytest.fixture
def cue_store(redis: aioredis.Redis) -> CueStore:
    """The cue store with a small bound, so it is easy to reach."""
    return CueStore(redis, changes_maxlen=1000, max_cues=5)


@pytest.fixture
def registry() -> CollectorRegistry:
    """A registry of its own per test."""
    return CollectorRegistry()


@pytest.fixture
async def cues(
    cue_store: CueStore,
    store: EpgStore,
    service: EpgService,
    clock: Clock,
    registry: CollectorRegistry,
) -> CueService:
    """The cue use cases over the EPG's channels (``CH``, ``CH2``: gdtv; ``HN``: hntv)."""
    await make_channels(service)
    return CueService(store=cue_store, channels=store, metrics=CueMetrics(registry), clock=clock)
