"""What the helpdesk reads: a box's latest requests, subscriber counts and refused
provisioning requests.

A box's requests are recorded where the service answers them, refused ones with why:
a deny reason when playback was refused for one, else a code of its own
(``STREAM_LIMIT_REACHED``, ``BAD_SECRET``, ``LEASE_NOT_FOUND``) and the refusal in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from subscriber.domain.values import DenyReason, SubscriberStatus

DeviceEventKind = Literal["login", "authorize", "start_session", "end_session"]
DEVICE_EVENT_KINDS: tuple[DeviceEventKind, ...] = (
    "login",
    "authorize",
    "start_session",
    "end_session",
)
# A box keeps its latest events for a week (the proto's ListDeviceEventsRequest says so).
DEVICE_EVENTS_KEPT = 200
DEVICE_EVENTS_TTL_SECONDS = 7 * 86_400
# Each carrier keeps its latest refused provisioning requests and failed import rows.
PROVISIONING_ERRORS_KEPT = 500
# Refusals that are not deny reasons.
BAD_SECRET = "BAD_SECRET"
STREAM_LIMIT_REACHED = "STREAM_LIMIT_REACHED"
LEASE_NOT_FOUND = "LEASE_NOT_FOUND"
_DENY_REASONS = {reason.value: reason for reason in DenyReason}
_DETAILS = {
    DenyReason.NOT_ENTITLED: "no entitled package carries the channel",
    DenyReason.SUBSCRIBER_SUSPENDED: "the subscriber is suspended",
    DenyReason.SERVICE_EXPIRED: "the subscriber's service has ended",
    DenyReason.DEVICE_BLOCKED: "the box is blocked",
    DenyReason.UNKNOWN_DEVICE: "the box is not bound",
    DenyReason.SUBSCRIBER_TERMINATED: "the subscriber is terminated",
    DenyReason.CARRIER_NOT_ACTIVE: "the carrier is suspended",
    BAD_SECRET: "wrong or missing device secret",
    LEASE_NOT_FOUND: "no live lease with that id for this box",
}


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """One request a box made and the answer: ``refusal`` is '' when allowed, else a
    ``DenyReason`` value or one of this module's codes; ``detail`` says it in words."""

    time: datetime
    kind: DeviceEventKind
    channel_id: str
    refusal: str
    detail: str
    lease_id: str

    @property
    def allowed(self) -> bool:
        """True when the request was granted."""
        return not self.refusal

    @property
    def deny_reason(self) -> DenyReason | None:
        """The refusal as a deny reason, or None (allowed, or refused for another cause)."""
        return _DENY_REASONS.get(self.refusal)


def refusal_detail(refusal: str, detail: str = "") -> str:
    """The words for a refusal: ``detail`` when the recorder gave some, else the reason's."""
    return detail or _DETAILS.get(refusal, refusal.lower().replace("_", " "))


@dataclass(frozen=True, slots=True)
class SubscriberCount:
    """How many subscribers of a carrier are in one status."""

    carrier_id: str
    status: SubscriberStatus
    count: int


@dataclass(frozen=True, slots=True)
class ProvisioningError:
    """A refused provisioning request or failed import row of a carrier: who, which RPC,
    on what, and the error's reason (UPPER_SNAKE_CASE) and message."""

    time: datetime
    carrier_id: str
    principal: str
    rpc: str
    subject: str
    reason: str
    message: str
