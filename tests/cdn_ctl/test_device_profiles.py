"""The front door serves each box by its device profile: the profile claim in the box
token, the rungs a master offers (live and catch-up), multicast or HLS, and the HLS-TS
fallback. Pure rules first, then a real front door over real EPG, subscriber and
transcode control servers, a real nginx edge in front of an origin serving a ladder
with 1080p, 720p, 360p and an HEVC rung."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import jwt
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from cdn_ctl.boxtoken import (
    BoxTokenInvalid,
    BoxTokenSigner,
    parse_profile_claim,
    profile_claim,
)
from cdn_ctl.frontdoor.policy import Delivery, delivery
from cdn_ctl.frontdoor.rungs import absolute_master, offer
from cdn_ctl.signing import KeyRing, verify_path
from cdn_ctl.sim.stb import SetTopBox
from subscriber.domain import PLATFORM_PROFILE, DeliveryFormat, DeviceProfile, VideoCodec
from tests.support.cdn import EdgeFactory, FakeOrigin
from tests.support.frontdoor_rig import Door, control_service, front_door
from tests.support.world import (
    CARRIER,
    LIVE,
    OTHER_REGION,
    REGION,
    SESSION_KEY,
)
from transcode.domain import Multicast
from transcode.jobs import PackageFormat
from transcode.outputs import LiveOutput

PROVINCE = REGION[:2] + "0000"
NEWS_GROUP = Multicast("239.10.0.1", 5000, regions=(PROVINCE,))
NEWS_URL = "rtp://@239.10.0.1:5000"
H264_1080 = 'BANDWIDTH=6000000,RESOLUTION=1920x1080,CODECS="avc1.640028,mp4a.40.2"'
H264_720 = 'BANDWIDTH=3000000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2"'
H264_360 = 'BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2"'
HEVC_1080 = 'BANDWIDTH=4000000,RESOLUTION=1920x1080,CODECS="hvc1.1.6.L120.90,mp4a.40.2"'
LADDER = f"""#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="zh",LANGUAGE="zh",DEFAULT=YES,URI="aud-zh/index.m3u8"
#EXT-X-STREAM-INF:{H264_1080}
1080p/index.m3u8
#EXT-X-STREAM-INF:{H264_720}
720p/index.m3u8
#EXT-X-STREAM-INF:{H264_360}
360p/index.m3u8
#EXT-X-STREAM-INF:{HEVC_1080}
1080p-hevc/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=600000,RESOLUTION=1920x1080,CODECS="avc1.640028",URI="1080p/iframes.m3u8"
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=100000,RESOLUTION=640x360,CODECS="avc1.64001e",URI="360p/iframes.m3u8"
"""
ALL_RUNGS = {"1080p", "720p", "360p", "1080p-hevc"}
H264_RUNGS = {"1080p", "720p", "360p"}


def _profile(
    formats: tuple[DeliveryFormat, ...] = ("hls-ts",),
    codecs: tuple[VideoCodec, ...] = ("h264",),
    max_height: int = 0,
) -> DeviceProfile:
    return DeviceProfile("", "", "", (), formats, codecs, max_height)


def _rungs(master: str) -> set[str]:
    """The rung directories a master's variant lines name (relative or absolute)."""
    return {
        line.split("?")[0].rsplit("/", 2)[-2]
        for line in master.splitlines()
        if line and not line.startswith("#")
    }


# ------------------------------------------------------------------------- the token claim


SIGNER = BoxTokenSigner({"s1": SESSION_KEY}, active_kid="s1")
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _issue(profile: DeviceProfile = PLATFORM_PROFILE) -> str:
    token, _ = SIGNER.issue(
        carrier="acme", subscriber="alice", mac="02:00:00:00:00:01", region=REGION, version=3,
        now=NOW, address="192.0.2.10", profile=profile,
    )  # fmt: skip
    return token


