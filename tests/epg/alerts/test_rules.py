"""The alert rules (pure): each refusal names the request field."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from typing import Any

import pytest

from epg.alerts import rules
from epg.alerts.domain import Card
from epg.alerts.errors import InvalidAlert
from tests.epg.alerts.support import T0, alert

GOOD = alert("a1")


def test_a_good_alert_passes() -> None:
    assert rules.validate(GOOD, T0) is GOOD
    assert rules.validate(alert("x", card=None, feed_channel_id="emergency.feed"), T0)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"id": "Bad_Id"}, "alert_id", id="id-case"),
        pytest.param({"id": "a" * 41}, "alert_id", id="id-long"),
        pytest.param({"id": "-a"}, "alert_id", id="id-dash-first"),
        pytest.param({"headline": ""}, "alert.headline", id="headline-empty"),
        pytest.param({"headline": "x" * 161}, "alert.headline", id="headline-long"),
        pytest.param({"headline": "a\x07b"}, "alert.headline", id="headline-control"),
        pytest.param({"description": "x" * 2001}, "alert.description", id="description-long"),
        pytest.param({"regions": ()}, "alert.regions", id="no-regions"),
        pytest.param({"regions": ("440000",) * 257}, "alert.regions", id="too-many-regions"),
        pytest.param(
            {"regions": ("440000", "110000", "120000", "99")}, "alert.regions[3]", id="region"
        ),
        pytest.param({"channel_ids": ("ok", "bad id")}, "alert.channel_ids[1]", id="channel"),
        pytest.param({"channel_ids": ("c",) * 1001}, "alert.channel_ids", id="channels"),
        pytest.param(
            {"start": T0 + timedelta(hours=2), "end": T0 + timedelta(hours=1)},
            "alert.end_time",
            id="end-before-start",
        ),
        pytest.param({"end": T0 - timedelta(seconds=1)}, "alert.end_time", id="end-past"),
        pytest.param({"card": None}, "alert.content", id="no-content"),
        pytest.param({"feed_channel_id": "feed"}, "alert.content", id="both-contents"),
        pytest.param(
            {"card": None, "feed_channel_id": "bad feed"},
            "alert.content.feed_channel_id",
            id="feed-id",
        ),
        pytest.param({"card": Card("")}, "alert.content.card.text", id="card-empty"),
        pytest.param({"card": Card("x" * 501)}, "alert.content.card.text", id="card-long"),
        pytest.param(
            {"card": Card("t", "http://x/a.wav")}, "alert.content.card.audio_uri", id="audio-http"
        ),
        pytest.param({"card": Card("t", "file:///")}, "alert.content.card.audio_uri", id="audio"),
        pytest.param({"language": "not a tag"}, "alert.language", id="language"),
    ],
)
def test_refusals_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidAlert) as caught:
        rules.validate(dataclasses.replace(GOOD, **changes), T0)
    assert caught.value.field == field


def test_new_ids_are_dated_and_valid() -> None:
    made = {rules.new_alert_id(T0) for _ in range(20)}
    assert len(made) == 20
    for alert_id in made:
        assert re.fullmatch(r"20300501-[a-z2-7]{6}", alert_id)
        rules.validate_alert_id(alert_id)


def test_reason_is_bounded() -> None:
    rules.validate_reason("x" * 500)
    with pytest.raises(InvalidAlert):
        rules.validate_reason("x" * 501)
