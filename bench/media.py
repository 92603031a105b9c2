"""Media the packaging benchmarks share: long H.264/AAC mezzanines made quickly, and a
scratch directory in memory where the machine has one."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.conftest import SHORT

CLIP_SECONDS = 6 if SHORT else 10


def ffmpeg(*args: str) -> None:
    """Run FFmpeg quietly; a failure raises."""
    subprocess.run(
        ["ffmpeg", "-y", "-hide_banner", "-nostdin", "-loglevel", "error", *args], check=True
    )


def looped_mezzanine(root: Path, size: str, seconds: int) -> Path:
    """A long H.264/AAC mezzanine at 5 Mbit/s CBR (2 s GOPs), made by encoding a short clip
    once and looping it with a stream copy."""
    clip = root / f"clip_{size}.mp4"
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=s={size}:r=30"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
        *("-t", str(CLIP_SECONDS), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast"),
        *("-b:v", "5M", "-maxrate", "5M", "-bufsize", "5M", "-x264-params", "nal-hrd=cbr"),
        *("-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-c:a", "aac", "-b:a", "128k"),
        str(clip),
    )
    mezz = root / f"mezz_{size}_{seconds}s.mp4"
    loops = seconds // CLIP_SECONDS
    ffmpeg("-stream_loop", str(loops), "-i", str(clip), "-c", "copy", "-t", str(seconds), str(mezz))
    return mezz


def live_segment(path: Path, seconds: int) -> Path:
    """A live rung's MPEG-TS segment: 1280x720 25 fps H.264 at about 5 Mb/s (noisy), 1 s
    GOPs, AAC, as a live node publishes one."""
    ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=s=1280x720:r=25,noise=alls=20:allf=t"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
        *("-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "5M"),
        *("-g", "25", "-c:a", "aac", "-b:a", "128k", "-f", "mpegts", str(path)),
    )
    return path


@contextmanager
def scratch(name: str, fallback: Path) -> Iterator[Path]:
    """A directory in /dev/shm (disk speed out of the measurement), else ``fallback``."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield fallback
        return
    root = shm / f"{name}-{os.getpid()}"
    root.mkdir(exist_ok=True)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