@pytest.mark.parametrize(
    "profile",
    [
        pytest.param(_profile(max_height=720), id="capped"),
        pytest.param(_profile(("multicast", "hls-ts")), id="multicast"),
        pytest.param(_profile(("hls-cmaf", "dash", "hls-ts"), ("hevc", "h264"), 2160), id="uhd"),
        pytest.param(_profile(("dash",)), id="dash-only"),
    ],
)
def test_the_token_carries_the_profile_in_one_short_claim(profile: DeviceProfile) -> None:
    token = _issue(profile)
    assert SIGNER.verify(token, now=NOW).profile == profile
    claim = jwt.decode(token, options={"verify_signature": False})["dp"]
    assert claim == profile_claim(profile)
    # The claim costs at most this many bytes on every URL (JSON, then base64).
    assert len(token) - len(_issue()) <= 28


def test_the_platform_profile_adds_no_claim_and_carrier_ids_are_not_carried() -> None:
    token = _issue(PLATFORM_PROFILE)
    assert "dp" not in jwt.decode(token, options={"verify_signature": False})
    named = DeviceProfile("acme", "default", "Acme boxes", (), ("hls-ts",), ("h264",))
    assert "dp" not in jwt.decode(_issue(named), options={"verify_signature": False})
    _, box = SIGNER.issue(
        carrier="acme", subscriber="alice", mac="m", region=REGION, version=1, now=NOW,
        profile=DeviceProfile("acme", "hd", "HD", ("B860",), ("hls-ts",), ("h264",), 720),
    )  # fmt: skip
    assert box.profile == _profile(max_height=720)


def test_a_token_from_before_profiles_means_the_platform_profile() -> None:
    old = jwt.encode(
        {"aud": "headend-stb", "jti": "j", "car": "acme", "sub": "alice", "mac": "m",
         "reg": REGION, "ver": 1, "iat": int(NOW.timestamp()),
         "exp": int(NOW.timestamp()) + 600},
        SESSION_KEY, algorithm="HS256", headers={"kid": "s1"},
    )  # fmt: skip
    assert SIGNER.verify(old, now=NOW).profile == PLATFORM_PROFILE


@pytest.mark.parametrize(
    "claim",
    [
        pytest.param("", id="empty"),
        pytest.param("t.a", id="two-parts"),
        pytest.param("t.a.0.0", id="four-parts"),
        pytest.param("x.a.0", id="unknown-format"),
        pytest.param("t.z.0", id="unknown-codec"),
        pytest.param("tt.a.0", id="repeated-format"),
        pytest.param("t.aa.0", id="repeated-codec"),
        pytest.param(".a.0", id="no-format"),
        pytest.param("t..0", id="no-codec"),
        pytest.param("t.a.4321", id="too-tall"),
        pytest.param("t.a.-1", id="negative"),
        pytest.param("t.a.\uff17\uff12\uff10", id="non-ascii-digits"),
        pytest.param("t.a." + "0" * 20, id="long"),
        pytest.param(720, id="not-a-string"),
        pytest.param(["t", "a", 0], id="a-list"),
    ],
)
def test_a_signed_but_malformed_profile_claim_is_refused(claim: object) -> None:
    with pytest.raises(BoxTokenInvalid):
        parse_profile_claim(claim)
    body = jwt.decode(_issue(), options={"verify_signature": False})
    forged = jwt.encode({**body, "dp": claim}, SESSION_KEY, algorithm="HS256",
                        headers={"kid": "s1"})  # fmt: skip
    with pytest.raises(BoxTokenInvalid):
        SIGNER.verify(forged, now=NOW)


def _with_claim(token: str, claim: str) -> str:
    """``token`` with its payload's profile claim swapped, the signature left as it was."""
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["dp"] = claim
    raw = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{header}.{raw}.{signature}"


def test_a_box_cannot_widen_its_own_profile() -> None:
    token = _issue(_profile(max_height=360))
    for claim in ("mtcd.ah.0", "t.a.0"):
        with pytest.raises(BoxTokenInvalid):
            SIGNER.verify(_with_claim(token, claim), now=NOW)


# ---------------------------------------------------------------------------- the rungs


