"""Emergency alerts, picture blackouts and cues end to end on the real stack (see
:mod:`tests.support.journey`, with its emergency feed): real FFmpeg channels, the origin's
cut views, nginx edges, the front door. Boxes in different regions play live at once,
the simulated box player and FFmpeg (a real HLS client); an alert for one county switches
exactly the boxes in it, and cancelling returns them to their channel; a cue is signalled
in every rung and switches its blacked-out county to the slate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import pytest
import pytest_asyncio
from m3u8 import parser

from cdn_ctl.sim.stb import PlayStats, SetTopBox
from epg.alerts.client import AlertClient
from epg.alerts.domain import Alert, Severity
from epg.cues.client import CueClient
from epg.cues.domain import Cue, CueKind
from headend.redisproc import RedisServer
from headend.rpc import bearer, client_channel
from protos import epg_pb2, epg_pb2_grpc
from tests.support.cdn import eventually
from tests.support.journey import EMERGENCY, Stack, build_stack, ffmpeg_play
from tests.support.world import LIVE, REGION
from transcode import hls_parse

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.asyncio(loop_scope="module"),
]

# Where a cut view keeps the feed's segments (transcode.cuts): below the cut scope.
FEED_PART = "/feed/"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(redis_server: RedisServer, e2e_dir: Path) -> AsyncIterator[Stack]:
    """The platform with an emergency feed, up once for the module."""
    async with build_stack(redis_server.url, e2e_dir, emergency=True) as up:
        yield up


def _box(stack: Stack, http: aiohttp.ClientSession, label: str) -> SetTopBox:
    b = stack.world.boxes[label]
    return SetTopBox(http, stack.url, mac=b.mac, secret=b.secret)


def _feed(url: str) -> bool:
    return f"/x/{EMERGENCY}/" in url and FEED_PART in url


async def _view(box: SetTopBox, http: aiohttp.ClientSession) -> str:
    """The media playlist the box's next reload gets (through the front door and edge)."""
    await box.login()
    _lease, variant = await box.open_live(LIVE)
    async with http.get(variant, headers=box._auth()) as resp:
        assert resp.status == 200
        return await resp.text()


async def test_an_alert_switches_exactly_the_boxes_in_its_county(stack: Stack) -> None:
    issuer_key, confirmer_key = stack.emergency_keys
    async with (
        aiohttp.ClientSession() as http,
        AlertClient(stack.services.epg_target, issuer_key, tls=stack.services.tls) as issuer,
        AlertClient(stack.services.epg_target, confirmer_key, tls=stack.services.tls) as second,
    ):
        inside, outside, viewer = (_box(stack, http, label) for label in ("c1", "b1", "e1"))
        for box in (inside, outside, viewer):
            await box.login()
        stats = {"inside": PlayStats(), "outside": PlayStats()}
        playing = [
            asyncio.create_task(inside.play_live(LIVE, seconds=40, stats=stats["inside"])),
            asyncio.create_task(outside.play_live(LIVE, seconds=40, stats=stats["outside"])),
        ]
        # A real HLS client in the county too, through both joins.
        ffmpeg = asyncio.create_task(
            ffmpeg_play(
                f"{stack.url}/live/{LIVE}/master.m3u8?token={viewer.token}",
                after=("-t", "34", "-map", "0:v:0"),
            )
        )
        await asyncio.sleep(6)
        alert = Alert(
            id="",
            severity=Severity.EXTREME,
            headline="Flood warning",
            regions=(REGION,),
            feed_channel_id=EMERGENCY,
        )
        issued = await issuer.issue(alert, alert_id="flood-e2e")
        polls_before = stats["inside"].polls
        confirmed = await second.confirm(issued.id)
        assert confirmed.in_force_from is not None

        async def switched() -> bool:
            return any(_feed(url) for _, url in stats["inside"].played)

        await asyncio.wait_for(eventually(switched), 15)
        # Within one reload once the front door knew (the view may wait for one segment).
        assert stats["inside"].polls - polls_before <= 3
        text = await _view(_box(stack, http, "a1"), http)
        parser.parse(text, strict=True)
        view = hls_parse.parse_media(text)
        assert any(s.discontinuity for s in view.segments)
        await asyncio.sleep(10)
        cancelled = await issuer.cancel(issued.id, reason="water receding")
        assert cancelled.in_force_until is not None
        await asyncio.gather(*playing)
        played, errors = await ffmpeg
    inside_urls = [url for _, url in stats["inside"].played]
    first_feed = next(i for i, url in enumerate(inside_urls) if _feed(url))
    # Its channel before, the feed during, its channel again after the cancellation.
    assert not any(_feed(url) for url in inside_urls[:first_feed])
    assert not _feed(inside_urls[-1])
    assert any(_feed(url) for url in inside_urls[first_feed:])
    # The box outside the county never saw it.
    assert stats["outside"].played
    assert not any(f"/x/{EMERGENCY}/" in url for _, url in stats["outside"].played)
    assert stats["inside"].errors == [], stats["inside"].errors
    assert played >= 30, errors


