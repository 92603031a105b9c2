"""Run FFmpeg as an asyncio subprocess in its own process group and read ``-progress``.

Cancelling the awaiting task kills the whole process group (FFmpeg and
anything it spawned) and waits for it, so no encoder outlives its job; if the
process running it dies, the kernel kills FFmpeg (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from headend.procs import with_death_signal
from transcode.errors import (
    CorruptSource,
    DiskFull,
    EncodeFailed,
    SourceNotFound,
    ToolUnavailable,
    TranscodeError,
)

_STDERR_TAIL_LINES = 30


@dataclass(frozen=True, slots=True)
class FFmpegProgress:
    """One ``-progress`` block: media time written so far and the speed FFmpeg reports."""

    out_time_seconds: float
    speed: float  # x realtime; 0.0 while FFmpeg has not measured it yet
    done: bool


async def run_ffmpeg(
    args: Sequence[str],
    *,
    on_progress: Callable[[FFmpegProgress], None] | None = None,
    on_stderr: Callable[[str], None] | None = None,
) -> None:
    """Run one FFmpeg command (which must include ``-progress pipe:1``) to completion.

    ``on_stderr`` sees each log line; if it raises, FFmpeg is killed and the error
    propagates (how a caller stops a run early). Raises a ``TranscodeError`` leaf chosen
    from FFmpeg's error output when FFmpeg fails.
    """
    binary = shutil.which(args[0])
    if binary is None:
        raise ToolUnavailable(f"{args[0]} is not installed")
    # Its own group is out of reach of a supervisor killing the caller's group, so the
    # kernel kills FFmpeg if the caller dies (a kill -9 of a worker leaves no encoder).
    command = with_death_signal([binary, *args[1:]], signal.SIGKILL)
    spawn = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own session, hence its own process group: cancel kills the group.
            start_new_session=True,
        )
    )
    try:
        proc = await asyncio.shield(spawn)
    except FileNotFoundError as err:
        raise ToolUnavailable(f"{args[0]} is not installed") from err
    except asyncio.CancelledError:
        # Cancelled while the process was being started: it may still appear, so
        # wait for the spawn to settle and kill whatever it started.
        await finish(_kill_spawned(spawn))
        raise
    tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
    readers = (
        asyncio.create_task(_read_progress(proc.stdout, on_progress)),
        asyncio.create_task(_read_stderr(proc.stderr, tail, on_stderr)),
    )
    try:
        await asyncio.gather(*readers)
        returncode = await proc.wait()
    except BaseException:
        # Cancelled, or a callback refused the run: stop the encoder and its children first.
        kill_group(proc.pid)
        for reader in readers:
            reader.cancel()
        await finish(asyncio.gather(*readers, proc.wait(), return_exceptions=True))
        raise
    if returncode != 0:
        raise classify_failure(returncode, list(tail))


async def run_all(
    commands: Sequence[Sequence[str]],
    *,
    on_progress: Callable[[int, FFmpegProgress], None] | None = None,
) -> None:
    """Run several FFmpeg commands at once; the first failure kills the rest and is raised."""
    tasks = [
        asyncio.create_task(
            run_ffmpeg(args, on_progress=None if on_progress is None else _bind(on_progress, i))
        )
        for i, args in enumerate(commands)
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        # Done tasks ignore cancel; running ones kill their process group and wait for it.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` (gone already is fine)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def classify_failure(returncode: int, stderr_tail: Sequence[str]) -> TranscodeError:
    """Map FFmpeg's last error lines to the exception leaf that names the cause."""
    text = "\n".join(stderr_tail)
    reason = next((line for line in reversed(stderr_tail) if line.strip()), "")
    details = {"returncode": str(returncode), "ffmpeg": reason[-500:]}
    if "No space left on device" in text:
        return DiskFull("the output file system is full (ENOSPC)", details=details)
    if "No such file or directory" in text and "Error opening output" not in text:
        return SourceNotFound(f"source cannot be opened: {reason}", details=details)
    corrupt_markers = (
        "Invalid data found when processing input",
        "moov atom not found",
        "could not find codec parameters",
        "Error while decoding",
        "partial file",
    )
    if any(marker in text for marker in corrupt_markers):
        return CorruptSource(f"source is corrupt or truncated: {reason}", details=details)
    return EncodeFailed(f"ffmpeg exited {returncode}: {reason}", details=details)


async def finish(awaitable: Awaitable[object]) -> None:
    """Await cleanup to the end even if cancelled again meanwhile (errors are dropped).

    A task being torn down can be cancelled twice (``gather`` cancels its children,
    then their owner does); a plain await would then return before the process is
    reaped and leave it running. The pending cancellation is raised by the caller.
    """
    future = asyncio.ensure_future(awaitable)
    while not future.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(future)
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not log it as never retrieved


async def _kill_spawned(spawn: asyncio.Future[asyncio.subprocess.Process]) -> None:
    try:
        started = await spawn
    except Exception:
        return  # it never started
    kill_group(started.pid)
    await started.wait()


def _bind(
    callback: Callable[[int, FFmpegProgress], None], index: int
) -> Callable[[FFmpegProgress], None]:
    return lambda progress: callback(index, progress)


async def _read_progress(
    stream: asyncio.StreamReader | None, on_progress: Callable[[FFmpegProgress], None] | None
) -> None:
    if stream is None:
        return
    out_time = 0.0
    speed = 0.0
    async for raw in stream:
        key, _, value = raw.decode(errors="replace").strip().partition("=")
        if key == "out_time_us":
            with contextlib.suppress(ValueError):
                out_time = max(0.0, int(value) / 1_000_000)
        elif key == "speed":
            with contextlib.suppress(ValueError):
                speed = float(value.rstrip("x").strip() or 0.0)
        elif key == "progress" and on_progress is not None:
            # A block ends with progress=continue|end: report once per block.
            on_progress(FFmpegProgress(out_time, speed, value == "end"))


async def _read_stderr(
    stream: asyncio.StreamReader | None,
    tail: deque[str],
    on_line: Callable[[str], None] | None,
) -> None:
    if stream is None:
        return
    async for raw in stream:
        line = raw.decode(errors="replace").rstrip()
        tail.append(line)
        if on_line is not None:
            on_line(line)
