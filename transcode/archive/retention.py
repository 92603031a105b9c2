"""Retention: each channel's segments older than its catch-up days deleted, index and files
together, and the content keys no segment left needs."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import redis.asyncio as aioredis

from headend.clock import utc_now
from headend.contentkeys import ContentKeyError, scope_for_channel
from transcode.archive.index import LOOKBEHIND_SECONDS, ArchiveIndex
from transcode.domain import retention_cutoff

log = logging.getLogger(__name__)


class RetiredKeys(Protocol):
    """Content keys retired with the archive (``headend.contentkeys.ContentKeyStore``)."""

    async def delete_before(self, scope: str, before: datetime) -> int: ...


class Retention:
    """Deletes each channel's segments older than its catch-up days, index and files together,
    and (with ``keys``) the content keys no segment left needs."""

    def __init__(self, index: ArchiveIndex, *, root: Path, keys: RetiredKeys | None = None) -> None:
        self._index = index
        self._root = root
        self._keys = keys

    async def run_once(self, now: datetime) -> int:
        """One pass over every archived channel; returns how many segments were removed."""
        removed = 0
        for channel, days in (await self._index.catchup_days()).items():
            cutoff = retention_cutoff(now, days)
            for rung in await self._index.rungs(channel):
                removed += await self._index.expire(channel, rung.name, cutoff, self._root)
                removed += await asyncio.to_thread(
                    _sweep, self._root / "live" / channel / rung.name, cutoff
                )
            if self._keys is not None:
                # A segment left ends after the cutoff, so it started less than a segment
                # before it: its key's period ends after ``cutoff - lookbehind``.
                before = cutoff - timedelta(seconds=LOOKBEHIND_SECONDS)
                deleted = await self._keys.delete_before(scope_for_channel(channel), before)
                if deleted:
                    log.info("retention deleted content keys",
                             extra={"channel": channel, "keys": deleted})  # fmt: skip
        return removed

    async def run(self, *, interval_seconds: float, stop: asyncio.Event) -> None:
        """Pass every ``interval_seconds`` until ``stop`` is set."""
        while not stop.is_set():
            try:
                removed = await self.run_once(utc_now())
                if removed:
                    log.info("retention removed segments", extra={"segments": removed})
            except (aioredis.RedisError, OSError, ContentKeyError):
                log.exception("retention pass failed")
            try:
                await asyncio.wait_for(stop.wait(), interval_seconds)
            except TimeoutError:
                pass


def _sweep(directory: Path, cutoff: datetime) -> int:
    """Remove segment files older than ``cutoff`` that the index no longer references."""
    if not directory.is_dir():
        return 0
    removed = 0
    limit = cutoff.timestamp()
    for path in (*directory.glob("*.ts"), *directory.glob("*.vtt")):
        try:
            if path.stat().st_mtime < limit:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
