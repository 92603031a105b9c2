"""VOD packaging with real FFmpeg: layout, progress, replacement, failures, cancel, remux."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import m3u8
import pytest

from tests.support.media import Media, Packaged, tiny_profile
from transcode.errors import (
    CorruptSource,
    DiskFull,
    SourceNotFound,
    TranscodeError,
    UnsupportedSource,
)
from transcode.hls_parse import parse_master
from transcode.ladder import ProcessMode
from transcode.package import package_vod, publish_tree, remux_vod
from transcode.progress import Progress


def _tree(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _leftovers(parent: Path) -> list[str]:
    if not parent.exists():
        return []
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def _ffmpeg_children() -> set[int]:
    """FFmpeg processes whose parent is this test process (none should outlive a job).

    Tests compare against a snapshot taken first: fixtures of other tests in the same
    worker (live channels) may keep their own FFmpeg running.
    """
    me = os.getpid()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == me and name == "ffmpeg":
            found.add(int(entry.name))
    return found


async def test_package_publishes_the_layout_and_reports_progress(
    media: Media, tmp_path: Path
) -> None:
    dest = tmp_path / "vod" / "asset1"
    seen: list[Progress] = []

    result = await package_vod(str(media.clip), dest, tiny_profile(), on_progress=seen.append)

    assert sorted(_tree(dest)) == sorted(
        ["master.m3u8"]
        + [f"{rung}/{name}" for rung in ("90p", "180p") for name in ("index.m3u8", "iframes.m3u8")]
        + [f"{rung}/seg_{i:05d}.ts" for rung in ("90p", "180p") for i in range(3)]
    )
    assert parse_master((dest / "master.m3u8").read_text()) == result.master
    assert [r.name for r in result.rungs] == ["90p", "180p"]
    assert [r.variant.resolution for r in result.rungs] == [(160, 90), (320, 180)]
    # The 90p rung is below low_rung_below_height (120): 30 fps source halved to 15.
    assert [r.variant.frame_rate for r in result.rungs] == [15.0, 30.0]
    assert result.duration_seconds == pytest.approx(5.0, abs=0.1)
    phases = [p.phase for p in seen]
    assert phases[0] == "probe"
    assert phases[-1] == "done"
    assert {"encode", "measure", "publish"} <= set(phases)
    percents = [p.percent for p in seen]
    assert percents == sorted(percents)
    assert percents[-1] == 100.0
    assert any(p.speed > 0 and p.eta_seconds is not None for p in seen if p.phase == "encode")
    assert _leftovers(dest.parent) == []


async def test_per_rung_mode_gives_the_same_ladder(media: Media, tmp_path: Path) -> None:
    single = await package_vod(str(media.clip), tmp_path / "a", tiny_profile())

    split = await package_vod(
        str(media.clip), tmp_path / "b", tiny_profile(), process_mode=ProcessMode.PER_RUNG
    )

    assert [(r.name, r.segment_count, r.variant.resolution) for r in split.rungs] == [
        (r.name, r.segment_count, r.variant.resolution) for r in single.rungs
    ]
    assert [r.variant.codecs for r in split.rungs] == [r.variant.codecs for r in single.rungs]


async def test_rerun_replaces_the_earlier_output_cleanly(media: Media, tmp_path: Path) -> None:
    dest = tmp_path / "vod" / "asset1"
    await package_vod(str(media.clip), dest, tiny_profile())
    (dest / "stale.txt").write_text("from an earlier run")

    one_rung = tiny_profile(rungs=tiny_profile().rungs[1:])
    await package_vod(str(media.clip), dest, one_rung)

    files = _tree(dest)
    assert "stale.txt" not in files
    assert not any(name.startswith("90p/") for name in files)
    assert [v.uri for v in parse_master(files["master.m3u8"].decode()).variants] == [
        "180p/index.m3u8"
    ]
    assert _leftovers(dest.parent) == []


def test_publish_swaps_atomically_over_an_existing_tree(tmp_path: Path) -> None:
    dest = tmp_path / "asset"
    dest.mkdir()
    (dest / "old").write_text("old")
    staged = tmp_path / ".asset.tmp-1"
    staged.mkdir()
    (staged / "new").write_text("new")

    publish_tree(staged, dest)

    assert _tree(dest) == {"new": b"new"}
    assert not staged.exists()


@pytest.mark.parametrize(
    ("source_name", "error", "words"),
    [
        pytest.param("missing", SourceNotFound, "does not exist", id="missing"),
        pytest.param("corrupt", CorruptSource, "cannot be read", id="corrupt"),
        pytest.param("truncated", CorruptSource, "truncated", id="truncated"),
        pytest.param("png_video", UnsupportedSource, "png", id="unsupported-codec"),
        pytest.param("no_audio", UnsupportedSource, "no audio", id="no-audio"),
        pytest.param("audio_only", UnsupportedSource, "no video", id="no-video"),
    ],
)
async def test_bad_sources_fail_with_a_reason_and_publish_nothing(
    media: Media, tmp_path: Path, source_name: str, error: type[TranscodeError], words: str
) -> None:
    source = tmp_path / "nope.mp4" if source_name == "missing" else getattr(media, source_name)
    dest = tmp_path / "vod" / "asset1"
    dest.mkdir(parents=True)
    (dest / "master.m3u8").write_text("#EXTM3U\n# the earlier, still served output\n")
    before = _tree(dest)

    with pytest.raises(error) as caught:
        await package_vod(str(source), dest, tiny_profile())

    assert words in str(caught.value)
    assert _tree(dest) == before
    assert _leftovers(dest.parent) == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: a real ENOSPC (needs root, as in the CI container)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_full_disk_fails_with_disk_full_and_publishes_nothing(
    media: Media, small_disk: Path
) -> None:
    dest = small_disk / "vod" / "asset1"

    with pytest.raises(DiskFull) as caught:
        await package_vod(str(media.long_clip), dest, tiny_profile(preset="ultrafast"))

    assert "ENOSPC" in str(caught.value) or "no space" in str(caught.value)
    assert not dest.exists()
    assert _leftovers(dest.parent) == []


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param(ProcessMode.SINGLE, id="single"),
        pytest.param(ProcessMode.PER_RUNG, id="per-rung"),
    ],
)
async def test_cancel_kills_ffmpeg_and_removes_the_temp_output(
    media: Media, tmp_path: Path, mode: ProcessMode
) -> None:
    dest = tmp_path / "vod" / "asset1"
    encoding = asyncio.Event()
    before = _ffmpeg_children()

    def on_progress(progress: Progress) -> None:
        if progress.phase == "encode":
            encoding.set()

    task = asyncio.create_task(
        package_vod(
            str(media.endless), dest, tiny_profile(), on_progress=on_progress, process_mode=mode
        )
    )
    await encoding.wait()
    assert _ffmpeg_children() - before
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert _ffmpeg_children() <= before
    assert not dest.exists()
    assert _leftovers(dest.parent) == []


async def test_remux_copies_h264_aac_with_our_playlists(
    packaged_remux: Packaged, media: Media
) -> None:
    result = packaged_remux.result
    (rung,) = result.rungs

    assert rung.name == "src"
    assert rung.variant.resolution == (320, 180)
    assert rung.variant.frame_rate == 30.0
    assert rung.variant.codecs.endswith(",mp4a.40.2")
    assert rung.segment_count == 3  # 6 + 6 + 1 s
    master = m3u8.loads((result.dest / "master.m3u8").read_text())
    assert [p.uri for p in master.iframe_playlists] == ["src/iframes.m3u8"]


async def test_remux_refuses_codecs_it_cannot_copy(media: Media, tmp_path: Path) -> None:
    dest = tmp_path / "vod" / "asset1"

    with pytest.raises(UnsupportedSource) as caught:
        await remux_vod(str(media.mpeg2), dest)

    assert "mpeg2video" in str(caught.value)
    assert not dest.exists()
    assert _leftovers(dest.parent) == []


@pytest.mark.parametrize(
    ("source_name", "error", "words"),
    [
        pytest.param("missing", SourceNotFound, "does not exist", id="missing"),
        pytest.param("corrupt", CorruptSource, "corrupt", id="corrupt"),
        pytest.param("no_audio", UnsupportedSource, "no audio", id="no-audio"),
        pytest.param("audio_only", UnsupportedSource, "no video", id="no-video"),
    ],
)
async def test_remux_bad_sources_fail_with_a_reason_and_publish_nothing(
    media: Media, tmp_path: Path, source_name: str, error: type[TranscodeError], words: str
) -> None:
    source = tmp_path / "nope.mp4" if source_name == "missing" else getattr(media, source_name)
    dest = tmp_path / "vod" / "asset1"
    before = _ffmpeg_children()

    with pytest.raises(error) as caught:
        await remux_vod(str(source), dest)

    assert words in str(caught.value)
    assert not dest.exists()
    assert _leftovers(dest.parent) == []
    assert _ffmpeg_children() <= before


async def test_remux_reports_progress_from_ffmpeg(media: Media, tmp_path: Path) -> None:
    seen: list[Progress] = []

    result = await remux_vod(str(media.endless), tmp_path / "a", on_progress=seen.append)

    assert result.duration_seconds == pytest.approx(600, abs=1)
    assert [p.phase for p in seen][-3:] == ["measure", "publish", "done"]
    assert any(p.phase == "remux" for p in seen)


async def test_work_dir_elsewhere_still_publishes_by_rename(media: Media, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    dest = tmp_path / "origin" / "vod" / "asset1"

    result = await package_vod(str(media.clip), dest, tiny_profile(), work_dir=scratch)

    assert (dest / "master.m3u8").read_text().startswith("#EXTM3U")
    assert [r.segment_count for r in result.rungs] == [3, 3]
    assert list(scratch.iterdir()) == []
    assert _leftovers(dest.parent) == []
