"""Live CMAF-HLS and DASH through the front door (:mod:`cdn_ctl.frontdoor.formats`): the
lineup names each box's delivery by its device profile, the CMAF master and the MPD go
through the checks, lease and signing every live grant does, the MPD's ``BaseURL``
reaches the lease's edge and its ``Location`` comes back; a channel not published as CMAF
and a switched picture are refused with the MPEG-TS master named."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from lxml import etree

from cdn_ctl.errors import UpstreamUnavailable
from cdn_ctl.frontdoor.policy import rewrite_mpd
from cdn_ctl.signing import KeyRing
from cdn_ctl.sim.stb import SetTopBox
from epg.alerts.domain import Alert, AlertState, Severity
from subscriber.domain import DeliveryFormat, DeviceProfile
from tests.support.cdn import EdgeFactory, FakeOrigin
from tests.support.frontdoor_rig import Door, control_service, front_door
from tests.support.world import CARRIER, LIVE, REGION, SPORT
from transcode.jobs import PackageFormat

MPD_NS = "{urn:mpeg:dash:schema:mpd:2011}"
CMAF_MASTER = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="audio",DEFAULT=YES,URI="audio/cmaf.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=320x180,CODECS="avc1.64000d,mp4a.40.2",AUDIO="aud"
180p/cmaf.m3u8
"""
CMAF_MEDIA = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:12
#EXT-X-MAP:URI="init-0123abcd.mp4"
#EXTINF:2.000,
12.m4s
"""
MPD = """<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" minimumUpdatePeriod="PT2S" \
availabilityStartTime="2026-11-28T19:00:00Z" profiles="urn:mpeg:dash:profile:isoff-live:2011">
<Period id="p12" start="PT0S">
<AdaptationSet contentType="video" mimeType="video/mp4">
<SegmentTemplate timescale="90000" startNumber="12" \
initialization="$RepresentationID$/init-0123abcd.mp4" media="$RepresentationID$/$Number$.m4s">
<SegmentTimeline><S t="0" d="180000"/></SegmentTimeline>
</SegmentTemplate>
<Representation id="180p" bandwidth="800000" codecs="avc1.64000d" width="320" height="180"/>
</AdaptationSet>
</Period>
</MPD>
"""


class CmafOrigin(FakeOrigin):
    """The fake origin, with a CMAF channel's master, track playlists, MPD and segments."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.path.rsplit("/", 1)[-1]
        texts = {
            "master-cmaf.m3u8": (CMAF_MASTER, "application/vnd.apple.mpegurl"),
            "cmaf.m3u8": (CMAF_MEDIA, "application/vnd.apple.mpegurl"),
            "manifest.mpd": (MPD, "application/dash+xml"),
        }
        if name in texts:
            self.hits[request.path] += 1
            text, kind = texts[name]
            return web.Response(
                text=text, content_type=kind, headers={"Cache-Control": "max-age=1"}
            )
        if name.endswith((".m4s", ".mp4")):
            self.hits[request.path] += 1
            return web.Response(
                body=b"\0\0\0\x08styp" + request.path.encode(), content_type="video/mp4"
            )
        return await super()._handle(request)


@pytest.fixture
async def door(
    redis: aioredis.Redis, edges: EdgeFactory, ring: KeyRing, tmp_path: Path
) -> AsyncIterator[Door[CmafOrigin]]:
    """The front door rig: the live channel published as CMAF too, sport as MPEG-TS only."""
    channels = {LIVE: {"formats": (PackageFormat.CMAF,)}, SPORT: {}}
    async with (
        control_service(redis, tmp_path, channels) as control,
        front_door(redis, edges, ring, origin=CmafOrigin(), transcode=control.target) as up,
    ):
        yield up


def _profile(*formats: DeliveryFormat) -> DeviceProfile:
    return DeviceProfile(CARRIER, "sim", "", ("sim",), formats, ("h264",))


