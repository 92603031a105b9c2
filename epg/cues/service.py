"""The cue use cases (no gRPC): who may insert, cancel and read which channel's cues, the
cancellation rule, the window of a list, and the audit of every change (a log line and a
metric).

The admin and the broadcaster owning the channel (``epg.access.may_write``, the guide's own
rule) insert, cancel and read; the playback role (the front doors, the farm) reads every
channel's; nobody else sees cues. A cue not started yet is cancelled; a running one is
shortened to end now (its return is signalled, its blackout ends); an ended one stays.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime

from epg import access
from epg.cues import rules
from epg.cues.domain import Cue, CueState
from epg.cues.errors import CueChanged, CueEnded, CueNotFound
from epg.cues.store import KEEP, CueStore
from epg.domain import Channel, validate_channel_id
from epg.errors import ChannelNotFound, NotAllowed
from epg.metrics import CueMetrics
from epg.store import EpgStore
from headend.auth import Principal, key_id
from headend.clock import utc_now
from headend.logs import current_request_id

# A cancellation read, computed and refused because another changed the cue is tried again.
_ATTEMPTS = 5
log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def by_start(cue: Cue) -> str:
    """A sort key ordering cues by start, then channel and id: the page order."""
    return f"{int(cue.start.timestamp() * 1000):015d} {cue.channel_id} {cue.id}"


class CueService:
    """Insert, cancel, read and list cues."""

    def __init__(
        self,
        *,
        store: CueStore,
        channels: EpgStore,
        metrics: CueMetrics | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._channels = channels
        self._metrics = metrics
        self._clock = clock

    # ---------------------------------------------------------------- who may

    @staticmethod
    def require_writer(principal: Principal) -> None:
        """Refuse a role that may never change cues (before the request is read, so an
        outsider learns nothing about what a valid cue is)."""
        access.require_writer(principal, "change cues")

    @staticmethod
    def require_reader(principal: Principal) -> None:
        """Refuse a role that never sees cues."""
        if principal.role not in access.CUE_ROLES:
            raise NotAllowed(f"{principal} may not read cues")

    async def check_channel(self, principal: Principal, channel_id: str, *, write: bool) -> Channel:
        """The channel if it exists (``ChannelNotFound``) and ``principal`` may change
        (``write``) or read its cues (``NotAllowed``): the server asks before it reads the
        rest of the request."""
        validate_channel_id(channel_id, "parent")
        channel = await self._channels.get_channel(channel_id)
        if channel is None:
            raise ChannelNotFound(f"no channel {channel_id}", details={"channel_id": channel_id})
        if not (access.may_write if write else access.may_read_cues)(principal, channel):
            verb = "change" if write else "read"
            raise NotAllowed(
                f"{principal} may not {verb} the cues of channel {channel_id}",
                details={"channel_id": channel_id},
            )
        return channel

    # ---------------------------------------------------------------- changes

    async def insert(
        self, principal: Principal, cue: Cue, *, api_key: str, validate_only: bool = False
    ) -> Cue:
        """Check and store a new cue (``start`` :data:`~epg.cues.rules.START_NOW`: now; an
        empty id: the server's). ``validate_only`` checks it and stores nothing."""
        self.require_writer(principal)
        await self.check_channel(principal, cue.channel_id, write=True)
        now = self._clock()
        checked = rules.validate(
            dataclasses.replace(
                cue,
                id=cue.id or rules.new_cue_id(now),
                state=CueState.SCHEDULED,
                creator=str(principal),
                created=now,
                version=1,
            ),
            now,
        )
        if validate_only:
            return checked
        stored, new = await self._store.insert(
            checked, start_given=cue.start != rules.START_NOW, now=now
        )
        if new:
            self._audit("insert", stored, principal, api_key)
        return stored

    async def cancel(
        self, principal: Principal, channel_id: str, cue_id: str, *, api_key: str
    ) -> Cue:
        """Withdraw a cue not started yet (CANCELLED), or end a running one now;
        ``CueEnded`` for one that ended or was cancelled."""
        self.require_writer(principal)
        rules.validate_cue_id(cue_id, "name")
        await self.check_channel(principal, channel_id, write=True)
        for _ in range(_ATTEMPTS):
            now = self._clock()
            cue = await self._get(channel_id, cue_id)
            if cue.state is CueState.CANCELLED:
                raise CueEnded(f"cue {cue_id} of channel {channel_id} was cancelled already")
            if now <= cue.start:
                after = dataclasses.replace(cue, state=CueState.CANCELLED, version=cue.version + 1)
            elif now < cue.end:
                after = dataclasses.replace(
                    cue,
                    duration_seconds=(now - cue.start).total_seconds(),
                    version=cue.version + 1,
                )
            else:
                raise CueEnded(f"cue {cue_id} of channel {channel_id} has ended")
            try:
                stored = await self._store.replace(cue, after)
            except CueChanged:
                continue
            self._audit("cancel", stored, principal, api_key)
            return stored
        raise CueChanged(f"cue {cue_id} of channel {channel_id} kept changing; try again")

    # ---------------------------------------------------------------- reads

    async def get(self, principal: Principal, channel_id: str, cue_id: str) -> Cue:
        """One cue."""
        self.require_reader(principal)
        rules.validate_cue_id(cue_id, "name")
        await self.check_channel(principal, channel_id, write=False)
        return await self._get(channel_id, cue_id)

    async def list_cues(
        self,
        principal: Principal,
        channel_id: str | None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Cue]:
        """The cues of ``channel_id`` (None: of every channel ``principal`` may read) that
        run, or were to run, at some instant of ``[start, end)`` (``rules.window``'s
        defaults), by start then channel and id."""
        self.require_reader(principal)
        now = self._clock()
        start, end = rules.window(start, end, now)
        if channel_id is not None:
            await self.check_channel(principal, channel_id, write=False)
            ids = [channel_id]
        else:
            with_cues = set(await self._store.channels())
            ids = [
                c.id
                for c in await self._channels.list_channels()
                if c.id in with_cues and access.may_read_cues(principal, c)
            ]
        kept_after = now - KEEP
        found = await self._store.ending_after(ids, start)
        return sorted(
            (c for c in found if rules.overlaps(c, start, end) and c.end >= kept_after),
            key=by_start,
        )

    async def _get(self, channel_id: str, cue_id: str) -> Cue:
        cue = await self._store.get(channel_id, cue_id)
        if cue is None:
            raise CueNotFound(f"channel {channel_id} has no cue {cue_id}")
        return cue

    def _audit(self, action: str, cue: Cue, principal: Principal, api_key: str) -> None:
        """The structured log line and the metric of one change."""
        if self._metrics is not None:
            self._metrics.change(action)
        log.info(
            "cue %s: %s/%s",
            action,
            cue.channel_id,
            cue.id,
            extra={
                "action": action,
                "channel_id": cue.channel_id,
                "cue_id": cue.id,
                "principal": str(principal),
                "key_id": key_id(api_key),
                "request_id": current_request_id(),
                "state": cue.state.value,
                "start": cue.start.isoformat(),
                "duration_seconds": cue.duration_seconds,
            },
        )