@pytest.mark.parametrize(
    ("profile", "rungs", "dropped", "lowest_only"),
    [
        pytest.param(_profile(codecs=("h264", "hevc")), ALL_RUNGS, 0, False, id="any"),
        pytest.param(PLATFORM_PROFILE, H264_RUNGS, 1, False, id="platform-no-hevc"),
        pytest.param(_profile(max_height=720), {"720p", "360p"}, 3, False, id="720-max"),
        pytest.param(_profile(("hls-ts",), ("hevc", "h264"), 1080), ALL_RUNGS, 0, False,
                     id="hevc-1080"),
        pytest.param(_profile(("hls-ts",), ("hevc",), 720), {"720p", "360p"}, 3, False,
                     id="hevc-decoder-plays-avc-by-codecs-string"),
        pytest.param(_profile(max_height=240), {"360p"}, 5, True, id="nothing-fits-lowest"),
    ],
)  # fmt: skip
def test_a_master_offers_the_rungs_the_profile_plays(
    profile: DeviceProfile, rungs: set[str], dropped: int, lowest_only: bool
) -> None:
    offered = offer(LADDER, profile)
    assert _rungs(offered.text) == rungs
    assert (offered.dropped, offered.lowest_only) == (dropped, lowest_only)
    # The audio rendition stays; every kept variant keeps its URI line.
    assert '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud"' in offered.text
    lines = offered.text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            assert lines[i + 1].endswith("/index.m3u8")


def test_trick_play_follows_the_cap_and_a_master_without_variants_is_left_alone() -> None:
    text = offer(LADDER, _profile(max_height=720)).text
    assert 'URI="360p/iframes.m3u8"' in text
    assert "1080p/iframes.m3u8" not in text
    media = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6.0,\nseg_1.ts\n"
    assert offer(media, _profile(max_height=360)).text == media


def test_an_hevc_only_ladder_keeps_its_lowest_for_an_h264_box() -> None:
    ladder = (
        "#EXTM3U\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=4000000,RESOLUTION=1920x1080,CODECS="hev1.1.6.L120.90"\n'
        "a/index.m3u8\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=1000000,RESOLUTION=960x540,CODECS="hvc1.1.6.L93.90"\n'
        "b/index.m3u8\n"
    )
    offered = offer(ladder, PLATFORM_PROFILE)
    assert (_rungs(offered.text), offered.lowest_only) == ({"b"}, True)


def test_absolute_master_resolves_relative_uris_only() -> None:
    text = (
        '#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI="http://s/steering/x.json",PATHWAY-ID="v1"\n'
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="zh",URI="aud/index.m3u8"\n'
        "#EXT-X-STREAM-INF:BANDWIDTH=1\n360p/index.m3u8\n"
    )
    base = "http://edge:80/t/1/k/-/sig/catchup/c/w/1/2/"
    out = absolute_master(text, base=base)
    assert 'SERVER-URI="http://s/steering/x.json"' in out
    assert f'URI="{base}aud/index.m3u8"' in out
    assert out.splitlines()[-1] == f"{base}360p/index.m3u8"


# --------------------------------------------------------------------------- the delivery


def _group(running: bool = True, formats: tuple[PackageFormat, ...] = ()) -> LiveOutput:
    return LiveOutput(LIVE, NEWS_GROUP, running, formats)


def _cmaf(running: bool = True) -> LiveOutput:
    return LiveOutput(LIVE, None, running, (PackageFormat.CMAF,))