async def test_catch_up_of_the_alert_period_shows_the_alert(stack: Stack) -> None:
    issuer_key, _ = stack.emergency_keys
    async with (
        aiohttp.ClientSession() as http,
        AlertClient(stack.services.epg_target, issuer_key, tls=stack.services.tls) as issuer,
    ):
        drill = Alert(
            id="",
            # The latest of equals wins: an earlier test's alert may end inside the window.
            severity=Severity.EXTREME,
            headline="Drill",
            regions=(REGION,),
            feed_channel_id=EMERGENCY,
            drill=True,
        )
        # The window reaches 10 s before the drill: so must the archive (this test may be
        # the first on a young stack).
        await asyncio.wait_for(_published(stack, http, 8), 60)
        issued = await issuer.issue(drill, alert_id="drill-catchup")
        await asyncio.sleep(8)
        ended = await issuer.cancel(issued.id)
        assert ended.in_force_from is not None
        assert ended.in_force_until is not None
        await asyncio.sleep(6)  # archived past the end
        start = ended.in_force_from - timedelta(seconds=10)
        stop = ended.in_force_until + timedelta(seconds=4)
        box = _box(stack, http, "c1")
        await box.login()
        query = f"utc={int(start.timestamp())}&utcend={int(stop.timestamp())}"
        async with http.get(
            box.url(f"/catchup/{LIVE}/master.m3u8?{query}"), headers=box._auth()
        ) as resp:
            assert resp.status == 200, await resp.text()
            master_url, master = str(resp.url), hls_parse.parse_master(await resp.text())
        media_url = urljoin(master_url, master.variants[0].uri)
        async with http.get(media_url) as resp:
            text = await resp.text()
        parser.parse(text, strict=True)
        media = hls_parse.parse_media(text)
        assert media.endlist
        kinds = ["feed" if _feed(urljoin(media_url, s.uri)) else "channel" for s in media.segments]
        # The channel, the alert, then the channel after it: each join a discontinuity.
        assert kinds[0] == "channel", text
        assert "feed" in kinds, text
        assert kinds[-1] == "channel"
        joins = [i for i in range(1, len(kinds)) if kinds[i] != kinds[i - 1]]
        assert joins
        assert all(media.segments[i].discontinuity for i in joins)
        played, errors = await ffmpeg_play(
            f"{stack.url}/catchup/{LIVE}/master.m3u8?{query}&token={box.token}",
            after=("-map", "0:v:0"),
            fps=25,  # the channel's and the feed's (SMPTE bars at 25 fps)
        )
        assert played >= (stop - start).total_seconds() - 6, (played, kinds, errors[:300])


async def _put(stack: Stack, programme: epg_pb2.Programme) -> None:
    """Put ``programme`` on ``LIVE`` (replacing what it overlaps); wait for the front door."""
    epg = stack.frontdoor.epg
    generation = epg.generation
    async with client_channel(stack.services.epg_target, tls=stack.services.tls) as chan:
        await epg_pb2_grpc.EpgServiceStub(chan).PutProgrammes(
            epg_pb2.PutProgrammesRequest(
                parent=f"channels/{LIVE}",
                programmes=[programme],
                policy=epg_pb2.WRITE_POLICY_REPLACE,
            ),
            metadata=bearer(stack.services.api_key),
        )

    async def changed() -> bool:
        return epg.generation > generation

    await asyncio.wait_for(eventually(changed), 10)


