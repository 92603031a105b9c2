"""What makes an alert acceptable (pure): every refusal names the request field, like the
rest of the EPG (``alert.regions[3]``, ``alert.content.card.text``).

Regions and channel ids use the platform's one rule for each (``headend.regions.problem``,
``headend.ids.is_channel_id``); text uses ``headend.text.validate_text``, which already
refuses control characters in anything stored.
"""

from __future__ import annotations

from datetime import datetime

from epg.alerts.domain import Alert
from epg.alerts.errors import InvalidAlert
from headend import regions
from headend.errors import InvalidArgument
from headend.ids import CHANNEL_ID_RULE, RECORD_ID_RULE, is_channel_id, is_record_id, new_record_id
from headend.languages import validate_language
from headend.text import validate_text

ALERT_ID_RULE = RECORD_ID_RULE
MAX_HEADLINE = 160
MAX_DESCRIPTION = 2000
MAX_REGIONS = 256
MAX_CHANNELS = 1000
MAX_CARD_TEXT = 500
MAX_REASON = 500
AUDIO_SCHEME = "file:///"


def new_alert_id(now: datetime) -> str:
    """``yyyymmdd-`` and six random base32 letters: sortable by day, unguessable enough."""
    return new_record_id(now.strftime("%Y%m%d-"))


def validate_alert_id(alert_id: str, field: str = "alert_id") -> str:
    """``alert_id`` if it fits :data:`ALERT_ID_RULE`."""
    if not is_record_id(alert_id):
        raise InvalidAlert(field, f"must match {ALERT_ID_RULE}")
    return alert_id


def validate_reason(reason: str) -> str:
    """A cancellation reason: at most 500 characters of one line."""
    return _text("reason", reason, MAX_REASON)


def validate(alert: Alert, now: datetime) -> Alert:
    """``alert`` as issued at ``now`` if acceptable; ``InvalidAlert`` naming the field."""
    validate_alert_id(alert.id)
    _text("alert.headline", alert.headline, MAX_HEADLINE, required=True)
    _text("alert.description", alert.description, MAX_DESCRIPTION, multiline=True)
    if not 1 <= len(alert.regions) <= MAX_REGIONS:
        raise InvalidAlert("alert.regions", f"1 to {MAX_REGIONS} region codes")
    for i, code in enumerate(alert.regions):
        problem = regions.problem(code)
        if problem is not None:
            raise InvalidAlert(f"alert.regions[{i}]", problem)
    if len(alert.channel_ids) > MAX_CHANNELS:
        raise InvalidAlert("alert.channel_ids", f"at most {MAX_CHANNELS} channels")
    for i, channel_id in enumerate(alert.channel_ids):
        _channel(f"alert.channel_ids[{i}]", channel_id)
    if alert.start is not None and alert.end is not None and alert.end <= alert.start:
        raise InvalidAlert("alert.end_time", "must be after start_time")
    if alert.end is not None and alert.end <= now:
        raise InvalidAlert("alert.end_time", "is in the past")
    _content(alert)
    try:
        validate_language("alert.language", alert.language)
    except InvalidArgument as err:
        raise InvalidAlert("alert.language", err.reason) from err
    return alert


def _content(alert: Alert) -> None:
    if bool(alert.feed_channel_id) == (alert.card is not None):
        raise InvalidAlert("alert.content", "exactly one of feed_channel_id or card")
    if alert.card is None:
        _channel("alert.content.feed_channel_id", alert.feed_channel_id)
        return
    _text("alert.content.card.text", alert.card.text, MAX_CARD_TEXT, required=True, multiline=True)
    uri = alert.card.audio_uri
    if uri and (not uri.startswith(AUDIO_SCHEME) or len(uri) <= len(AUDIO_SCHEME)):
        raise InvalidAlert("alert.content.card.audio_uri", f"empty or {AUDIO_SCHEME}<path>")
    _text("alert.content.card.audio_uri", uri, 1024)


def _channel(field: str, channel_id: str) -> None:
    if not is_channel_id(channel_id):
        raise InvalidAlert(field, f"must be a channel id: {CHANNEL_ID_RULE}")


def _text(
    field: str, value: str, max_chars: int, *, required: bool = False, multiline: bool = False
) -> str:
    try:
        return validate_text(
            field, value, max_chars=max_chars, multiline=multiline, required=required
        )
    except InvalidArgument as err:
        raise InvalidAlert(field, err.reason) from err