async def _get(
    http: aiohttp.ClientSession, box: SetTopBox, url: str
) -> tuple[int, dict[str, str], str]:
    async with http.get(
        url, headers={"Authorization": f"Bearer {box.token}"}, allow_redirects=False
    ) as resp:
        return resp.status, dict(resp.headers), await resp.text()


def _mpd_urls(text: str) -> tuple[str, str]:
    root = etree.fromstring(text.encode())
    base, location = root.find(f"{MPD_NS}BaseURL"), root.find(f"{MPD_NS}Location")
    assert base is not None
    assert location is not None
    # Where ISO/IEC 23009-1 puts them: before the first Period.
    assert [c.tag for c in root][:2] == [f"{MPD_NS}BaseURL", f"{MPD_NS}Location"]
    return str(base.text), str(location.text)


# ------------------------------------------------------------------------------ the lineup


@pytest.mark.parametrize(
    ("formats", "live", "sport"),
    [
        pytest.param(("dash", "hls-ts"), "manifest.mpd", "master.m3u8", id="dash-box"),
        pytest.param(("hls-cmaf", "dash"), "master-cmaf.m3u8", "master.m3u8", id="cmaf-hls-box"),
        pytest.param(("hls-ts", "dash"), "master.m3u8", "master.m3u8", id="ts-first"),
    ],
)  # fmt: skip
async def test_the_lineup_names_each_boxs_delivery(
    door: Door[CmafOrigin], formats: tuple[DeliveryFormat, ...], live: str, sport: str
) -> None:
    await door.define(_profile(*formats))
    async with aiohttp.ClientSession() as http:
        box = await door.logged_in(http, "b1")
        urls = {c.channel_id: c.url for c in await box.lineup()}
    assert urls[LIVE] == f"{door.url}/live/{LIVE}/{live}"
    assert urls[SPORT] == f"{door.url}/live/{SPORT}/{sport}"


async def test_a_lineup_fetched_with_the_token_in_the_query_carries_it_to_the_mpd(
    door: Door[CmafOrigin],
) -> None:
    await door.define(_profile("dash"))
    async with aiohttp.ClientSession() as http:
        box = await door.logged_in(http, "b1")
        async with http.get(f"{door.url}/lineup.m3u?token={box.token}") as resp:
            text = await resp.text()
    assert f"{door.url}/live/{LIVE}/manifest.mpd?token={box.token}" in text.splitlines()


# ---------------------------------------------------------------------------- CMAF-HLS


async def test_the_cmaf_master_leases_and_its_variants_redirect_to_the_signed_edge(
    door: Door[CmafOrigin],
) -> None:
    async with aiohttp.ClientSession() as http:
        box = await door.logged_in(http, "b1")
        status, headers, master = await _get(http, box, f"{door.url}/live/{LIVE}/master-cmaf.m3u8")
        assert status == 200, master
        lease = headers["X-Lease-Id"]
        assert f"180p/cmaf.m3u8?lease_id={lease}" in master.splitlines()
        assert f'URI="audio/cmaf.m3u8?lease_id={lease}"' in master
        status, headers, _ = await _get(
            http, box, f"{door.url}/live/{LIVE}/180p/cmaf.m3u8?lease_id={lease}"
        )
        assert status == 302
        edge_url = headers["Location"]
        assert f"/live/{LIVE}/180p/cmaf.m3u8?lease_id={lease}" in edge_url
        async with http.get(edge_url) as resp:
            assert resp.status == 200
            assert '#EXT-X-MAP:URI="init-0123abcd.mp4"' in await resp.text()
        # The segment resolves against the signed edge URL, as a player resolves it.
        async with http.get(edge_url.rpartition("/")[0] + "/12.m4s") as resp:
            assert resp.status == 200
            assert (await resp.read()).startswith(b"\0\0\0\x08styp")


# -------------------------------------------------------------------------------- DASH