async def test_a_blackout_switches_the_picture_to_the_slate_in_its_region_only(
    stack: Stack,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    derby = epg_pb2.Programme(
        titles=[epg_pb2.LocalizedText(lang="en", text="Derby")], blackout_regions=[REGION]
    )
    derby.start.FromDatetime(now - timedelta(minutes=1))
    derby.stop.FromDatetime(now + timedelta(minutes=10))
    await _put(stack, derby)
    try:
        async with aiohttp.ClientSession() as http:
            inside, outside = _box(stack, http, "a1"), _box(stack, http, "b1")
            for box in (inside, outside):
                await box.login()
            played = await asyncio.gather(
                inside.play_live(LIVE, seconds=10), outside.play_live(LIVE, seconds=10)
            )
    finally:
        # The same slot, no longer blacked out: the module's other tests play it.
        del derby.blackout_regions[:]
        await _put(stack, derby)
    assert any(_feed(url) for _, url in played[0].played)
    assert not any(f"/x/{EMERGENCY}/" in url for _, url in played[1].played)


async def _published(stack: Stack, http: aiohttp.ClientSession, count: int) -> None:
    """Until the live channel has published ``count`` segments (its first rung, at the origin)."""
    master_url = f"http://127.0.0.1:{stack.origin_port}/live/{LIVE}/master.m3u8"
    async with http.get(master_url) as resp:
        master = hls_parse.parse_master(await resp.text())
    variant = urljoin(master_url, master.variants[0].uri)
    while True:
        async with http.get(variant) as resp:
            media = hls_parse.parse_media(await resp.text())
        if media.media_sequence + len(media.segments) >= count:
            return
        await asyncio.sleep(0.5)


async def _daterange_lines(http: aiohttp.ClientSession, stack: Stack) -> list[str]:
    """The EXT-X-DATERANGE lines of every rung's live playlist at the origin."""
    master_url = f"http://127.0.0.1:{stack.origin_port}/live/{LIVE}/master.m3u8"
    async with http.get(master_url) as resp:
        master = hls_parse.parse_master(await resp.text())
    lines = []
    for variant in master.variants:
        async with http.get(urljoin(master_url, variant.uri)) as resp:
            text = await resp.text()
        parser.parse(text, strict=True)
        lines += [line for line in text.splitlines() if line.startswith("#EXT-X-DATERANGE")]
    return lines


async def test_a_blackout_cue_is_signalled_and_switches_its_region_to_the_slate(
    stack: Stack,
) -> None:
    """An operator's cue, through the EPG, the farm's reconciler and the node: an
    SCTE-35 break in every rung's playlist, and the slate for the blacked-out county only."""
    start = datetime.now(UTC) + timedelta(seconds=4)
    async with (
        aiohttp.ClientSession() as http,
        CueClient(
            stack.services.epg_target, stack.services.api_key, tls=stack.services.tls
        ) as cues,
    ):
        cue = await cues.insert(
            Cue(id="derby-break", channel_id=LIVE, kind=CueKind.BREAK, start=start,
                duration_seconds=10, blackout_regions=(REGION,))
        )  # fmt: skip
        inside, outside = _box(stack, http, "a1"), _box(stack, http, "b1")
        for box in (inside, outside):
            await box.login()
        played = await asyncio.gather(
            inside.play_live(LIVE, seconds=22), outside.play_live(LIVE, seconds=22)
        )
        lines = await _daterange_lines(http, stack)
        window_start = cue.start - timedelta(seconds=10)
        query = f"utc={int(window_start.timestamp())}&utcend={int(cue.end.timestamp()) + 6}"
        catchup = await _catchup_text(stack, http, _box(stack, http, "b1"), query)
    key = f"splice-{cue.event:08X}"  # a splice_insert pairs by its splice_event_id
    outs = [line for line in lines if key in line and "SCTE35-OUT=0x" in line]
    returns = [line for line in lines if key in line and "SCTE35-IN=0x" in line]
    # Every rung signals the break, and its return with the break's length.
    assert outs, lines
    assert returns, lines
    assert len(outs) == len(returns)
    assert all("DURATION=" in line for line in returns)
    assert key in catchup
    assert "SCTE35-OUT=0x" in catchup
    # The county saw the slate while the break ran; the other county its channel.
    assert any(_feed(url) for _, url in played[0].played)
    assert not any(f"/x/{EMERGENCY}/" in url for _, url in played[1].played)
    assert played[0].errors == []
    assert played[1].errors == []


async def _catchup_text(
    stack: Stack, http: aiohttp.ClientSession, box: SetTopBox, query: str
) -> str:
    """The first variant of a catch-up window, as the box gets it."""
    await box.login()
    async with http.get(
        box.url(f"/catchup/{LIVE}/master.m3u8?{query}"), headers=box._auth()
    ) as resp:
        assert resp.status == 200, await resp.text()
        master_url, master = str(resp.url), hls_parse.parse_master(await resp.text())
    async with http.get(urljoin(master_url, master.variants[0].uri)) as resp:
        text = await resp.text()
    parser.parse(text, strict=True)
    return text
