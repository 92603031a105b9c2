"""``ChannelOwners`` against a real EPG server: a broadcaster's channels as its own key
lists them, kept per principal for a few seconds and for a bounded number of principals;
an EPG that cannot answer is ``ServiceUnavailable``."""

from __future__ import annotations

import pytest

from epg.client import EpgClient
from epg.owners import ChannelOwners, OwnersSettings
from headend.errors import PermissionDenied
from headend.rpc import ServiceUnavailable
from tests.epg.support import BROADCASTER, OTHER, Grpc, channel
from tests.support.net import free_port


class Ticks:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _create(g: Grpc, cid: str, owner: str, number: int) -> None:
    async with EpgClient(g.target, await g.token("admin")) as epg:
        await epg.create_channel(channel(cid, owner=owner, number=number))


async def test_a_broadcasters_channels_cached_per_principal(grpc_epg: Grpc) -> None:
    await _create(grpc_epg, "a1.gdtv.cn", "gdtv", 1)
    await _create(grpc_epg, "b1.hntv.cn", "hntv", 2)
    ticks = Ticks()
    settings = OwnersSettings(target=grpc_epg.target, cache_seconds=5)
    async with ChannelOwners(settings, max_principals=1, clock=ticks) as owners:
        key = await grpc_epg.token(BROADCASTER)
        assert await owners.owned(BROADCASTER, key) == {"a1.gdtv.cn"}
        await owners.require(BROADCASTER, key, "a1.gdtv.cn")
        with pytest.raises(PermissionDenied):
            await owners.require(BROADCASTER, key, "b1.hntv.cn")
        await _create(grpc_epg, "a2.gdtv.cn", "gdtv", 3)
        ticks.now = 4.9  # still the answer of a moment ago
        assert await owners.owned(BROADCASTER, key) == {"a1.gdtv.cn"}
        ticks.now = 5.1
        assert await owners.owned(BROADCASTER, key) == {"a1.gdtv.cn", "a2.gdtv.cn"}
        # Another principal's answer is its own, and (one kept at most) pushes gdtv's out.
        assert await owners.owned(OTHER, await grpc_epg.token(OTHER)) == {"b1.hntv.cn"}
        await _create(grpc_epg, "a3.gdtv.cn", "gdtv", 4)
        assert len(await owners.owned(BROADCASTER, key)) == 3


async def test_an_epg_that_cannot_answer_is_unavailable(grpc_epg: Grpc) -> None:
    settings = OwnersSettings(target=f"127.0.0.1:{free_port()}")
    async with ChannelOwners(settings) as owners:
        with pytest.raises(ServiceUnavailable):
            await owners.owned(BROADCASTER, await grpc_epg.token(BROADCASTER))


def test_settings_read_the_epgs_address() -> None:
    assert OwnersSettings.from_env({}).target == "127.0.0.1:50051"
    assert OwnersSettings.from_env({"EPG_TARGET": "epg:1"}).target == "epg:1"
