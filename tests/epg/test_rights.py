"""The one set of catch-up and blackout rules the front door and the origin both apply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from epg.domain import Channel, Programme, Rights, Text, rights

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def _programme(start: datetime, stop: datetime, **granted: object) -> Programme:
    return Programme(
        id=f"p{int(start.timestamp())}",
        channel_id="btv1",
        start=start,
        stop=stop,
        titles=(Text("", "News"),),
        rights=Rights(**granted),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("start", "stop", "longest", "reason", "field"),
    [
        pytest.param(NOW - 2 * H, NOW - H, 6 * H, None, "", id="granted"),
        pytest.param(NOW - H, NOW - H, 6 * H, "bad_window", "stop", id="empty"),
        pytest.param(NOW - H, NOW - 2 * H, 6 * H, "bad_window", "stop", id="reversed"),
        pytest.param(NOW - 8 * H, NOW - H, 6 * H, "bad_window", "stop", id="longer-than-the-face"),
        pytest.param(
            NOW - 30 * H, NOW - H, 48 * H, "bad_window", "stop", id="capped-at-the-platform"
        ),
        pytest.param(NOW, NOW + H, 6 * H, "not_yet_aired", "", id="not-started"),
        pytest.param(NOW - H, NOW + H, 6 * H, None, "", id="still-airing"),
    ],
)
def test_window_refusal(
    start: datetime, stop: datetime, longest: timedelta, reason: str | None, field: str
) -> None:
    refusal = rights.window_refusal(start, stop, NOW, longest=longest)
    if reason is None:
        assert refusal is None
    else:
        assert refusal is not None
        assert (refusal.reason, refusal.field) == (reason, field)


def test_each_face_names_the_window_ends_its_own_way() -> None:
    refusal = rights.window_refusal(NOW - H, NOW - 2 * H, NOW)
    assert refusal is not None
    assert refusal.describe("utc", "utcend") == "must be after utc"
    assert refusal.describe("from", "to") == "must be after from"


@pytest.mark.parametrize(
    ("days", "start", "reason"),
    [
        pytest.param(7, NOW - 6 * 24 * H, None, id="inside-its-days"),
        pytest.param(7, NOW - 8 * 24 * H, "outside_catchup_days", id="older-than-its-days"),
        pytest.param(0, NOW - H, "catchup_disabled", id="no-catchup"),
    ],
)
def test_channel_refusal(days: int, start: datetime, reason: str | None) -> None:
    channel = Channel("btv1", 1, (Text("", "BTV"),), owner="btv", catchup_days=days)
    refusal = rights.channel_refusal(channel, start, NOW)
    assert (refusal.reason if refusal else None) == reason


@pytest.mark.parametrize(
    ("granted", "region", "reason"),
    [
        pytest.param({}, "110101", None, id="no-restriction"),
        pytest.param({"catchup_allowed": False}, None, "catchup_not_allowed", id="barred"),
        pytest.param({"blackout_regions": ("110000",)}, "110101", "blacked_out", id="province"),
        pytest.param({"blackout_regions": ("110100",)}, "110201", None, id="other-city"),
        pytest.param({"blackout_regions": ("110000",)}, None, None, id="origin-knows-no-box"),
    ],
)
def test_programme_refusal(
    granted: dict[str, object], region: str | None, reason: str | None
) -> None:
    refusal = rights.programme_refusal(_programme(NOW - 2 * H, NOW - H, **granted), region)
    assert (refusal.reason if refusal else None) == reason


def test_overlapping_takes_the_half_open_intervals_that_meet_the_window() -> None:
    before = _programme(NOW - 3 * H, NOW - 2 * H)
    inside = _programme(NOW - 2 * H, NOW - H)
    after = _programme(NOW - H, NOW)
    assert rights.overlapping([before, inside, after], NOW - 2 * H, NOW - H) == [inside]
