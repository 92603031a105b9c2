"""The gRPC harness: health, reflection, auth, error mapping, limits, metrics (TLS: test_pki)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import socket
import urllib.request
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from headend import errors, logs
from headend.auth import KeyStore
from headend.errors import ResourceExhausted, Unauthenticated
from headend.keys_service import SERVICE_NAME, key_service
from headend.rpc import (
    RETRY_DELAY_SECONDS,
    RpcServer,
    RpcSettings,
    ServiceSpec,
    ServiceUnavailable,
    StartupError,
    bearer,
    client_channel,
    domain_error,
    error_details,
    start_server,
)
from headend.settings import SettingsError
from protos import keys_pb2, keys_pb2_grpc

_BLOCKING = "headend.test.Blocking"


class _Gate:
    """A raw-bytes test servicer: ``Wait`` (public) and ``KeyedWait`` block until released,
    ``Raise`` fails as its request names, ``Upload`` counts a client stream's messages."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.inside = 0

    async def wait(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.inside += 1
        self.entered.set()
        try:
            await self.release.wait()
        finally:
            self.inside -= 1
        return request

    async def fail(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if request in _FAILURES:
            raise _FAILURES[request]()
        return request

    async def upload(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> bytes:
        return str(len([m async for m in requests])).encode()

    def spec(self) -> ServiceSpec:
        handler = grpc.method_handlers_generic_handler(
            _BLOCKING,
            {
                "Wait": grpc.unary_unary_rpc_method_handler(self.wait),
                "KeyedWait": grpc.unary_unary_rpc_method_handler(self.wait),
                "Raise": grpc.unary_unary_rpc_method_handler(self.fail),
                "Upload": grpc.stream_unary_rpc_method_handler(self.upload),
            },
        )
        return ServiceSpec(
            _BLOCKING,
            lambda server: server.add_generic_rpc_handlers((handler,)),
            public_methods=frozenset({"Wait"}),
        )


class _ProbeError(errors.HeadendError):
    """Raised for any failure of the test service (its exception tree's root)."""


class _ProbeMissing(_ProbeError, errors.NotFound):
    """Raised when the test service has no such probe."""


class _ProbeField(_ProbeError, errors.InvalidArgument):
    """Raised when a probe field is malformed."""


_SECRET = "s3cret-in-the-bug"
_FAILURES: dict[bytes, Callable[[], Exception]] = {
    b"leaf": lambda: _ProbeMissing("no probe p1", details={"probe_id": "p1"}),
    b"category": lambda: errors.PermissionDenied("not your probe", details={"owner": "b"}),
    b"field": lambda: _ProbeField("probe.name", "longer than 64 characters"),
    b"redis-down": lambda: RedisConnectionError("Error 111 connecting to redis.internal:6379"),
    b"redis-slow": lambda: RedisTimeoutError("Timeout reading from redis.internal:6379"),
    b"redis-script": lambda: ResponseError("WRONGTYPE Operation against a key"),
    b"socket": lambda: ConnectionRefusedError(111, "Connection refused"),
    b"bug": lambda: ValueError(f"unexpected {_SECRET}"),
    b"quota": lambda: ResourceExhausted("2 streams already playing", details={"limit": "2"}),
}


@pytest.fixture
async def gated(
    keys: KeyStore,
) -> AsyncIterator[tuple[_Gate, RpcServer, grpc.aio.Channel]]:
    gate = _Gate()
    server, port = await start_server(
        RpcSettings(max_concurrent_rpcs=1, max_rpc_seconds=30),
        services=[gate.spec()],
        authenticator=keys,
    )
    channel = client_channel(f"127.0.0.1:{port}")
    yield gate, server, channel
    gate.release.set()
    await channel.close()
    await server.stop(0)


@pytest.fixture
async def served(keys: KeyStore) -> AsyncIterator[tuple[RpcServer, grpc.aio.Channel]]:
    server, port = await start_server(
        RpcSettings(metrics_port=0), services=[key_service(keys)], authenticator=keys
    )
    channel = client_channel(f"127.0.0.1:{port}")
    yield server, channel
    await channel.close()
    await server.stop(0)


async def test_health_reports_serving_then_not_serving_on_shutdown(keys: KeyStore) -> None:
    server, port = await start_server(
        RpcSettings(drain_seconds=0.2), services=[key_service(keys)], authenticator=keys
    )
    async with client_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        watch = stub.Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.create_task(server.stop())
        second = await watch.read()
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
        await stopping


async def test_reflection_lists_services(served: tuple[RpcServer, grpc.aio.Channel]) -> None:
    _, channel = served
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def one() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names = set()
    async for response in stub.ServerReflectionInfo(one()):
        names |= {s.name for s in response.list_services_response.service}
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param((), id="missing"),
        pytest.param((("authorization", "Basic abc"),), id="wrong-scheme"),
        pytest.param(bearer("hk_nothex_x"), id="malformed"),
        pytest.param(bearer("hk_0123456789abcdef_" + "A" * 43), id="unknown"),
    ],
)
async def test_bad_credentials_are_unauthenticated(
    served: tuple[RpcServer, grpc.aio.Channel], metadata: tuple[tuple[str, str], ...]
) -> None:
    stub = keys_pb2_grpc.KeyServiceStub(served[1])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.WhoAmI(keys_pb2.WhoAmIRequest(), metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_out_of_scope_call_is_permission_denied_and_changes_nothing(
    served: tuple[RpcServer, grpc.aio.Channel], tokens, keys: KeyStore
) -> None:
    stub = keys_pb2_grpc.KeyServiceStub(served[1])
    carrier = await tokens("carrier:acme")
    before = await keys.list_keys()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateKey(keys_pb2.CreateKeyRequest(principal="admin"), metadata=bearer(carrier))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_details(caught.value).reason == "PERMISSION_DENIED"
    assert await keys.list_keys() == before
    who = await stub.WhoAmI(keys_pb2.WhoAmIRequest(), metadata=bearer(carrier))
    assert who.principal == "carrier:acme"


async def test_invalid_argument_carries_the_field(
    served: tuple[RpcServer, grpc.aio.Channel], tokens
) -> None:
    stub = keys_pb2_grpc.KeyServiceStub(served[1])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateKey(
            keys_pb2.CreateKeyRequest(principal="pirate:x"), metadata=bearer(await tokens())
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "principal" in error_details(caught.value).fields


async def test_created_key_works_and_revoked_key_is_refused(
    served: tuple[RpcServer, grpc.aio.Channel], tokens, redis
) -> None:
    stub = keys_pb2_grpc.KeyServiceStub(served[1])
    admin = bearer(await tokens())
    created = await stub.CreateKey(
        keys_pb2.CreateKeyRequest(principal="broadcaster:cctv"), metadata=admin
    )
    assert created.token.startswith("hk_")
    assert created.key.name.startswith("keys/")
    key_id = created.key.name.removeprefix("keys/")
    stored = await redis.hgetall(f"auth:key:{key_id}")
    assert created.token.encode() not in b"".join(stored.values())
    who = await stub.WhoAmI(keys_pb2.WhoAmIRequest(), metadata=bearer(created.token))
    assert who.principal == "broadcaster:cctv"
    listed = await stub.ListKeys(keys_pb2.ListKeysRequest(), metadata=admin)
    assert created.key.name in {k.name for k in listed.keys}
    await stub.RevokeKey(keys_pb2.RevokeKeyRequest(name=created.key.name), metadata=admin)
    # A fresh store has no cache, as another replica would not.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RevokeKey(keys_pb2.RevokeKeyRequest(name=created.key.name), metadata=admin)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    fresh = KeyStore(redis)
    with pytest.raises(Unauthenticated, match="revoked"):
        await fresh.authenticate(created.token)


async def test_list_keys_pages_by_token_and_refuses_bad_names(
    served: tuple[RpcServer, grpc.aio.Channel], tokens
) -> None:
    stub = keys_pb2_grpc.KeyServiceStub(served[1])
    admin = bearer(await tokens())
    for tenant in ("a", "b", "c"):
        await stub.CreateKey(
            keys_pb2.CreateKeyRequest(principal=f"carrier:{tenant}"), metadata=admin
        )
    seen: list[str] = []
    token = ""
    while True:
        reply = await stub.ListKeys(
            keys_pb2.ListKeysRequest(page_size=2, page_token=token), metadata=admin
        )
        assert len(reply.keys) <= 2
        seen += [k.name for k in reply.keys]
        token = reply.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) >= 4  # the admin key and the three carriers'
    for request in (
        keys_pb2.ListKeysRequest(page_token="not-a-token"),
        keys_pb2.ListKeysRequest(page_size=-1),
        keys_pb2.RevokeKeyRequest(name="0123456789abcdef"),
        keys_pb2.RevokeKeyRequest(name="keys/a/b"),
    ):
        call = stub.ListKeys if isinstance(request, keys_pb2.ListKeysRequest) else stub.RevokeKey
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(request, metadata=admin)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_details(caught.value).reason == "INVALID_ARGUMENT"


async def test_concurrency_cap_is_resource_exhausted_with_a_clear_message(
    gated: tuple[_Gate, RpcServer, grpc.aio.Channel], tokens
) -> None:
    gate, server, channel = gated
    call = channel.unary_unary(f"/{_BLOCKING}/KeyedWait")
    admin = bearer(await tokens())
    first = asyncio.ensure_future(call(b"one", metadata=admin))
    await gate.entered.wait()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(b"two", metadata=admin)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "all 1 authenticated call slots are in use" in (caught.value.details() or "")
    details = error_details(caught.value)
    assert details.metadata == {"limit": "1", "pool": "authenticated"}
    assert details.retry_delay_seconds == RETRY_DELAY_SECONDS
    # Public methods have their own pool, so the keyed call above does not block them.
    public = asyncio.ensure_future(channel.unary_unary(f"/{_BLOCKING}/Wait")(b"pub"))
    gate.release.set()
    assert await first == b"one"
    assert await public == b"pub"
    assert await call(b"three", metadata=admin) == b"three"
    assert server.interceptor.slots.in_use == 0
    assert server.interceptor.public_slots.in_use == 0


async def test_a_call_longer_than_max_rpc_seconds_is_deadline_exceeded(
    keys: KeyStore, tokens
) -> None:
    gate = _Gate()
    server, port = await start_server(
        RpcSettings(max_rpc_seconds=0.3), services=[gate.spec()], authenticator=keys
    )
    try:
        async with client_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(f"/{_BLOCKING}/KeyedWait")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(b"slow", metadata=bearer(await tokens()), timeout=30)
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "0.3 s limit" in (caught.value.details() or "")
            assert error_details(caught.value).metadata == {"setting": "MAX_RPC_SECONDS"}
            assert gate.inside == 0
            assert server.interceptor.slots.in_use == 0
            gate.release.set()
            assert await call(b"fast", metadata=bearer(await tokens())) == b"fast"
    finally:
        await server.stop(0)


async def test_a_unary_call_that_ends_without_its_request_is_invalid_argument(
    gated: tuple[_Gate, RpcServer, grpc.aio.Channel], tokens
) -> None:
    _, _, channel = gated

    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""  # an async generator that ends at once: headers, then half-close

    call = channel.stream_unary(f"/{_BLOCKING}/KeyedWait")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(nothing(), metadata=bearer(await tokens()), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request" in error_details(caught.value).fields


async def test_client_streams_still_deliver_every_message(
    gated: tuple[_Gate, RpcServer, grpc.aio.Channel], tokens
) -> None:
    _, _, channel = gated

    async def messages(count: int) -> AsyncIterator[bytes]:
        for i in range(count):
            yield str(i).encode()

    call = channel.stream_unary(f"/{_BLOCKING}/Upload")
    admin = bearer(await tokens())
    assert await call(messages(5), metadata=admin, timeout=10) == b"5"
    assert await call(messages(0), metadata=admin, timeout=10) == b"0"


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"redis-down", id="redis-connection"),
        pytest.param(b"redis-slow", id="redis-timeout"),
        pytest.param(b"redis-script", id="redis-response"),
        pytest.param(b"socket", id="connection-refused"),
    ],
)
async def test_dependency_failures_are_unavailable_with_retry_info(
    gated: tuple[_Gate, RpcServer, grpc.aio.Channel],
    tokens,
    caplog: pytest.LogCaptureFixture,
    request_bytes: bytes,
) -> None:
    _, _, channel = gated
    call = channel.unary_unary(f"/{_BLOCKING}/Raise")
    admin = bearer(await tokens())
    with caplog.at_level(logging.WARNING, logger="headend.rpc"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(request_bytes, metadata=admin)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    details = error_details(caught.value)
    assert details.reason == "DEPENDENCY_UNAVAILABLE"
    assert details.retry_delay_seconds == RETRY_DELAY_SECONDS
    assert "redis.internal" not in (caught.value.details() or "")
    [record] = [r for r in caplog.records if r.name.startswith("headend.rpc")]
    assert getattr(record, "rpc", "") == f"/{_BLOCKING}/Raise"
    assert getattr(record, "caller", "") == "admin"
    assert type(_FAILURES[request_bytes]()).__name__ in getattr(record, "error", "")
    assert await call(b"fine", metadata=admin) == b"fine"


async def test_a_quota_is_resource_exhausted_without_a_retry_hint(
    gated: tuple[_Gate, RpcServer, grpc.aio.Channel], tokens
) -> None:
    _, _, channel = gated
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await channel.unary_unary(f"/{_BLOCKING}/Raise")(b"quota", metadata=bearer(await tokens()))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = error_details(caught.value)
    assert (details.reason, details.metadata) == ("RESOURCE_EXHAUSTED", {"limit": "2"})
    assert details.retry_delay_seconds is None


async def test_a_bug_is_unknown_and_its_traceback_stays_in_the_server_log(
    gated: tuple[_Gate, RpcServer, grpc.aio.Channel],
    tokens,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, _, channel = gated
    call = channel.unary_unary(f"/{_BLOCKING}/Raise")
    admin = bearer(await tokens())
    with caplog.at_level(logging.ERROR, logger="headend.rpc"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(b"bug", metadata=admin)
    error = caught.value
    assert error.code() == grpc.StatusCode.UNKNOWN
    told = f"{error.details()} {error.debug_error_string()} {error.trailing_metadata()!r}"
    for leak in (_SECRET, "Traceback", "ValueError", "test_rpc.py"):
        assert leak not in told
    error_id = error_details(error).metadata["error_id"]
    assert error_id in (error.details() or "")
    [record] = [r for r in caplog.records if r.name.startswith("headend.rpc")]
    assert record.exc_info is not None
    assert _SECRET in str(record.exc_info[1])
    assert getattr(record, "error_id", "") == error_id
    assert await call(b"fine", metadata=admin) == b"fine"


async def test_one_connection_opens_at_most_max_streams_per_connection(
    keys: KeyStore, tokens
) -> None:
    gate = _Gate()
    server, port = await start_server(
        RpcSettings(max_streams_per_connection=2), services=[gate.spec()], authenticator=keys
    )
    try:
        async with (
            client_channel(f"127.0.0.1:{port}") as busy,
            # Its own subchannel pool, or grpc would share the busy connection.
            client_channel(
                f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
            ) as other,
        ):
            call = busy.unary_unary(f"/{_BLOCKING}/Wait")
            two = [asyncio.ensure_future(call(b"x")) for _ in range(2)]
            while gate.inside < 2:
                await gate.entered.wait()
                gate.entered.clear()
            third = asyncio.ensure_future(call(b"third"))
            # A round trip on another connection: the server stays reachable while
            # this one is full, and the third stream waits on the client meanwhile.
            health = health_pb2_grpc.HealthStub(other)
            answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            assert gate.inside == 2
            assert not third.done()
            gate.release.set()
            assert await asyncio.gather(*two, third) == [b"x", b"x", b"third"]
    finally:
        await server.stop(0)


async def test_metrics_count_requests_by_code(
    served: tuple[RpcServer, grpc.aio.Channel], tokens
) -> None:
    server, channel = served
    stub = keys_pb2_grpc.KeyServiceStub(channel)
    await stub.WhoAmI(keys_pb2.WhoAmIRequest(), metadata=bearer(await tokens()))
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.WhoAmI(keys_pb2.WhoAmIRequest())
    assert server.metrics_endpoint is not None
    url = f"http://127.0.0.1:{server.metrics_endpoint.port}/metrics"
    text = await asyncio.to_thread(lambda: urllib.request.urlopen(url).read().decode())
    # go-grpc-prometheus's names and labels (prometheus_client sorts the labels).
    labels = f'grpc_method="WhoAmI",grpc_service="{SERVICE_NAME}",grpc_type="unary"'
    assert f"grpc_server_started_total{{{labels}}} 2.0" in text
    assert f'grpc_server_handled_total{{grpc_code="OK",{labels}}} 1.0' in text
    assert f'grpc_server_handled_total{{grpc_code="UNAUTHENTICATED",{labels}}} 1.0' in text
    assert f"grpc_server_handling_seconds_count{{{labels}}} 2.0" in text
    assert "grpc.health" not in text


async def test_metrics_name_the_kind_of_call(
    gated: tuple[_Gate, RpcServer, grpc.aio.Channel], tokens
) -> None:
    _, server, channel = gated
    upload = channel.stream_unary(f"/{_BLOCKING}/Upload")
    assert await upload(iter([b"a", b"b"]), metadata=bearer(await tokens())) == b"2"
    handled = server.metrics.handled.labels("client_stream", _BLOCKING, "Upload", "OK")
    assert handled._value.get() == 1


def _json_lines(logger: str) -> tuple[io.StringIO, logging.Handler]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter("test"))
    logging.getLogger(logger).addHandler(handler)
    return out, handler


async def test_a_handled_rpc_logs_and_returns_the_callers_request_id(
    gated: tuple[_Gate, RpcServer, grpc.aio.Channel], tokens
) -> None:
    _, _, channel = gated
    call = channel.unary_unary(f"/{_BLOCKING}/Raise")
    admin = bearer(await tokens())
    out, handler = _json_lines("headend.rpc")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(b"bug", metadata=(*admin, ("x-request-id", "billing-42.a_b")))
    finally:
        logging.getLogger("headend.rpc").removeHandler(handler)
    [line] = [json.loads(x) for x in out.getvalue().splitlines()]
    assert line["msg"] == "rpc failed"
    assert line["request_id"] == "billing-42.a_b"
    assert ("x-request-id", "billing-42.a_b") in tuple(caught.value.trailing_metadata())
    answer = call(b"fine", metadata=(*admin, ("x-request-id", "ok-1")))
    assert await answer == b"fine"
    assert ("x-request-id", "ok-1") in tuple(await answer.initial_metadata())


@pytest.mark.parametrize(
    "given",
    [
        pytest.param(None, id="none"),
        pytest.param("has space", id="space"),
        pytest.param("x" * 65, id="too-long"),
        pytest.param("", id="empty"),
        pytest.param("../../etc", id="slash"),
    ],
)
async def test_a_missing_or_bad_request_id_is_replaced(
    gated: tuple[_Gate, RpcServer, grpc.aio.Channel], tokens, given: str | None
) -> None:
    _, _, channel = gated
    call = channel.unary_unary(f"/{_BLOCKING}/Raise")
    extra = () if given is None else (("x-request-id", given),)
    answer = call(b"fine", metadata=(*bearer(await tokens()), *extra))
    assert await answer == b"fine"
    [rid] = [v for k, v in await answer.initial_metadata() if k == "x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{16}", rid)
    assert rid != given


async def test_a_stream_that_sends_its_own_metadata_also_returns_the_request_id(
    keys: KeyStore, tokens
) -> None:
    async def versions(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        await context.send_initial_metadata((("x-version", "7"),))
        yield request

    name = "headend.test.Versions"
    handler = grpc.method_handlers_generic_handler(
        name, {"Watch": grpc.unary_stream_rpc_method_handler(versions)}
    )
    spec = ServiceSpec(name, lambda server: server.add_generic_rpc_handlers((handler,)))
    server, port = await start_server(RpcSettings(), services=[spec], authenticator=keys)
    channel = client_channel(f"127.0.0.1:{port}")
    try:
        watch = channel.unary_stream(f"/{name}/Watch")
        call = watch(b"x", metadata=(*bearer(await tokens()), ("x-request-id", "w-1")))
        assert [m async for m in call] == [b"x"]
        metadata = tuple(await call.initial_metadata())
        assert ("x-version", "7") in metadata
        assert ("x-request-id", "w-1") in metadata
    finally:
        await channel.close()
        await server.stop(0)


async def test_port_in_use_is_one_clear_error(keys: KeyStore) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match=f"127.0.0.1:{port}"):
            await start_server(
                RpcSettings(port=port), services=[key_service(keys)], authenticator=keys
            )


def test_rpc_settings_read_the_limits() -> None:
    env = {
        "EPG_MAX_CONCURRENT_RPCS": "50",
        "EPG_MAX_STREAMS_PER_CONNECTION": "20",
        "EPG_REQUEST_TIMEOUT_SECONDS": "5",
        "EPG_MAX_RPC_SECONDS": "60",
    }
    settings = RpcSettings.from_env(env, "EPG", default_port=50051)
    assert (settings.max_concurrent_rpcs, settings.max_streams_per_connection) == (50, 20)
    assert (settings.request_timeout_seconds, settings.max_rpc_seconds) == (5.0, 60.0)
    defaults = RpcSettings.from_env({}, "EPG", default_port=50051)
    assert defaults.max_streams_per_connection == 100
    assert defaults.request_timeout_seconds == 30.0
    assert defaults.max_rpc_seconds == 600.0


@pytest.mark.parametrize(
    ("env", "field"),
    [
        pytest.param({"EPG_MAX_STREAMS_PER_CONNECTION": "0"}, "EPG_MAX_STREAMS_PER_CONNECTION"),
        pytest.param({"EPG_REQUEST_TIMEOUT_SECONDS": "soon"}, "EPG_REQUEST_TIMEOUT_SECONDS"),
        pytest.param({"EPG_MAX_RPC_SECONDS": "0"}, "EPG_MAX_RPC_SECONDS"),
        pytest.param({"TLS_CERT_FILE": "/no/such.pem"}, "TLS_CERT_FILE"),
    ],
)
def test_rpc_settings_errors_name_the_variable(env: dict[str, str], field: str) -> None:
    with pytest.raises(SettingsError) as caught:
        RpcSettings.from_env(env, "EPG", default_port=50051)
    assert caught.value.name == field


async def _raised(channel: grpc.aio.Channel, admin: object, request: bytes) -> Exception:
    """What the test service's ``Raise`` fails with, rebuilt as the client sees it."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await channel.unary_unary(f"/{_BLOCKING}/Raise")(request, metadata=admin)
    return domain_error(caught.value, service="probe", root=_ProbeError)


async def test_domain_error_rebuilds_the_leaf_the_server_raised(
    gated: tuple[_Gate, RpcServer, grpc.aio.Channel], tokens
) -> None:
    _, _, channel = gated
    err = await _raised(channel, bearer(await tokens()), b"leaf")
    assert type(err) is _ProbeMissing
    assert (err.message, err.details) == ("no probe p1", {"probe_id": "p1"})


async def test_domain_error_rebuilds_a_category_outside_the_tree(
    gated: tuple[_Gate, RpcServer, grpc.aio.Channel], tokens
) -> None:
    _, _, channel = gated
    err = await _raised(channel, bearer(await tokens()), b"category")
    assert type(err) is errors.PermissionDenied
    assert (err.message, err.details) == ("not your probe", {"owner": "b"})
    quota = await _raised(channel, bearer(await tokens()), b"quota")
    assert type(quota) is errors.ResourceExhausted
    assert quota.details == {"limit": "2"}


async def test_domain_error_keeps_the_field_of_an_invalid_argument(
    gated: tuple[_Gate, RpcServer, grpc.aio.Channel], tokens
) -> None:
    _, _, channel = gated
    err = await _raised(channel, bearer(await tokens()), b"field")
    assert isinstance(err, _ProbeField)
    assert (err.field, err.reason) == ("probe.name", "longer than 64 characters")


@pytest.mark.parametrize(
    ("request_bytes", "reason", "delay"),
    [
        pytest.param(b"redis-down", "DEPENDENCY_UNAVAILABLE", RETRY_DELAY_SECONDS, id="retry-info"),
        pytest.param(b"bug", "INTERNAL", None, id="unknown"),
    ],
)
async def test_domain_error_is_service_unavailable_when_the_call_got_no_answer(
    gated: tuple[_Gate, RpcServer, grpc.aio.Channel],
    tokens,
    request_bytes: bytes,
    reason: str,
    delay: float | None,
) -> None:
    _, _, channel = gated
    err = await _raised(channel, bearer(await tokens()), request_bytes)
    assert isinstance(err, ServiceUnavailable)
    assert (err.service, err.reason, err.retry_delay_seconds) == ("probe", reason, delay)


async def test_domain_error_is_service_unavailable_when_nothing_listens() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    async with client_channel(f"127.0.0.1:{port}") as channel:
        err = await _raised(channel, (), b"leaf")
    assert isinstance(err, ServiceUnavailable)
    assert (err.reason, err.retry_delay_seconds) == ("UNAVAILABLE", None)
