"""Alerts: the emergency alerts pending or still to end, then those ended in the last
week, each with its history; a cancel button on each one still open; and the banner every
admin page shows while one is in force.

They are read with the operator's key (``AlertService`` lets the admin read and cancel;
the console takes no emergency key, so it never issues or confirms) and turned into
:mod:`epg.alerts.domain` values by the client's one mapping, so "in force" and the order of
the banner are the domain's own rules. The banner is read once per session every
``CONSOLE_ALERT_BANNER_SECONDS`` (:class:`InForce`), not once per page render or poll.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from console.session import Clock
from console.upstream import PAGE_SIZE, ConsoleError, ServiceRefused
from console.view import Data, View
from epg.alerts.convert import ALERT, alert_from_wire
from epg.alerts.domain import Alert, AlertState, ranked
from headend import errors
from headend.rpc import to_timestamp
from protos import alerts_pb2

# Ended alerts stay on the page this long.
SHOWN_DAYS = 7
# The states a cancellation applies to (the service refuses the others).
CANCELLABLE = (AlertState.PENDING, AlertState.CONFIRMED)
# The alerts in force, for the banner (None: the services would not say).
Banner = list[Data] | None


class BadCancelReason(ConsoleError, errors.InvalidArgument):
    """Raised when a cancellation's ``reason`` is not a text field (a file, say)."""


def _iso(at: datetime | None) -> str | None:
    return at.isoformat(timespec="seconds") if at is not None else None


def is_open(alert: Alert, now: datetime) -> bool:
    """Pending, in force, or confirmed and yet to end: the operator may still cancel it."""
    return alert.state in CANCELLABLE and (
        alert.in_force_until is None or alert.in_force_until > now
    )


async def _alerts(view: View, ended_after: datetime) -> list[Alert]:
    """Pending alerts and those in force at or after ``ended_after``, newest first."""
    found: list[Alert] = []
    async for page in view.every_page(
        view.services.alerts.ListAlerts,
        lambda token: alerts_pb2.ListAlertsRequest(
            page_size=PAGE_SIZE, page_token=token, ended_after=to_timestamp(ended_after)
        ),
    ):
        found.extend(alert_from_wire(a) for a in page.alerts)
    return found


def _row(alert: Alert, now: datetime) -> dict[str, Any]:
    return {
        "id": alert.id,
        "severity": alert.severity.name.lower(),
        "headline": alert.headline,
        "description": alert.description,
        "regions": list(alert.regions),
        # Empty: every channel.
        "channels": list(alert.channel_ids),
        "feed_channel_id": alert.feed_channel_id,
        "card": alert.card.text if alert.card is not None else None,
        "drill": alert.drill,
        "state": alert.state.value,
        "in_force": alert.in_force(now),
        "in_force_from": _iso(alert.in_force_from),
        "in_force_until": _iso(alert.in_force_until),
        "cancellable": is_open(alert, now),
        "history": [
            {
                "action": s.action,
                "principal": s.principal,
                "key_id": s.key_id,
                "time": _iso(s.time),
                "reason": s.reason,
            }
            for s in alert.history
        ],
    }


async def load_alerts(view: View) -> Data:
    """The open alerts (pending, in force, or yet to begin), then those ended in the last
    :data:`SHOWN_DAYS` days; newest first in each."""
    alerts = await _alerts(view, view.now - timedelta(days=SHOWN_DAYS))
    return {
        "open": [_row(a, view.now) for a in alerts if is_open(a, view.now)],
        "ended": [_row(a, view.now) for a in alerts if not is_open(a, view.now)],
    }


async def cancel_alert(view: View) -> Data:
    """End an alert now, with the operator's reason (the service checks it and keeps it in
    the alert's history)."""
    reason: object = view.query.get("reason", "")
    if not isinstance(reason, str):
        raise BadCancelReason("reason", "must be text")
    answer = await view.call(
        view.services.alerts.CancelAlert,
        alerts_pb2.CancelAlertRequest(name=ALERT.format(view.match["alert"]), reason=reason),
    )
    alert = alert_from_wire(answer)
    return {"alert": alert.id, "state": alert.state.value}


async def in_force_now(view: View) -> list[Data]:
    """The alerts boxes see now, the one that wins first (the banner's lines)."""
    now = view.now
    return [
        {
            "id": a.id,
            "severity": a.severity.name.lower(),
            "headline": a.headline,
            "regions": list(a.regions),
            "drill": a.drill,
        }
        for a in ranked(a for a in await _alerts(view, now) if a.in_force(now))
    ]


class InForce:
    """Each session's alerts in force, read at most once per ``ttl_seconds`` (by ``clock``,
    the sessions' own)."""

    def __init__(self, ttl_seconds: float, clock: Clock) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._read: dict[str, tuple[float, Banner]] = {}

    async def get(self, view: View) -> Banner:
        """The session's banner: cached, else read now (None when the services refuse,
        so a page never fails for its banner)."""
        session_id = view.session.session_id
        now = self._clock()
        cached = self._read.get(session_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        banner: Banner
        try:
            banner = await in_force_now(view)
        except ServiceRefused:
            banner = None
        # Drop what has lapsed (closed sessions' too), then keep this one.
        self._read = {k: v for k, v in self._read.items() if v[0] > now}
        self._read[session_id] = (now + self._ttl, banner)
        return banner

    def forget(self, session_id: str) -> None:
        """Read the session's banner afresh next time (after an action that may end one)."""
        self._read.pop(session_id, None)
