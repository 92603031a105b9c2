"""The node's side of a channel's multicast output: its process, run as a supervised task.

``ChannelSupervisor`` spawns :meth:`MulticastProcess.run` as the task
``live/{channel}/multicast`` once it has published a segment under its lease (a standby
node publishes nothing, so it sends nothing until promoted). The process ending for any
reason is a failure of the task, which the task owner restarts with the channel's
backoff; cancelling the task (the channel stops, the lease goes) sends SIGTERM and, after
``stop_seconds``, SIGKILL, and waits for it.

With a :class:`MulticastMetricsDir` the process writes its metrics there for the node's
``/metrics``; once it has ended its live gauges are dropped. An ``exec_prefix`` must exec
the process (as ``ip netns exec`` and ``ip vrf exec`` do), not fork it: the pid the node
knows is the one that names its metric files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from pathlib import Path

from transcode.domain import Multicast
from transcode.live.multicast.collect import MulticastMetricsDir
from transcode.live.multicast.errors import MulticastError

log = logging.getLogger(__name__)


class MulticastExited(MulticastError):
    """Raised when a channel's multicast process ends (it is restarted with backoff)."""


def command(channel_dir: Path, channel: str, multicast: Multicast) -> list[str]:
    """The process's command line (settings travel in the ``TC_MULTICAST_*`` environment)."""
    args = [
        sys.executable, "-m", "transcode.live.multicast",
        "--channel-dir", str(channel_dir), "--channel", channel,
        "--group", multicast.group, "--port", str(multicast.port),
        "--protocol", multicast.protocol.value, "--ttl", str(multicast.ttl),
        "--mux-rate-kbps", str(multicast.mux_rate_kbps),
    ]  # fmt: skip
    if multicast.interface:
        args += ["--interface", multicast.interface]
    if multicast.rung:
        args += ["--rung", multicast.rung]
    return args


class MulticastProcess:
    """Runs one channel's multicast process until it ends or the task is cancelled."""

    def __init__(
        self,
        channel_dir: Path,
        channel: str,
        multicast: Multicast,
        *,
        stop_seconds: float,
        exec_prefix: tuple[str, ...] = (),
        metrics_dir: MulticastMetricsDir | None = None,
    ) -> None:
        self.command = [*exec_prefix, *command(channel_dir, channel, multicast)]
        self._channel = channel
        self._metrics_dir = metrics_dir
        self._stop_seconds = stop_seconds
        self._proc: asyncio.subprocess.Process | None = None
        self.started = asyncio.Event()  # set once a process has been started

    async def run(self) -> None:
        """Start the process and wait for it; MulticastExited when it ends by itself."""
        env = None if self._metrics_dir is None else self._metrics_dir.child_env()
        proc = await asyncio.create_subprocess_exec(
            *self.command, stdin=asyncio.subprocess.DEVNULL, env=env
        )
        self._proc = proc
        self.started.set()
        log.info("multicast process started", extra={"channel": self._channel, "pid": proc.pid})
        try:
            code = await proc.wait()
        except asyncio.CancelledError:
            await self._stop(proc)
            raise
        finally:
            self._ended(proc)
        raise MulticastExited(f"multicast process for {self._channel} exited with {code}")

    @property
    def pid(self) -> int | None:
        """The running process's id (None before it starts or after it ended)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def kill_now(self) -> None:
        """SIGKILL the process if it still runs (teardown, where nothing may be awaited)."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            self._ended(proc)

    def _ended(self, proc: asyncio.subprocess.Process) -> None:
        if self._metrics_dir is not None:
            self._metrics_dir.process_ended(proc.pid)

    async def _stop(self, proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            async with asyncio.timeout(self._stop_seconds):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        log.info("multicast process stopped",
                 extra={"channel": self._channel, "pid": proc.pid})  # fmt: skip
