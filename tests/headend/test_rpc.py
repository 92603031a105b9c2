"""The gRPC harness: health, reflection, auth, error mapping, limits, TLS, metrics."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from headend.auth import KeyStore
from headend.errors import Unauthenticated
from headend.keys_service import SERVICE_NAME, key_service
from headend.rpc import (
    RpcServer,
    RpcSettings,
    ServiceSpec,
    StartupError,
    bearer,
    client_channel,
    error_details,
    start_server,
)
from protos import keys_pb2, keys_pb2_grpc

_BLOCKING = "headend.test.Blocking"


class _Gate:
    """A raw-bytes test servicer whose one method waits until released."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def wait(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.entered.set()
        await self.release.wait()
        return request

    def spec(self) -> ServiceSpec:
        handler = grpc.method_handlers_generic_handler(
            _BLOCKING, {"Wait": grpc.unary_unary_rpc_method_handler(self.wait)}
        )
        return ServiceSpec(
            _BLOCKING,
            lambda server: server.add_generic_rpc_handlers((handler,)),
            public_methods=frozenset({"Wait"}),
        )


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
    assert error_details(caught.value).reason == "PermissionDenied"
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
    stored = await redis.hgetall(f"auth:key:{created.key.key_id}")
    assert created.token.encode() not in b"".join(stored.values())
    who = await stub.WhoAmI(keys_pb2.WhoAmIRequest(), metadata=bearer(created.token))
    assert who.principal == "broadcaster:cctv"
    listed = await stub.ListKeys(keys_pb2.ListKeysRequest(), metadata=admin)
    assert created.key.key_id in {k.key_id for k in listed.keys}
    await stub.RevokeKey(keys_pb2.RevokeKeyRequest(key_id=created.key.key_id), metadata=admin)
    # A fresh store has no cache, as another replica would not.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RevokeKey(keys_pb2.RevokeKeyRequest(key_id=created.key.key_id), metadata=admin)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    fresh = KeyStore(redis)
    with pytest.raises(Unauthenticated, match="revoked"):
        await fresh.authenticate(created.token)


async def test_concurrency_cap_is_resource_exhausted(keys: KeyStore) -> None:
    gate = _Gate()
    server, port = await start_server(
        RpcSettings(max_concurrent_rpcs=1), services=[gate.spec()], authenticator=keys
    )
    try:
        async with client_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(f"/{_BLOCKING}/Wait")
            first = asyncio.ensure_future(call(b"one"))
            await gate.entered.wait()
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(b"two")
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            gate.release.set()
            assert await first == b"one"
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
    method = f"/{SERVICE_NAME}/WhoAmI"
    assert f'grpc_server_handled_total{{grpc_code="OK",grpc_method="{method}"}} 1.0' in text
    assert (
        f'grpc_server_handled_total{{grpc_code="UNAUTHENTICATED",grpc_method="{method}"}} 1.0'
        in text
    )
    assert "grpc_server_handling_seconds_bucket" in text


async def test_port_in_use_is_one_clear_error(keys: KeyStore) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match=f"127.0.0.1:{port}"):
            await start_server(
                RpcSettings(port=port), services=[key_service(keys)], authenticator=keys
            )


def _make_pki(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-extfile", "san.ext",
            "-out", f"{name}.pem")  # fmt: skip
    return {
        n: folder / n for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")
    }


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _make_pki(tmp_path_factory.mktemp("pki"))


async def test_tls_and_mtls(keys: KeyStore, tokens, pki: dict[str, Path]) -> None:
    tls = RpcSettings(tls_cert_file=pki["server.pem"], tls_key_file=pki["server.key"])
    admin = bearer(await tokens())
    for settings, needs_client_cert in (
        (tls, False),
        (replace(tls, tls_client_ca_file=pki["ca.pem"]), True),
    ):
        server, port = await start_server(
            settings, services=[key_service(keys)], authenticator=keys
        )
        target = f"127.0.0.1:{port}"
        try:
            async with client_channel(target) as plain:
                with pytest.raises(grpc.aio.AioRpcError):
                    await keys_pb2_grpc.KeyServiceStub(plain).WhoAmI(
                        keys_pb2.WhoAmIRequest(), metadata=admin, timeout=5
                    )
            async with client_channel(target, ca_file=pki["ca.pem"]) as secure:
                call = keys_pb2_grpc.KeyServiceStub(secure).WhoAmI(
                    keys_pb2.WhoAmIRequest(), metadata=admin, timeout=5
                )
                if needs_client_cert:
                    with pytest.raises(grpc.aio.AioRpcError):
                        await call
                else:
                    assert (await call).principal == "admin"
            async with client_channel(
                target,
                ca_file=pki["ca.pem"],
                cert_file=pki["client.pem"],
                key_file=pki["client.key"],
            ) as mutual:
                who = await keys_pb2_grpc.KeyServiceStub(mutual).WhoAmI(
                    keys_pb2.WhoAmIRequest(), metadata=admin, timeout=5
                )
                assert who.principal == "admin"
        finally:
            await server.stop(0)