@pytest.mark.parametrize(
    ("output", "formats", "region", "answer"),
    [
        pytest.param(_group(), ("multicast", "hls-ts"), REGION, Delivery("multicast", NEWS_URL),
                     id="joins-where-covered"),
        pytest.param(_group(), ("hls-ts", "multicast"), REGION, Delivery("multicast", NEWS_URL),
                     id="multicast-listed-last-still-joins"),
        pytest.param(_group(), ("hls-ts",), REGION, Delivery("hls-ts"), id="not-listed-never"),
        pytest.param(_group(), ("multicast", "hls-ts"), OTHER_REGION, Delivery("hls-ts"),
                     id="listed-but-not-covered"),
        pytest.param(_group(running=False), ("multicast", "hls-ts"), REGION, Delivery("hls-ts"),
                     id="stopped-group"),
        pytest.param(None, ("hls-cmaf", "hls-ts"), REGION, Delivery("hls-ts"),
                     id="first-format-offered"),
        pytest.param(None, ("dash",), REGION, Delivery("hls-ts", "", "dash_not_offered"),
                     id="dash-only-falls-back"),
        pytest.param(None, ("hls-cmaf", "dash"), REGION,
                     Delivery("hls-ts", "", "hls-cmaf_not_offered"), id="cmaf-first-falls-back"),
        pytest.param(_group(), ("multicast",), OTHER_REGION,
                     Delivery("hls-ts", "", "multicast_not_offered"),
                     id="multicast-only-out-of-reach"),
        pytest.param(_cmaf(), ("dash", "hls-cmaf", "hls-ts"), REGION, Delivery("dash"),
                     id="cmaf-channel-profiles-first"),
        pytest.param(_cmaf(), ("hls-cmaf", "dash"), REGION, Delivery("hls-cmaf"),
                     id="cmaf-channel-cmaf-hls"),
        pytest.param(_cmaf(running=False), ("dash",), REGION,
                     Delivery("hls-ts", "", "dash_not_offered"), id="stopped-cmaf-channel"),
        pytest.param(_group(formats=(PackageFormat.CMAF,)), ("multicast", "dash"), REGION,
                     Delivery("multicast", NEWS_URL), id="multicast-beats-dash"),
        pytest.param(_group(formats=(PackageFormat.CMAF,)), ("multicast", "dash"), OTHER_REGION,
                     Delivery("dash"), id="dash-out-of-the-groups-reach"),
        pytest.param(_group(), ("dash", "hls-ts"), REGION, Delivery("hls-ts"),
                     id="ts-only-channel-next-format"),
    ],
)  # fmt: skip
def test_one_rule_decides_the_delivery(
    output: LiveOutput | None,
    formats: tuple[DeliveryFormat, ...],
    region: str,
    answer: Delivery,
) -> None:
    assert delivery(output, profile=_profile(formats), region=region) == answer


def test_each_unicast_delivery_names_its_front_door_url() -> None:
    names = {fmt: Delivery(fmt).name for fmt in ("hls-ts", "hls-cmaf", "dash", "multicast")}
    assert names == {"hls-ts": "master.m3u8", "hls-cmaf": "master-cmaf.m3u8",
                     "dash": "manifest.mpd", "multicast": ""}  # fmt: skip


# ------------------------------------------------------------------------ the front door


class LadderOrigin(FakeOrigin):
    """The fake origin, its masters (live and every catch-up window) the four-rung ladder;
    with ``windows_down`` it answers catch-up windows' masters 503."""

    windows_down = False

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.windows_down and "/catchup/" in request.path:
            self.hits[request.path] += 1
            return web.Response(status=503, headers={"Cache-Control": "no-store"})
        if request.path.endswith("/master.m3u8"):
            self.hits[request.path] += 1
            return web.Response(
                text=LADDER,
                content_type="application/vnd.apple.mpegurl",
                headers={"Cache-Control": "max-age=2"},
            )
        return await super()._handle(request)


@pytest.fixture
async def transcode(redis: aioredis.Redis, tmp_path: Path) -> AsyncIterator[str]:
    """Transcode's control service: news with a multicast group for the boxes' province."""
    async with control_service(redis, tmp_path, {LIVE: {"multicast": NEWS_GROUP}}) as control:
        yield control.target


@pytest.fixture
async def door(
    redis: aioredis.Redis, edges: EdgeFactory, ring: KeyRing, transcode: str
) -> AsyncIterator[Door[LadderOrigin]]:
    """The front door rig (:mod:`tests.support.frontdoor_rig`) before :class:`LadderOrigin`."""
    async with front_door(redis, edges, ring, origin=LadderOrigin(), transcode=transcode) as up:
        yield up


async def _catchup(
    http: aiohttp.ClientSession, door: Door[LadderOrigin], box: SetTopBox
) -> aiohttp.ClientResponse:
    now = datetime.now(UTC).replace(microsecond=0)
    start, stop = now - timedelta(minutes=30), now - timedelta(minutes=20)
    query = f"utc={int(start.timestamp())}&utcend={int(stop.timestamp())}"
    return await http.get(
        f"{door.url}/catchup/{LIVE}/master.m3u8?{query}",
        headers={"Authorization": f"Bearer {box.token}"},
        allow_redirects=False,
    )


