"""CPIX: the documents both ways, hostile documents refused, and the round trip between the
CPIX key provider and the stand-in key server running as a real process."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis

from headend.contentkeys import (
    ContentKeyStore,
    CpixKeyProvider,
    InvalidCpixDocument,
    KekRing,
    KeyProviderUnavailable,
    scope_for_channel,
)
from headend.contentkeys.cpix import (
    HLS_AES128_SYSTEM_ID,
    MAX_DOCUMENT_BYTES,
    CpixRequest,
    parse_request,
    parse_response,
    render_request,
)
from tests.support.net import free_port
from tests.support.services import ServiceProcess

TOKEN = "stand-in-token"
KID = "0123456789abcdef0123456789abcdef"
REQUEST = CpixRequest("channel/cctv1", KID, 4242)
CH = scope_for_channel("cctv1")


@pytest.fixture
async def keyserver() -> AsyncIterator[ServiceProcess]:
    """The stand-in key server as a child process on a port the OS picked."""
    env = dict(os.environ, KEYSERVER_TOKEN=TOKEN, KEYSERVER_PORT="0", LOG_LEVEL="info")
    process = ServiceProcess("headend.contentkeys.keyserver", env, listening="keyserver listening")
    await process.start()
    yield process
    await process.stop()


def _response(key_b64: str = base64.b64encode(b"k" * 16).decode(), kid: str = KID) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<cpix:CPIX xmlns:cpix="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc"
    contentId="channel/cctv1" version="2.3">
  <cpix:ContentKeyList>
    <cpix:ContentKey kid="{uuid.UUID(hex=kid)}">
      <cpix:Data><pskc:Secret><pskc:PlainValue>{key_b64}</pskc:PlainValue></pskc:Secret></cpix:Data>
    </cpix:ContentKey>
  </cpix:ContentKeyList>
  <cpix:DRMSystemList>
    <cpix:DRMSystem kid="{uuid.UUID(hex=kid)}" systemId="{HLS_AES128_SYSTEM_ID}">
      <cpix:URIExtXKey>dXJp</cpix:URIExtXKey>
    </cpix:DRMSystem>
  </cpix:DRMSystemList>
</cpix:CPIX>""".encode()


def test_request_document_round_trips() -> None:
    assert parse_request(render_request(REQUEST)) == REQUEST


def test_a_well_formed_response_gives_the_key_and_signalling() -> None:
    provided = parse_response(_response(), REQUEST)
    assert provided.key == b"k" * 16
    assert provided.key_id == KID
    assert [(d.system_id, d.uri_ext_x_key) for d in provided.drm_systems] == [
        (HLS_AES128_SYSTEM_ID, "dXJp")
    ]


_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE cpix:CPIX [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<cpix:CPIX xmlns:cpix="urn:dashif:org:cpix" version="2.3">&b;</cpix:CPIX>"""
_EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE x SYSTEM "http://127.0.0.1:1/evil.dtd">
<cpix:CPIX xmlns:cpix="urn:dashif:org:cpix" version="2.3"/>"""


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        pytest.param(_LAUGHS, "DTD", id="entities"),
        pytest.param(_EXTERNAL, "DTD", id="external-dtd"),
        pytest.param(_response() + b" " * MAX_DOCUMENT_BYTES, "larger than", id="oversized"),
        pytest.param(_response().replace(b"urn:dashif:org:cpix", b"urn:other"), "root", id="ns"),
        pytest.param(
            _response().replace(b"<cpix:Data>", b'<x:Evil xmlns:x="urn:x"/><cpix:Data>'),
            "foreign namespace",
            id="foreign-element",
        ),
        pytest.param(_response().replace(b'version="2.3"', b'version="1.0"'), "version", id="v1"),
        pytest.param(_response(kid="f" * 32), "not " + KID, id="other-kid"),
        pytest.param(_response(base64.b64encode(b"short").decode()), "5 bytes", id="short-key"),
        pytest.param(_response("not base64!"), "not base64", id="not-base64"),
        pytest.param(_response().replace(b"<cpix:Data>", b""), "not well-formed", id="broken"),
        pytest.param(
            _response().replace(b"<pskc:Secret>", b"<pskc:Secret><pskc:PlainValue/>"),
            "expected one pskc:PlainValue",
            id="two-keys",
        ),
    ],
)
def test_bad_documents_are_refused(document: bytes, reason: str) -> None:
    with pytest.raises(InvalidCpixDocument, match=reason):
        parse_response(document, REQUEST)


async def test_round_trip_with_the_stand_in_key_server(
    keyserver: ServiceProcess, redis: aioredis.Redis, keks: KekRing
) -> None:
    provider = CpixKeyProvider(f"{keyserver.url}/cpix", TOKEN)
    try:
        store = ContentKeyStore(redis, keks, provider)
        key = await store.key_for(CH, 77, rotation_seconds=600)
        assert [d.system_id for d in key.drm_systems] == [HLS_AES128_SYSTEM_ID]
        assert (await store.get(CH, key.key_id)).key == key.key
        # The key server remembers the kid: asking for it again gives the same key.
        request = CpixRequest(CH, key.key_id, 77)
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{keyserver.url}/cpix",
                data=render_request(request),
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as response:
                assert parse_response(await response.read(), request).key == key.key
            async with session.post(
                f"{keyserver.url}/cpix",
                data=_LAUGHS,
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as response:
                assert response.status == 400
                assert "DTD" in await response.text()
        assert keyserver.logged("key served")
        assert all(key.key.hex() not in str(line) for line in keyserver.lines)
    finally:
        await provider.aclose()


async def test_wrong_token_and_no_server_are_unavailable(keyserver: ServiceProcess) -> None:
    wrong = CpixKeyProvider(f"{keyserver.url}/cpix", "wrong-token")
    nobody = CpixKeyProvider(f"http://127.0.0.1:{free_port()}/cpix", TOKEN)
    try:
        with pytest.raises(KeyProviderUnavailable, match="answered 401"):
            await wrong.content_key(CH, 1)
        with pytest.raises(KeyProviderUnavailable, match="cannot be reached"):
            await nobody.content_key(CH, 1)
    finally:
        await wrong.aclose()
        await nobody.aclose()
