"""A channel warming up on a node that is about to own it (a make-before-break handover).

A :class:`StandbySupervisor` runs the channel's FFmpeg into the node's own work
directory like any supervisor, but holds its first source epoch back until it is
promoted: it publishes nothing and its store is not written (the old owner still
publishes and writes). Promotion (:meth:`StandbySupervisor.promote`) numbers the
segments after the highest the old owner used and opens the gate; the first
segment published starts a discontinuity, as after any restart.
"""

from __future__ import annotations

import asyncio
from typing import Any

from transcode.live.epoch import Epoch
from transcode.live.supervisor import ChannelSupervisor
from transcode.live.window import Window


class Standby:
    """The events between a standby channel and the node handing it over."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()  # every rung has a segment: the node may take the lease
        self.failed = asyncio.Event()  # the source gave no segment: the handover is off
        self.promoted = asyncio.Event()  # the node holds the lease: publish


class StandbySupervisor(ChannelSupervisor):
    """A channel supervisor that waits for promotion before it publishes its first epoch."""

    def __init__(self, *args: Any, standby: Standby, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.standby = standby

    async def first_segment(self, epoch: Epoch) -> bool:
        """Hold the first publish back until promotion; tell the node when ready or failed."""
        ready = await super().first_segment(epoch)
        if self.standby.promoted.is_set():
            return ready
        if not ready:
            # A slate would follow; its publishing is refused (no lease), and the node
            # calls the handover off.
            self.standby.failed.set()
            return ready
        self.standby.ready.set()
        await self.standby.promoted.wait()
        w = self.publisher.window
        if w.starts and epoch.anchor is None:
            # The first segment starts where the old owner's last one ended (its wall clock
            # is ours within the handover), not where this epoch's clock would put it.
            first = epoch.listed[epoch.rungs[0]][0]
            end = w.starts[-1].timestamp() + w.durations[-1]
            epoch.anchor = end - first.start
        return True

    def promote(self, *, next_sequence: int, window: Window, restarts: int) -> None:
        """Continue the old owner's numbering and live window, and open the gate (the lease
        is this node's)."""
        # Numbers are fixed here, not at start: the old owner published until just now.
        self.publisher.continue_after(window, next_sequence)
        self.restarts = restarts
        self.standby.promoted.set()
