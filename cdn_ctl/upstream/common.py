"""What both upstream clients share: deny reasons, failure mapping, outage back-off."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import grpc

from cdn_ctl.errors import UpstreamUnavailable
from headend.rpc import error_details

log = logging.getLogger("cdn_ctl.upstream")

Clock = Callable[[], float]
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


def unavailable(service: str, err: grpc.aio.AioRpcError) -> UpstreamUnavailable:
    """The front door's 503 for a failed call to ``service`` (logged here, once)."""
    log.warning(
        "upstream call failed",
        extra={"service": service, "code": err.code().name, "details": err.details()},
    )
    return UpstreamUnavailable(
        f"{service} unavailable: {err.code().name}", reason=f"{service}_unavailable"
    )


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

    def failed(self, err: grpc.aio.AioRpcError) -> None:
        """Note a failed call, honouring the ``RetryInfo`` delay the server attached."""
        delay = error_details(err).retry_delay_seconds
        self._until = self._clock() + (delay if delay else DEFAULT_RETRY_SECONDS)

    def recovered(self) -> None:
        """A call succeeded."""
        self._until = 0.0
