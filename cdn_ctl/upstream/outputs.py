"""The front door's copy of the live channels' outputs (``ListLiveOutputs``).

The lineup and the live masters ask, for each of a box's channels, "how does this box
play it?": a multicast group, CMAF-HLS, DASH or MPEG-TS HLS
(:func:`cdn_ctl.frontdoor.policy.delivery`), so the answer must cost no I/O: the outputs
are held in memory by channel id and re-read every ``refresh_seconds`` (a supervised
task). Groups and packagings change when an operator reconfigures a channel, and a
channel's running flag when it starts or stops, so a short delay is harmless; a wrong
answer is not, hence what happens when a read fails: the last good copy stays in use (a
box that was given a group keeps being given it), the failure is logged once per outage
and counted, and the next read is tried on schedule. Before the first good read the copy
is empty, and every box gets MPEG-TS HLS, which every channel has and plays everywhere.

The copy is bounded (:data:`MAX_OUTPUTS`, far above any headend's channel count): a
directory that somehow grew past it keeps the first outputs by channel id and says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from cdn_ctl.frontdoor.settings import FrontDoorSettings
from cdn_ctl.upstream.common import CHANNEL_OPTIONS
from headend.clock import utc_now
from headend.errors import HeadendError
from headend.rpc import ClientTls
from transcode.client import TranscodeClient
from transcode.outputs import LiveOutput

log = logging.getLogger("cdn_ctl.upstream")

MAX_OUTPUTS = 10_000


class OutputSource(Protocol):
    """Where the outputs are read from (``transcode.client.TranscodeClient``)."""

    async def list_live_outputs(self, *, limit: int = ...) -> list[LiveOutput]: ...
    async def close(self) -> None: ...


class DirectoryMetrics(Protocol):
    """Counts the directory's reads (``cdn_ctl.metrics.CdnMetrics``)."""

    def directory_read(self, *, ok: bool, outputs: int) -> None: ...


class LiveDirectory:
    """The live channels' outputs as the transcode service last said, by channel id."""

    def __init__(
        self,
        *,
        source: OutputSource,
        refresh_seconds: float = 30.0,
        max_outputs: int = MAX_OUTPUTS,
        metrics: DirectoryMetrics | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.refresh_seconds = refresh_seconds
        self._source = source
        self._max = max_outputs
        self._metrics = metrics
        self._now = now
        self._by_channel: dict[str, LiveOutput] = {}
        # When the copy in use was read (None: never), and why the last read failed ("":
        # it did not).
        self.read_at: datetime | None = None
        self.last_error = ""
        # Set once the first good copy is in (until then every box gets HLS).
        self.loaded = asyncio.Event()

    @classmethod
    def connect(
        cls,
        target: str,
        api_key: str,
        *,
        refresh_seconds: float = 30.0,
        tls: ClientTls | None = None,
        metrics: DirectoryMetrics | None = None,
        timeout_seconds: float = 3.0,
    ) -> LiveDirectory:
        """A directory reading the transcode service at ``target`` with ``api_key`` (the
        front door's playback key)."""
        client = TranscodeClient(
            target, api_key, tls=tls, options=CHANNEL_OPTIONS, timeout_seconds=timeout_seconds
        )
        return cls(source=client, refresh_seconds=refresh_seconds, metrics=metrics)

    @classmethod
    def of(
        cls, settings: FrontDoorSettings, *, metrics: DirectoryMetrics | None = None
    ) -> LiveDirectory | None:
        """The front door's directory: its transcode target, playback key, TLS and refresh
        interval (None without a ``transcode_target``: no box is given a group)."""
        if not settings.transcode_target:
            return None
        return cls.connect(
            settings.transcode_target,
            settings.api_key,
            refresh_seconds=settings.multicast_refresh_seconds,
            tls=settings.grpc_tls,
            metrics=metrics,
        )

    def get(self, channel: str) -> LiveOutput | None:
        """``channel``'s outputs (None: none known yet, or no such live channel)."""
        return self._by_channel.get(channel)

    def outputs(self) -> list[LiveOutput]:
        """Every output held, by channel id."""
        return sorted(self._by_channel.values(), key=lambda o: o.channel)

    async def refresh(self) -> bool:
        """Read the outputs again; False (the copy kept, the failure counted) when the
        transcode service could not answer."""
        try:
            found = await self._source.list_live_outputs(limit=self._max + 1)
        except HeadendError as err:
            if not self.last_error:  # once per outage, not once per read
                log.warning(
                    "live directory read failed; keeping the last copy",
                    extra={"error": type(err).__name__, "details": err.message,
                           "outputs": len(self._by_channel)},
                )  # fmt: skip
            self.last_error = f"{type(err).__name__}: {err.message}"
            self._count(ok=False)
            return False
        if len(found) > self._max:
            log.warning(
                "more live channels than the directory keeps",
                extra={"kept": self._max, "first_left_out": found[self._max].channel},
            )
        kept = {o.channel: o for o in found[: self._max]}
        if kept != self._by_channel or self.last_error:
            log.info("live directory read", extra={"outputs": len(kept)})
        self._by_channel = kept
        self.read_at = self._now()
        self.last_error = ""
        self.loaded.set()
        self._count(ok=True)
        return True

    def _count(self, *, ok: bool) -> None:
        if self._metrics is not None:
            self._metrics.directory_read(ok=ok, outputs=len(self._by_channel))

    async def run(self) -> None:
        """Read now, then every ``refresh_seconds`` (a supervised task)."""
        while True:
            await self.refresh()
            await asyncio.sleep(self.refresh_seconds)

    async def close(self) -> None:
        """Close the gRPC channel."""
        await self._source.close()
