"""Helpdesk: one box by its MAC: the box, its subscriber, entitlements, the channels it may
play now, its live leases, and its latest requests with why each refused one was refused.

``ListDeviceEvents`` on ``carriers/-/devices/{mac}`` finds the box under any carrier the
operator may read (a carrier: only its own) and names it; the rest is read by that name.
The MAC is checked by the subscriber domain's own rule before any call.
"""

from __future__ import annotations

from typing import Any

from console.pages.subscribers import STATUSES
from console.view import Data, View, last_segment, when
from protos import subscriber_pb2
from subscriber.domain.rules import normalize_mac

_DEVICE_STATUS = {
    subscriber_pb2.DEVICE_STATUS_BOUND: "bound",
    subscriber_pb2.DEVICE_STATUS_ACTIVATED: "activated",
    subscriber_pb2.DEVICE_STATUS_BLOCKED: "blocked",
    subscriber_pb2.DEVICE_STATUS_UNBOUND: "unbound",
}
EVENTS_SHOWN = 50


def _event(event: subscriber_pb2.DeviceEvent) -> dict[str, Any]:
    kind = subscriber_pb2.DeviceEventKind.Name(event.kind).removeprefix("DEVICE_EVENT_KIND_")
    reason = subscriber_pb2.DenyReason.Name(event.reason).removeprefix("DENY_REASON_")
    refused = not event.allowed
    return {
        "time": when(event.time),
        "kind": kind,
        "channel": event.channel_id,
        "allowed": event.allowed,
        # The catalogue's words for a deny reason; OTHER when the refusal was not one
        # (the detail then says what it was).
        "why": ("deny." + (reason if reason not in ("NONE", "UNSPECIFIED") else "OTHER"))
        if refused
        else "",
        "reason": reason if refused else "",
        "detail": event.detail,
        "lease_id": event.lease_id,
    }


async def load_helpdesk(view: View) -> Data:
    """The box named by ``?mac=`` (an empty form without one)."""
    given = view.query.get("mac", "").strip()
    if not given:
        return {"mac": "", "found": False}
    mac = normalize_mac(given)
    events = await view.call(
        view.services.subscribers.ListDeviceEvents,
        subscriber_pb2.ListDeviceEventsRequest(
            parent=f"carriers/-/devices/{mac.replace(':', '')}", page_size=EVENTS_SHOWN
        ),
    )
    device = await view.call(
        view.services.subscribers.GetDevice, subscriber_pb2.GetDeviceRequest(name=events.device)
    )
    subscriber = await view.call(
        view.services.subscribers.GetSubscriber,
        subscriber_pb2.GetSubscriberRequest(name=device.subscriber),
    )
    entitlements = await view.call(
        view.services.subscribers.ListEntitlements,
        subscriber_pb2.ListEntitlementsRequest(parent=device.subscriber, page_size=1000),
    )
    effective = await view.call(
        view.services.subscribers.EffectiveChannels,
        subscriber_pb2.EffectiveChannelsRequest(name=device.subscriber),
    )
    return {
        "mac": mac,
        "found": True,
        "device": {
            "name": device.name,
            "mac": device.mac,
            "model": device.model,
            "serial": device.serial,
            "status": _DEVICE_STATUS.get(device.status, "unknown"),
            "bound": when(device.bind_time),
            "activated": when(device.activate_time),
        },
        "subscriber": {
            "name": subscriber.name,
            "id": last_segment(subscriber.name),
            "carrier": subscriber.name.split("/")[1],
            "display_name": subscriber.display_name,
            "region": subscriber.region_code,
            "status": STATUSES.get(subscriber.status, "unknown"),
            "max_streams": subscriber.max_streams,
            "service_end": when(subscriber.service_end),
        },
        "entitlements": [
            {
                "package": last_segment(e.name),
                "from": when(e.valid_from),
                "until": when(e.valid_until),
            }
            for e in entitlements.entitlements
        ],
        "channels": list(effective.channel_ids),
        "leases": [
            {
                "lease_id": s.lease_id,
                "mac": s.mac,
                "channel": s.channel_id,
                "expires": when(s.expire_time),
            }
            for s in events.active_sessions
        ],
        "events": [_event(e) for e in events.events],
    }
