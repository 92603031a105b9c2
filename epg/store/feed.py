"""The steps around every change to a channel, and the repair of changes left half way.

A channel's keys share its hash tag (``epg:{<channel>}:...``); the change feed (version
counter, stream), the channel catalogue and the programme id reservations share the
``{epg}`` tag. On Redis Cluster those are different slots, so no one script may touch
both, and every change (channel record or schedule) runs in three ordered steps:

1. ``claim.lua`` (feed tag): refuse programme ids another channel holds (ids are unique
   across channels), reserve the new ones for this channel, count the change in flight.
2. the channel script (``write``/``delete``/``channel.lua``, channel tag): checks
   everything before writing anything, as before; then writes, numbers the change and
   keeps it in the channel's outbox. It returns every outbox entry the feed may still lack.
3. ``emit.lua`` (feed tag): appends those entries to the feed in the channel's order, each
   once (the feed remembers the last number it has from each channel), under the next
   versions; updates the catalogue; frees the ids the change removed. A change refused
   in step 2 runs ``release.lua`` instead, which drops the reservations step 1 made, so a
   refused change leaves the store as it was.

A change is acknowledged (with its version) after step 3, and its data is written before
it is in the feed, so a watcher that reads on a change sees it. When a writer stops
between steps:

- after 1: its new ids stay reserved for its channel (other channels are refused them;
  ``get_programme`` finds nothing). Retrying the same write completes it.
- after 2: the change is stored and in the outbox but not in the feed. The channel's next
  change forwards it first; a feed reader forwards it once its claim is older than
  :data:`SETTLE_SECONDS` (:meth:`FeedStore.settle`, run by :meth:`read_changes`). So every
  change reaches the feed, in order per channel, exactly once.

An id a change removes is freed only when no other change of the channel is in flight
(such a change may be writing it again); otherwise it stays reserved for the channel.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from epg.store.base import (
    CLAIM_KEYS,
    EMIT_KEYS,
    PENDING,
    PROGRAMMES,
    SENT,
    StoreBase,
    channel_keys,
    text,
)

# Longer than any change takes from its claim to its emit: older claims are repaired.
SETTLE_SECONDS = 30.0
# How often a feed reader looks for changes to repair.
_SETTLE_CHECK_SECONDS = 5.0
_SETTLE_BATCH = 100  # channels repaired per look

ChannelStep = Callable[[Any, str], Awaitable[Any]]


class FeedStore(StoreBase):
    """Runs a channel change in its three steps; repairs changes whose writer stopped."""

    async def _change(
        self, client: Any, channel_id: str, ids: Sequence[str], step: ChannelStep
    ) -> tuple[Any, int]:
        """Claim ``ids``, run ``step(client, sent)`` (the channel script), then emit.

        Returns the channel script's reply (or the claim's refusal) and the change's
        version (the current version when nothing changed).
        """
        claim = await self._claim(keys=CLAIM_KEYS, args=[channel_id, *ids], client=client)
        if text(claim[0]) != "ok":
            return claim, 0
        stamp, sent, version = text(claim[1]), text(claim[2]), int(claim[3])
        res = await step(client, sent)
        if text(res[0]) != "ok":
            await self._release(
                keys=[PROGRAMMES, PENDING], args=[channel_id, stamp, *ids], client=client
            )
            return res, version
        # Written: this replica's next NowNext reads it, without waiting for the feed.
        self.nownext.drop(channel_id)
        emitted = await self._forward(client, channel_id, res[-1], "writer")
        seq = int(res[1])
        if seq:
            # Another writer of this channel may have forwarded this change already: its
            # channel's latest version in the feed is then the one that includes it.
            versions = dict(zip(emitted[1::2], emitted[2::2], strict=True))
            version = int(versions.get(seq, emitted[0]))
        return res, version

    async def _forward(self, client: Any, channel_id: str, entries: Any, mode: str) -> Any:
        """Step 3: the channel's outbox ``entries`` into the feed (``emit.lua``)."""
        return await self._emit(
            keys=EMIT_KEYS, args=[channel_id, self._maxlen, mode, *entries], client=client
        )

    async def settle(self, *, older_than_seconds: float = SETTLE_SECONDS) -> int:
        """Forward the changes whose writer stopped before step 3; how many channels."""
        rows = await self._stale(
            keys=[PENDING, SENT], args=[int(older_than_seconds * 1_000_000), _SETTLE_BATCH]
        )
        for i in range(0, len(rows), 3):
            channel_id, seen, sent = text(rows[i]), text(rows[i + 1]), text(rows[i + 2])
            entries = await self._outbox(keys=channel_keys(channel_id), args=[channel_id, sent])
            await self._forward(self._redis, channel_id, entries, seen)
        return len(rows) // 3

    async def _settle_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._settled_at >= _SETTLE_CHECK_SECONDS:
            self._settled_at = now
            await self.settle()
