"""``headend up`` under faults: every child killed in turn comes back, nothing is
orphaned, and a child that keeps dying stops the stack with exit 1 and its name.

Real processes throughout. Each stack runs on its own port range (below the
ephemeral range; test_stack uses 21000 and the TLS test 22000) under a temp var
dir. Processes are found by walking ``/proc`` (psutil) from ``headend up``'s pid
and by command lines that name the var dir, never by name-wide kills.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path

import psutil
import pytest
import redis.asyncio as aioredis

from cdn_ctl.errors import EdgeStartError
from cdn_ctl.local import LocalEdges, LocalSettings
from cdn_ctl.signing import KeyRing, SigningKey
from cdn_ctl.store import EDGES as EDGE_RECORDS
from cdn_ctl.store import EdgeStore
from tests.support.stack import (
    ROLES,
    Up,
    eventually,
    http_ok,
    process_group,
    role,
    shape,
    start_up,
    unhealthy,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("stack_faults")]

# Port ranges (a stack uses base..base+155), below the ephemeral range: the shared
# stack's, and the crash-loop test's. Each xdist worker shifts both by 400, so
# stacks started in parallel never collide (xdist_group does not keep a module on
# one worker under pytest 9); when a range is busy (another test run on this
# machine), the next one, 2000 up, is tried.
BASE = 23000
LOOP_BASE = 23200


@pytest.fixture(scope="module")
def shift(worker_id: str) -> int:
    """This xdist worker's port offset (0 without xdist)."""
    return 0 if worker_id == "master" else 400 * int(worker_id.removeprefix("gw"))


def _bases(base: int) -> list[int]:
    return [base + 2000 * k for k in range(3)]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory, shift: int) -> Iterator[Up]:
    """One ``headend up`` shared by the kill tests (each leaves it healed)."""
    stack = start_up(tmp_path_factory.mktemp("faults") / "var", _bases(BASE + shift))
    try:
        yield stack
        stack.stop()
    finally:
        if stack.proc.poll() is None:
            stack.proc.kill()
            stack.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def clip(up: Up) -> Path:
    """A 60 s test picture with tone under the stack's media root (what jobs may read)."""
    path = up.var / "media" / "clip.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=s=640x360:r=25:d=60",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:d=60",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "64k", "-shortest", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path


def _kill_and_heal(up: Up, victim: psutil.Process, child: str) -> None:
    """SIGKILL ``victim``; ``child``'s restart is logged, every health check passes again,
    everything the victim ran is gone, and the stack has its old shape with no orphan."""
    healthy_shape = eventually(lambda: shape(up), "a stack without orphans")
    doomed = process_group(victim)
    logged = len(up.restarts(child))
    victim.send_signal(signal.SIGKILL)
    line = up.wait_output(lambda: up.restarts(child)[logged:], f"{child}'s restart line")[0]
    assert line["signal"] == "SIGKILL"
    assert line["restarts"] >= 1
    assert isinstance(line["next_delay_s"], float)
    _, alive = psutil.wait_procs(doomed, timeout=15)
    assert alive == [], f"left running after {child} was killed: {alive}"
    eventually(lambda: not unhealthy(up), f"every health check after killing {child}", 60)
    eventually(lambda: shape(up) == healthy_shape, f"the stack's shape after killing {child}")
    assert up.proc.poll() is None


@pytest.mark.parametrize("child", ["redis", "epg", "subscriber", "origin", "edges", "cdn"])
def test_a_killed_child_is_restarted_and_leaves_nothing(up: Up, child: str) -> None:
    eventually(lambda: not unhealthy(up), "a healthy stack", 60)
    _kill_and_heal(up, up.child(child), child)


def test_a_killed_nginx_edge_is_restarted_by_the_edges_process(up: Up) -> None:
    eventually(lambda: not unhealthy(up), "a healthy stack", 60)
    edges = up.child("edges")
    master = next(
        p
        for p in edges.children()
        if role(p) == "nginx: master" and "/edges/edge-a " in " ".join(p.cmdline())
    )
    doomed = process_group(master)
    log = up.var / "log" / "edges.log"
    before = log.read_text().count("edge nginx exited; restarting")
    edges_restarts = len(up.restarts("edges"))
    master.send_signal(signal.SIGKILL)
    eventually(
        lambda: log.read_text().count("edge nginx exited; restarting") > before,
        "the edges process's restart line",
    )
    _, alive = psutil.wait_procs(doomed, timeout=15)
    assert alive == [], "the killed master's workers survived it"
    eventually(lambda: not unhealthy(up), "edge-a answering again")
    # The edges process healed it itself: it was neither killed nor restarted.
    assert up.child("edges").pid == edges.pid
    assert len(up.restarts("edges")) == edges_restarts


