"""The front door's alert lookup: which alert a box sees, by region, channel and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cdn_ctl.frontdoor.playback import alert_cut
from cdn_ctl.upstream.alerts import AlertCache, areas_of
from epg.alerts.domain import Alert, AlertState, Severity

T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
LINGER = timedelta(seconds=120)


def _alert(
    alert_id: str,
    regions: tuple[str, ...],
    *,
    severity: Severity = Severity.SEVERE,
    channels: tuple[str, ...] = (),
    start: datetime | None = T0,
    until: datetime | None = None,
    feed: str = "emergency",
) -> Alert:
    return Alert(
        id=alert_id,
        severity=severity,
        headline="Flood warning",
        regions=regions,
        channel_ids=channels,
        feed_channel_id=feed,
        state=AlertState.CONFIRMED if start else AlertState.PENDING,
        in_force_from=start,
        in_force_until=until,
    )


def _cache(*alerts: Alert) -> AlertCache:
    cache = AlertCache("127.0.0.1:9", "hk_x", now=lambda: T0)
    cache.hold(alerts)
    return cache


def test_a_box_is_looked_up_under_its_county_city_and_province() -> None:
    assert areas_of("440305") == ("440305", "440300", "440000")


@pytest.mark.parametrize(
    ("area", "region", "reached"),
    [
        pytest.param("440305", "440305", True, id="same-county"),
        pytest.param("440305", "440306", False, id="neighbouring-county"),
        pytest.param("440300", "440306", True, id="city-covers-its-counties"),
        pytest.param("440300", "440106", False, id="other-city"),
        pytest.param("440000", "440106", True, id="province-covers-all"),
        pytest.param("450000", "440106", False, id="other-province"),
    ],
)
async def test_an_alert_reaches_exactly_the_boxes_inside_its_regions(
    area: str, region: str, reached: bool
) -> None:
    cache = _cache(_alert("a1", (area,)))
    found = cache.live("news1.cn", region, T0 + timedelta(seconds=1), linger=LINGER)
    assert (found is not None) == reached


async def test_only_the_named_channels_are_replaced() -> None:
    cache = _cache(_alert("a1", ("440305",), channels=("news1.cn",)))
    at = T0 + timedelta(seconds=1)
    assert cache.live("news1.cn", "440305", at, linger=LINGER) is not None
    assert cache.live("sport.cn", "440305", at, linger=LINGER) is None


async def test_a_pending_alert_or_one_cancelled_as_it_was_confirmed_reaches_nobody() -> None:
    cache = _cache(_alert("p", ("440305",), start=None), _alert("z", ("440305",), until=T0))
    assert cache.alerts == ()
    assert cache.live("news1.cn", "440305", T0, linger=LINGER) is None


async def test_an_alert_applies_from_its_start_and_lingers_after_its_end() -> None:
    end = T0 + timedelta(minutes=10)
    cache = _cache(_alert("a1", ("440305",), until=end))
    assert cache.live("c", "440305", T0 - timedelta(seconds=1), linger=LINGER) is None
    assert cache.live("c", "440305", T0, linger=LINGER) is not None
    # Ended, but a player may still be crossing the join back: it keeps the cut playlist.
    assert cache.live("c", "440305", end + LINGER / 2, linger=LINGER) is not None
    assert cache.live("c", "440305", end + LINGER, linger=LINGER) is None
    # The lineup and guide show it only while it is in force.
    assert [a.id for a in cache.reaching("440305", end - timedelta(seconds=1))] == ["a1"]
    assert cache.reaching("440305", end) == []


async def test_the_most_severe_then_the_latest_alert_wins_the_same_everywhere() -> None:
    later = T0 + timedelta(minutes=1)
    cache = _cache(
        _alert("severe-early", ("440000",), severity=Severity.SEVERE, feed="f1"),
        _alert("severe-late", ("440300",), severity=Severity.SEVERE, start=later, feed="f2"),
        _alert("minor", ("440305",), severity=Severity.MINOR, start=later, feed="f3"),
    )
    at = later + timedelta(seconds=1)
    winner = cache.live("c", "440305", at, linger=LINGER)
    assert winner is not None
    assert winner.id == "severe-late"
    assert [a.id for a in cache.reaching("440305", at)] == ["severe-late", "severe-early", "minor"]
    extreme = _alert("extreme", ("440000",), severity=Severity.EXTREME, feed="f4")
    cache.hold((*cache.alerts, extreme))
    winner = cache.live("c", "440305", at, linger=LINGER)
    assert winner is not None
    assert winner.id == "extreme"


async def test_catch_up_windows_see_the_alert_they_overlap() -> None:
    end = T0 + timedelta(minutes=10)
    cache = _cache(_alert("a1", ("440305",), until=end))
    hour = timedelta(hours=1)
    assert cache.window("c", "440305", T0 - hour, T0 + timedelta(seconds=1)) is not None
    assert cache.window("c", "440305", T0 - hour, T0) is None
    assert cache.window("c", "440305", end, end + hour) is None
    assert cache.window("c", "440306", T0 - hour, end) is None


async def test_the_cut_spans_the_alert_in_whole_seconds_open_while_it_lasts() -> None:
    start = T0 + timedelta(milliseconds=400)
    open_alert = _alert("a1", ("440305",), start=start, feed="emergency")
    cut = alert_cut(open_alert)
    assert (cut.feed, cut.start, cut.end) == ("emergency", int(T0.timestamp()), 0)
    ended = _alert("a2", ("440305",), start=start, until=start + timedelta(milliseconds=300))
    cut = alert_cut(ended)
    assert cut.end == int(T0.timestamp()) + 1 > cut.start
    card = Alert("flood-1", Severity.EXTREME, "h", ("440305",), in_force_from=T0)
    assert alert_cut(card).feed == "alert-flood-1"
