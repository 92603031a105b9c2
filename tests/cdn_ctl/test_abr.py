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
    StartupPhases,
    qoe,
)
from cdn_ctl.sim.sources import Fetched, Variant, parse_master
from cdn_ctl.sim.stb import Segment

RUNGS = (200_000, 400_000, 800_000)


def _controller(rate_bps: float) -> AbrController:
    abr = AbrController(AbrPolicy(), RUNGS)
    for _ in range(10):
        abr.sample(int(rate_bps / 8), 1.0)
    return abr


def test_the_rate_is_timed_from_the_first_byte_not_the_request() -> None:
    # 24 kB over a 50 Mb/s link (4 ms), after 600 ms of queueing before the first byte:
    # from the request that is 320 kb/s; from the first byte the link's own rate (floored
    # at 50 ms of download time, hls.js's minDelayMs).
    abr = AbrController(AbrPolicy(default_ttfb_seconds=1.0), RUNGS)
    abr.sample(24_000, 0.604, 0.6)
    assert abr.estimate_bps() == pytest.approx(24_000 * 8 / 0.05)
    unknown = AbrController(AbrPolicy(), RUNGS)
    unknown.sample(24_000, 0.604)  # no first byte known: the whole time counts
    assert unknown.estimate_bps() == pytest.approx(24_000 * 8 / 0.604)


def test_only_up_to_the_ttfb_estimate_is_taken_off() -> None:
    # After answers starting in 100 ms, one that took 2 s to start is not taken off whole
    # (a link that stalled mid-answer is no faster for it): only the TTFB estimate is.
    abr = AbrController(AbrPolicy(), RUNGS)
    abr.sample(1000, 0.2, 0.1)  # 0.1 s of download time (the floor is 0.05 s)
    abr.sample(100_000, 3.0, 2.0)
    ttfb = abr.ttfb_estimate()
    assert 0.1 < ttfb < 0.5  # the 2 s answer weighs sqrt(2) * exp(-2): little
    assert abr.fast.weight == pytest.approx(0.1 + 3.0 - ttfb)  # weights: download seconds


def test_the_ttfb_estimate_weights_slow_answers_less() -> None:
    abr = AbrController(AbrPolicy(), RUNGS)
    assert abr.ttfb_estimate() == pytest.approx(0.1)  # hls.js's default
    abr.sample(1000, 0.2, 0.1)
    abr.sample(1000, 3.1, 3.0)  # weight sqrt(2) * exp(-4.5): about 1/90 of the first's
    assert abr.ttfb_estimate() < 0.2


@pytest.mark.parametrize(
    ("seconds", "ttfb"),
    [
        pytest.param(-1.0, None, id="negative-time"),
        pytest.param(1.0, -0.1, id="negative-ttfb"),
        pytest.param(1.0, 2.0, id="ttfb-after-the-last-byte"),
        pytest.param(math.nan, None, id="nan-time"),
    ],
)
def test_a_bad_sample_is_refused_and_changes_nothing(seconds: float, ttfb: float | None) -> None:
    abr = AbrController(AbrPolicy(), RUNGS)
    with pytest.raises(ValueError, match="a sample needs"):
        abr.sample(1000, seconds, ttfb)
    assert abr.estimate_bps() == AbrPolicy().default_estimate_bps
    assert abr.ttfb.weight == 0


def test_switching_up_counts_the_ttfb_in_the_fetch_time() -> None:
    # 10 Mb/s from the first byte; 800k x 2 s then takes 0.16 s, plus the expected TTFB.
    # With 0.1 s of TTFB, 1.3 s of buffer holds 1 s after the fetch; with 0.5 s it would not.
    fast = _controller(10e6)
    assert fast.choose(1, 1.3, 2.0) == 2
    slow = AbrController(AbrPolicy(default_ttfb_seconds=0.5), RUNGS)
    for _ in range(10):
        slow.sample(int(10e6 / 8), 1.0)
    assert slow.choose(1, 1.3, 2.0) == 1
    assert slow.choose(1, 1.7, 2.0) == 2


