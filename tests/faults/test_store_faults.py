"""The stores under the faults a real night brings, with real processes.

A private ``redis-server`` (AOF, ``appendfsync always``) and the services as
the children operators run (``python -m epg``, ``python -m subscriber``,
``python -m transcode``) with the Redis client factory's default timeouts.

- Quiet streams: ``WatchChanges`` and ``WatchJob`` stay open through 60 s in
  which nothing happens (redis-py's 5 s read timeout used to end them), then
  still deliver.
- Redis SIGKILLed and restarted (after 2 s and after 30 s) while a carrier
  provisions subscribers and boxes: during the outage every call ends
  UNAVAILABLE with a ``RetryInfo`` within its deadline (never UNKNOWN); after
  it the same server processes succeed again; no acknowledged write is lost.
- Malformed requests are INVALID_ARGUMENT naming the field, never UNKNOWN.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf.timestamp_pb2 import Timestamp

from headend.redisconn import RedisSettings, connect
from headend.rpc import client_channel, error_details
from headend.settings import SettingsError
from protos import (
    epg_pb2,
    epg_pb2_grpc,
    subscriber_pb2,
    subscriber_pb2_grpc,
    transcode_pb2,
    transcode_pb2_grpc,
)
from tests.support.services import REPO, Platform, child_env, platform

pytestmark = pytest.mark.slow
# The async tests share the module's event loop (the malformed-request table shares one
# platform); the settings tests are plain functions.
MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

CALL_SECONDS = 5.0  # every provisioning call's deadline
_ACME = subscriber_pb2.Carrier(display_name="Acme", network_type=subscriber_pb2.NETWORK_TYPE_CABLE)


# ---------------------------------------------------------------- quiet streams


@pytest_asyncio.fixture(loop_scope="module")
async def quiet(tmp_path: Path) -> AsyncIterator[Platform]:
    """EPG and transcode control children on a private Redis (no worker: jobs stay queued)."""
    media = tmp_path / "media"
    media.mkdir()
    (media / "film.mp4").write_bytes(b"\0" * 1024)
    async with platform(tmp_path / "redis") as up:
        await up.start("epg", "epg")
        await up.start(
            "transcode", "transcode", ORIGIN_ROOT=str(tmp_path / "origin"),
            TC_MEDIA_ROOTS=str(media),
        )  # fmt: skip
        yield up


@MODULE_LOOP
async def test_watch_changes_and_watch_job_stay_open_through_60_quiet_seconds(
    quiet: Platform, tmp_path: Path
) -> None:
    md = quiet.md
    epg_target, tc_target = quiet.services["epg"].target, quiet.services["transcode"].target
    async with client_channel(epg_target) as epg_chan, client_channel(tc_target) as tc_chan:
        epg = epg_pb2_grpc.EpgServiceStub(epg_chan)
        tc = transcode_pb2_grpc.TranscodeServiceStub(tc_chan)
        changes = epg.WatchChanges(epg_pb2.WatchChangesRequest(), metadata=md)
        await asyncio.wait_for(changes.initial_metadata(), 10)
        job = await tc.SubmitJob(
            transcode_pb2.SubmitJobRequest(
                source=f"file://{tmp_path / 'media' / 'film.mp4'}", asset="film", profile="low"
            ),
            metadata=md,
            timeout=10,
        )
        events = tc.WatchJob(transcode_pb2.WatchJobRequest(name=job.name), metadata=md)
        first = await asyncio.wait_for(events.read(), 10)
        assert first.state == transcode_pb2.JOB_STATE_QUEUED
        next_change = asyncio.ensure_future(changes.read())
        next_event = asyncio.ensure_future(events.read())
        # Sixty seconds in which nothing happens: neither stream delivers, fails or ends.
        done, _ = await asyncio.wait({next_change, next_event}, timeout=60)
        assert done == set(), (
            [t.exception() or t.result() for t in done],
            [line for s in quiet.services.values() for line in s.problems()],
        )
        # Both are still alive: the next change and the next job event arrive.
        await epg.CreateChannel(
            epg_pb2.CreateChannelRequest(
                channel_id="late.cn",
                channel=epg_pb2.Channel(
                    number=9,
                    owner="demo",
                    names=[epg_pb2.LocalizedText(lang="en", text="Late")],
                ),
            ),
            metadata=md,
            timeout=10,
        )
        change = await asyncio.wait_for(next_change, 15)
        assert (change.kind, change.channel_id) == (epg_pb2.CHANGE_KIND_CHANNEL, "late.cn")
        await tc.CancelJob(transcode_pb2.CancelJobRequest(name=job.name), metadata=md, timeout=10)
        event = await asyncio.wait_for(next_event, 15)
        assert event.state == transcode_pb2.JOB_STATE_CANCELLED
        assert await asyncio.wait_for(events.read(), 10) is grpc.aio.EOF
        assert await events.code() == grpc.StatusCode.OK
        changes.cancel()
    assert all(s.alive for s in quiet.services.values())


# ---------------------------------------------------------------- Redis killed mid-provisioning


@dataclass(frozen=True, slots=True)
class Outcome:
    """One provisioning call: when, which, how it ended and how long it took."""

    phase: str
    method: str
    code: grpc.StatusCode
    seconds: float
    retry_delay: float | None
    reason: str


@dataclass
class Provisioner:
    """A carrier provisioning subscribers and their boxes, one after the other, as fast
    as the platform answers; every answer is recorded under the current phase."""

    subscriber: Any
    epg: Any
    md: tuple[tuple[str, str], ...]
    phase: str = "before"
    outcomes: list[Outcome] = field(default_factory=list)
    subscribers: list[str] = field(default_factory=list)  # acknowledged creates
    macs: list[str] = field(default_factory=list)  # acknowledged binds
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    async def _call(self, method: str, rpc: Callable[..., Awaitable[Any]], request: Any) -> bool:
        started = time.monotonic()
        code, delay, reason = grpc.StatusCode.OK, None, ""
        try:
            await rpc(request, metadata=self.md, timeout=CALL_SECONDS)
        except grpc.aio.AioRpcError as err:
            code = err.code()
            details = error_details(err)
            delay, reason = details.retry_delay_seconds, details.reason
        self.outcomes.append(
            Outcome(self.phase, method, code, time.monotonic() - started, delay, reason)
        )
        self.progress.set()
        return code == grpc.StatusCode.OK

    async def run(self) -> None:
        """Provision until cancelled."""
        n = 0
        while True:
            n += 1
            sid, mac = f"s{n:05d}", f"0a:00:00:00:{n >> 8 & 255:02x}:{n & 255:02x}"
            create = subscriber_pb2.CreateSubscriberRequest(
                parent="carriers/acme",
                subscriber_id=sid,
                subscriber=subscriber_pb2.Subscriber(display_name=f"Sub {n}", region_code="110101"),
                idempotency_key=f"create-{sid}",
            )
            if await self._call("CreateSubscriber", self.subscriber.CreateSubscriber, create):
                self.subscribers.append(sid)
                bind = subscriber_pb2.BindDeviceRequest(
                    parent=f"carriers/acme/subscribers/{sid}",
                    mac=mac,
                    idempotency_key=f"bind-{sid}",
                )
                if await self._call("BindDevice", self.subscriber.BindDevice, bind):
                    self.macs.append(mac)
            await self._call("ListChannels", self.epg.ListChannels, epg_pb2.ListChannelsRequest())
            if self.phase == "down":
                # Nothing can succeed now: do not spin on instant refusals.
                await asyncio.sleep(0.05)

    def acked(self, phase: str) -> int:
        """Successful calls in ``phase``."""
        return sum(1 for o in self.outcomes if o.phase == phase and o.code == grpc.StatusCode.OK)

    async def until(self, check: Callable[[], bool]) -> None:
        """Wait (on the provisioning's own progress) until ``check()`` holds."""
        while not check():
            self.progress.clear()
            await self.progress.wait()


@MODULE_LOOP
@pytest.mark.parametrize(
    "down_seconds", [pytest.param(2, id="down-2s"), pytest.param(30, id="down-30s")]
)
async def test_provisioning_survives_redis_sigkill_and_restart(
    tmp_path: Path, down_seconds: int
) -> None:
    async with platform(tmp_path / "redis") as up:
        subscriber = await up.start("subscriber", "subscriber")
        epg = await up.start("epg", "epg")
        pids = {name: s.pid for name, s in up.services.items()}
        async with (
            client_channel(subscriber.target) as sub_chan,
            client_channel(epg.target) as epg_chan,
        ):
            stub = subscriber_pb2_grpc.SubscriberServiceStub(sub_chan)
            await stub.CreateCarrier(
                subscriber_pb2.CreateCarrierRequest(carrier_id="acme", carrier=_ACME),
                metadata=up.md,
                timeout=CALL_SECONDS,
            )
            feed = Provisioner(stub, epg_pb2_grpc.EpgServiceStub(epg_chan), up.md)
            runner = asyncio.create_task(feed.run())
            try:
                await asyncio.wait_for(feed.until(lambda: feed.acked("before") >= 60), 30)
                up.redis.kill()  # SIGKILL: what a crash or an OOM kill does
                feed.phase = "down"
                await asyncio.sleep(down_seconds)
                feed.phase = "restart"
                await asyncio.to_thread(up.redis.start)
                feed.phase = "after"
                # Recovery needs nobody: the same processes answer again, soon.
                await asyncio.wait_for(feed.until(lambda: feed.acked("after") >= 60), 20)
            finally:
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
            # Every acknowledged write is still there (appendfsync always).
            for sid in feed.subscribers:
                got = await stub.GetSubscriber(
                    subscriber_pb2.GetSubscriberRequest(name=f"carriers/acme/subscribers/{sid}"),
                    metadata=up.md,
                    timeout=CALL_SECONDS,
                )
                assert got.name == f"carriers/acme/subscribers/{sid}"
            for mac in feed.macs:
                device = await stub.GetDevice(
                    subscriber_pb2.GetDeviceRequest(
                        name=f"carriers/acme/devices/{mac.replace(':', '')}"
                    ),
                    metadata=up.md,
                    timeout=CALL_SECONDS,
                )
                assert device.mac == mac
        assert {name: s.pid for name, s in up.services.items()} == pids
        assert all(s.alive for s in up.services.values())
        logged_bugs = [line for s in up.services.values() for line in s.logged("rpc failed")]
    codes = {o.code for o in feed.outcomes}
    assert codes <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, codes
    refused = [o for o in feed.outcomes if o.code == grpc.StatusCode.UNAVAILABLE]
    assert refused, "the outage was never seen"
    assert all(o.retry_delay for o in refused), "UNAVAILABLE without a RetryInfo"
    assert not [o for o in feed.outcomes if o.phase == "down" and o.code == grpc.StatusCode.OK]
    assert max(o.seconds for o in feed.outcomes) < CALL_SECONDS
    assert logged_bugs == []  # no call ended UNKNOWN with an error id


# ---------------------------------------------------------------- malformed requests


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def services(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    """EPG and subscriber children with a channel and a carrier (shared by the table)."""
    async with platform(tmp_path_factory.mktemp("malformed")) as up:
        await up.start("epg", "epg")
        await up.start("subscriber", "subscriber")
        async with client_channel(up.services["epg"].target) as chan:
            await epg_pb2_grpc.EpgServiceStub(chan).CreateChannel(
                epg_pb2.CreateChannelRequest(
                    channel_id="a.cn",
                    channel=epg_pb2.Channel(
                        number=1,
                        owner="demo",
                        names=[epg_pb2.LocalizedText(lang="en", text="A")],
                    ),
                ),
                metadata=up.md,
                timeout=10,
            )
        async with client_channel(up.services["subscriber"].target) as chan:
            await subscriber_pb2_grpc.SubscriberServiceStub(chan).CreateCarrier(
                subscriber_pb2.CreateCarrierRequest(carrier_id="acme", carrier=_ACME),
                metadata=up.md,
                timeout=10,
            )
        yield up


def _unnamed(number: int) -> Any:
    """An enum number no name stands for: enums are open on the wire, so any can arrive."""
    return number


def _ts(seconds: int, nanos: int = 0) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=nanos)


def _programme(start: Timestamp, stop: Timestamp) -> Any:
    return epg_pb2.Programme(
        titles=[epg_pb2.LocalizedText(lang="en", text="t")], start=start, stop=stop
    )


def _rule(**fields: Any) -> Any:
    values: dict[str, Any] = {
        "weekdays": [1], "hour": 20, "minute": 0, "duration_seconds": 3600,
        "titles": [epg_pb2.LocalizedText(lang="en", text="News")],
        "first_day": epg_pb2.LocalDate(year=2030, month=1, day=1),
        "last_day": epg_pb2.LocalDate(year=2030, month=1, day=31),
    }  # fmt: skip
    values.update(fields)
    return epg_pb2.SlotRule(**values)


SOON, LATER = _ts(1_900_000_000), _ts(1_900_003_600)
# (service, method, request, the field the error must name)
_CH = "a.cn"
_PARENT = f"channels/{_CH}"
_SUB: dict[str, Any] = {"display_name": "X", "region_code": "110101"}
_TEXT = [epg_pb2.LocalizedText(lang="en", text="B")]
# (service, method, request, the field the error must name)
MALFORMED = [
    pytest.param("epg", "PutProgrammes", epg_pb2.PutProgrammesRequest(
        parent=_PARENT, programmes=[_programme(SOON, LATER)], policy=_unnamed(99)),
        "policy", id="epg-unknown-write-policy"),
    pytest.param("epg", "ExpandSlots", epg_pb2.ExpandSlotsRequest(
        parent=_PARENT, rule=_rule(gap_policy=_unnamed(77))),
        "rule.gap_policy", id="epg-unknown-gap-policy"),
    pytest.param("epg", "ExpandSlots", epg_pb2.ExpandSlotsRequest(
        parent=_PARENT, rule=_rule(fold_policy=_unnamed(-3))),
        "rule.fold_policy", id="epg-unknown-fold-policy"),
    pytest.param("epg", "PutProgrammes", epg_pb2.PutProgrammesRequest(
        parent=_PARENT, programmes=[_programme(_ts(2**62), _ts(2**62 + 60))]),
        "programmes[0].start", id="epg-timestamp-past-9999"),
    pytest.param("epg", "PutProgrammes", epg_pb2.PutProgrammesRequest(
        parent=_PARENT, programmes=[_programme(_ts(1_900_000_000, -5), LATER)]),
        "programmes[0].start", id="epg-negative-nanos"),
    pytest.param("epg", "NowNext", epg_pb2.NowNextRequest(channel_ids=[_CH], at=_ts(-(2**40))),
        "at", id="epg-timestamp-before-year-1"),
    pytest.param("epg", "CreateChannel", epg_pb2.CreateChannelRequest(
        channel_id="b.cn", channel=epg_pb2.Channel(number=2**32 - 1, owner="demo", names=_TEXT)),
        "channel.number", id="epg-channel-number-out-of-range"),
    pytest.param("epg", "ExpandSlots", epg_pb2.ExpandSlotsRequest(
        parent=_PARENT, rule=_rule(duration_seconds=2**32 - 1)),
        "rule.duration", id="epg-slot-duration-out-of-range"),
    pytest.param("epg", "ExpandSlots", epg_pb2.ExpandSlotsRequest(
        parent=_PARENT, rule=_rule(first_day=epg_pb2.LocalDate(year=2030, month=2, day=30))),
        "rule.first_day", id="epg-slot-date-that-does-not-exist"),
    pytest.param("epg", "Grid", epg_pb2.GridRequest(start=SOON, stop=LATER, page_token="-5"),
        "page_token", id="epg-negative-page-token"),
    pytest.param("epg", "GetProgramme", epg_pb2.GetProgrammeRequest(name="x" * 100_000),
        "name", id="epg-programme-name-100k"),
    pytest.param("subscriber", "CreateCarrier", subscriber_pb2.CreateCarrierRequest(
        carrier_id="b",
        carrier=subscriber_pb2.Carrier(display_name="B", network_type=_unnamed(77))),
        "network_type", id="subscriber-unknown-network"),
    pytest.param("subscriber", "SetCarrierStatus", subscriber_pb2.SetCarrierStatusRequest(
        name="carriers/acme", status=_unnamed(9)),
        "status", id="subscriber-unknown-status"),
    pytest.param("subscriber", "CreateSubscriber", subscriber_pb2.CreateSubscriberRequest(
        parent="carriers/acme", subscriber_id="x1",
        subscriber=subscriber_pb2.Subscriber(max_streams=2**32 - 1, **_SUB)),
        "max_streams", id="subscriber-max-streams-out-of-range"),
    pytest.param("subscriber", "CreateSubscriber", subscriber_pb2.CreateSubscriberRequest(
        parent="carriers/acme", subscriber_id="x2",
        subscriber=subscriber_pb2.Subscriber(service_end=_ts(2**62), **_SUB)),
        "service_end", id="subscriber-timestamp-past-9999"),
    pytest.param("subscriber", "Authorize", subscriber_pb2.AuthorizeRequest(
        mac="aa:bb:cc:dd:ee:ff", channel_id=_CH, at=_ts(-(2**62))),
        "at", id="subscriber-timestamp-before-year-1"),
    pytest.param("subscriber", "CreateSubscriber", subscriber_pb2.CreateSubscriberRequest(
        parent="carriers/acme", subscriber_id="x3", subscriber=subscriber_pb2.Subscriber(**_SUB),
        idempotency_key="\x00"),
        "idempotency_key", id="subscriber-bad-idempotency-key"),
]  # fmt: skip


@MODULE_LOOP
@pytest.mark.parametrize(("service", "method", "request_", "field_name"), MALFORMED)
async def test_malformed_requests_are_invalid_argument_naming_the_field(
    services: Platform, service: str, method: str, request_: Any, field_name: str
) -> None:
    stub_type = {
        "epg": epg_pb2_grpc.EpgServiceStub,
        "subscriber": subscriber_pb2_grpc.SubscriberServiceStub,
    }[service]
    async with client_channel(services.services[service].target) as chan:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await getattr(stub_type(chan), method)(request_, metadata=services.md, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert field_name in error_details(err.value).fields


# ---------------------------------------------------------------- client settings


@pytest.mark.parametrize(
    ("env", "name"),
    [
        pytest.param({"REDIS_SOCKET_TIMEOUT_SECONDS": "0.2"}, "REDIS_SOCKET_TIMEOUT_SECONDS",
                     id="socket-timeout-too-short"),
        pytest.param({"REDIS_SOCKET_TIMEOUT_SECONDS": "soon"}, "REDIS_SOCKET_TIMEOUT_SECONDS",
                     id="socket-timeout-not-a-number"),
        pytest.param({"REDIS_CONNECT_TIMEOUT_SECONDS": "0"}, "REDIS_CONNECT_TIMEOUT_SECONDS",
                     id="connect-timeout-zero"),
        pytest.param({"REDIS_HEALTH_CHECK_SECONDS": "-1"}, "REDIS_HEALTH_CHECK_SECONDS",
                     id="health-check-negative"),
        pytest.param({"REDIS_RETRIES": "100"}, "REDIS_RETRIES", id="too-many-retries"),
        pytest.param({"REDIS_RETRY_BASE_SECONDS": "2", "REDIS_RETRY_CAP_SECONDS": "1"},
                     "REDIS_RETRY_CAP_SECONDS", id="cap-below-base"),
        pytest.param({"REDIS_KEEPALIVE": "maybe"}, "REDIS_KEEPALIVE", id="keepalive-not-a-bool"),
    ],
)  # fmt: skip
def test_bad_redis_client_settings_are_refused_naming_the_variable(
    env: dict[str, str], name: str
) -> None:
    with pytest.raises(SettingsError) as err:
        RedisSettings.from_env(env)
    assert err.value.name == name


def test_a_service_refuses_to_start_on_a_bad_redis_setting() -> None:
    env = child_env("unix:///nonexistent/redis.sock", REDIS_SOCKET_TIMEOUT_SECONDS="0")
    proc = subprocess.run(
        [sys.executable, "-m", "subscriber"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "REDIS_SOCKET_TIMEOUT_SECONDS" in proc.stderr


@pytest.mark.parametrize(
    ("url", "keepalive"),
    [
        pytest.param("redis://127.0.0.1:6379/0", True, id="tcp"),
        pytest.param("unix:///run/redis.sock", None, id="unix-socket"),
    ],
)
def test_every_client_gets_explicit_timeouts_health_checks_and_retries(
    url: str, keepalive: bool | None
) -> None:
    settings = RedisSettings()
    pool = connect(url, settings, name="t").connection_pool
    assert pool.max_connections == settings.max_connections == 1000
    kwargs = pool.connection_kwargs
    assert kwargs["socket_timeout"] == settings.socket_timeout_seconds
    assert kwargs["socket_connect_timeout"] == settings.connect_timeout_seconds
    assert kwargs["health_check_interval"] == settings.health_check_seconds
    assert kwargs.get("socket_keepalive") == keepalive
    assert kwargs["retry"].get_retries() == settings.retries
    assert kwargs["client_name"] == "t"
    assert settings.max_block_ms < settings.socket_timeout_seconds * 1000
