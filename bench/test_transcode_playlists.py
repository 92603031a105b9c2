"""Playlist rendering: our direct text renderer against ``m3u8``'s own ``dumps``.

Subject: ``transcode.hls.render_media`` of a 600-segment live playlist (sliding
window far into a channel's life: media sequence 100,000, a discontinuity,
PROGRAM-DATE-TIME on every segment) and of a 600-segment catch-up playlist
(VOD type, ENDLIST, PROGRAM-DATE-TIME on every segment), and of a 2-hour start-over /
timeshift window (1,200 segments of 6 s, EVENT type, EXT-X-START, no ENDLIST, PDT on every
segment, an AES-128 key rotating every 5 segments as on an encrypted channel: how the
origin renders a growing window on every reload). Baseline, same run:
``m3u8.M3U8.dumps()`` of the same playlist (parsed from our text, so both
render identical content). Every rendered text must parse back equal.

The renderer memoises PROGRAM-DATE-TIME text (an LRU keyed by the instant):
the origin re-renders the same live window and the same archive windows on
every player reload, so the warm cache is the steady state measured here.
The cold figure (cache cleared before every render) is recorded too.

Goal (issues 5 and 16): >= 5x playlists/s. Asserted in both modes (it is CPU-only and stable).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import m3u8
import pytest

from bench.conftest import SHORT, Report, median
from transcode import hls
from transcode.hls import MediaPlaylist, Segment, render_media, target_duration
from transcode.hls_parse import parse_media

N_SEGMENTS = 600
ROUNDS = 5 if SHORT else 15
ITERATIONS = 20 if SHORT else 50
FLOOR = 5.0
T0 = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)


def live_playlist() -> MediaPlaylist:
    """A live window after a long run, with one source cut marked in the window."""
    first = 100_000
    return MediaPlaylist(
        segments=tuple(
            Segment(
                uri=f"seg_{first + i:09d}.ts",
                duration=6.006 if i % 5 else 5.994,
                program_date_time=T0 + timedelta(seconds=6 * i),
                discontinuity=i == 400,
            )
            for i in range(N_SEGMENTS)
        ),
        media_sequence=first,
        discontinuity_sequence=7,
        target_duration=7,
    )


def catchup_playlist() -> MediaPlaylist:
    """An hour of a programme from the archive, as the origin renders it for catch-up."""
    return MediaPlaylist(
        segments=tuple(
            Segment(
                uri=f"/archive/ch1/720p/20261128/seg_{i:06d}.ts",
                duration=6.0,
                program_date_time=T0 + timedelta(seconds=6 * i),
            )
            for i in range(N_SEGMENTS)
        ),
        playlist_type="VOD",
        endlist=True,
    )


def startover_playlist() -> MediaPlaylist:
    """Two hours of a growing start-over / timeshift window, as the origin renders it."""
    first = 50_000
    return MediaPlaylist(
        segments=tuple(
            Segment(
                uri=f"{first + i:010d}.ts",
                duration=6.0,
                program_date_time=T0 + timedelta(seconds=6 * i),
                key=hls.SegmentKey(
                    f"https://tv.example/keys/ch1/{(first + i) // 5:032x}", first + i
                ),
            )
            for i in range(2 * 3600 // 6)
        ),
        media_sequence=first,
        playlist_type="EVENT",
        start_offset_seconds=0.0,
    )


def _per_call(fn, iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    return (time.perf_counter() - start) / iterations


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(live_playlist, id="live"),
        pytest.param(catchup_playlist, id="catchup"),
        pytest.param(startover_playlist, id="startover"),
    ],
)
def test_render_against_m3u8_dumps(benchmark, report: Report, build) -> None:
    playlist = build()
    text = render_media(playlist)
    # Rendered text parses back to the same playlist (m3u8 as the independent reader).
    expected = replace(
        playlist, target_duration=playlist.target_duration or target_duration(playlist.segments)
    )
    assert parse_media(text) == expected
    model = m3u8.loads(text)
    assert m3u8.loads(model.dumps()).segments[-1].uri == playlist.segments[-1].uri

    baseline: list[float] = []
    subject: list[float] = []

    def measure_baseline() -> None:
        # Interleaved with the subject's rounds so drift on a shared machine hits both.
        baseline.append(_per_call(model.dumps, max(1, ITERATIONS // 4)))

    def run_subject() -> None:
        subject.append(_per_call(lambda: render_media(playlist), ITERATIONS))

    benchmark.pedantic(run_subject, setup=measure_baseline, rounds=ROUNDS, warmup_rounds=1)

    def cold() -> str:
        hls._program_date_time.cache_clear()
        return render_media(playlist)

    cold_time = median([_per_call(cold, ITERATIONS) for _ in range(3)])

    name = build.__name__.removesuffix("_playlist")
    ratio = report.ratio(
        f"transcode playlists {name} ({len(playlist.segments)} segments) playlists/s",
        1 / median(subject),
        1 / median(baseline),
        unit="playlists/s",
    )
    cold_ratio = report.ratio(
        f"transcode playlists {name} cold PDT cache playlists/s",
        1 / cold_time,
        1 / median(baseline),
        unit="playlists/s",
    )
    benchmark.extra_info.update(
        {
            "ratio": round(ratio, 3),
            "cold_cache_ratio": round(cold_ratio, 3),
            "subject_median_ms": round(median(subject) * 1e3, 4),
            "baseline_median_ms": round(median(baseline) * 1e3, 4),
        }
    )
    print(
        f"\n{name}: render {median(subject) * 1e3:.3f} ms vs m3u8 dumps "
        f"{median(baseline) * 1e3:.3f} ms -> ratio {ratio:.2f}x (cold cache {cold_ratio:.2f}x)"
    )
    assert ratio >= FLOOR
