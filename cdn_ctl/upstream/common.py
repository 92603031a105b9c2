"""What both upstream caches share: deny reasons, failure mapping, outage back-off."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from cdn_ctl.errors import UpstreamUnavailable
from headend.errors import HeadendError
from headend.rpc import ServiceUnavailable

log = logging.getLogger("cdn_ctl.upstream")

Clock = Callable[[], float]
T = TypeVar("T")
# How long a service that failed without saying when to come back is left alone.
DEFAULT_RETRY_SECONDS = 1.0
# gRPC backs a lost connection off up to 120 s by default: a service that was away
# for a minute would then stay unreachable for minutes after it came back.
CHANNEL_OPTIONS = (("grpc.max_reconnect_backoff_ms", 5_000),)

_DENY = {
    "NOT_ENTITLED": "not_entitled",
    "SUBSCRIBER_SUSPENDED": "subscriber_suspended",
    "SERVICE_EXPIRED": "service_expired",
    "DEVICE_BLOCKED": "device_blocked",
    "UNKNOWN_DEVICE": "unknown_device",
    "SUBSCRIBER_TERMINATED": "subscriber_terminated",
    "CARRIER_NOT_ACTIVE": "carrier_not_active",
}


def deny_reason(name: str) -> str:
    """The box-facing reason for a subscriber ``DenyReason`` name."""
    return _DENY.get(name, name.lower() or "not_entitled")


def unavailable(service: str, err: HeadendError) -> UpstreamUnavailable:
    """The front door's 503 for a failed call to ``service`` (logged here, once)."""
    kind = err.reason if isinstance(err, ServiceUnavailable) else type(err).__name__
    log.warning(
        "upstream call failed",
        extra={"service": service, "error": kind, "details": err.message},
    )
    return UpstreamUnavailable(f"{service} unavailable: {kind}", reason=f"{service}_unavailable")


class Outage:
    """Whether a service is known to be failing, and until when to leave it alone.

    While it is, callers that hold an older answer serve it (within their stale bound)
    without a call, instead of paying a failing round trip on every box request.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0

    @property
    def active(self) -> bool:
        """True until the retry time the service last gave (or the default) has passed."""
        return self._clock() < self._until

    def failed(self, err: HeadendError) -> None:
        """Note a failed call, honouring the retry delay a ``ServiceUnavailable`` carries."""
        delay = err.retry_delay_seconds if isinstance(err, ServiceUnavailable) else None
        self._until = self._clock() + (delay if delay else DEFAULT_RETRY_SECONDS)

    def recovered(self) -> None:
        """A call succeeded."""
        self._until = 0.0

    async def answer(
        self,
        service: str,
        call: Callable[[], Awaitable[T]],
        *,
        stale: T | None,
        passes: tuple[type[Exception], ...] = (),
    ) -> tuple[T, bool]:
        """``call``'s answer and True, or an older one and False (stale-if-error): while the
        service is known to be failing, ``stale`` (None when there is none) is served without
        a call; a call that fails is noted and answered with ``stale`` if there is one, else
        with the front door's 503. Errors in ``passes`` mean something else: they pass."""
        if stale is not None and self.active:
            return stale, False
        try:
            result = await call()
        except passes:
            raise
        except HeadendError as err:
            self.failed(err)
            failure = unavailable(service, err)
            if stale is not None:
                return stale, False
            raise failure from err
        self.recovered()
        return result, True
