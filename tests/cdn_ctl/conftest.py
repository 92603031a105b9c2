"""CDN fixtures: a fake origin (a tiny aiohttp app counting hits), signing keys, nginx edges."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cdn_ctl.signing import KeyRing
from tests.support.cdn import EdgeFactory, FakeOrigin, edge_factory, rotation_ring


@pytest.fixture
async def origin() -> AsyncIterator[FakeOrigin]:
    """A fake origin on a free port."""
    fake = FakeOrigin()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def ring() -> KeyRing:
    """Two keys (k1 old, k2 active), as during a rotation overlap."""
    return rotation_ring()


@pytest.fixture
async def edges(tmp_path: Path, ring: KeyRing) -> AsyncIterator[EdgeFactory]:
    """``await edges("e1", upstream=origin.address)`` -> a started nginx edge; all stopped after."""
    async with edge_factory(tmp_path, ring) as make:
        yield make