async def test_a_capped_box_gets_no_taller_rungs_live_or_in_catchup(
    door: Door[LadderOrigin], ring: KeyRing
) -> None:
    await door.define(_profile(max_height=720))
    async with aiohttp.ClientSession() as http:
        capped = await door.logged_in(http, "b1")
        lease, _, live = await capped.open_master(LIVE)
        assert _rungs(live) == {"720p", "360p"}
        assert f"720p/index.m3u8?lease_id={lease}" in live
        await capped.stop(lease)
        async with await _catchup(http, door, capped) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.headers["Cache-Control"] == "no-store"
            window = await resp.text()
        assert _rungs(window) == {"720p", "360p"}
        assert "1080p/iframes.m3u8" not in window
        # The variants are the edge's, signed for the window and the box: played as after
        # the 302.
        variant = next(u for u in window.splitlines() if u.endswith("720p/index.m3u8"))
        path = "/" + variant.split("/", 3)[3]
        grant = verify_path(ring, path, client_ip="127.0.0.1", now=time.time())
        assert grant.scope.startswith(f"catchup/{LIVE}/w/")
        # Bound to the box like the 302's URL; the front door's own unbound fetch URL never
        # reaches a box.
        assert grant.client_ip == "127.0.0.1"
        assert "/-/" not in window
        async with http.get(variant) as resp:
            assert resp.status == 200
            assert "#EXTINF" in await resp.text()
    assert door.count("cdn_profile_masters_total", kind="live", change="filtered") == 1
    assert door.count("cdn_profile_masters_total", kind="catchup", change="filtered") == 1


async def test_a_window_master_the_edge_will_not_give_is_the_plain_302(
    door: Door[LadderOrigin], caplog: pytest.LogCaptureFixture
) -> None:
    await door.define(_profile(max_height=720))
    door.origin.windows_down = True
    async with aiohttp.ClientSession() as http:
        capped = await door.logged_in(http, "b1")
        async with await _catchup(http, door, capped) as resp:
            assert resp.status == 302
            location = resp.headers["Location"]
    assert location.split("?")[0].endswith("/master.m3u8")
    assert any(r.getMessage() == "edge refused the window master fetch" for r in caplog.records)
    # Without a live master held, the grant fetched its window's master and nothing else.
    assert door.origin.hits
    assert all("/catchup/" in path for path in door.origin.hits)
    assert door.count("cdn_profile_masters_total", kind="catchup", change="filtered") == 0


async def test_the_platform_profile_gets_every_h264_rung_and_a_decoder_of_all_a_302(
    door: Door[LadderOrigin],
) -> None:
    async with aiohttp.ClientSession() as http:
        platform = await door.logged_in(http, "b1")
        lease, _, live = await platform.open_master(LIVE)
        assert _rungs(live) == H264_RUNGS
        await platform.stop(lease)
        # The ladder held has an HEVC rung: the window's master is answered without it.
        async with await _catchup(http, door, platform) as resp:
            assert resp.status == 200
            assert _rungs(await resp.text()) == H264_RUNGS
        await door.define(_profile(codecs=("h264", "hevc")))
        everything = await door.logged_in(http, "c1")
        lease, _, live = await everything.open_master(LIVE)
        assert _rungs(live) == ALL_RUNGS
        await everything.stop(lease)
        async with await _catchup(http, door, everything) as resp:
            assert resp.status == 302
            assert resp.headers["Location"].split("?")[0].endswith("/master.m3u8")
    assert door.count("cdn_profile_masters_total", kind="live", change="filtered") == 1
    assert door.count("cdn_profile_masters_total", kind="catchup", change="filtered") == 1


async def test_a_box_too_small_for_every_rung_gets_the_lowest(door: Door[LadderOrigin]) -> None:
    await door.define(_profile(max_height=144))
    async with aiohttp.ClientSession() as http:
        tiny = await door.logged_in(http, "b1")
        _, _, live = await tiny.open_master(LIVE)
    assert _rungs(live) == {"360p"}
    assert door.count("cdn_profile_masters_total", kind="live", change="lowest_only") == 1


async def _lineup(
    door: Door[LadderOrigin], http: aiohttp.ClientSession, label: str
) -> dict[str, str]:
    box = await door.logged_in(http, label)
    return {c.channel_id: c.url for c in await box.lineup()}