def test_a_worker_killed_mid_encode_takes_its_ffmpeg_with_it(up: Up, clip: Path) -> None:
    eventually(lambda: not unhealthy(up), "a healthy stack", 60)
    worker = up.child("worker")
    queued = up.cli("transcode", "submit", str(clip), "--asset", "faults", "--profile", "default")
    job_id = queued.split()[1]  # "job <id> queued"
    try:
        ffmpeg = eventually(
            lambda: [p for p in worker.children(recursive=True) if role(p) == "ffmpeg"],
            "the worker's FFmpeg",
        )
        _kill_and_heal(up, worker, "worker")
        _, alive = psutil.wait_procs(ffmpeg, timeout=10)
        assert alive == [], "the killed worker's FFmpeg survived it"
    finally:
        up.cli("transcode", "cancel", job_id)


def test_transcode_killed_with_a_live_channel_leaves_no_ffmpeg(up: Up, clip: Path) -> None:
    eventually(lambda: not unhealthy(up), "a healthy stack", 60)
    transcode = up.child("transcode")
    up.cli("channel", "start", "faults.cn", clip.as_uri(), "--profile", "low")
    try:
        ffmpeg = eventually(
            lambda: [p for p in transcode.children(recursive=True) if role(p) == "ffmpeg"],
            "the live channel's FFmpeg",
        )
        _kill_and_heal(up, transcode, "transcode")
        # FFmpeg ran in a group of its own: headend up adopted and killed it.
        _, alive = psutil.wait_procs(ffmpeg, timeout=10)
        assert alive == [], "the killed transcode server's FFmpeg survived it"
    finally:
        up.cli("channel", "stop", "faults.cn")


def test_a_child_that_keeps_dying_stops_the_stack_with_exit_1(tmp_path: Path, shift: int) -> None:
    up = start_up(tmp_path / "var", _bases(LOOP_BASE + shift), HEADEND_RESTART_LIMIT="2")
    seen: dict[int, psutil.Process] = {}
    try:
        killed: set[int] = set()
        for n in range(3):  # two kills are restarted; the third is past the limit
            victim = eventually(lambda: _new_child(up, "epg", killed), "a running epg")
            seen.update((p.pid, p) for p in psutil.Process(up.proc.pid).children(recursive=True))
            killed.add(victim.pid)
            victim.send_signal(signal.SIGKILL)
            if n < 2:
                up.wait_output(partial(_restarted, up, "epg", n + 1), "epg's restart line")
        assert up.proc.wait(timeout=60) == 1
    finally:
        if up.proc.poll() is None:
            up.proc.kill()
            up.proc.wait(timeout=30)
    up.wait_output(lambda: "stopping (epg keeps exiting)" in "".join(up.out), "stopping", 10)
    err = "".join(up.err)
    assert "giving up on epg (killed by SIGKILL)" in err
    assert "HEADEND_RESTART_LIMIT=2" in err
    assert f"last lines of {tmp_path / 'var' / 'log' / 'epg.log'}" in err
    assert len(up.restarts("epg")) == 2
    _, alive = psutil.wait_procs(list(seen.values()), timeout=15)
    assert alive == []
    assert not [line for line in _cmdlines() if str(tmp_path) in line]


def _restarted(up: Up, child: str, times: int) -> bool:
    return len(up.restarts(child)) >= times


def _new_child(up: Up, name: str, not_these: set[int]) -> psutil.Process | None:
    try:
        children = psutil.Process(up.proc.pid).children()
    except psutil.Error:
        return None
    found = [c for c in children if role(c) == ROLES[name] and c.pid not in not_these]
    return found[0] if found else None


