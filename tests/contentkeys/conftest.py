"""Fixtures of the content key tests: a KEK ring and a store on the test's Redis."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from headend.contentkeys import ContentKeyStore, KekRing


@pytest.fixture
def keks() -> KekRing:
    """A fresh one-KEK ring."""
    return KekRing.generate("k1")


@pytest.fixture
def store(redis: aioredis.Redis, keks: KekRing) -> ContentKeyStore:
    """A content key store with the local (random) provider."""
    return ContentKeyStore(redis, keks)
