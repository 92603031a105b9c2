"""The alert card reconciler: which card channels should run (pure), and the control server
keeping them against a real EPG (``AlertService``) and real FFmpeg: started at issue, none
for a feed alert, stopped once the alert ended past the linger, kept while the EPG is down."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from epg.alerts.client import AlertClient
from epg.alerts.domain import Alert, AlertState, Card, Severity, Step
from epg.owners import OwnersSettings
from headend.auth import KeyStore, Principal
from headend.metrics import RpcMetrics
from headend.rpc import RpcSettings
from headend.settings import SettingsError
from tests.epg.support import serve_epg
from tests.support.live import LiveRig, live_rig
from tests.support.media import Media
from transcode import domain
from transcode.alertcards import AlertCardSettings, wanted
from transcode.domain import ChannelState
from transcode.live import Phase
from transcode.server import create_server
from transcode.settings import ControlSettings, QueueSettings, SourceSettings

pytestmark = pytest.mark.xdist_group("live")

T0 = datetime(2030, 5, 1, 8, 0, tzinfo=UTC)
AGENCY = Principal("emergency", "gd-eb")
SETTINGS = AlertCardSettings(api_key="k", linger_seconds=120, profile="low", segment_seconds=1)


def _alert(alert_id: str, **changes: Any) -> Alert:
    base = Alert(
        id=alert_id,
        severity=Severity.SEVERE,
        headline="Typhoon warning",
        regions=("440000",),
        card=Card("Typhoon: stay indoors\n台风\N{FULLWIDTH COLON}请留在室内"),
    )
    return dataclasses.replace(base, **changes)


def _step(action: str, at: datetime) -> Step:
    return Step(action, "emergency:gd-eb", "kid", at)


@pytest.mark.parametrize(
    ("alert", "runs"),
    [
        pytest.param(_alert("a1"), True, id="pending"),
        pytest.param(
            _alert("a1", state=AlertState.CONFIRMED, in_force_from=T0), True, id="confirmed-open"
        ),
        pytest.param(
            _alert("a1", card=None, feed_channel_id="cctv13"), False, id="feed-alert-ignored"
        ),
        pytest.param(
            _alert(
                "a1",
                state=AlertState.CANCELLED,
                in_force_from=T0 - timedelta(hours=1),
                in_force_until=T0 - timedelta(seconds=119),
            ),
            True,
            id="cancelled-within-the-linger",
        ),
        pytest.param(
            _alert(
                "a1",
                state=AlertState.CANCELLED,
                in_force_from=T0 - timedelta(hours=1),
                in_force_until=T0 - timedelta(seconds=121),
            ),
            False,
            id="cancelled-past-the-linger",
        ),
        pytest.param(
            _alert(
                "a1",
                state=AlertState.CONFIRMED,
                in_force_from=T0 - timedelta(hours=1),
                end=T0 - timedelta(minutes=5),
                in_force_until=T0 - timedelta(minutes=5),
            ),
            False,
            id="past-its-end",
        ),
        pytest.param(
            _alert(
                "a1",
                state=AlertState.EXPIRED,
                history=(_step("issue", T0 - timedelta(minutes=16)), _step("expire", T0)),
            ),
            True,
            id="just-expired-unconfirmed",
        ),
        pytest.param(
            _alert(
                "a1",
                state=AlertState.EXPIRED,
                history=(_step("expire", T0 - timedelta(minutes=3)),),
            ),
            False,
            id="expired-long-ago",
        ),
    ],
)
def test_which_card_channels_run(alert: Alert, runs: bool) -> None:
    assert ("alert-a1" in wanted([alert], T0, SETTINGS)) is runs


def test_a_card_channel_takes_the_cards_text_and_the_platforms_ladder() -> None:
    card = Card("Typhoon", "file:///media/siren.wav")
    channel = wanted([_alert("a1", card=card)], T0, SETTINGS)["alert-a1"]
    assert channel.card == domain.Card("Typhoon", "file:///media/siren.wav")
    assert (channel.source, channel.backup_sources) == ("", ())
    assert (channel.profile, channel.segment_seconds) == ("low", 1)
    assert channel.audio_languages == ()
    assert channel.validate() == channel


def test_a_card_channel_has_the_platforms_audio_renditions_when_set() -> None:
    settings = AlertCardSettings.from_env({"TC_ALERT_CARD_AUDIO_LANGUAGES": "zh,en"})
    channel = wanted([_alert("a1", card=Card("Typhoon"))], T0, settings)["alert-a1"]
    assert channel.audio_languages == ("zh", "en")
    assert channel.validate() == channel


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        pytest.param({"TC_ALERT_CARD_PROFILE": "nope"}, "TC_ALERT_CARD_PROFILE", id="profile"),
        pytest.param({"TC_ALERT_CARDS_SECONDS": "0"}, "TC_ALERT_CARDS_SECONDS", id="interval"),
        pytest.param(
            {"TC_ALERT_CARD_LINGER_SECONDS": "-1"}, "TC_ALERT_CARD_LINGER_SECONDS", id="linger"
        ),
        pytest.param(
            {"TC_ALERT_CARD_AUDIO_LANGUAGES": "zh,zh"},
            "TC_ALERT_CARD_AUDIO_LANGUAGES",
            id="languages-twice",
        ),
        pytest.param(
            {"TC_ALERT_CARD_AUDIO_LANGUAGES": "zh,!!"},
            "TC_ALERT_CARD_AUDIO_LANGUAGES",
            id="not-a-language",
        ),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        AlertCardSettings.from_env(env)
    assert caught.value.name == variable


def test_the_reconciler_is_off_without_a_key() -> None:
    assert not AlertCardSettings.from_env({}).enabled
    settings = AlertCardSettings.from_env({"TC_ALERTS_API_KEY": "secret"})
    assert settings.enabled
    assert (settings.linger_seconds, settings.profile) == (120, "default")


@dataclass
class Rig:
    live: LiveRig
    issuer: AlertClient
    failures: Callable[[], float]
    epg_up: contextlib.AsyncExitStack


@pytest.fixture
async def rig(
    redis: aioredis.Redis,
    keys: KeyStore,
    tokens: Any,
    tmp_path: Path,
    media: Media,
    source_settings: SourceSettings,
) -> AsyncIterator[Rig]:
    async with contextlib.AsyncExitStack() as stack:
        live = await stack.enter_async_context(
            live_rig(tmp_path, media_roots=source_settings.media_roots)
        )
        epg_up = contextlib.AsyncExitStack()
        epg = await epg_up.enter_async_context(serve_epg(redis, keys, tokens))
        stack.push_async_callback(epg_up.aclose)
        settings = ControlSettings(
            rpc=RpcSettings(port=0, grace_seconds=0),
            redis_url="unused://",
            origin_root=live.root,
            queue=QueueSettings(),
            sources=source_settings,
            owners=OwnersSettings(target=epg.target),
            alert_cards=AlertCardSettings(
                api_key=await epg.token("playback"),
                interval_seconds=0.2,
                linger_seconds=1.0,
                profile="low",
                segment_seconds=1,
            ),
        )
        metrics = RpcMetrics()
        server, _port = await create_server(
            settings, redis=redis, keys=keys, channels=live.manager, metrics=metrics
        )
        stack.push_async_callback(server.stop, 0)
        issuer = await stack.enter_async_context(AlertClient(epg.target, await epg.token(AGENCY)))

        def failures() -> float:
            value = metrics.registry.get_sample_value("transcode_alert_card_failures_total")
            return value or 0.0

        yield Rig(live, issuer, failures, epg_up)


async def test_the_farm_runs_a_card_channel_for_each_card_alert(rig: Rig, media: Media) -> None:
    recorder, manager = rig.live.recorder, rig.live.manager
    await rig.issuer.issue(_alert("", card=None, feed_channel_id="cctv13"), alert_id="f1")
    card = Card(
        "Typhoon: stay indoors\n台风\N{FULLWIDTH COLON}请留在室内", f"file://{media.audio_only}"
    )
    await rig.issuer.issue(_alert("", card=card), alert_id="a1")
    await rig.issuer.issue(_alert("", card=Card("Flood warning")), alert_id="a2")
    async with asyncio.timeout(90):
        await recorder.until(
            lambda: all(Phase.LIVE in recorder.phases[c] for c in ("alert-a1", "alert-a2"))
        )
    # Started while PENDING, with the alert's card; the feed alert (seen by the same
    # passes) has none.
    status = await manager.get("alert-a1")
    assert status.channel.card == domain.Card(card.text, card.audio_uri)
    assert status.channel.profile == "low"
    assert "alert-f1" not in recorder.phases
    assert not [s for s in await manager.list_channels() if s.channel.id == "alert-f1"]

    # Cancelled: stopped once the linger (1 s) has passed; the other card runs on (each of
    # its segments wakes the recorder, which checks again).
    await rig.issuer.cancel("a2", reason="all clear")
    async with asyncio.timeout(60):
        await recorder.until(lambda: manager.supervisor("alert-a2") is None)
    assert (await manager.get("alert-a2")).state is ChannelState.STOPPED
    assert manager.supervisor("alert-a1") is not None

    # The EPG goes away: passes fail, counted, and the card channel keeps running.
    await rig.epg_up.aclose()
    before = rig.failures()
    async with asyncio.timeout(60):
        await recorder.until(lambda: rig.failures() >= before + 2)
    assert (await manager.get("alert-a1")).state is ChannelState.LIVE
    assert manager.supervisor("alert-a1") is not None
