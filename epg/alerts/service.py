"""The alert use cases (no gRPC): who may take which step, the two-person rule, expiry,
and the audit of every step (history, a log line, a metric).

Issuing, confirming and cancelling take an ``emergency`` key (cancelling also the admin);
the admin, the playback role and emergency keys read. The key that issued an alert may not
confirm it: the refusal is kept in the history as ``refuse_confirm``. A drill is in force
once issued. An alert still pending ``confirm_seconds`` after its issue reads as expired at
once; the next step on it, or the sweep, writes the expiry (and its change to the feed).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

from epg.access import may_read_alerts
from epg.alerts import rules
from epg.alerts.domain import Alert, AlertState, Severity, Step
from epg.alerts.errors import AlertChanged, AlertNotFound, AlertStateConflict
from epg.alerts.store import AlertStore
from epg.errors import NotAllowed
from epg.metrics import AlertMetrics
from headend.auth import Principal, key_id
from headend.clock import utc_now
from headend.logs import current_request_id
from headend.tasks import Supervisor

# A step read, computed and refused because another changed the alert is tried again.
_ATTEMPTS = 5
log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def newest_first(alert: Alert) -> str:
    """A sort key putting the latest issued alert first (then by id): the page order."""
    issued = alert.history[0].time if alert.history else alert.start
    ms = int(issued.timestamp() * 1000) if issued else 0
    return f"{10**15 - ms:016d} {alert.id}"


class AlertService:
    """Issue, confirm, cancel, read and expire alerts."""

    def __init__(
        self,
        *,
        store: AlertStore,
        confirm_seconds: int,
        metrics: AlertMetrics | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._confirm = timedelta(seconds=confirm_seconds)
        self._metrics = metrics
        self._clock = clock

    # ---------------------------------------------------------------- steps

    async def issue(
        self, principal: Principal, alert: Alert, *, api_key: str, validate_only: bool = False
    ) -> Alert:
        """Check and store a new alert: PENDING until a second key confirms it, CONFIRMED at
        once for a drill. ``validate_only`` checks it and stores nothing."""
        self.require_issuer(principal)
        now = self._clock()
        alert = dataclasses.replace(
            alert,
            id=alert.id or rules.new_alert_id(now),
            state=AlertState.PENDING,
            history=(),
            version=0,
            in_force_from=None,
            in_force_until=None,
            confirm_by=None,
        )
        rules.validate(alert, now)
        if validate_only:
            return alert
        step = _step("issue", principal, api_key, now)
        issued = (
            alert.confirmed(step)
            if alert.drill
            else alert.stepped(step, confirm_by=now + self._confirm)
        )
        stored, new = await self._store.issue(issued, now)
        if new:
            self._audit(stored, step)
        return _as_of(stored, now)

    @staticmethod
    def require_issuer(principal: Principal) -> None:
        """Refuse anyone but an emergency key to issue (the server asks before it reads the
        request, so an outsider learns nothing about what a valid alert is)."""
        _emergency(principal, "issue alerts")

    async def confirm(self, principal: Principal, alert_id: str, *, api_key: str) -> Alert:
        """The second person: a different emergency key than the issuer's puts it in force."""
        _emergency(principal, "confirm alerts")
        for _ in range(_ATTEMPTS):
            now = self._clock()
            alert = await self._current(alert_id, now)
            if alert.state is not AlertState.PENDING:
                raise AlertStateConflict(
                    f"alert {alert_id} is {alert.state.value}; only a pending alert is confirmed"
                )
            step = _step("confirm", principal, api_key, now)
            if step.key_id == alert.issuer_key_id:
                refusal = dataclasses.replace(
                    step,
                    action="refuse_confirm",
                    reason="the issuing key may not confirm its own alert",
                )
                with contextlib.suppress(AlertChanged):
                    await self._store.step(
                        alert, alert.stepped(refusal), states=(AlertState.PENDING,), now=None
                    )
                    self._audit(alert, refusal)
                raise NotAllowed(
                    f"alert {alert_id} was issued with this key: another emergency key must "
                    "confirm it (two-person rule)"
                )
            try:
                stored = await self._store.step(
                    alert, alert.confirmed(step), states=(AlertState.PENDING,), now=now
                )
            except AlertChanged:
                continue
            self._audit(stored, step)
            return stored
        raise AlertChanged(f"alert {alert_id} kept changing; try again")

    async def cancel(
        self, principal: Principal, alert_id: str, *, api_key: str, reason: str = ""
    ) -> Alert:
        """End an alert now (pending or confirmed); boxes return to their channels."""
        if not principal.is_admin:
            _emergency(principal, "cancel alerts")
        rules.validate_reason(reason)
        for _ in range(_ATTEMPTS):
            now = self._clock()
            alert = await self._current(alert_id, now)
            step = _step("cancel", principal, api_key, now, reason)
            try:
                stored = await self._store.step(
                    alert,
                    alert.cancelled(step),
                    states=(AlertState.PENDING, AlertState.CONFIRMED),
                    now=now,
                )
            except AlertChanged:
                continue
            self._audit(stored, step)
            return stored
        raise AlertChanged(f"alert {alert_id} kept changing; try again")

    # ---------------------------------------------------------------- reads

    async def get(self, principal: Principal, alert_id: str) -> Alert:
        """One alert as of now."""
        _reader(principal)
        rules.validate_alert_id(alert_id, "name")
        alert = await self._store.get(alert_id)
        if alert is None:
            raise AlertNotFound(f"no alert {alert_id}")
        return _as_of(alert, self._clock())

    async def list_alerts(
        self, principal: Principal, *, ended_after: datetime | None = None
    ) -> list[Alert]:
        """Every alert kept, as of now, newest first; with ``ended_after`` only those pending
        or in force at or after it."""
        _reader(principal)
        now = self._clock()
        alerts = [_as_of(a, now) for a in await self._store.list_all()]
        if ended_after is not None:
            alerts = [a for a in alerts if a.kept_after(ended_after)]
        return sorted(alerts, key=newest_first)

    # ---------------------------------------------------------------- expiry

    async def sweep(self) -> None:
        """Write the expiry of every alert past its confirmation time (each with its change
        in the feed) and refresh the in-force gauge."""
        now = self._clock()
        alerts = await self._store.list_all()
        for alert in alerts:
            if alert.due_to_expire(now):
                with contextlib.suppress(AlertChanged, AlertStateConflict):
                    await self._expire(alert)
        if self._metrics is not None:
            counts = {s.name.lower(): 0 for s in Severity}
            for alert in alerts:
                if alert.in_force(now):
                    counts[alert.severity.name.lower()] += 1
            self._metrics.show(counts)

    @contextlib.asynccontextmanager
    async def sweeping(self, every_seconds: float) -> AsyncIterator[None]:
        """Sweep every ``every_seconds`` while the server runs (a server component)."""
        tasks = Supervisor()

        async def loop() -> None:
            while True:
                await self.sweep()
                await asyncio.sleep(every_seconds)

        tasks.spawn("alert-sweep", loop)
        try:
            yield
        finally:
            await tasks.close()

    async def _current(self, alert_id: str, now: datetime) -> Alert:
        """The stored alert, its expiry written first when it is due."""
        rules.validate_alert_id(alert_id, "name")
        for _ in range(_ATTEMPTS):
            alert = await self._store.get(alert_id)
            if alert is None:
                raise AlertNotFound(f"no alert {alert_id}")
            if not alert.due_to_expire(now):
                return alert
            with contextlib.suppress(AlertChanged):
                return await self._expire(alert)
        raise AlertChanged(f"alert {alert_id} kept changing; try again")

    async def _expire(self, alert: Alert) -> Alert:
        expired = alert.expired()
        stored = await self._store.step(alert, expired, states=(AlertState.PENDING,), now=None)
        self._audit(stored, expired.history[-1])
        return stored

    def _audit(self, alert: Alert, step: Step) -> None:
        """The structured log line and the metric of one step (the history has it)."""
        if self._metrics is not None:
            self._metrics.step(step.action)
        log.info(
            "alert %s: %s",
            step.action,
            alert.id,
            extra={
                "alert_id": alert.id,
                "action": step.action,
                "principal": step.principal,
                "key_id": step.key_id,
                "state": alert.state.value,
                "severity": alert.severity.name.lower(),
                "drill": alert.drill,
                "reason": step.reason,
            },
        )


def _emergency(principal: Principal, action: str) -> None:
    if principal.role != "emergency":
        raise NotAllowed(f"{principal} may not {action}; emergency keys only")


def _reader(principal: Principal) -> None:
    if not may_read_alerts(principal):
        raise NotAllowed(f"{principal} may not read alerts")


def _step(action: str, principal: Principal, api_key: str, now: datetime, reason: str = "") -> Step:
    return Step(action, str(principal), key_id(api_key), now, current_request_id(), reason)


def _as_of(alert: Alert, now: datetime) -> Alert:
    """What a reader sees at ``now``: a pending alert past its confirmation time is expired
    even before the sweep writes it."""
    return alert.expired() if alert.due_to_expire(now) else alert
