"""Live CMAF remux of one published TS segment against FFmpeg remuxing the same segment.

Subject: what a CMAF channel's node does per segment and rung (``transcode.live.cmaf.remux``
then the media segment's bytes): the TS read and demuxed (PAT/PMT/PES), H.264 access units
to length-prefixed samples, ADTS to raw AAC, a fragment per keyframe, init + media segment
written out (to memory). Baseline, same run, rounds interleaved: ``ffmpeg -c copy`` of the
same file to fragmented MP4 (``frag_keyframe+empty_moov``), the per-segment FFmpeg run the
design rejected (it also restarts ``tfdt`` at 0). The ratio is segments/s, ours over
FFmpeg's (medians); the real-time factor (media seconds remuxed per second) is reported
too, against the segment's own duration: it bounds how many rungs and channels a core
keeps up with.

``BENCH_SHORT=1``: a 2 s segment, 5 rounds; full: a 6 s segment of a 720p 5 Mb/s rung, 11
rounds. Floor in both modes: ours at least as fast as FFmpeg's (ratio >= 1.0) and at least
20 times real time. Measured here (2 shared cores): short 6.2 (38 ms per 2 s segment, 52x
real time), full 4.0 (61 ms per 6 s segment, 98x real time).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from bench.conftest import SHORT, Report, median
from bench.media import live_segment
from transcode.fmp4.writer import media_segment
from transcode.live.cmaf import Picture, remux

SECONDS = 2 if SHORT else 6
ROUNDS = 5 if SHORT else 11
ITERATIONS = 3
FLOOR = 1.0
REALTIME_FLOOR = 20.0


@pytest.fixture(scope="module")
def segment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A live rung's segment: 1280x720 25 fps H.264 at about 5 Mb/s (noisy), 1 s GOPs, AAC."""
    return live_segment(tmp_path_factory.mktemp("live-cmaf") / "segment.ts", SECONDS)


def _per_call(run: object, iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        run()  # type: ignore[operator]
    return (time.perf_counter() - start) / iterations


def test_live_remux_against_ffmpeg(
    benchmark: pytest.FixtureFixture,  # type: ignore[name-defined]
    report: Report,
    segment: Path,
    tmp_path: Path,
) -> None:
    pictures = {"720p": Picture(1280, 720)}

    def ours() -> int:
        tracks = remux({"720p": segment}, pictures, start_seconds=1e9, duration=SECONDS)
        assert set(tracks) == {"720p", "audio"}
        return sum(len(t.init) + len(media_segment(1, 0, t.fragments)) for t in tracks.values())

    def theirs() -> None:
        subprocess.run(
            ["ffmpeg", "-y", "-hide_banner", "-nostdin", "-loglevel", "error", "-i",
             str(segment), "-c", "copy", "-bsf:a", "aac_adtstoasc", "-f", "mp4", "-movflags",
             "frag_keyframe+empty_moov+default_base_moof", str(tmp_path / "out.mp4")],
            check=True,
        )  # fmt: skip

    assert ours() > 0.9 * segment.stat().st_size  # every sample's bytes are there

    baseline: list[float] = []
    subject: list[float] = []

    def measure_baseline() -> None:
        baseline.append(_per_call(theirs, ITERATIONS))

    def run_subject() -> None:
        subject.append(_per_call(ours, ITERATIONS))

    benchmark.pedantic(run_subject, setup=measure_baseline, rounds=ROUNDS, warmup_rounds=1)
    ratio = report.ratio(
        f"live CMAF remux ({SECONDS} s 720p segment) vs ffmpeg -c copy to fMP4, segments/s",
        1 / median(subject),
        1 / median(baseline),
        unit="segments/s",
    )
    realtime = SECONDS / median(subject)
    report.line(
        f"live CMAF remux: {median(subject) * 1e3:.1f} ms per segment, {realtime:.0f}x real time"
    )
    benchmark.extra_info.update({"ratio": round(ratio, 3), "realtime": round(realtime, 1)})
    assert ratio >= FLOOR
    assert realtime >= REALTIME_FLOOR
