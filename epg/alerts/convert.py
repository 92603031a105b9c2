"""``AlertService`` messages <-> alert values (the server's and the client's one mapping)."""

from __future__ import annotations

from datetime import datetime

from epg.alerts.domain import Alert, AlertState, Card, Severity, Step
from epg.alerts.errors import InvalidAlert
from headend.rpc import HasFields, from_timestamp, optional_timestamp, to_timestamp
from headend.rpc.resources import ResourceName
from protos import alerts_pb2 as pb

ALERT = ResourceName("alerts/{alert}")
DEFAULT_LANGUAGE = "zh"
_SEVERITY_PB: dict[Severity, pb.Severity] = {
    Severity.MINOR: pb.SEVERITY_MINOR,
    Severity.MODERATE: pb.SEVERITY_MODERATE,
    Severity.SEVERE: pb.SEVERITY_SEVERE,
    Severity.EXTREME: pb.SEVERITY_EXTREME,
}
_SEVERITY = {v: k for k, v in _SEVERITY_PB.items()}
_STATE_PB: dict[AlertState, pb.AlertState] = {
    AlertState.PENDING: pb.ALERT_STATE_PENDING,
    AlertState.CONFIRMED: pb.ALERT_STATE_CONFIRMED,
    AlertState.CANCELLED: pb.ALERT_STATE_CANCELLED,
    AlertState.EXPIRED: pb.ALERT_STATE_EXPIRED,
}
_STATE = {v: k for k, v in _STATE_PB.items()}


def optional_time(msg: HasFields, name: str, field: str) -> datetime | None:
    """A timestamp field as UTC, None when unset. Unlike guide times, any precision is
    taken (the store keeps milliseconds): a caller's "now" is a fine start or filter."""
    try:
        return optional_timestamp(msg, name)
    except ValueError as err:
        raise InvalidAlert(field, "outside the years 1 to 9999") from err


def alert_id(name: str) -> str:
    """The id in ``alerts/{alert}``."""
    return ALERT.id(name)


def alert_from_pb(msg: pb.Alert, alert_id: str = "") -> Alert:
    """What an issuer gave (output-only fields are ignored); the rules check the rest."""
    severity = _SEVERITY.get(msg.severity)
    if severity is None:
        raise InvalidAlert("alert.severity", "required: minor, moderate, severe or extreme")
    which = msg.content.WhichOneof("content")
    return Alert(
        id=alert_id,
        severity=severity,
        headline=msg.headline,
        description=msg.description,
        regions=tuple(msg.regions),
        channel_ids=tuple(msg.channel_ids),
        start=optional_time(msg, "start_time", "alert.start_time"),
        end=optional_time(msg, "end_time", "alert.end_time"),
        feed_channel_id=msg.content.feed_channel_id if which == "feed_channel_id" else "",
        card=(Card(msg.content.card.text, msg.content.card.audio_uri) if which == "card" else None),
        drill=msg.drill,
        language=msg.language or DEFAULT_LANGUAGE,
    )


def alert_to_pb(alert: Alert) -> pb.Alert:
    """An alert on the wire, with its name, state, history and when it is in force."""
    msg = pb.Alert(
        name=ALERT.format(alert.id) if alert.id else "",
        severity=_SEVERITY_PB[alert.severity],
        headline=alert.headline,
        description=alert.description,
        regions=alert.regions,
        channel_ids=alert.channel_ids,
        start_time=to_timestamp(alert.start),
        end_time=to_timestamp(alert.end),
        drill=alert.drill,
        language=alert.language,
        state=_STATE_PB[alert.state],
        history=[
            pb.AlertStep(
                action=s.action,
                principal=s.principal,
                key_id=s.key_id,
                time=to_timestamp(s.time),
                request_id=s.request_id,
                reason=s.reason,
            )
            for s in alert.history
        ],
        version=alert.version,
        in_force_from=to_timestamp(alert.in_force_from),
        in_force_until=to_timestamp(alert.in_force_until),
        playout_channel_id=alert.playout_channel_id if alert.id else "",
    )
    if alert.card is not None:
        msg.content.card.text = alert.card.text
        msg.content.card.audio_uri = alert.card.audio_uri
    else:
        msg.content.feed_channel_id = alert.feed_channel_id
    return msg


def alert_from_wire(msg: pb.Alert) -> Alert:
    """An alert as the server sent it (the client's side)."""
    which = msg.content.WhichOneof("content")
    return Alert(
        id=ALERT.id(msg.name) if msg.name else "",
        severity=_SEVERITY.get(msg.severity, Severity.MINOR),
        headline=msg.headline,
        description=msg.description,
        regions=tuple(msg.regions),
        channel_ids=tuple(msg.channel_ids),
        start=optional_timestamp(msg, "start_time"),
        end=optional_timestamp(msg, "end_time"),
        feed_channel_id=msg.content.feed_channel_id if which == "feed_channel_id" else "",
        card=(Card(msg.content.card.text, msg.content.card.audio_uri) if which == "card" else None),
        drill=msg.drill,
        language=msg.language,
        state=_STATE.get(msg.state, AlertState.PENDING),
        history=tuple(
            Step(s.action, s.principal, s.key_id, from_timestamp(s.time), s.request_id, s.reason)
            for s in msg.history
        ),
        version=msg.version,
        in_force_from=optional_timestamp(msg, "in_force_from"),
        in_force_until=optional_timestamp(msg, "in_force_until"),
    )
