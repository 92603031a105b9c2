"""What the ``SubscriberService`` servicer's parts share: the service and idempotent runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import Message

from headend.rpc import principal
from subscriber import convert
from subscriber.service import SubscriberService

M = TypeVar("M", bound=Message)


class ServicerBase:
    """The service, and :meth:`_once` for the mutating RPCs."""

    def __init__(self, *, service: SubscriberService) -> None:
        self._service = service

    async def _once(
        self,
        method: str,
        request: Message,
        key: str,
        response_type: type[M],
        run: Callable[[], Awaitable[M]],
    ) -> M:
        """Run ``run`` once per idempotency ``key`` (``request``'s), replaying its answer."""

        async def go() -> bytes:
            return (await run()).SerializeToString()

        raw = await self._service.idempotent(
            principal(), key, convert.fingerprint(method, request), go
        )
        return response_type.FromString(raw)
