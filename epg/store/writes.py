"""Channel and programme writes: each a channel script that checks before it writes, run
between the claim and the emit of :mod:`.feed`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from epg.domain import (
    Channel,
    Programme,
    WritePolicy,
    WriteResult,
    encode_channel,
    encode_programme,
    encode_rights,
)
from epg.errors import (
    ChannelExists,
    ChannelNotEmpty,
    ChannelNotFound,
    ProgrammeIdInUse,
    ScheduleConflict,
    VersionMismatch,
)
from epg.store.base import KEEP_RIGHTS, channel_keys, text, texts
from epg.store.feed import FeedStore

_ROWS_PER_ARG = 64  # programme rows per script argument (a row is at most a few MB)


class WriteStore(FeedStore):
    """Channel create/update/delete and atomic programme batches."""

    async def _channel_change(self, channel_id: str, *args: str) -> tuple[Any, int]:
        """Run ``channel.lua`` (op, json, expected version, force) as a feed change."""

        async def step(client: Any, sent: str) -> Any:
            return await self._channel(
                keys=channel_keys(channel_id), args=[channel_id, sent, *args], client=client
            )

        return await self._change(self._redis, channel_id, (), step)

    async def create_channel(self, channel: Channel) -> int:
        """Add a channel; returns the change version."""
        res, version = await self._channel_change(
            channel.id, "create", encode_channel(channel), "", ""
        )
        if text(res[0]) == "exists":
            raise ChannelExists(
                f"channel {channel.id} already exists", details={"channel_id": channel.id}
            )
        return version

    async def update_channel(self, channel: Channel, expected_version: int) -> int:
        """Replace a channel if its stored version is ``expected_version``."""
        res, version = await self._channel_change(
            channel.id, "update", encode_channel(channel), str(expected_version), ""
        )
        status = text(res[0])
        if status == "nochannel":
            raise ChannelNotFound(f"no channel {channel.id}", details={"channel_id": channel.id})
        if status == "version":
            raise VersionMismatch(
                f"channel {channel.id} is at version {int(res[1])}, not {expected_version}",
                details={"channel_id": channel.id, "current_version": str(int(res[1]))},
            )
        return version

    async def delete_channel(self, channel_id: str, *, force: bool) -> int:
        """Remove a channel (and, with ``force``, all its programmes)."""
        res, version = await self._channel_change(
            channel_id, "delete", "", "", "1" if force else "0"
        )
        status = text(res[0])
        if status == "nochannel":
            raise ChannelNotFound(f"no channel {channel_id}", details={"channel_id": channel_id})
        if status == "notempty":
            raise ChannelNotEmpty(
                f"channel {channel_id} still has {int(res[1])} programmes; use force",
                details={"channel_id": channel_id, "programmes": str(int(res[1]))},
            )
        return version

    async def write_programmes(
        self,
        channel_id: str,
        programmes: Sequence[Programme],
        *,
        policy: WritePolicy,
        keep_rights: bool = False,
    ) -> WriteResult:
        """Write a validated, ordered, non-overlapping batch for one channel atomically."""
        rows: list[str] = []
        for p in programmes:
            if keep_rights:
                rights = KEEP_RIGHTS
            else:
                rights = "-" if p.rights.is_default else encode_rights(p.rights)
            rows.append(f"{p.id}\x1f{p.start_s}\x1f{p.stop_s}\x1f{rights}\x1f{encode_programme(p)}")
        args: list[Any] = [policy.value, len(programmes)]
        for i in range(0, len(rows), _ROWS_PER_ARG):
            args.append("\x1e".join(rows[i : i + _ROWS_PER_ARG]))

        async def step(client: Any, sent: str) -> Any:
            return await self._write(
                keys=channel_keys(channel_id), args=[channel_id, sent, *args], client=client
            )

        claimed = [p.id for p in programmes]
        res, version = await self._durability.write(
            self._redis, lambda client: self._change(client, channel_id, claimed, step)
        )
        status = text(res[0])
        if status == "nochannel":
            raise ChannelNotFound(f"no channel {channel_id}", details={"channel_id": channel_id})
        if status == "idinuse":
            raise ProgrammeIdInUse(
                f"programme id {text(res[1])} is used on channel {text(res[2])}",
                details={"programme_id": text(res[1]), "channel_id": text(res[2])},
            )
        if status == "conflict":
            ids, pairs = texts(res[1]), texts(res[2])
            raise ScheduleConflict(
                f"overlaps {len(ids)} scheduled programme(s) on {channel_id}: {', '.join(ids)}",
                details={
                    "channel_id": channel_id,
                    "conflicting_ids": ",".join(ids),
                    "overlaps": ",".join(pairs),
                },
            )
        return WriteResult(
            version=version,
            written=texts(res[2]),
            unchanged=texts(res[3]),
            removed=texts(res[4]),
            trimmed=texts(res[5]),
        )

    async def delete_programmes(
        self,
        channel_id: str,
        *,
        ids: Sequence[str] = (),
        start: datetime | None = None,
        stop: datetime | None = None,
    ) -> tuple[int, tuple[str, ...]]:
        """Remove programmes by id, or those starting in ``[start, stop)``."""
        if start is not None and stop is not None:
            extra: list[Any] = ["range", int(start.timestamp()), int(stop.timestamp())]
        else:
            extra = ["ids", *ids]

        async def step(client: Any, sent: str) -> Any:
            return await self._delete(
                keys=channel_keys(channel_id), args=[channel_id, sent, *extra], client=client
            )

        res, version = await self._durability.write(
            self._redis, lambda client: self._change(client, channel_id, (), step)
        )
        if text(res[0]) == "nochannel":
            raise ChannelNotFound(f"no channel {channel_id}", details={"channel_id": channel_id})
        return version, texts(res[2])
