"""A live channel's output disk: full when a write failed for want of space, or when less
is free than a few segments of the ladder; no event says space is back, so it is polled."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class DiskSpace:
    """Whether a channel's output directory has room for its ladder to keep writing."""

    def __init__(
        self, directory: Path, *, channel_id: str, headroom_bytes: int, poll_seconds: float
    ) -> None:
        self.directory = directory
        self.headroom_bytes = headroom_bytes
        self.reason = ""
        self._channel_id = channel_id
        self._poll_seconds = poll_seconds
        self._full = asyncio.Event()

    @property
    def full(self) -> bool:
        """A write failed for want of space, and space has not been seen back since."""
        return self._full.is_set()

    async def filled(self) -> None:
        """Until a write fails for want of space (at once if one has)."""
        await self._full.wait()

    def report(self, detail: str) -> None:
        """Something could not be written for want of space (FFmpeg or a publish said ENOSPC)."""
        if not self._full.is_set():
            log.error("live output disk full", extra={"channel": self._channel_id,
                                                      "error": detail})  # fmt: skip
        self.reason = detail
        self._full.set()

    def short(self) -> bool:
        """Full, or less free than the headroom (then that is the reason)."""
        if self._full.is_set():
            return True
        free = self.free_bytes()
        if free >= self.headroom_bytes:
            return False
        self.reason = f"{free} bytes free"
        return True

    async def wait_for_space(self, check: Callable[[], None]) -> None:
        """Poll until the headroom is free again (``check`` may raise to give up), then clear."""
        while self.free_bytes() < self.headroom_bytes:
            check()
            await asyncio.sleep(self._poll_seconds)
        self._full.clear()
        self.reason = ""
        log.info("live output disk has space again", extra={"channel": self._channel_id})

    def free_bytes(self) -> int:
        """Free bytes on the file system that holds (or will hold) the directory."""
        path = self.directory
        while not path.exists() and path != path.parent:
            path = path.parent
        return shutil.disk_usage(path).free
