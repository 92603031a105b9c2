"""Start-over and timeshift end to end on the real stack (see conftest): a live channel
transcoded by FFmpeg, the origin's archive, nginx edges and the front door. FFmpeg plays
a short programme from its start, through the playlist's growth, to its ENDLIST; and
plays a timeshift from some segments back forward into the live edge."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin

import aiohttp
import pytest
from m3u8 import parser

from cdn_ctl.sim.stb import SetTopBox
from headend.rpc import bearer, client_channel
from protos import epg_pb2, epg_pb2_grpc
from tests.support.cdn import eventually
from tests.support.journey import Stack, ffmpeg_play
from tests.support.world import LIVE
from transcode import hls_parse

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.asyncio(loop_scope="module"),
]


async def _box(stack: Stack, http: aiohttp.ClientSession) -> SetTopBox:
    b = stack.world.boxes["c1"]
    box = SetTopBox(http, stack.url, mac=b.mac, secret=b.secret)
    await box.login()
    return box


async def _variant(box: SetTopBox, http: aiohttp.ClientSession, path: str) -> tuple[str, str]:
    """The lowest variant's URL at the edge, and its playlist text, for a front door path."""
    async with http.get(box.url(path), headers=box._auth(), allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        master_url = resp.headers["Location"]
    async with http.get(master_url) as resp:
        assert resp.status == 200
        master = hls_parse.parse_master(await resp.text())
    url = urljoin(master_url, master.variants[0].uri)
    async with http.get(url) as resp:
        assert resp.status == 200
        return url, await resp.text()


async def _archived_since(stack: Stack, http: aiohttp.ClientSession, seconds: float) -> datetime:
    """The start of the oldest segment in the channel's live window, once it is at least
    ``seconds`` old (the archive reaches back that far: a new stack's channel has only just
    started)."""
    origin = f"http://127.0.0.1:{stack.origin_port}/live/{LIVE}/"

    async def oldest() -> datetime | None:
        async with http.get(origin + "master.m3u8") as resp:
            rung = hls_parse.parse_master(await resp.text()).variants[0].uri
        async with http.get(origin + rung) as resp:
            first = hls_parse.parse_media(await resp.text()).segments[0].program_date_time
        assert first is not None
        return first if datetime.now(UTC) - first >= timedelta(seconds=seconds) else None

    while True:  # the live supervisor offers no event to await from outside
        found = await oldest()
        if found is not None:
            return found
        await asyncio.sleep(0.5)


async def _programme(stack: Stack, start: datetime, stop: datetime) -> None:
    """Put a programme on ``LIVE`` for ``[start, stop)`` and wait until the front door has it."""
    epg = stack.frontdoor.epg
    p = epg_pb2.Programme(titles=[epg_pb2.LocalizedText(lang="en", text="Flash")])
    p.start.FromDatetime(start)
    p.stop.FromDatetime(stop)
    generation = epg.generation
    async with client_channel(stack.services.epg_target, tls=stack.services.tls) as chan:
        await epg_pb2_grpc.EpgServiceStub(chan).PutProgrammes(
            epg_pb2.PutProgrammesRequest(
                parent=f"channels/{LIVE}", programmes=[p], policy=epg_pb2.WRITE_POLICY_REPLACE
            ),
            metadata=bearer(stack.services.api_key),
        )

    async def changed() -> bool:
        return epg.generation > generation

    await asyncio.wait_for(eventually(changed), 10)


async def test_startover_plays_a_short_programme_from_its_start_to_its_end(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        # A programme that began inside the oldest live segment and ends 14 s from now.
        oldest = await _archived_since(stack, http, 4)
        start = oldest.replace(microsecond=0) + timedelta(seconds=1)
        stop = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=14)
        await _programme(stack, start, stop)
        box = await _box(stack, http)
        url, text = await _variant(box, http, f"/startover/{LIVE}/master.m3u8")
        parser.parse(text, strict=True)
        growing = hls_parse.parse_media(text)
        assert (growing.playlist_type, growing.endlist) == ("EVENT", False)
        assert growing.start_offset_seconds == 0
        # It begins with the segment on air at the programme's start.
        first = growing.segments[0]
        assert first.program_date_time is not None
        assert first.program_date_time <= start < first.program_date_time + timedelta(seconds=2)
        token = box.token
    # FFmpeg from the programme's start, through the playlist's growth, to its ENDLIST.
    played, _ = await ffmpeg_play(
        f"{stack.url}/startover/{LIVE}/master.m3u8?token={token}", before=("-prefer_x_start", "1")
    )
    # Whole segments from the start; ENDLIST may come just before the last one is archived.
    assert played >= (stop - start).total_seconds() - 2.5
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        ended = hls_parse.parse_media(await resp.text())
    assert (ended.playlist_type, ended.endlist) == ("EVENT", True)
    assert ended.segments[: len(growing.segments)] == growing.segments
    assert len(ended.segments) > len(growing.segments)


async def test_timeshift_plays_from_segments_back_forward_into_live(stack: Stack) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    # On air for the whole test, whatever the other tests left in the guide: a timeshift
    # runs to the end of the programme on air.
    await _programme(stack, now - timedelta(minutes=1), now + timedelta(minutes=10))
    async with aiohttp.ClientSession() as http:
        await _archived_since(stack, http, 8)
        box = await _box(stack, http)
        anchor = datetime.now(UTC) - timedelta(seconds=6)
        _url, text = await _variant(box, http, f"/timeshift/{LIVE}/master.m3u8?offset=6")
        parser.parse(text, strict=True)
        playlist = hls_parse.parse_media(text)
        first = playlist.segments[0]
        assert first.program_date_time is not None
        assert first.program_date_time <= anchor + timedelta(seconds=1)
        assert anchor - first.program_date_time < timedelta(seconds=3)
        assert (playlist.playlist_type, playlist.endlist) == ("EVENT", False)
        token = box.token
    # Three times as much media as there was behind live: FFmpeg caught up with the live
    # edge and went on with it (each new segment through a reload of the growing playlist).
    clock = time.monotonic()
    played, errors = await ffmpeg_play(
        f"{stack.url}/timeshift/{LIVE}/master.m3u8?offset=6&token={token}",
        before=("-prefer_x_start", "1"),
        after=("-t", "18"),
    )
    assert played >= 17.5, errors
    # About 8 s of it were archived when FFmpeg began; the rest it waited for.
    assert time.monotonic() - clock >= 6
