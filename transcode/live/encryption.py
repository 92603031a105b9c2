"""Encrypting a live channel's segments: the content key of each rotation period, and the files.

Every rung's file of sequence number N is encrypted (AES-128, whole segment,
``headend.contentkeys.cipher``) with the key of the period its media starts in
(``floor(start epoch seconds / rotation_seconds)``) and the IV N, before it enters
the window: every rung of N gets the same key, so rotation is aligned across rungs.

The key is asked of the content key store at most once per segment (never per
rung): :class:`ChannelKeys` keeps the current period's key and asks again only
at a new period or after ``recheck_seconds`` (so an operator's rotation or
revocation, which gives the same period a new key, reaches the channel
quickly). When the store cannot be reached the last key is kept, so rotation
waits and is logged; with no key at all a segment is never published in clear:
:meth:`ChannelKeys.key_at` answers None and says why (:attr:`ChannelKeys.problem`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import redis.asyncio as aioredis

from headend.contentkeys import (
    ContentKey,
    ContentKeyError,
    ContentKeySettings,
    ContentKeyStore,
    CpixKeyProvider,
    key_uri,
    scope_for_channel,
)
from headend.contentkeys.cipher import encrypt_segment
from headend.contentkeys.provider import provider_for
from transcode.domain import LiveChannel

log = logging.getLogger(__name__)

# A period's key is asked again this often: an operator's rotate-now or revoke gives
# the period a new key, and new segments must not keep the old one for long.
RECHECK_SECONDS = 5.0


class ContentKeys(Protocol):
    """What a channel needs of the content key store (``headend.contentkeys.ContentKeyStore``)."""

    async def key_for(self, scope: str, period: int, *, rotation_seconds: int) -> ContentKey: ...


@dataclass(frozen=True, slots=True)
class LiveEncryption:
    """What a node encrypts its channels with (``CONTENT_KEY*`` settings and the key store)."""

    store: ContentKeys
    base_url: str  # CONTENT_KEY_BASE_URL: the front door as boxes reach it
    rotation_seconds: int  # CONTENT_KEY_ROTATION_SECONDS: a channel's default
    # Closes what the store's key provider holds (a CPIX provider's HTTP session).
    aclose: Callable[[], Awaitable[None]] | None = None


def live_encryption(settings: ContentKeySettings, redis: aioredis.Redis) -> LiveEncryption | None:
    """A node's encryption from its ``CONTENT_KEY*`` settings; None without ``CONTENT_KEKS``
    (an encrypted channel then publishes nothing on this node, and says why)."""
    if settings.keks is None:
        return None
    provider = provider_for(settings)  # CONTENT_KEY_PROVIDER: local, or the vendor's (CPIX)
    return LiveEncryption(
        ContentKeyStore(redis, settings.keks, provider),
        base_url=settings.base_url,
        rotation_seconds=settings.rotation_seconds,
        aclose=provider.aclose if isinstance(provider, CpixKeyProvider) else None,
    )


def key_period(start: datetime, rotation_seconds: int) -> int:
    """The rotation period a segment whose media starts at ``start`` belongs to."""
    return math.floor(start.timestamp() / rotation_seconds)


class ChannelKeys:
    """One encrypted channel's content keys, as its publisher asks for them."""

    def __init__(
        self,
        channel: LiveChannel,
        encryption: LiveEncryption | None,
        *,
        timeout_seconds: float,
        recheck_seconds: float = RECHECK_SECONDS,
    ) -> None:
        self._channel = channel.id
        self._scope = scope_for_channel(channel.id)
        # None: this node has no key store (CONTENT_KEKS unset), so it publishes nothing.
        self._encryption = encryption
        default = encryption.rotation_seconds if encryption is not None else 0
        self.rotation_seconds = channel.encryption.rotation_seconds or default
        self._timeout = timeout_seconds
        self._recheck = recheck_seconds
        self._key: ContentKey | None = None
        self._asked = -math.inf  # monotonic time of the last answer
        # Why the last segment could not get its period's key ("" when it did).
        self.problem = ""

    def uri(self, key_id: str) -> str:
        """Where boxes fetch the key ``key_id`` (the front door)."""
        base = self._encryption.base_url if self._encryption is not None else ""
        return key_uri(base, scope_for_channel(self._channel), key_id)

    async def key_at(self, start: datetime) -> ContentKey | None:
        """The key for a segment starting at ``start``: its period's, or the last one while the
        store is unreachable; None when there is none at all (publish nothing then)."""
        if self._encryption is None:
            self.problem = "encrypted, but this node has no content key store (set CONTENT_KEKS)"
            return None
        period = key_period(start, self.rotation_seconds)
        key = self._key
        now = time.monotonic()
        if key is not None and key.period == period and now - self._asked < self._recheck:
            return key
        try:
            async with asyncio.timeout(self._timeout):
                fresh = await self._encryption.store.key_for(
                    self._scope, period, rotation_seconds=self.rotation_seconds
                )
        except (ContentKeyError, aioredis.RedisError, OSError, TimeoutError) as err:
            reason = f"content key store unavailable ({type(err).__name__}: {err})"
            if key is None:
                self.problem = f"{reason}: no content key yet, segments are not published"
            else:
                self.problem = ""
                reason += f"; period {period} keeps the key of period {key.period}"
            log.warning("content key not renewed", extra={"channel": self._channel,
                                                          "reason": reason})  # fmt: skip
            return key
        if key is None or fresh.key_id != key.key_id:
            log.info("content key in use", extra={"channel": self._channel, "period": period,
                                                   "key_id": fresh.key_id})  # fmt: skip
        self._key, self._asked, self.problem = fresh, now, ""
        return fresh


def encrypt_files(sources: Sequence[Path], key: bytes, sequence: int) -> list[Path]:
    """Each file encrypted as segment ``sequence`` beside it (``.enc``); returns the encrypted
    files in the same order (the clear ones stay until the encrypted ones are published).
    Runs on a worker thread."""
    out: list[Path] = []
    try:
        for source in sources:
            dest = source.with_name(source.name + ".enc")
            out.append(dest)
            dest.write_bytes(encrypt_segment(source.read_bytes(), key, sequence))
    except OSError:
        for done in out:
            done.unlink(missing_ok=True)  # a half-written one would hold space on a full disk
        raise
    return out
