"""Alerts in Redis, under the EPG feed's hash tag so that one script per step changes the
alert and appends its change to the feed (``WatchChanges`` sends it as ``CHANGE_KIND_ALERTS``).

Keys: ``epg:{epg}:alerts`` (hash: id -> JSON) and ``epg:{epg}:alerts:ended`` (sorted set:
id -> when it ended or will end, in ms; an open alert is not in it), which is how the
oldest ended alerts go once there are more than ``max_alerts``. A step is a compare-and-set
on the version the service read, and the script refuses it unless the stored alert is in a
state the step starts from (``step.lua``); on a lost race the service reads again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from epg.alerts.domain import Alert, AlertState, Card, Severity, Step
from epg.alerts.errors import AlertChanged, AlertExists, AlertNotFound, AlertStateConflict
from epg.store.base import CHANGES, VERSION, RedisLike, text
from headend.lua import script

ALERTS = "epg:{epg}:alerts"
ENDED = "epg:{epg}:alerts:ended"
_KEYS = [ALERTS, ENDED, VERSION, CHANGES]
# The request fields a retried issue must repeat exactly.
_CONTENT = ("s", "h", "d", "r", "c", "from", "to", "feed", "card", "drill", "lang")


class AlertStore:
    """Issue, step, read and list alerts."""

    def __init__(
        self, redis: RedisLike, *, changes_maxlen: int = 100_000, max_alerts: int = 10_000
    ) -> None:
        self._redis = redis
        self._maxlen = changes_maxlen
        self._max_alerts = max_alerts
        self._issue = redis.register_script(script("epg.alerts", "issue"))
        self._step = redis.register_script(script("epg.alerts", "step"))

    async def issue(self, alert: Alert, now: datetime) -> tuple[Alert, bool]:
        """Store a new alert (and its change); True when new, False for a retried issue
        of the same alert, which returns the stored one. ``AlertExists`` for another."""
        record = encode(alert)
        reply = await self._issue(
            keys=_KEYS,
            args=[
                alert.id,
                json.dumps(record, separators=(",", ":"), ensure_ascii=False),
                record["fp"],
                _ms_or_empty(alert.ended_at),
                self._maxlen,
                self._max_alerts,
                _ms(now),
            ],
        )
        outcome = text(reply[0])
        if outcome == "exists":
            raise AlertExists(f"alert {alert.id} exists with other content")
        return decode(text(reply[1])), outcome == "new"

    async def step(
        self, before: Alert, after: Alert, *, states: Sequence[AlertState], now: datetime | None
    ) -> Alert:
        """Replace ``before`` by ``after`` if the stored alert is still ``before``'s version,
        in one of ``states`` and (with ``now``) not past its confirmation time.
        ``AlertChanged`` when it changed; ``AlertStateConflict`` when it is in another
        state."""
        reply = await self._step(
            keys=_KEYS,
            args=[
                before.id,
                before.version,
                ",".join(s.value for s in states),
                json.dumps(encode(after), separators=(",", ":"), ensure_ascii=False),
                _ms_or_empty(after.ended_at),
                self._maxlen,
                "" if now is None else _ms(now),
            ],
        )
        outcome = text(reply[0])
        if outcome == "missing":
            raise AlertNotFound(f"no alert {before.id}")
        if outcome == "conflict":
            raise AlertChanged(f"alert {before.id} changed meanwhile")
        if outcome == "state":
            raise AlertStateConflict(f"alert {before.id} is {text(reply[1])}")
        return decode(text(reply[1]))

    async def get(self, alert_id: str) -> Alert | None:
        """The stored alert, or None."""
        raw = await self._redis.hget(ALERTS, alert_id)
        return None if raw is None else decode(text(raw))

    async def list_all(self) -> list[Alert]:
        """Every alert kept (at most ``max_alerts``)."""
        raw = await self._redis.hgetall(ALERTS)
        return [decode(text(v)) for v in raw.values()]


def encode(alert: Alert) -> dict[str, Any]:
    """The stored record (times in ms); ``fp`` fingerprints what the issuer gave."""
    record: dict[str, Any] = {
        "id": alert.id,
        "s": int(alert.severity),
        "h": alert.headline,
        "d": alert.description,
        "r": list(alert.regions),
        "c": list(alert.channel_ids),
        "from": _ms_or_none(alert.start),
        "to": _ms_or_none(alert.end),
        "feed": alert.feed_channel_id,
        "card": None if alert.card is None else [alert.card.text, alert.card.audio_uri],
        "drill": alert.drill,
        "lang": alert.language,
    }
    record["fp"] = hashlib.sha256(
        json.dumps([record[k] for k in _CONTENT], ensure_ascii=False).encode()
    ).hexdigest()
    record.update(
        state=alert.state.value,
        version=alert.version,
        history=[
            [s.action, s.principal, s.key_id, _ms(s.time), s.request_id, s.reason]
            for s in alert.history
        ],
        in_force_from=_ms_or_none(alert.in_force_from),
        in_force_until=_ms_or_none(alert.in_force_until),
        confirm_by=_ms_or_none(alert.confirm_by),
    )
    return record


def decode(raw: str) -> Alert:
    """An alert from its stored record."""
    r = json.loads(raw)
    card = r["card"]
    return Alert(
        id=r["id"],
        severity=Severity(r["s"]),
        headline=r["h"],
        description=r["d"],
        regions=tuple(r["r"]),
        channel_ids=tuple(r["c"]),
        start=_time(r["from"]),
        end=_time(r["to"]),
        feed_channel_id=r["feed"],
        card=None if card is None else Card(card[0], card[1]),
        drill=r["drill"],
        language=r["lang"],
        state=AlertState(r["state"]),
        history=tuple(
            Step(a, p, k, _instant(t), rid, why) for a, p, k, t, rid, why in r["history"]
        ),
        version=r["version"],
        in_force_from=_time(r["in_force_from"]),
        in_force_until=_time(r["in_force_until"]),
        confirm_by=_time(r["confirm_by"]),
    )


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _ms_or_none(at: datetime | None) -> int | None:
    return None if at is None else _ms(at)


def _ms_or_empty(at: datetime | None) -> str:
    return "" if at is None else str(_ms(at))


def _instant(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else _instant(ms)
