"""An emergency alert and when, where and on which channels boxes see it (pure).

An alert targets regions (6-digit codes at any level, ``headend.regions.covers``) and
channels (none named: every channel). It is in force from :attr:`Alert.in_force_from`
(the later of its start and its confirmation; a drill's issue) until
:attr:`Alert.in_force_until` (the earlier of its end and its cancellation; None: open).
Boxes switched to it see its playout channel: the emergency feed, or the card the farm
encodes for it (``alert-{id}``).

Its steps are pure too (:meth:`Alert.confirmed`, :meth:`Alert.cancelled`,
:meth:`Alert.expired`): each returns the next version with the step in its history; who
may take them, and when, is ``epg.alerts.service``'s.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from headend import regions

# The playout channel of a card alert is this prefix and the alert's id.
CARD_CHANNEL_PREFIX = "alert-"


class Severity(enum.IntEnum):
    """CAP severities; a higher value wins where two alerts cover the same box."""

    MINOR = 1
    MODERATE = 2
    SEVERE = 3
    EXTREME = 4


class AlertState(enum.Enum):
    """Where an alert is in its life."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Card:
    """A generated card: text on screen and, where given, an audio file played in a loop."""

    text: str
    audio_uri: str = ""


@dataclass(frozen=True, slots=True)
class Step:
    """One audited step of an alert (``issue``, ``confirm``, ``cancel``, ``expire``,
    ``refuse_confirm``): who (principal and key id, never the secret), when, why."""

    action: str
    principal: str
    key_id: str
    time: datetime
    request_id: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Alert:
    """An emergency alert. ``feed_channel_id`` or ``card`` is its content (exactly one)."""

    id: str
    severity: Severity
    headline: str
    regions: tuple[str, ...]
    description: str = ""
    channel_ids: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    feed_channel_id: str = ""
    card: Card | None = None
    drill: bool = False
    language: str = "zh"
    state: AlertState = AlertState.PENDING
    history: tuple[Step, ...] = ()
    version: int = 0
    in_force_from: datetime | None = None
    in_force_until: datetime | None = None
    # While PENDING: when it expires unless confirmed (the issue plus the server's
    # confirmation time). None for a drill.
    confirm_by: datetime | None = None

    @property
    def issuer_key_id(self) -> str:
        """The key id that issued it (the two-person rule compares the confirmer's)."""
        return self.history[0].key_id if self.history else ""

    @property
    def ended_at(self) -> datetime | None:
        """When it stops mattering to boxes and operators (None: open). Pending: when it
        would expire."""
        if self.state is AlertState.PENDING:
            return self.confirm_by
        if self.state is AlertState.EXPIRED:
            return self.confirm_by or (self.history[-1].time if self.history else None)
        if self.state is AlertState.CANCELLED and self.in_force_from is None:
            return self.history[-1].time if self.history else None
        return self.in_force_until

    def due_to_expire(self, at: datetime) -> bool:
        """Is it PENDING past its confirmation time at ``at``?"""
        return (
            self.state is AlertState.PENDING
            and self.confirm_by is not None
            and at >= self.confirm_by
        )

    def stepped(self, step: Step, **changes: Any) -> Alert:
        """The next version of the alert: ``step`` appended to its history, ``changes`` made."""
        return dataclasses.replace(
            self, history=(*self.history, step), version=self.version + 1, **changes
        )

    def confirmed(self, step: Step) -> Alert:
        """In force from the later of its start and ``step`` (a confirmation, or a drill's
        issue) until its end."""
        start = step.time if self.start is None else max(self.start, step.time)
        return self.stepped(
            step,
            state=AlertState.CONFIRMED,
            confirm_by=None,
            in_force_from=start,
            in_force_until=self.end,
        )

    def cancelled(self, step: Step) -> Alert:
        """Ended at ``step``: in force until then if it was; never in force if it had not
        begun (or was only pending)."""
        until = step.time if self.end is None else min(self.end, step.time)
        if self.in_force_from is None or until <= self.in_force_from:
            return self.stepped(
                step,
                state=AlertState.CANCELLED,
                confirm_by=None,
                in_force_from=None,
                in_force_until=None,
            )
        return self.stepped(step, state=AlertState.CANCELLED, in_force_until=until)

    def expired(self) -> Alert:
        """Never confirmed in time: the step is dated at its confirmation time."""
        at = self.confirm_by
        if at is None:
            raise ValueError(f"alert {self.id} has no confirmation time")
        step = Step("expire", "", "", at, reason="not confirmed in time")
        return self.stepped(step, state=AlertState.EXPIRED)

    def kept_after(self, at: datetime) -> bool:
        """ListAlerts' ``ended_after``: pending, or in force at or after ``at``."""
        if self.state is AlertState.PENDING:
            return True
        if self.in_force_from is None:
            return False
        return self.in_force_until is None or self.in_force_until >= at

    @property
    def playout_channel_id(self) -> str:
        """The live channel boxes are switched to."""
        return self.feed_channel_id or f"{CARD_CHANNEL_PREFIX}{self.id}"

    def in_force(self, at: datetime) -> bool:
        """Do boxes see it at ``at``?"""
        if self.in_force_from is None or at < self.in_force_from:
            return False
        return self.in_force_until is None or at < self.in_force_until

    def overlaps(self, start: datetime, stop: datetime) -> bool:
        """Was (or will) it be in force at some instant of ``[start, stop)``?"""
        if self.in_force_from is None or self.in_force_from >= stop:
            return False
        return self.in_force_until is None or self.in_force_until > start

    def reaches(self, channel_id: str, region: str) -> bool:
        """Does it replace ``channel_id`` for a box in ``region``?"""
        if self.channel_ids and channel_id not in self.channel_ids:
            return False
        return any(regions.covers(area, region) for area in self.regions)


def ranked(alerts: Iterable[Alert]) -> list[Alert]:
    """The alerts in the order one wins over another: the most severe, then the latest in
    force (then the id, so every front door picks the same one)."""
    return sorted(
        alerts,
        key=lambda a: (a.severity, a.in_force_from.timestamp() if a.in_force_from else 0.0, a.id),
        reverse=True,
    )
