"""The multicast output process on a real network stack: a namespace of the test's own,
multicast on its loopback, real FFmpeg segments published progressively into a live
window (switching to the slate and back), and FFmpeg plus a recording socket receiving
the group. The last test runs a real node: its supervisor starts the process in the namespace."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.support.live import FAST, Feed, live_channel, live_rig
from tests.support.mpegts import (
    LiveWindowWriter,
    analyze,
    hls_segments,
    strip_rtp,
    whole_pes_only,
)
from tests.support.netns import in_netns, needs_netns, netns, read_capture, receiver
from transcode.domain import Multicast, MulticastProtocol
from transcode.live import Phase
from transcode.live.multicast.follow import derived_mux_rate
from transcode.live.multicast.process import MulticastExited, MulticastProcess
from transcode.settings import MulticastSettings

pytestmark = needs_netns

REPO = Path(__file__).resolve().parents[2]
SEGMENT_SECONDS = 2.0


@dataclass(frozen=True)
class Feeds:
    clip: list[Path]  # 12 s, 30 fps
    slate: list[Path]  # 6 s, 25 fps, timestamps 5000 s on


@pytest.fixture(scope="module")
def feeds(tmp_path_factory: pytest.TempPathFactory) -> Feeds:
    root = tmp_path_factory.mktemp("mcnet")
    return Feeds(
        clip=hls_segments(root, "clip", 12, source="testsrc2", rate=30),
        slate=hls_segments(root, "slate", 6, source="smptebars", rate=25, ts_offset=5000),
    )


@pytest.fixture
def ns() -> Iterator[str]:
    with netns() as name:
        yield name


def _group() -> str:
    return (
        f"239.{secrets.randbelow(200) + 10}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
    )


def _sender(ns: str, channel_dir: Path, group: str, port: int, protocol: str,
            env: dict[str, str]) -> subprocess.Popen[bytes]:  # fmt: skip
    return subprocess.Popen(
        in_netns(
            ns,
            [
                sys.executable,
                "-m",
                "transcode.live.multicast",
                "--channel-dir",
                str(channel_dir),
                "--group",
                group,
                "--port",
                str(port),
                "--protocol",
                protocol,
            ],
        ),
        cwd=REPO,
        env={**os.environ, **env},
        stderr=subprocess.PIPE,
    )


def _publish(
    writer: LiveWindowWriter, plan: list[tuple[Path, bool]], stop: threading.Event
) -> None:
    """Publish one segment every 2 s (a live node's pace)."""
    for path, disc in plan:
        if stop.wait(SEGMENT_SECONDS):
            return
        writer.publish(path, discontinuity=disc)


def _decode(path: Path) -> tuple[int, bytes]:
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-fps_mode", "passthrough",
         "-f", "framemd5", "-"],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    frames = sum(1 for line in done.stdout.splitlines() if not line.startswith(b"#"))
    return frames, done.stderr


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("protocol", "seconds"),
    [pytest.param("rtp", 20.0, id="rtp-20s"), pytest.param("udp", 8.0, id="udp-8s")],
)
def test_a_live_window_is_received_by_ffmpeg_across_switches(
    feeds: Feeds, ns: str, tmp_path: Path, protocol: str, seconds: float
) -> None:
    clip, slate = feeds.clip, feeds.slate
    writer = LiveWindowWriter(tmp_path / "news")
    writer.publish(clip[0])
    writer.publish(clip[1])
    # clip, the slate (a switch), the clip again (its timestamps go back: another switch)
    plan = [(p, False) for p in clip[2:4]] + [(slate[0], True), *[(p, False) for p in slate[1:]]]
    plan += [(clip[0], True), *[(p, False) for p in clip[1:]]]
    group, port = _group(), 5000 + secrets.randbelow(1000) * 2
    recorded, received = tmp_path / "capture.bin", tmp_path / "ffmpeg.ts"
    listen = receiver(ns, group, port, seconds + 2, recorded)
    scheme = f"{protocol}://{group}:{port}"
    ffmpeg = subprocess.Popen(
        in_netns(
            ns,
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-i",
                scheme,
                "-map",
                "0",
                "-c",
                "copy",
                "-t",
                str(seconds - 2),
                "-f",
                "mpegts",
                str(received),
            ],
        ),
        stdin=subprocess.DEVNULL,
    )
    stop = threading.Event()
    sender = _sender(ns, writer.rung_dir.parent, group, port, protocol,
                     {"TC_MULTICAST_IDLE_EXIT_SECONDS": "3"})  # fmt: skip
    publisher = threading.Thread(target=_publish, args=(writer, plan, stop))
    publisher.start()
    try:
        assert listen.wait(timeout=seconds + 30) == 0
        assert ffmpeg.wait(timeout=seconds + 30) == 0
    finally:
        stop.set()
        publisher.join(timeout=10)
        for proc in (listen, ffmpeg):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    # Nothing more is published: the sender keeps sync a while, then exits by itself.
    _, err = sender.communicate(timeout=30)
    assert sender.returncode == 0, err.decode()[-2000:]
    assert b"no new segment; multicast output ends" in err
    print(err.decode())  # the sender's log lines, shown when a check below fails

    datagrams = read_capture(recorded)
    assert len(datagrams) > 100
    if protocol == "rtp":
        seqs = [int.from_bytes(d[2:4], "big") for _, d in datagrams]
        assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
        assert {d[1] for _, d in datagrams} == {33}
        payloads = [strip_rtp(d) for _, d in datagrams]
    else:
        payloads = [d for _, d in datagrams]
    assert {len(p) for p in payloads} == {7 * 188}
    stream = b"".join(payloads)
    a = analyze(stream)
    assert a.sync_errors == 0
    assert a.cc_errors == []
    pcrs = [t for _, t in a.pcrs]
    assert all(b > a_ for a_, b in itertools.pairwise(pcrs))
    assert max(a.pcr_gaps_seconds()) <= 0.040
    peak = max(p.stat().st_size * 8 // 2 for p in [*clip, *slate])
    assert a.pcr_rate_bps() == pytest.approx(derived_mux_rate(peak), rel=1e-6)
    # PCR against arrival: the wall clock and the PCR agree over the whole capture.
    first_at, last_at = datagrams[0][0], datagrams[-1][0]
    assert (pcrs[-1] - pcrs[0]) / 27e6 == pytest.approx(last_at - first_at, abs=0.05)
    audio = a.pts[0x101]  # in order, never back (video may be reordered, never repeated)
    assert all(b > a_ for a_, b in itertools.pairwise(audio))
    assert len(set(a.pts[0x100])) == len(a.pts[0x100])
    (tmp_path / "capture.ts").write_bytes(whole_pes_only(stream))
    frames, errors = _decode(tmp_path / "capture.ts")
    assert b"rror while decoding" not in errors
    assert frames >= 25 * (seconds - 4)  # every second of it shows pictures
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name:format=nb_streams",
         "-of", "json", str(received)],
        capture_output=True, check=True, timeout=60, text=True,
    )  # fmt: skip
    facts = json.loads(probe.stdout)
    assert facts["format"]["nb_streams"] == 2  # one video, one audio across the switches
    assert [s["codec_name"] for s in facts["streams"]] == ["h264", "aac"]
    ffmpeg_frames, _ = _decode(received)
    assert ffmpeg_frames >= 25 * (seconds - 6)


