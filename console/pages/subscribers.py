"""Subscribers: counts by carrier and status, and recent provisioning errors."""

from __future__ import annotations

from typing import Any

from console.view import Data, View, last_segment, when
from protos import subscriber_pb2

STATUSES = {
    subscriber_pb2.SUBSCRIBER_STATUS_ACTIVE: "active",
    subscriber_pb2.SUBSCRIBER_STATUS_SUSPENDED: "suspended",
    subscriber_pb2.SUBSCRIBER_STATUS_TERMINATED: "terminated",
}
SHOWN_ERRORS = 100


async def load_subscribers(view: View) -> Data:
    """Counts by carrier (the caller's carriers) and the latest provisioning errors."""
    answer = await view.call(
        view.services.subscribers.CountSubscribers, subscriber_pb2.CountSubscribersRequest()
    )
    carriers: dict[str, dict[str, Any]] = {}
    for count in answer.counts:
        carrier = last_segment(count.carrier)
        row = carriers.setdefault(
            carrier, {"carrier": carrier, **dict.fromkeys(STATUSES.values(), 0), "total": 0}
        )
        status = STATUSES.get(count.status)
        if status is not None:
            row[status] += count.count
        row["total"] += count.count
    principal = view.session.principal
    parent = f"carriers/{principal.tenant}" if principal.role == "carrier" else ""
    errors = await view.optional(
        "errors",
        view.services.subscribers.ListProvisioningErrors,
        subscriber_pb2.ListProvisioningErrorsRequest(parent=parent, page_size=SHOWN_ERRORS),
    )
    return {
        "carriers": sorted(carriers.values(), key=lambda r: r["carrier"]),
        "errors": [
            {
                "time": when(e.time),
                "carrier": last_segment(e.carrier),
                "principal": e.principal,
                "rpc": e.rpc,
                "subject": e.subject,
                "reason": e.reason,
                "message": e.message,
            }
            for e in (errors.errors if errors is not None else ())
        ],
    }