async def test_the_mpd_starts_a_lease_points_at_its_edge_and_comes_back_to_keep_it(
    door: Door[CmafOrigin],
) -> None:
    async with aiohttp.ClientSession() as http:
        box = await door.logged_in(http, "b1")
        status, headers, text = await _get(http, box, f"{door.url}/live/{LIVE}/manifest.mpd")
        assert status == 200, text
        assert headers["Content-Type"].startswith("application/dash+xml")
        assert headers["Cache-Control"] == "no-store"
        lease = headers["X-Lease-Id"]
        base, location = _mpd_urls(text)
        assert location == f"{door.url}/live/{LIVE}/manifest.mpd?lease_id={lease}"
        assert base.endswith(f"/live/{LIVE}/")
        assert base.startswith("http://127.0.0.1:")
        assert "?" not in base
        # Segments and init segments resolve against the BaseURL: signed, on the edge.
        for rest in ("180p/init-0123abcd.mp4", "180p/12.m4s"):
            async with http.get(base + rest) as resp:
                assert resp.status == 200, rest
        # A reload at the Location keeps the lease (no second stream).
        status, again, reloaded = await _get(http, box, location)
        assert status == 200, reloaded
        assert again["X-Lease-Id"] == lease
        assert _mpd_urls(reloaded)[1] == location
        # So does a player that reloads the URL it was given (FFmpeg's DASH demuxer).
        status, plain, _ = await _get(http, box, f"{door.url}/live/{LIVE}/manifest.mpd")
        assert (status, plain["X-Lease-Id"]) == (200, lease)
        # Another channel's MPD request (not published as CMAF: refused) takes nothing.
        status, _, _ = await _get(http, box, f"{door.url}/live/{SPORT}/manifest.mpd")
        assert status == 409
    assert door.frontdoor.leases.get(lease) is not None


async def test_the_mpds_location_carries_a_query_token(door: Door[CmafOrigin]) -> None:
    async with aiohttp.ClientSession() as http:
        box = await door.logged_in(http, "b1")
        async with http.get(f"{door.url}/live/{LIVE}/manifest.mpd?token={box.token}") as resp:
            assert resp.status == 200
            _, location = _mpd_urls(await resp.text())
    query = parse_qs(urlsplit(location).query)
    assert query["token"] == [box.token]
    assert query["lease_id"] == [resp.headers["X-Lease-Id"]]


async def test_a_signed_base_url_reaches_nothing_outside_the_channel(
    door: Door[CmafOrigin],
) -> None:
    async with aiohttp.ClientSession() as http:
        box = await door.logged_in(http, "b1")
        _, _, text = await _get(http, box, f"{door.url}/live/{LIVE}/manifest.mpd")
        base, _ = _mpd_urls(text)
        other = base.replace(f"/live/{LIVE}/", f"/live/{SPORT}/")
        async with http.get(other + "180p/index.m3u8") as resp:
            assert resp.status == 403


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("name", ["master-cmaf.m3u8", "manifest.mpd"])
async def test_a_channel_not_published_as_cmaf_is_refused_with_its_hls_master_named(
    door: Door[CmafOrigin], name: str
) -> None:
    async with aiohttp.ClientSession() as http:
        box = await door.logged_in(http, "b1")
        status, headers, body = await _get(http, box, f"{door.url}/live/{SPORT}/{name}")
    assert status == 409
    assert "X-Lease-Id" not in headers
    assert '"reason": "format_not_offered"' in body
    assert f"/live/{SPORT}/master.m3u8" in body
    assert not door.origin.hits  # refused before any edge fetch


