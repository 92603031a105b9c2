"""The Python set-top box's ``#EXT-X-KEY`` handling, line by line of RFC 8216: a tag's ``IV=``
holds for every segment after it, a tag without one means the media sequence number, and
``METHOD=NONE`` ends encryption. The platform's live and catch-up playlists never name an
IV (tests/cdn_ctl/test_stb_encrypted.py plays those), so a small HTTP server here serves a
playlist that does, and a key route that checks the box token as the front door does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cdn_ctl.sim.stb import SetTopBox
from headend.contentkeys.cipher import encrypt_segment, iv_hex

KEY = bytes(range(16))
KEY_ID = "0123456789abcdef0123456789abcdef"
TOKEN = "box-token"
# Twenty MPEG-TS packets: a sync byte, then payload.
CLEAR = (b"\x47" + bytes(range(187))) * 20
# An IV whose first byte differs from a media sequence number's: decrypted with the wrong
# one of the two, a segment's first byte (its TS sync byte) comes out wrong.
EXPLICIT_IV = 0x80 << 120 | 5


@dataclass
class Door:
    """The server's base URL, the key route's answer and the requests it saw."""

    url: str = ""
    refuse: tuple[int, str] = (0, "")  # (status, reason) to answer instead of the key
    key_requests: list[tuple[str, str]] = field(default_factory=list)  # (auth header, query)


def _playlist(base: str, explicit_iv: int) -> str:
    uri = f"{base}/keys/news.cn/{KEY_ID}"
    return "\n".join([
        "#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:10",
        f'#EXT-X-KEY:METHOD=AES-128,URI="{uri}",IV={iv_hex(explicit_iv)}',
        "#EXTINF:2.0,", "10.ts", "#EXTINF:2.0,", "11.ts",
        f'#EXT-X-KEY:METHOD=AES-128,URI="{uri}"',
        "#EXTINF:2.0,", "12.ts",
        "#EXT-X-KEY:METHOD=NONE",
        "#EXTINF:2.0,", "13.ts",
        "#EXT-X-ENDLIST", "",
    ])  # fmt: skip


@pytest.fixture
async def door() -> AsyncIterator[Door]:
    """Segments 10 and 11 encrypted with :data:`EXPLICIT_IV` (named in the playlist), 12
    with its own number (implicit), 13 clear; ``/bad/`` names IV 5 for 10 and 11 instead."""
    state = Door()
    segments = {
        "10.ts": encrypt_segment(CLEAR, KEY, EXPLICIT_IV),
        "11.ts": encrypt_segment(CLEAR, KEY, EXPLICIT_IV),
        "12.ts": encrypt_segment(CLEAR, KEY, 12),
        "13.ts": CLEAR,
    }

    async def playlist(request: web.Request) -> web.Response:
        iv = EXPLICIT_IV if request.match_info["kind"] == "good" else 5
        return web.Response(text=_playlist(state.url, iv))

    async def segment(request: web.Request) -> web.Response:
        return web.Response(body=segments[request.match_info["name"]])

    async def key(request: web.Request) -> web.Response:
        state.key_requests.append((request.headers.get("Authorization", ""), request.query_string))
        status, reason = state.refuse
        if status:
            body = {"error": "forbidden", "reason": reason, "message": "not now"}
            return web.json_response(body, status=status)
        return web.Response(body=KEY, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/{kind}/index.m3u8", playlist)
    app.router.add_get("/{kind}/{name}", segment)
    app.router.add_get(f"/keys/news.cn/{KEY_ID}", key)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.url = str(server.make_url("")).rstrip("/")
    yield state
    await server.close()


def _box(http: aiohttp.ClientSession, door: Door, *, token_in_query: bool = False) -> SetTopBox:
    box = SetTopBox(
        http, door.url, mac="aa:bb:cc:dd:ee:01", secret="", token_in_query=token_in_query
    )
    box.token = TOKEN
    return box


async def test_explicit_and_implicit_ivs_decrypt_and_the_key_is_fetched_once(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        stats = await _box(http, door).play_media(f"{door.url}/good/index.m3u8")
    assert stats.errors == []
    assert (stats.segments, stats.decrypted, stats.key_refusals) == (4, 3, 0)
    assert stats.key_uris == [f"{door.url}/keys/news.cn/{KEY_ID}"]
    assert door.key_requests == [(f"Bearer {TOKEN}", "")]


async def test_a_box_without_headers_sends_its_token_in_the_key_query(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        stats = await _box(http, door, token_in_query=True).play_media(
            f"{door.url}/good/index.m3u8"
        )
    assert stats.decrypted == 3
    assert door.key_requests == [("", f"token={TOKEN}")]


async def test_a_wrong_iv_is_caught_by_the_ts_check(door: Door) -> None:
    async with aiohttp.ClientSession() as http:
        stats = await _box(http, door).play_media(f"{door.url}/bad/index.m3u8")
    assert stats.errors == [
        "segment 10 is not MPEG-TS once decrypted",
        "segment 11 is not MPEG-TS once decrypted",
    ]
    assert stats.decrypted == 1  # segment 12, whose IV is its own number


async def test_a_refused_key_ends_playback_and_names_the_reason(door: Door) -> None:
    door.refuse = (403, "blacked_out")
    async with aiohttp.ClientSession() as http:
        stats = await _box(http, door).play_media(f"{door.url}/good/index.m3u8")
    assert stats.key_refusals == 1
    assert stats.errors == ["key refused: 403 blacked_out: not now"]
    assert (stats.segments, stats.decrypted, stats.key_uris) == (0, 0, [])
    assert len(door.key_requests) == 1
