"""Catch-up by programme: resolve an EPG programme id to its ``[start, stop)`` window."""

from __future__ import annotations

from datetime import UTC

import grpc

from headend.rpc import ClientTls, bearer, client_channel
from protos import epg_pb2, epg_pb2_grpc
from transcode.domain import Window
from transcode.errors import CatchupNotAllowed, EpgUnavailable, ProgrammeNotFound


class EpgProgrammes:
    """Looks programmes up with ``EpgService.GetProgramme`` (one channel, reused, TLS if given)."""

    def __init__(
        self,
        target: str,
        api_key: str,
        *,
        tls: ClientTls | None = None,
        timeout_seconds: float = 2.0,
    ) -> None:
        self._channel = client_channel(target, tls=tls)
        self._stub = epg_pb2_grpc.EpgServiceStub(self._channel)
        self._metadata = bearer(api_key)
        self._timeout = timeout_seconds

    async def window(self, channel_id: str, programme_id: str) -> Window:
        """The programme's window; refuses other channels' programmes and catch-up-barred ones."""
        try:
            programme = await self._stub.GetProgramme(
                epg_pb2.GetProgrammeRequest(id=programme_id),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise ProgrammeNotFound(f"no programme {programme_id}") from err
            raise EpgUnavailable(f"EPG lookup failed: {err.code().name}") from err
        if programme.channel_id != channel_id:
            raise ProgrammeNotFound(f"no programme {programme_id} on channel {channel_id}")
        if programme.HasField("catchup_allowed") and not programme.catchup_allowed:
            raise CatchupNotAllowed(f"programme {programme_id} is not available for catch-up")
        return Window(programme.start.ToDatetime(tzinfo=UTC), programme.stop.ToDatetime(tzinfo=UTC))

    async def close(self) -> None:
        """Close the gRPC channel."""
        await self._channel.close()