@pytest.mark.parametrize("name", ["master-cmaf.m3u8", "manifest.mpd"])
async def test_no_token_no_entry(door: Door[CmafOrigin], name: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{door.url}/live/{LIVE}/{name}") as resp:
            assert resp.status == 401
        async with http.get(f"{door.url}/live/{LIVE}/{name}?token=forged") as resp:
            assert resp.status == 401
    assert not door.origin.hits


def _alert_now(until: datetime | None = None) -> Alert:
    return Alert(
        id="a1",
        severity=Severity.EXTREME,
        headline="Flood warning",
        regions=(REGION,),
        channel_ids=(LIVE,),
        feed_channel_id="emergency",
        state=AlertState.CONFIRMED,
        in_force_from=datetime.now(UTC) - timedelta(seconds=30),
        in_force_until=until,
    )


async def test_a_switched_picture_sends_cmaf_boxes_to_the_mpeg_ts_master(
    door: Door[CmafOrigin],
) -> None:
    async with aiohttp.ClientSession() as http:
        box = await door.logged_in(http, "c1")  # in REGION
        _, headers, _ = await _get(http, box, f"{door.url}/live/{LIVE}/master-cmaf.m3u8")
        lease = headers["X-Lease-Id"]
        door.frontdoor.alerts.hold([_alert_now()])
        for path in ("master-cmaf.m3u8", "manifest.mpd", f"180p/cmaf.m3u8?lease_id={lease}"):
            status, _, body = await _get(http, box, f"{door.url}/live/{LIVE}/{path}")
            assert status == 409, path
            assert '"reason": "picture_switched"' in body
            assert f"/live/{LIVE}/master.m3u8" in body
        # The MPEG-TS variant shows the alert's cut view.
        status, headers, _ = await _get(
            http, box, f"{door.url}/live/{LIVE}/180p/index.m3u8?lease_id={lease}"
        )
        assert status == 302
        assert f"/live/{LIVE}/x/emergency/" in headers["Location"]
        # And the lineup lists the channel as MPEG-TS HLS while the alert is in force.
        await door.define(_profile("dash"))
        await box.login()
        urls = {c.channel_id: c.url for c in await box.lineup()}
    assert urls[LIVE] == f"{door.url}/live/{LIVE}/master.m3u8"


# --------------------------------------------------------------------- the MPD rewrite


def test_the_rewrite_escapes_its_urls_and_keeps_the_rest() -> None:
    out = rewrite_mpd(MPD, base_url="http://e/t/a/", location="http://fd/m.mpd?lease_id=l&token=t")
    base, location = _mpd_urls(out)
    assert (base, location) == ("http://e/t/a/", "http://fd/m.mpd?lease_id=l&token=t")
    assert (
        out.replace(
            "\n<BaseURL>http://e/t/a/</BaseURL>\n<Location>http://fd/m.mpd?lease_id=l&amp;token=t"
            "</Location>",
            "",
        )
        == MPD
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("<html><body>502</body></html>", id="not-an-mpd"),
        pytest.param(MPD.replace("<Period", "<BaseURL>http://x/</BaseURL><Period"), id="has-base"),
        pytest.param(" " * 5000 + MPD, id="root-too-far-in"),
    ],
)
def test_an_edge_document_that_is_not_a_plain_mpd_is_refused(text: str) -> None:
    with pytest.raises(UpstreamUnavailable) as info:
        rewrite_mpd(text, base_url="http://e/", location="http://fd/")
    assert info.value.details["reason"] == "bad_manifest"


async def test_an_ended_cut_lingers_for_mpeg_ts_players_but_not_for_cmaf_boxes(
    door: Door[CmafOrigin],
) -> None:
    async with aiohttp.ClientSession() as http:
        box = await door.logged_in(http, "c1")  # in REGION
        _, headers, _ = await _get(http, box, f"{door.url}/live/{LIVE}/master-cmaf.m3u8")
        lease = headers["X-Lease-Id"]
        door.frontdoor.alerts.hold([_alert_now(until=datetime.now(UTC) - timedelta(seconds=5))])
        # An MPEG-TS player crossing the join back keeps the cut view a while...
        status, headers, _ = await _get(
            http, box, f"{door.url}/live/{LIVE}/180p/index.m3u8?lease_id={lease}"
        )
        assert status == 302
        assert f"/live/{LIVE}/x/emergency/" in headers["Location"]
        # ...a CMAF box, which never took it, plays the channel again at once.
        status, headers, _ = await _get(
            http, box, f"{door.url}/live/{LIVE}/180p/cmaf.m3u8?lease_id={lease}"
        )
        assert status == 302
        assert f"/live/{LIVE}/180p/cmaf.m3u8" in headers["Location"]
        assert "/x/" not in headers["Location"]
        status, _, text = await _get(http, box, f"{door.url}/live/{LIVE}/manifest.mpd")
        assert status == 200, text
        assert "/x/" not in _mpd_urls(text)[0]


