"""The set-top box journey with every gRPC hop on mutual TLS from a private CA: the
front door dials EPG and subscriber, the tests dial transcode, all with the CA's client
pair; a caller without a certificate is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cdn_ctl.sim.stb import SetTopBox
from headend.pki import local_pki
from headend.redisproc import RedisServer
from headend.rpc import client_channel
from tests.support.journey import Stack, build_stack
from tests.support.world import LIVE, SPORT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.xdist_group("e2e-mtls"),
    pytest.mark.asyncio(loop_scope="module"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mtls_stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """The platform with a private CA: mTLS on every gRPC server and caller."""
    workdir: Path = tmp_path_factory.mktemp("e2e-mtls")
    pki = local_pki(workdir / "pki", hosts=["127.0.0.1"])
    async with build_stack(redis_server.url, workdir, pki=pki) as up:
        yield up


async def test_the_journey_runs_over_mutual_tls(mtls_stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        b = mtls_stack.world.boxes["c1"]
        box = SetTopBox(http, mtls_stack.url, mac=b.mac, secret=b.secret)
        await box.login()
        assert [c.channel_id for c in await box.lineup()] == [LIVE, SPORT]
        guide = await box.guide()
        assert guide.channels == (LIVE, SPORT)
        stats = await box.play_live(LIVE, seconds=8)
        assert stats.segments >= 2
        assert stats.errors == []
        await box.stop(stats.lease)
        end = datetime.now(UTC) - timedelta(seconds=4)
        catchup = await box.play_catchup(LIVE, end - timedelta(seconds=6), end)
        assert catchup.segments >= 1


async def test_a_caller_without_a_certificate_is_refused(mtls_stack: Stack) -> None:
    services = mtls_stack.services
    assert services.tls is not None
    for target in (services.epg_target, services.subscriber_target):
        async with client_channel(target) as plain:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await health_pb2_grpc.HealthStub(plain).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
            assert err.value.code() is grpc.StatusCode.UNAVAILABLE
        async with client_channel(target, tls=services.tls) as mutual:
            reply = await health_pb2_grpc.HealthStub(mutual).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
