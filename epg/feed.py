"""The EPG's change feed (``WatchChanges``): positioned now, replayed from a version, and
filtered to what the caller may see.

A mixin of :class:`epg.service.EpgService` (which owns the store and the access checks it
uses). Every change is read from the store's one history; a caller sees a channel's
programme and record changes only for channels it may read (a broadcaster its own), its
cue changes only with a role that may see cues, and alert changes only with a role that
may read alerts, whatever its channel filter (alerts concern every channel).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

from epg.access import CUE_ROLES, may_read_alerts, require_reader
from epg.domain import Change, ChangeFeed, Channel
from epg.store import EpgStore
from headend.auth import Principal


class ChangeFeeds:
    """``open_changes``; the store, the block time and ``_readable`` are the service's."""

    _store: EpgStore
    _watch_block_ms: int
    _readable: Callable[[Principal, str], Awaitable[Channel]]

    async def open_changes(
        self,
        principal: Principal,
        *,
        from_version: int = 0,
        channel_ids: Sequence[str] = (),
    ) -> ChangeFeed:
        """Position a change feed now; iterating it yields changes after ``from_version``
        (0: after the current version), forever.

        When the history after ``from_version`` has been trimmed, or the store's
        versions went backwards (a restored or replaced Redis), a ``resync`` change
        comes first: the caller must drop its whole cache.
        """
        require_reader(principal)
        wanted = frozenset(channel_ids)
        for cid in wanted:
            await self._readable(principal, cid)
        latest = await self._store.version()
        resync = False
        if from_version <= 0:
            cursor = latest
        elif from_version > latest:
            # Versions the caller saw no longer exist here: it cannot resume.
            cursor, resync = latest, True
        else:
            cursor = from_version
            oldest = await self._store.oldest_change()
            resync = (oldest is None and latest > from_version) or (
                oldest is not None and oldest > from_version + 1
            )
        return ChangeFeed(cursor, self._follow(principal, cursor, resync, wanted))

    async def _follow(
        self, principal: Principal, cursor: int, resync: bool, wanted: frozenset[str]
    ) -> AsyncGenerator[Change, None]:
        if resync:
            yield Change(version=cursor, kind="resync", channel_id="")
        owners: dict[str, str] = {}
        while True:
            # A quiet feed comes back empty every block (the store keeps blocks under the
            # Redis socket timeout) and simply waits again: it never ends by itself.
            for change in await self._store.read_changes(cursor, block_ms=self._watch_block_ms):
                cursor = change.version
                if change.kind == "alerts":
                    # Alerts concern every channel, whatever the filter; their readers only.
                    if may_read_alerts(principal):
                        yield change
                    continue
                if change.kind == "cues" and principal.role not in CUE_ROLES:
                    continue  # a channel's cues: its writers' and the playback role's only
                if wanted and change.channel_id not in wanted:
                    continue
                if principal.role == "broadcaster":
                    owner = owners.get(change.channel_id)
                    if owner is None:
                        channel = await self._store.get_channel(change.channel_id)
                        owner = channel.owner if channel else ""
                        owners[change.channel_id] = owner
                    if owner != principal.tenant:
                        continue
                yield change