def test_no_switch_up_to_a_rung_whose_fetch_outlasts_its_segment() -> None:
    # 320 kb/s from the first byte covers 200k x 1/0.7 (a satellite link), but a 2 s
    # segment of 200k takes 1.25 s plus a 0.9 s first byte: longer than it plays.
    abr = AbrController(AbrPolicy(), (100_000, 200_000))
    for _ in range(10):
        abr.sample(24_000, 1.5, 0.9)
    assert abr.estimate_bps() == pytest.approx(320_000)
    assert abr.choose(0, 6.0, 2.0) == 0
    # The same rate with a 0.3 s first byte keeps up (0.3 + 1.25 s per 2 s segment).
    near = AbrController(AbrPolicy(), (100_000, 200_000))
    for _ in range(10):
        near.sample(24_000, 0.9, 0.3)
    assert near.choose(0, 6.0, 2.0) == 1


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
        # ... and the 100 ms TTFB estimate before any first byte was timed.
        pytest.param(10e6, 1, 1.2, 1, id="no-up-when-the-fetch-would-starve-the-buffer"),
        pytest.param(10e6, 1, 1.3, 2, id="up-when-the-buffer-outlasts-the-fetch"),
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

    def __init__(
        self, rates: Sequence[float], segment_seconds: float = 2.0, ttfb_seconds: float = 0.0
    ) -> None:
        self.now = 0.0
        self.rates = rates
        self.fetched = 0
        self.duration = segment_seconds
        self.ttfb = ttfb_seconds

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

    async def segment(self, base: str, segment: Segment) -> Fetched:
        size = int(int(base) * self.duration / 8)
        rate = self.rates[min(self.fetched, len(self.rates) - 1)]
        self.fetched += 1
        self.now += self.ttfb
        head = self.now
        self.now += size * 8 / rate
        return Fetched(size, head)


async def test_player_climbs_on_a_fast_link_and_falls_back_with_stalls_on_a_slow_one() -> None:
    link = ScriptedLink([2_000_000] * 10 + [150_000] * 10)
    figures = await AdaptivePlayer(link, clock=link.clock).play(60.0)
    assert figures.startup_seconds == pytest.approx(0.2 + 200_000 * 2 / 2_000_000)
    assert figures.switches >= 2  # up, then down
    assert figures.stall_seconds > 0
    assert figures.avg_bitrate_bps > RUNGS[0]


async def test_startup_splits_into_its_phases() -> None:
    link = ScriptedLink([2_000_000], ttfb_seconds=0.3)
    figures = await AdaptivePlayer(link, clock=link.clock).play(10.0)
    transfer = 200_000 * 2 / 2_000_000
    phases = figures.phases
    assert isinstance(phases, StartupPhases)
    assert (phases.master, phases.playlist) == (pytest.approx(0.1), pytest.approx(0.1))
    assert phases.waiting == 0.0
    assert (phases.first_byte, phases.transfer) == (pytest.approx(0.3), pytest.approx(transfer))
    assert phases.total() == pytest.approx(figures.startup_seconds)


async def test_fast_link_behind_a_slow_first_byte_still_climbs() -> None:
    # Every answer starts 1 s late (a loaded server), then comes at 50 Mb/s: timed from the
    # request, the bottom rung's 50 kB look like 397 kb/s, and 0.7 x that does not cover
    # the 400k rung; timed from the first byte, the player climbs to the top.
    link = ScriptedLink([50e6], ttfb_seconds=1.0)
    figures = await AdaptivePlayer(link, clock=link.clock).play(60.0)
    assert figures.switches >= 2
    assert figures.avg_bitrate_bps > RUNGS[1]


async def test_a_source_without_first_byte_times_counts_the_whole_fetch() -> None:
    class NoHeads(ScriptedLink):
        """The scripted link, its first bytes unknown (a session without the trace)."""

        async def segment(self, base: str, segment: Segment) -> Fetched:
            return Fetched((await super().segment(base, segment)).size_bytes)

    link = NoHeads([50e6], ttfb_seconds=1.0)
    figures = await AdaptivePlayer(link, clock=link.clock).play(60.0)
    assert figures.switches == 0  # the old estimate: latency-bound, stuck at the bottom
    assert figures.phases is not None
    assert figures.phases.first_byte == 0.0  # not known: all of it counts as transfer