# ----------------------------------------------------------------------------- catch-up


def _window() -> str:
    now = datetime.now(UTC).replace(microsecond=0)
    start, stop = now - timedelta(minutes=30), now - timedelta(minutes=20)
    return f"utc={int(start.timestamp())}&utcend={int(stop.timestamp())}"


async def test_a_catchup_window_as_cmaf_hls_is_a_302_to_its_signed_master(
    door: Door[CmafOrigin],
) -> None:
    async with aiohttp.ClientSession() as http:
        box = await door.logged_in(http, "b1")
        url = f"{door.url}/catchup/{LIVE}/master-cmaf.m3u8?{_window()}"
        status, headers, _ = await _get(http, box, url)
        assert status == 302
        location = headers["Location"]
        assert f"/catchup/{LIVE}/w/" in location
        assert location.partition("?")[0].endswith("/master-cmaf.m3u8")
        async with http.get(location) as resp:
            assert resp.status == 200
            assert "#EXT-X-STREAM-INF" in await resp.text()


async def test_a_catchup_window_as_dash_is_its_mpd_pointing_at_the_signed_window(
    door: Door[CmafOrigin],
) -> None:
    async with aiohttp.ClientSession() as http:
        box = await door.logged_in(http, "b1")
        window = _window()
        status, headers, text = await _get(
            http, box, f"{door.url}/catchup/{LIVE}/manifest.mpd?{window}"
        )
        assert status == 200, text
        assert headers["Content-Type"].startswith("application/dash+xml")
        base, location = _mpd_urls(text)
        # Segments resolve on the edge, under the window's signed path, whatever the player
        # does with redirects; a reload (a window still growing) comes back here.
        assert f"/catchup/{LIVE}/w/" in base
        assert base.endswith("/")
        assert location.startswith(f"{door.url}/catchup/{LIVE}/manifest.mpd?")
        assert window in location
        assert "lease_id=" in location
        async with http.get(base + "180p/1.m4s") as resp:
            assert resp.status == 200
        status, again, _ = await _get(http, box, location)
        assert status == 200
        assert again["X-Route-Edge"] == headers["X-Route-Edge"]


async def test_catchup_as_cmaf_of_a_channel_without_it_names_its_mpeg_ts_window(
    door: Door[CmafOrigin],
) -> None:
    async with aiohttp.ClientSession() as http:
        box = await door.logged_in(http, "b1")
        status, headers, body = await _get(
            http, box, f"{door.url}/catchup/{SPORT}/manifest.mpd?{_window()}"
        )
    assert status == 409
    assert "X-Lease-Id" not in headers
    assert '"reason": "format_not_offered"' in body
    assert f"/catchup/{SPORT}/master.m3u8" in body


async def test_a_dash_boxs_lineup_names_the_mpd_for_catchup_too(door: Door[CmafOrigin]) -> None:
    await door.define(_profile("dash", "hls-ts"))
    async with aiohttp.ClientSession() as http:
        box = await door.logged_in(http, "b1")
        channels = {c.channel_id: c for c in await box.lineup()}
    assert channels[LIVE].catchup_source.startswith(f"{door.url}/catchup/{LIVE}/manifest.mpd?")
    assert channels[LIVE].url == f"{door.url}/live/{LIVE}/manifest.mpd"
    assert channels[SPORT].catchup_source == ""  # sport keeps no archive
