"""Alert fixtures: the store and service on the test Redis with a clock the test moves."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from epg.alerts.service import AlertService
from epg.alerts.store import AlertStore
from epg.metrics import AlertMetrics
from tests.epg.alerts.support import Clock


@pytest.fixture
def clock() -> Clock:
    """Now is ``T0`` until the test moves it."""
    return Clock()


@pytest.fixture
def alert_store(redis: aioredis.Redis) -> AlertStore:
    """The alert store with a small cap, so trimming is easy to reach."""
    return AlertStore(redis, changes_maxlen=1000, max_alerts=5)


@pytest.fixture
def registry() -> CollectorRegistry:
    """A registry of its own per test."""
    return CollectorRegistry()


@pytest.fixture
def alerts(alert_store: AlertStore, clock: Clock, registry: CollectorRegistry) -> AlertService:
    """The alert use cases, confirmation time 900 s."""
    return AlertService(
        store=alert_store, confirm_seconds=900, metrics=AlertMetrics(registry), clock=clock
    )
