"""The adaptive player's decisions, without a network: estimates, switches, the buffer."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from cdn_ctl.sim.abr import (
    AbrController,
    AbrPolicy,
    AdaptivePlayer,
    Ewma,
    Playback,
    Variant,
    parse_master,
    qoe,
)
from cdn_ctl.sim.stb import Segment

RUNGS = (200_000, 400_000, 800_000)


def _controller(rate_bps: float) -> AbrController:
    abr = AbrController(AbrPolicy(), RUNGS)
    for _ in range(10):
        abr.sample(int(rate_bps / 8), 1.0)
    return abr


def test_ewma_one_sample_is_the_sample() -> None:
    avg = Ewma(3.0)
    avg.sample(0.5, 1000.0)
    assert avg.estimate() == pytest.approx(1000.0)
    avg.sample(30.0, 2000.0)
    assert avg.estimate() == pytest.approx(2000.0, rel=1e-2)


def test_the_default_estimate_until_a_sample_then_the_smaller_average() -> None:
    abr = AbrController(AbrPolicy(default_estimate_bps=123_000), RUNGS)
    assert abr.estimate_bps() == 123_000
    abr.sample(1_000_000 // 8, 9.0)  # 1 Mb/s for a long while
    abr.sample(100_000 // 8, 1.0)  # then 100 kb/s: the fast average drops more
    assert abr.estimate_bps() == pytest.approx(abr.fast.estimate())
    assert abr.fast.estimate() < abr.slow.estimate()


@pytest.mark.parametrize(
    ("rate", "current", "buffer", "expected"),
    [
        pytest.param(10e6, 0, 0.5, 0, id="panic-buffer-goes-lowest"),
        pytest.param(10e6, 0, 6.0, 1, id="up-one-rung-at-a-time"),
        # 800k x 2 s at 10 Mb/s takes 0.16 s: 1.1 s of buffer would fall under 1 s.
        pytest.param(10e6, 1, 1.1, 1, id="no-up-when-the-fetch-would-starve-the-buffer"),
        pytest.param(10e6, 1, 1.2, 2, id="up-when-the-buffer-outlasts-the-fetch"),
        pytest.param(500_000, 1, 6.0, 1, id="hysteresis-band-holds"),  # 0.7x < 800k
        pytest.param(600_000, 2, 6.0, 1, id="down-to-what-0.95x-covers"),
        pytest.param(100_000, 2, 6.0, 0, id="down-to-lowest-when-nothing-fits"),
    ],
)
def test_choose(rate: float, current: int, buffer: float, expected: int) -> None:
    assert _controller(rate).choose(current, buffer, 2.0) == expected


def test_playback_drains_stalls_and_weights_bitrate_by_media_time() -> None:
    pb = Playback(opened=0.0)
    pb.append(1.5, 2.0, 200_000)  # first frame at 1.5 s
    pb.append(2.0, 2.0, 800_000)  # 1.5 s left
    pb.advance(7.0)  # 3.5 s buffered, 5 s passed: a 1.5 s stall
    assert pb.stall_seconds == pytest.approx(1.5)
    assert pb.stalls == 1
    pb.append(8.0, 2.0, 800_000)  # the same stall ran until 8.0
    assert pb.stalls == 1
    figures = qoe(pb, 10.0, switches=1, segments=3)
    assert figures.startup_seconds == pytest.approx(1.5)
    assert figures.watch_seconds == pytest.approx(8.5)
    assert figures.rebuffer_ratio == pytest.approx(2.5 / 8.5)
    assert figures.avg_bitrate_bps == pytest.approx((2 * 200_000 + 4 * 800_000) / 6)


def test_a_session_that_never_started() -> None:
    figures = qoe(Playback(opened=0.0), 10.0, switches=0, segments=0)
    assert math.isnan(figures.startup_seconds)
    assert figures.rebuffer_ratio == 0.0


def test_parse_master_sorts_variants_and_resolves_uris() -> None:
    text = (
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180\n180p/index.m3u8\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=100000,CODECS="avc1.42c00b,mp4a.40.2"\n90p/index.m3u8\n'
    )
    assert parse_master("http://e/live/ch/master.m3u8", text) == [
        Variant(100_000, "http://e/live/ch/90p/index.m3u8"),
        Variant(400_000, "http://e/live/ch/180p/index.m3u8"),
    ]


class ScriptedLink:
    """A stand-in for a network (named so): a window listing the next segments, each
    taking its size over ``rates[i]`` (one per segment fetched) on a virtual clock."""

    def __init__(self, rates: Sequence[float], segment_seconds: float = 2.0) -> None:
        self.now = 0.0
        self.rates = rates
        self.fetched = 0
        self.duration = segment_seconds

    def clock(self) -> float:
        return self.now

    async def open(self) -> list[Variant]:
        self.now += 0.1
        return [Variant(b, str(b)) for b in RUNGS]

    async def playlist(self, url: str) -> tuple[str, str]:
        self.now += 0.1
        first = self.fetched  # the next segment is always out already
        lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
        lines += [f"#EXTINF:{self.duration},\n{url}-{n}.ts" for n in range(first, first + 3)]
        return url, "\n".join(lines)

    async def segment(self, base: str, segment: Segment) -> int:
        size = int(int(base) * self.duration / 8)
        rate = self.rates[min(self.fetched, len(self.rates) - 1)]
        self.fetched += 1
        self.now += size * 8 / rate
        return size


async def test_player_climbs_on_a_fast_link_and_falls_back_with_stalls_on_a_slow_one() -> None:
    link = ScriptedLink([2_000_000] * 10 + [150_000] * 10)
    figures = await AdaptivePlayer(link, clock=link.clock).play(60.0)
    assert figures.startup_seconds == pytest.approx(0.2 + 200_000 * 2 / 2_000_000)
    assert figures.switches >= 2  # up, then down
    assert figures.stall_seconds > 0
    assert figures.avg_bitrate_bps > RUNGS[0]
