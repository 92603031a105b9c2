"""Channel and programme writes: each is one Lua script that checks before it writes."""

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
from epg.store.base import KEEP_RIGHTS, StoreBase, channel_keys, text, texts

_ROWS_PER_ARG = 64  # programme rows per script argument (a row is at most a few MB)


class WriteStore(StoreBase):
    """Channel create/update/delete and atomic programme batches."""

    async def create_channel(self, channel: Channel) -> int:
        """Add a channel; returns the change version."""
        res = await self._channel(
            keys=channel_keys(channel.id),
            args=[channel.id, self._maxlen, "create", encode_channel(channel), "", ""],
        )
        if text(res[0]) == "exists":
            raise ChannelExists(
                f"channel {channel.id} already exists", details={"channel_id": channel.id}
            )
        return int(res[1])

    async def update_channel(self, channel: Channel, expected_version: int) -> int:
        """Replace a channel if its stored version is ``expected_version``."""
        res = await self._channel(
            keys=channel_keys(channel.id),
            args=[
                channel.id,
                self._maxlen,
                "update",
                encode_channel(channel),
                str(expected_version),
                "",
            ],
        )
        status = text(res[0])
        if status == "nochannel":
            raise ChannelNotFound(f"no channel {channel.id}", details={"channel_id": channel.id})
        if status == "version":
            raise VersionMismatch(
                f"channel {channel.id} is at version {int(res[1])}, not {expected_version}",
                details={"channel_id": channel.id, "current_version": str(int(res[1]))},
            )
        return int(res[1])

    async def delete_channel(self, channel_id: str, *, force: bool) -> int:
        """Remove a channel (and, with ``force``, all its programmes)."""
        res = await self._channel(
            keys=channel_keys(channel_id),
            args=[channel_id, self._maxlen, "delete", "", "", "1" if force else "0"],
        )
        status = text(res[0])
        if status == "nochannel":
            raise ChannelNotFound(f"no channel {channel_id}", details={"channel_id": channel_id})
        if status == "notempty":
            raise ChannelNotEmpty(
                f"channel {channel_id} still has {int(res[1])} programmes; use force",
                details={"channel_id": channel_id, "programmes": str(int(res[1]))},
            )
        return int(res[1])

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
        args: list[Any] = [channel_id, self._maxlen, policy.value, len(programmes)]
        for i in range(0, len(rows), _ROWS_PER_ARG):
            args.append("\x1e".join(rows[i : i + _ROWS_PER_ARG]))
        res = await self._durability.write(
            self._redis,
            lambda client: self._write(keys=channel_keys(channel_id), args=args, client=client),
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
            version=int(res[1]),
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
        res = await self._durability.write(
            self._redis,
            lambda client: self._delete(
                keys=channel_keys(channel_id),
                args=[channel_id, self._maxlen, *extra],
                client=client,
            ),
        )
        if text(res[0]) == "nochannel":
            raise ChannelNotFound(f"no channel {channel_id}", details={"channel_id": channel_id})
        return int(res[1]), texts(res[2])