async def test_only_a_multicast_profile_gets_the_group_in_a_covered_region(
    door: Door[LadderOrigin],
) -> None:
    async with aiohttp.ClientSession() as http:
        platform = await _lineup(door, http, "a2")  # REGION, no profile: the platform's
        await door.define(_profile(("multicast", "hls-ts")))
        joins = await _lineup(door, http, "a1")  # REGION
        elsewhere = await _lineup(door, http, "b1")  # OTHER_REGION: no group reaches it
        await door.define(_profile(("hls-cmaf", "hls-ts")))
        unicast = await _lineup(door, http, "c1")  # REGION, a profile without multicast
    assert joins[LIVE] == NEWS_URL
    for lineup in (platform, elsewhere, unicast):
        assert lineup[LIVE].startswith(f"{door.url}/live/{LIVE}/master.m3u8")


async def test_a_profile_of_formats_live_does_not_have_falls_back_and_is_counted(
    door: Door[LadderOrigin],
) -> None:
    await door.define(_profile(("dash",)))
    async with aiohttp.ClientSession() as http:
        dash = await door.logged_in(http, "b1")
        assert {c.channel_id: c.url for c in await dash.lineup()}[LIVE].startswith(
            f"{door.url}/live/{LIVE}/master.m3u8"
        )
        lease, _, live = await dash.open_master(LIVE)
        assert _rungs(live) == H264_RUNGS  # HLS-TS, the one thing live is
        await dash.stop(lease)
        await door.define(_profile(("multicast",)))
        out_of_reach = await door.logged_in(http, "c1")  # REGION: the group reaches it
        lease, _, _ = await out_of_reach.open_master(LIVE)
        await out_of_reach.stop(lease)
    assert door.count("cdn_profile_fallbacks_total", reason="dash_not_offered") == 1
    # A multicast box asking for the HLS master where its group reaches is no fallback.
    assert door.count("cdn_profile_fallbacks_total", reason="multicast_not_offered") == 0


async def test_a_token_minted_before_profiles_plays_as_the_platform(
    door: Door[LadderOrigin],
) -> None:
    await door.define(_profile(max_height=360))
    b = door.world.boxes["b1"]
    now = int(time.time())
    old = jwt.encode(
        {"aud": "headend-stb", "jti": "before-profiles", "car": CARRIER, "sub": "bob",
         "mac": b.mac, "reg": OTHER_REGION, "ver": 1, "iat": now, "exp": now + 600},
        SESSION_KEY, algorithm="HS256", headers={"kid": "s1"},
    )  # fmt: skip
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{door.url}/live/{LIVE}/master.m3u8", headers={"Authorization": f"Bearer {old}"}
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        assert _rungs(await resp.text()) == H264_RUNGS


async def test_a_forged_profile_is_refused_like_any_forged_token(door: Door[LadderOrigin]) -> None:
    await door.define(_profile(max_height=360))
    async with aiohttp.ClientSession() as http:
        capped = await door.logged_in(http, "b1")
        for token in (
            _with_claim(capped.token, "t.ah.0"),
            jwt.encode({"dp": "t.a.0"}, SESSION_KEY, algorithm="HS256", headers={"kid": "s1"}),
        ):
            async with http.get(
                f"{door.url}/live/{LIVE}/master.m3u8",
                headers={"Authorization": f"Bearer {token}"},
            ) as resp:
                assert resp.status == 401
                assert (await resp.json())["reason"] == "session_invalid"
    assert door.count("cdn_profile_masters_total", kind="live", change="filtered") == 0


async def test_a_player_link_plays_as_its_box(door: Door[LadderOrigin]) -> None:
    await door.define(_profile(("multicast", "hls-ts"), max_height=720))
    async with aiohttp.ClientSession() as http:
        box = await door.logged_in(http, "a1")
        async with http.post(
            f"{door.url}/api/player-link", headers={"Authorization": f"Bearer {box.token}"}
        ) as resp:
            assert resp.status == 201
            link = await resp.json()
        await door.undefine()  # the link keeps what the box had when it was made
        async with http.get(link["url"]) as resp:
            playlist = await resp.text()
        urls = [line for line in playlist.splitlines() if line and not line.startswith("#")]
        assert NEWS_URL in urls
        sport = next(u for u in urls if "/live/sport.cn/" in u)
        async with http.get(sport.replace("sport.cn", LIVE)) as resp:
            assert resp.status == 200, await resp.text()
            assert _rungs(await resp.text()) == {"720p", "360p"}