@pytest.mark.timeout(60)
async def test_node_process_restarts_are_failures_and_cancel_stops_it(
    feeds: Feeds, ns: str, tmp_path: Path
) -> None:
    """The node's side: the real process runs until cancelled (SIGTERM, it stops); one that
    ends by itself (here: no master playlist in time) is a failure the task owner restarts."""
    writer = LiveWindowWriter(tmp_path / "news")
    writer.publish(feeds.clip[0])
    multicast = Multicast(_group(), 6000, MulticastProtocol.RTP)
    runner = MulticastProcess(writer.rung_dir.parent, "news", multicast, stop_seconds=5)
    runner.command = in_netns(ns, runner.command)
    task = asyncio.create_task(runner.run())
    await runner.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runner.pid is None  # it exited
    empty = MulticastProcess(tmp_path / "none", "none", multicast, stop_seconds=5)
    empty.command = in_netns(ns, empty.command)
    os.environ["TC_MULTICAST_IDLE_EXIT_SECONDS"] = "1"
    try:
        with pytest.raises(MulticastExited, match="exited with 1"):
            await empty.run()
    finally:
        del os.environ["TC_MULTICAST_IDLE_EXIT_SECONDS"]


@pytest.mark.timeout(150)
async def test_a_real_node_multicasts_its_channel_across_a_drop_to_the_slate(
    ns: str, tmp_path: Path
) -> None:
    """The issue's acceptance test on a real node: a live channel (real FFmpeg feed, real
    Redis, the node's supervisor) with a multicast output, its process started by the node
    inside the namespace (``TC_MULTICAST_EXEC_PREFIX``); the feed is cut mid-run so the
    channel drops to the slate; 20 s are recorded by FFmpeg and a socket, then checked."""
    settings = replace(FAST, multicast=MulticastSettings(
        exec_prefix=("ip", "netns", "exec", ns), idle_exit_seconds=5))  # fmt: skip
    group, port = _group(), 5000 + secrets.randbelow(1000) * 2
    feed = Feed().start()
    channel = replace(live_channel("mcnode", feed.source),
                      multicast=Multicast(group, port, MulticastProtocol.RTP))  # fmt: skip
    recorded, received = tmp_path / "capture.bin", tmp_path / "ffmpeg.ts"
    try:
        async with live_rig(tmp_path, settings=settings) as rig:
            await rig.manager.start(channel)
            async with asyncio.timeout(30):
                await rig.recorder.until(lambda: rig.recorder.last_seq("mcnode") >= 0)
            listen = receiver(ns, group, port, 22, recorded)
            record = ["ffmpeg", "-v", "error", "-y", "-i", f"rtp://{group}:{port}", "-map", "0",
                      "-c", "copy", "-t", "18", "-f", "mpegts", str(received)]  # fmt: skip
            ffmpeg = await asyncio.create_subprocess_exec(
                *in_netns(ns, record), stdin=subprocess.DEVNULL
            )
            await asyncio.sleep(7)  # live on the feed for a while, then the link fails
            feed.stop()
            async with asyncio.timeout(20):
                await rig.recorder.until(lambda: rig.recorder.count("mcnode", Phase.SLATE) > 0)
            assert await asyncio.to_thread(listen.wait, 40) == 0
            async with asyncio.timeout(40):
                assert await ffmpeg.wait() == 0
            supervisor = rig.manager.supervisor("mcnode")
            assert supervisor is not None
            assert supervisor.multicast is not None
            sender_pid = supervisor.multicast.pid
            assert sender_pid is not None
            await rig.manager.stop("mcnode")
            assert supervisor.multicast.pid is None  # the node stopped its process
    finally:
        feed.stop()
    datagrams = read_capture(recorded)
    seqs = [int.from_bytes(d[2:4], "big") for _, d in datagrams]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    stream = b"".join(strip_rtp(d) for _, d in datagrams)
    a = analyze(stream)
    assert a.sync_errors == 0
    assert a.cc_errors == []
    pcrs = [t for _, t in a.pcrs]
    assert all(b > a_ for a_, b in itertools.pairwise(pcrs))
    assert max(a.pcr_gaps_seconds()) <= 0.040
    span = datagrams[-1][0] - datagrams[0][0]
    assert span > 18
    assert (pcrs[-1] - pcrs[0]) / 27e6 == pytest.approx(span, abs=0.05)
    audio = a.pts[0x101]
    assert all(b > a_ for a_, b in itertools.pairwise(audio))
    (tmp_path / "capture.ts").write_bytes(whole_pes_only(stream))
    frames, errors = _decode(tmp_path / "capture.ts")
    assert b"rror while decoding" not in errors
    assert frames >= 20 * 15  # pictures all along: the feed, then the slate
    ffmpeg_frames, _ = _decode(received)
    assert ffmpeg_frames >= 20 * 12