def _cmdlines() -> list[str]:
    """Every process's command line, read once each (a process of another test may exit
    between being listed and being read: it is left out)."""
    lines = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            lines.append(" ".join(p.cmdline()))
    return lines


async def test_local_edges_restart_a_killed_nginx_and_give_up_past_the_limit(
    tmp_path: Path, redis: aioredis.Redis
) -> None:
    ring = KeyRing((SigningKey("k1", b"faults-secret-0123456789"),), "k1")
    port = _free_port()
    settings = LocalSettings.from_env(
        {
            "CDN_SIGNING_KEYS": ring.render(),
            "REDIS_URL": "unix:///unused.sock",  # the test passes its own client
            "CDN_LOCAL_EDGES": f"fa:110101:{port}",
            "CDN_ORIGIN_ADDRESS": f"127.0.0.1:{_free_port()}",
            "CDN_EDGE_DIR": str(tmp_path),
            "CDN_EDGE_WORKERS": "1",
            "CDN_EDGE_RESTART_LIMIT": "1",
        }
    )
    edges = LocalEdges(settings)
    await edges.start()
    keeper = asyncio.create_task(edges.keep_alive(redis))
    try:
        await edges.register(redis)
        await redis.hdel(EDGE_RECORDS, "fa")  # lost from the registry meanwhile
        # Found through /proc, not EdgeProcess.pid, which would reap a dead master
        # before the keeper could read how it died.
        first = _nginx_master()
        assert first is not None
        doomed = process_group(first)
        first.send_signal(signal.SIGKILL)
        await _until(lambda: asyncio.to_thread(_nginx_master, first.pid), "a new nginx master")
        healthz = f"http://127.0.0.1:{port}/healthz"
        await _until(lambda: asyncio.to_thread(http_ok, healthz, "ok fa"), "/healthz")
        _, alive = psutil.wait_procs(doomed, timeout=10)
        assert alive == []  # the old master's workers went with it
        await _until(lambda: EdgeStore(redis).get_or_none("fa"), "the edge registered again")
        assert not keeper.done()
        second = _nginx_master(not_pid=first.pid)
        assert second is not None
        second.send_signal(signal.SIGKILL)
        with pytest.raises(EdgeStartError, match="CDN_EDGE_RESTART_LIMIT=1") as caught:
            await asyncio.wait_for(keeper, 15)
        assert "edge fa's nginx keeps exiting (killed by SIGKILL)" in str(caught.value)
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError, EdgeStartError):
            await keeper
        await edges.stop()
    assert not any(p.running for p in edges.processes)


def _nginx_master(not_pid: int = 0) -> psutil.Process | None:
    """This process's nginx master child (the test runs one edge)."""
    found = [
        p for p in psutil.Process().children() if role(p) == "nginx: master" and p.pid != not_pid
    ]
    return found[0] if found else None


async def _until(
    check: Callable[[], Awaitable[object]], what: str, within_seconds: float = 15.0
) -> None:
    deadline = time.monotonic() + within_seconds
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within_seconds:g}s waiting for {what}")
        await asyncio.sleep(0.05)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_RUN_FFMPEG = """
import asyncio
from transcode.runner import run_ffmpeg
asyncio.run(run_ffmpeg([
    "ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2=s=160x90:r=5",
    "-stats_period", "60", "-progress", "pipe:1", "-f", "null", "-",
]))
"""


def test_ffmpeg_dies_with_the_process_that_ran_it() -> None:
    # Nothing else would end it: it writes no progress for a minute (no SIGPIPE) and
    # runs in a group of its own, out of reach of a kill of its parent's group.
    parent = subprocess.Popen([sys.executable, "-c", _RUN_FFMPEG])
    ffmpeg: list[psutil.Process] = []
    try:
        ffmpeg = eventually(
            lambda: [p for p in psutil.Process(parent.pid).children() if role(p) == "ffmpeg"],
            "FFmpeg running",
        )
        parent.kill()
        parent.wait(timeout=10)
        _, alive = psutil.wait_procs(ffmpeg, timeout=10)
        assert alive == [], "FFmpeg outlived the process that ran it"
    finally:
        parent.kill()  # whatever the outcome, leave nothing behind
        parent.wait(timeout=10)
        for p in ffmpeg:
            with contextlib.suppress(psutil.Error):
                p.kill()
