"""One FFmpeg run of a live channel (an *epoch*): the process, its error output, its segments.

FFmpeg's segment muxer writes each rung's segments plus a CSV list; a row is
added once a segment is closed, but also when closing it *failed* (a full
disk leaves a truncated or empty file listed). So a listed segment is only
complete when its row is a whole line, FFmpeg did not report a failure
ending it, and the file is whole MPEG-TS packets with sync bytes at both ends.
FFmpeg logs a failure before it writes the row, and the error pipe is read
synchronously before every list read, so a failure is always seen first.

At info level (a source epoch) FFmpeg also logs each file it opens, and a segment
muxer opens the next segment only after listing the one before: that line (and the
end of the log) calls ``on_opened``, so the publisher wakes when a segment is listed
instead of reading the lists on a short timer. The same log gives the start FFmpeg shifts
its input's timestamps by (``input_start``), which places a source's SCTE-35 signals on
the epoch's clock; a source read through a splice relay (``relay.py``) has it as
``relay``, closed with the epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import os
import re
import shutil
import signal
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from headend.procs import with_death_signal
from transcode.live.detect import Detector, Trouble, split_level
from transcode.live.relay import SpliceRelay
from transcode.measure import TS_PACKET

log = logging.getLogger(__name__)

_SYNC = 0x47
_FAILED_SEGMENT = re.compile(r"Failure occurred when ending segment '([^']+)'")
# The next segment's file (not the list's: the list is rewritten before that line).
_OPENED = re.compile(r"Opening '[^']*\.ts' for writing$")
# The input's dump: "  Duration: N/A, start: 1.400000, bitrate: N/A" (input 0 comes first).
_INPUT_START = re.compile(r"^\s*Duration: .*, start: (-?\d+(?:\.\d+)?)")
_DISK_FULL_TEXT = "No space left on device"
_STDERR_LINES = 20
# Lines at these levels (or with no level marker) are the error tail; the rest only feed
# the detectors (a source epoch logs at info level for them).
_ERROR_LEVELS = frozenset({"", "error", "fatal", "panic"})


@dataclass(frozen=True, slots=True)
class Listed:
    """One row of a rung's CSV segment list."""

    name: str
    start: float
    end: float


