"""MPD generation against rendering the same live window's HLS playlists, same run.

Subject: ``transcode.dash.live_mpd`` of a 2-hour live window of 2 s CMAF segments (3,600
per track), 5 video rungs and 1 audio rendition, three discontinuities (so four Periods),
every segment dated, durations that wander as a live segmenter's do (1.96 / 2.04 s
every so often, so the SegmentTimeline is not one ``S@r``). Baseline, same run, same
window: what the origin renders for HLS on each reload of it: ``render_media`` of the 6
media playlists plus ``render_master`` (the PROGRAM-DATE-TIME cache warm, its steady
state). The ratio is MPDs/s over HLS window renders/s (medians of interleaved rounds).

The MPD is checked before timing: it reads back with ``parse_mpd`` and lists as many
segments per track as the HLS playlists.

Measured here (2 shared cores): full 0.89 (161 ms per MPD against 143 ms for the six
playlists and the master), short 0.77. ``BENCH_SHORT=1``: a 20-minute window and fewer
rounds. The floor is loose, 0.4 (an MPD at most 2.5 times the cost of the HLS renders), in
both modes: it catches a regression to per-segment Python work, not noise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bench.conftest import SHORT, Report, median
from transcode import hls
from transcode.dash import TrackTiming, live_mpd
from transcode.dash.parse import parse_mpd

WINDOW_SECONDS = 1200 if SHORT else 7200
SEGMENT_SECONDS = 2.0
RUNGS = ("1080p", "720p", "540p", "360p", "240p")
AUDIO = "audio-zh"
CUTS = (0.2, 0.5, 0.8)  # discontinuities, as fractions of the window
ROUNDS = 5 if SHORT else 11
ITERATIONS = 2 if SHORT else 3
FLOOR = 0.4
T0 = datetime(2026, 11, 29, 18, 0, tzinfo=UTC)
FIRST = 400_000


def _window() -> tuple[hls.MasterPlaylist, dict[str, hls.MediaPlaylist], dict[str, TrackTiming]]:
    n = int(WINDOW_SECONDS / SEGMENT_SECONDS)
    cuts = {int(n * c) for c in CUTS}
    segments: dict[str, list[hls.Segment]] = {name: [] for name in (*RUNGS, AUDIO)}
    elapsed = 0.0
    epoch = 0
    for i in range(n):
        seq = FIRST + i
        duration = 2.04 if i % 7 == 3 else 1.96 if i % 7 == 4 else SEGMENT_SECONDS
        epoch += i in cuts
        when = T0 + timedelta(seconds=elapsed + 0.4 * epoch)
        for out in segments.values():
            out.append(
                hls.Segment(
                    uri=f"{seq:010d}.m4s",
                    duration=duration,
                    program_date_time=when,
                    discontinuity=i in cuts,
                    map=hls.SegmentMap(f"init_{epoch}.mp4"),
                )
            )
        elapsed += duration
    playlists = {
        f"{name}/index.m3u8": hls.MediaPlaylist(
            segments=tuple(out), media_sequence=FIRST, discontinuity_sequence=40, target_duration=3
        )
        for name, out in segments.items()
    }
    variants = [
        hls.Variant(
            f"{name}/index.m3u8",
            5_000_000 >> i,
            4_000_000 >> i,
            "avc1.64001f,mp4a.40.2",
            (1920 >> i, 1080 >> i),
            25.0,
            audio="audio",
        )
        for i, name in enumerate(RUNGS)
    ]
    audio = hls.Rendition("AUDIO", "audio", "普通话", f"{AUDIO}/index.m3u8", "zh", True, True, 2)
    timings = {f"{name}/index.m3u8": TrackTiming(90000, 7_200_000) for name in RUNGS}
    timings[f"{AUDIO}/index.m3u8"] = TrackTiming(48000, 3_840_000, bandwidth=128_000)
    return hls.MasterPlaylist(variants, renditions=[audio]), playlists, timings


def _per_call(fn: Callable[[], object], iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    return (time.perf_counter() - start) / iterations


def test_live_mpd_against_hls_renders(benchmark: pytest.FixtureFixture, report: Report) -> None:  # type: ignore[name-defined]
    master, playlists, timings = _window()
    now = T0 + timedelta(seconds=WINDOW_SECONDS + 10)

    def mpd() -> str:
        return live_mpd(
            master,
            playlists,
            timings,
            availability_start=T0 - timedelta(days=1),
            publish_time=now,
            time_shift_buffer_depth=WINDOW_SECONDS,
            minimum_update_period=SEGMENT_SECONDS,
            suggested_presentation_delay=6.0,
        )

    def hls_views() -> None:
        for p in playlists.values():
            hls.render_media(p)
        hls.render_master(master)

    parsed = parse_mpd(mpd())
    assert len(parsed.periods) == len(CUTS) + 1
    n = len(next(iter(playlists.values())).segments)
    for aset in parsed.periods[0].adaptation_sets:
        listed = 0
        for period in parsed.periods:
            tpl = next(a for a in period.adaptation_sets if a.id == aset.id).segment_template
            assert tpl is not None
            listed += sum(s.r + 1 for s in tpl.timeline)
        assert listed == n
    hls_views()  # warms the PROGRAM-DATE-TIME cache, as the origin's steady state is

    baseline: list[float] = []
    subject: list[float] = []

    def measure_baseline() -> None:
        baseline.append(_per_call(hls_views, ITERATIONS))

    def run_subject() -> None:
        subject.append(_per_call(mpd, ITERATIONS))

    benchmark.pedantic(run_subject, setup=measure_baseline, rounds=ROUNDS, warmup_rounds=1)
    ratio = report.ratio(
        f"dash live MPD ({WINDOW_SECONDS // 60} min window, {len(RUNGS)}+1 tracks) vs HLS "
        "renders (6 media + master) windows/s",
        1 / median(subject),
        1 / median(baseline),
        unit="windows/s",
    )
    size = len(mpd())
    report.line(f"dash live MPD size: {size:,} bytes ({size / n:.1f} bytes per segment time)")
    benchmark.extra_info.update(
        {
            "ratio": round(ratio, 3),
            "subject_median_ms": round(median(subject) * 1e3, 3),
            "baseline_median_ms": round(median(baseline) * 1e3, 3),
            "mpd_bytes": size,
        }
    )
    print(
        f"\nlive MPD {median(subject) * 1e3:.2f} ms vs HLS renders "
        f"{median(baseline) * 1e3:.2f} ms -> ratio {ratio:.2f}x"
    )
    assert ratio >= FLOOR
