"""The alert use cases on a real Redis: steps, the two-person rule, races, expiry, the
feed, trimming and the metrics."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from epg.alerts.domain import AlertState
from epg.alerts.errors import AlertExists, AlertNotFound, AlertStateConflict
from epg.alerts.service import AlertService
from epg.alerts.store import ALERTS, AlertStore
from epg.errors import NotAllowed
from epg.store import EpgStore
from headend.auth import ADMIN, PLAYBACK, Principal, key_id
from tests.epg.alerts.support import T0, Clock, alert
from tests.support.tokens import Tokens

AGENCY = Principal("emergency", "gd-eb")
OTHER = Principal("emergency", "gd-eb2")


@pytest.fixture
async def two_keys(tokens: Tokens) -> tuple[str, str]:
    """Two emergency keys: the issuer's and the confirmer's."""
    return await tokens(AGENCY), await tokens(OTHER)


async def test_issue_confirm_by_another_key(
    alerts: AlertService, two_keys: tuple[str, str], clock: Clock
) -> None:
    first, second = two_keys
    issued = await alerts.issue(AGENCY, alert("t1"), api_key=first)
    assert issued.state is AlertState.PENDING
    assert issued.in_force_from is None
    assert issued.confirm_by == T0 + timedelta(seconds=900)
    assert [(s.action, s.principal, s.key_id) for s in issued.history] == [
        ("issue", "emergency:gd-eb", key_id(first))
    ]
    clock.advance(60)
    confirmed = await alerts.confirm(OTHER, "t1", api_key=second)
    assert confirmed.state is AlertState.CONFIRMED
    assert confirmed.in_force_from == T0 + timedelta(seconds=60)
    assert confirmed.in_force_until is None
    assert confirmed.in_force(clock.now)
    assert [s.action for s in confirmed.history] == ["issue", "confirm"]
    assert confirmed.history[1].key_id == key_id(second) != key_id(first)


async def test_the_issuing_key_may_not_confirm_and_it_is_audited(
    alerts: AlertService, two_keys: tuple[str, str], registry: CollectorRegistry
) -> None:
    first, _ = two_keys
    await alerts.issue(AGENCY, alert("t1"), api_key=first)
    with pytest.raises(NotAllowed, match="two-person rule"):
        await alerts.confirm(AGENCY, "t1", api_key=first)
    stored = await alerts.get(ADMIN, "t1")
    assert stored.state is AlertState.PENDING
    assert [s.action for s in stored.history] == ["issue", "refuse_confirm"]
    assert stored.history[1].key_id == key_id(first)
    assert registry.get_sample_value("epg_alert_steps_total", {"action": "refuse_confirm"}) == 1


async def test_a_drill_is_in_force_once_issued(
    alerts: AlertService, two_keys: tuple[str, str]
) -> None:
    drill = await alerts.issue(AGENCY, alert("d1", drill=True), api_key=two_keys[0])
    assert drill.state is AlertState.CONFIRMED
    assert drill.in_force_from == T0
    assert drill.confirm_by is None


async def test_in_force_from_the_later_of_start_and_confirmation(
    alerts: AlertService, two_keys: tuple[str, str], clock: Clock
) -> None:
    start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=3)
    await alerts.issue(AGENCY, alert("t1", start=start, end=end), api_key=two_keys[0])
    confirmed = await alerts.confirm(OTHER, "t1", api_key=two_keys[1])
    assert (confirmed.in_force_from, confirmed.in_force_until) == (start, end)
    clock.advance(7200)
    cancelled = await alerts.cancel(OTHER, "t1", api_key=two_keys[1], reason="all clear")
    assert cancelled.state is AlertState.CANCELLED
    assert cancelled.in_force_until == T0 + timedelta(hours=2)
    assert cancelled.history[-1].reason == "all clear"


async def test_two_confirms_at_once_one_wins(
    alerts: AlertService, tokens: Tokens, two_keys: tuple[str, str]
) -> None:
    await alerts.issue(AGENCY, alert("t1"), api_key=two_keys[0])
    third = await tokens(Principal("emergency", "gd-eb3"))
    results = await asyncio.gather(
        alerts.confirm(OTHER, "t1", api_key=two_keys[1]),
        alerts.confirm(Principal("emergency", "gd-eb3"), "t1", api_key=third),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert sum(isinstance(r, AlertStateConflict) for r in results) == 1
    stored = await alerts.get(ADMIN, "t1")
    assert [s.action for s in stored.history] == ["issue", "confirm"]


async def test_issue_is_idempotent_for_the_same_alert_only(
    alerts: AlertService, two_keys: tuple[str, str], redis: aioredis.Redis
) -> None:
    first = await alerts.issue(AGENCY, alert("t1"), api_key=two_keys[0])
    again = await alerts.issue(AGENCY, alert("t1"), api_key=two_keys[0])
    assert again == first
    with pytest.raises(AlertExists):
        await alerts.issue(AGENCY, alert("t1", headline="Other"), api_key=two_keys[0])
    assert await redis.xlen("epg:{epg}:changes") == 1


async def test_validate_only_stores_nothing(
    alerts: AlertService, two_keys: tuple[str, str], redis: aioredis.Redis
) -> None:
    checked = await alerts.issue(AGENCY, alert(), api_key=two_keys[0], validate_only=True)
    assert checked.id.startswith("20300501-")
    assert await redis.exists(ALERTS) == 0


async def test_cancel_rules(alerts: AlertService, two_keys: tuple[str, str]) -> None:
    await alerts.issue(AGENCY, alert("t1"), api_key=two_keys[0])
    cancelled = await alerts.cancel(ADMIN, "t1", api_key="")
    assert cancelled.state is AlertState.CANCELLED
    assert cancelled.in_force_from is None
    assert cancelled.in_force_until is None
    assert cancelled.history[-1].principal == "admin"
    with pytest.raises(AlertStateConflict):
        await alerts.cancel(AGENCY, "t1", api_key=two_keys[0])
    with pytest.raises(AlertStateConflict):
        await alerts.confirm(OTHER, "t1", api_key=two_keys[1])
    with pytest.raises(AlertNotFound):
        await alerts.cancel(AGENCY, "nope", api_key=two_keys[0])


async def test_unconfirmed_alerts_expire(
    alerts: AlertService, two_keys: tuple[str, str], clock: Clock, redis: aioredis.Redis
) -> None:
    await alerts.issue(AGENCY, alert("t1"), api_key=two_keys[0])
    clock.advance(900)
    # Read as expired at once, before anything writes it.
    assert (await alerts.get(PLAYBACK, "t1")).state is AlertState.EXPIRED
    assert await redis.xlen("epg:{epg}:changes") == 1
    with pytest.raises(AlertStateConflict, match="expired"):
        await alerts.confirm(OTHER, "t1", api_key=two_keys[1])
    stored = await alerts.get(ADMIN, "t1")
    assert [s.action for s in stored.history] == ["issue", "expire"]
    assert stored.history[1].time == T0 + timedelta(seconds=900)
    assert await redis.xlen("epg:{epg}:changes") == 2


async def test_the_sweep_writes_expiries_and_the_gauge(
    alerts: AlertService,
    two_keys: tuple[str, str],
    clock: Clock,
    registry: CollectorRegistry,
    store: EpgStore,
) -> None:
    await alerts.issue(AGENCY, alert("t1"), api_key=two_keys[0])
    await alerts.issue(AGENCY, alert("d1", drill=True), api_key=two_keys[0])
    clock.advance(901)
    await alerts.sweep()
    changes = await store.read_changes(0, block_ms=10)
    assert [(c.kind, c.channel_id, c.programme_ids) for c in changes] == [
        ("alerts", "", ("t1",)),
        ("alerts", "", ("d1",)),
        ("alerts", "", ("t1",)),
    ]
    assert (await alerts.get(ADMIN, "t1")).history[-1].action == "expire"
    assert registry.get_sample_value("epg_alerts_in_force", {"severity": "severe"}) == 1
    assert registry.get_sample_value("epg_alerts_in_force", {"severity": "minor"}) == 0
    assert registry.get_sample_value("epg_alert_steps_total", {"action": "expire"}) == 1


async def test_list_newest_first_and_ended_after(
    alerts: AlertService, two_keys: tuple[str, str], clock: Clock
) -> None:
    await alerts.issue(AGENCY, alert("old"), api_key=two_keys[0])
    await alerts.cancel(AGENCY, "old", api_key=two_keys[0])
    clock.advance(10)
    await alerts.issue(AGENCY, alert("new", drill=True), api_key=two_keys[0])
    assert [a.id for a in await alerts.list_alerts(PLAYBACK)] == ["new", "old"]
    assert [a.id for a in await alerts.list_alerts(ADMIN, ended_after=clock.now)] == ["new"]


async def test_the_oldest_ended_alerts_go_beyond_the_cap(
    alerts: AlertService, two_keys: tuple[str, str], clock: Clock, alert_store: AlertStore
) -> None:
    for i in range(5):
        await alerts.issue(AGENCY, alert(f"a{i}"), api_key=two_keys[0])
        await alerts.cancel(AGENCY, f"a{i}", api_key=two_keys[0])
        clock.advance(1)
    await alerts.issue(AGENCY, alert("a5"), api_key=two_keys[0])
    kept = sorted(a.id for a in await alert_store.list_all())
    assert kept == ["a1", "a2", "a3", "a4", "a5"]


@pytest.mark.parametrize(
    ("who", "may_read"),
    [
        pytest.param(ADMIN, True, id="admin"),
        pytest.param(PLAYBACK, True, id="playback"),
        pytest.param(AGENCY, True, id="emergency"),
        pytest.param(Principal("broadcaster", "cctv"), False, id="broadcaster"),
        pytest.param(Principal("carrier", "acme"), False, id="carrier"),
        pytest.param(Principal("device", "aa:bb:cc:dd:ee:ff"), False, id="device"),
    ],
)
async def test_who_may(
    alerts: AlertService, two_keys: tuple[str, str], who: Principal, may_read: bool
) -> None:
    await alerts.issue(AGENCY, alert("t1"), api_key=two_keys[0])
    if may_read:
        assert (await alerts.get(who, "t1")).id == "t1"
    else:
        with pytest.raises(NotAllowed):
            await alerts.list_alerts(who)
    if who != AGENCY:
        with pytest.raises(NotAllowed):
            await alerts.issue(who, alert("t2"), api_key="")
        with pytest.raises(NotAllowed):
            await alerts.confirm(who, "t1", api_key="")
    if who not in (AGENCY, ADMIN):
        with pytest.raises(NotAllowed):
            await alerts.cancel(who, "t1", api_key="")
    assert (await alerts.get(ADMIN, "t1")).state is AlertState.PENDING