def whole_ts(path: Path) -> str:
    """Why ``path`` is not a whole MPEG-TS file ("" when it is)."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0 or size % TS_PACKET:
                return f"{size} bytes is not whole TS packets"
            head = handle.read(1)
            handle.seek(size - TS_PACKET)
            tail = handle.read(1)
    except FileNotFoundError:
        return "missing"
    if head[:1] != bytes([_SYNC]) or tail[:1] != bytes([_SYNC]):
        return "no TS sync byte"
    return ""


def parse_list(text: str) -> list[Listed]:
    """The complete rows of a segment list (a line still being written is left out)."""
    lines = text.split("\n")[:-1]  # the last element is "" or a partial line
    rows = []
    for row in csv.reader(lines):
        if len(row) != 3:
            break
        try:
            rows.append(Listed(row[0], float(row[1]), float(row[2])))
        except ValueError:
            break
    return rows


class Epoch:
    """One FFmpeg run (source or slate) and the segments it has listed per rung."""

    def __init__(
        self,
        kind: str,
        number: int,
        directory: Path,
        rungs: Sequence[str],
        *,
        detector: Detector | None = None,
        on_opened: Callable[[], None] | None = None,
        sidecars: Sequence[str] = (),
    ) -> None:
        self.kind = kind
        # Directories of outputs that are not segmented (a subtitle track's cues).
        self.sidecars = tuple(sidecars)
        self.detector = detector
        # Set once the detector finds the source impaired (see ``trouble``).
        self.troubled = asyncio.Event()
        self.number = number
        self.directory = directory
        self.rungs = tuple(rungs)
        self.listed: dict[str, list[Listed]] = {r: [] for r in rungs}
        self.published = 0  # segments of this epoch published (or dropped) so far
        self.anchor: float | None = None  # wall time of media time 0 of this epoch
        self.stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self.failed: set[str] = set()  # paths FFmpeg reported it could not finish
        self.retired = False  # set under the publisher's lock: nothing more is published
        self.killed = False  # set synchronously when its channel is torn down
        self._proc: asyncio.subprocess.Process | None = None
        self._exit: asyncio.Future[int] | None = None
        self._err_fd: int | None = None
        self._partial = b""
        self._on_opened = on_opened
        # FFmpeg has logged a file it opened: it announces its segments (see the module).
        self.announces = False
        self._log_ended = False
        # Seconds FFmpeg subtracts from its input's timestamps (None until it logs them).
        self.input_start: float | None = None
        # The splice relay its source is read through (None: read directly).
        self.relay: SpliceRelay | None = None

    # -- the process ----------------------------------------------------------------------

    async def start(self, args: Sequence[str]) -> None:
        """Launch FFmpeg in its own process group, its error output on a pipe read here."""
        for rung in (*self.rungs, *self.sidecars):
            (self.directory / rung).mkdir(parents=True, exist_ok=True)
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        try:
            # A plain pipe, not asyncio's: Process.wait() then ends when FFmpeg exits
            # (asyncio's own pipes must also reach EOF first), and it can be read
            # synchronously before a list is read.
            # Killed with its parent: a kill -9 of the transcode server leaves no encoder.
            self._proc = await asyncio.create_subprocess_exec(
                *with_death_signal(args, signal.SIGKILL),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=write_fd,
                start_new_session=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self._err_fd = read_fd
        asyncio.get_running_loop().add_reader(read_fd, self._drain)
        self._exit = asyncio.ensure_future(self._proc.wait())

    @property
    def pid(self) -> int | None:
        """FFmpeg's process id once started."""
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        """FFmpeg's exit status once it has exited."""
        return None if self._proc is None else self._proc.returncode

    @property
    def running(self) -> bool:
        """True from start until FFmpeg has exited."""
        return self._exit is not None and not self._exit.done()

    def exited(self) -> asyncio.Future[int]:
        """A future of the exit status (for ``asyncio.wait``); never cancel it."""
        if self._exit is None:
            done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            done.set_result(-1)
            return done
        return self._exit

    async def wait(self) -> int:
        """Wait for FFmpeg to exit."""
        return await asyncio.shield(self.exited())

    async def stop(self, grace_seconds: float) -> int | None:
        """SIGTERM (the muxer finishes its lists), SIGKILL after the grace; bounded either way."""
        if self.running:
            self._signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(grace_seconds):
                    await asyncio.shield(self.exited())
            except TimeoutError:
                self.kill_now()
                try:
                    async with asyncio.timeout(grace_seconds):
                        await asyncio.shield(self.exited())
                except TimeoutError:
                    log.error("ffmpeg did not exit after SIGKILL", extra={"pid": self.pid})
        self._drain()
        return self.returncode

    def kill_now(self) -> None:
        """SIGKILL the process group at once: no await, so a cancelled caller still does it."""
        self.killed = True
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is None or self._proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def close(self) -> None:
        """Stop reading the error output and relaying (call once FFmpeg is stopped or killed)."""
        if self.relay is not None:
            self.relay.close()
            self.relay = None
        if self._err_fd is None:
            return
        self._drain()
        fd, self._err_fd = self._err_fd, None
        with contextlib.suppress(RuntimeError):  # the loop may already be closed
            asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)

    def _drain(self) -> None:
        fd = self._err_fd
        if fd is None:
            return
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                # EOF: a pipe at EOF stays readable, so stop watching it.
                with contextlib.suppress(RuntimeError):
                    asyncio.get_running_loop().remove_reader(fd)
                self._line(self._partial)
                self._partial = b""
                if self._on_opened is not None and not self._log_ended:
                    self._on_opened()  # the last segments are listed by now
                self._log_ended = True
                return
            *lines, self._partial = (self._partial + chunk).split(b"\n")
            for line in lines:
                self._line(line)

    def _line(self, raw: bytes) -> None:
        level, text = split_level(raw.decode(errors="replace").rstrip())
        if not text:
            return
        if self.detector is not None:
            self.detector.feed(text)
            if self.detector.trouble is not None:
                self.troubled.set()
        if level not in _ERROR_LEVELS:
            if level == "info" and self.input_start is None:
                start = _INPUT_START.match(text)
                if start is not None:
                    self.input_start = float(start.group(1))
            if level == "info" and _OPENED.search(text):
                self.announces = True
                if self._on_opened is not None:
                    self._on_opened()
            return
        self.stderr.append(text)
        match = _FAILED_SEGMENT.search(text)
        if match:
            self.failed.add(match.group(1))

    @property
    def trouble(self) -> Trouble | None:
        """Why the source looks impaired (frozen, black, silent, corrupt), once it does."""
        self._drain()
        return None if self.detector is None else self.detector.trouble

    def note(self, text: str) -> None:
        """Add a line of our own to the error tail (e.g. why the epoch was stopped)."""
        self.stderr.append(text)

    def last_error(self) -> str:
        """FFmpeg's last error line."""
        return self.stderr[-1] if self.stderr else ""

    @property
    def disk_full(self) -> bool:
        """True when FFmpeg reported ENOSPC."""
        return any(_DISK_FULL_TEXT in line for line in self.stderr)

    # -- the segments ---------------------------------------------------------------------

    def poll(self) -> int:
        """Re-read every rung's list; returns how many segments all rungs have listed."""
        self._drain()
        for rung in self.rungs:
            try:
                text = (self.directory / rung / "list.csv").read_text(errors="replace")
            except FileNotFoundError:
                continue
            self.listed[rung] = parse_list(text)
        return min(len(v) for v in self.listed.values())

    def segment_path(self, rung: str, index: int) -> Path:
        """Where FFmpeg wrote segment ``index`` of ``rung``."""
        return self.directory / rung / self.listed[rung][index].name

    def incomplete(self, index: int) -> str:
        """Why segment ``index`` is not whole in some rung ("" when every rung's is)."""
        for rung in self.rungs:
            path = self.segment_path(rung, index)
            if str(path) in self.failed:
                return f"{rung}: ffmpeg failed to finish {path.name}"
            problem = whole_ts(path)
            if problem:
                return f"{rung}: {path.name}: {problem}"
        return ""

    def drop(self, index: int) -> None:
        """Delete segment ``index`` of every rung."""
        for rung in self.rungs:
            self.segment_path(rung, index).unlink(missing_ok=True)

    def cleanup(self) -> None:
        """Remove the epoch's work directory (published segments were moved out)."""
        shutil.rmtree(self.directory, ignore_errors=True)
