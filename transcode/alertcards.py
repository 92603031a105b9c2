"""The farm's card channels for emergency alerts: one live channel ``alert-{id}`` per alert
with a card, kept by a reconciler in the control server.

Every ``TC_ALERT_CARDS_SECONDS`` it reads the alerts from the EPG (``AlertService``, with
``TC_ALERTS_API_KEY``: the farm's EPG playback key, which the cue reconciler
``transcode.cuesync`` reads the cues with too) and makes the farm match
(:func:`wanted`): an alert with a card that has not ended has its channel running, from
its issue on, so the card is encoded and its live window full by the time a second key
confirms it; the channel stops once the alert ended (cancelled, expired, or past its end)
more than ``TC_ALERT_CARD_LINGER_SECONDS`` ago, so boxes switched back first. The card
channel takes ``TC_ALERT_CARD_PROFILE`` and ``TC_ALERT_CARD_SEGMENT_SECONDS``: the platform's
channels' ladder and segment length, so a box switched to it finds the same rung names and
target duration.

A pass is idempotent: it starts only what is missing or whose card changed and stops what
ended, through ``TranscodeService`` as the admin (the same checks as an operator's start:
the card's audio file must be under ``TC_MEDIA_ROOTS``). Several control replicas may run
it at once: a start of a running channel with the same configuration changes nothing, a
stop of a stopped one neither. When the EPG cannot answer, the pass is skipped (logged and
counted) and every card channel keeps running. A card the allow-lists refuse is logged
once and not retried until the alert's card changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge

from epg.alerts.client import AlertClient
from epg.alerts.domain import CARD_CHANNEL_PREFIX, Alert
from epg.owners import OwnersSettings
from headend.auth import ADMIN, Principal
from headend.clock import utc_now
from headend.errors import HeadendError, InvalidArgument
from headend.languages import validate_languages
from headend.settings import (
    Env,
    SettingsError,
    env_float,
    env_int,
    env_secret,
    env_str,
    split_list,
)
from transcode.domain import MAX_TRACKS, Card, ChannelState, ChannelStatus, LiveChannel
from transcode.errors import ChannelNotFound, ChannelRunning, InvalidRequest
from transcode.profiles import resolve_profile

log = logging.getLogger(__name__)

# Alert channels this replica did not start (another replica's, or before a restart) are
# found by listing every channel once in this many passes.
_LIST_EVERY_PASSES = 30
# The EPG is asked with a short deadline: a pass waits for nothing longer (the farm's
# reconcilers' clients, this one's and ``transcode.cuesync``'s).
EPG_CALL_SECONDS = 3.0
# Reconnect within seconds once the EPG is back (gRPC's default backoff grows to 2 minutes).
EPG_CHANNEL_OPTIONS = (("grpc.max_reconnect_backoff_ms", 5_000),)


@dataclass(frozen=True, slots=True)
class AlertCardSettings:
    """The reconciler: the farm's EPG playback key, which it reads the alerts with ("": off,
    and the cue reconciler too), its pace, the card channels' profile and segment length,
    and how long a channel outlives its alert."""

    api_key: str = ""
    interval_seconds: float = 2.0
    linger_seconds: float = 120.0
    profile: str = "default"
    segment_seconds: int = 6
    # The card's sound as an audio rendition per language (the same sound in each), where
    # the platform's channels carry theirs as renditions: a box switched from such a
    # channel finds its language's rendition in the card too. Empty: muxed into the rungs.
    audio_languages: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        """True when the farm's EPG playback key is set."""
        return bool(self.api_key)

    @classmethod
    def from_env(cls, env: Env) -> AlertCardSettings:
        """Read ``TC_ALERTS_API_KEY`` (or ``_FILE``), ``TC_ALERT_CARDS_SECONDS``,
        ``TC_ALERT_CARD_LINGER_SECONDS``, ``TC_ALERT_CARD_PROFILE``,
        ``TC_ALERT_CARD_SEGMENT_SECONDS`` and ``TC_ALERT_CARD_AUDIO_LANGUAGES``."""
        profile = env_str(env, "TC_ALERT_CARD_PROFILE", "default")
        segment_seconds = env_int(env, "TC_ALERT_CARD_SEGMENT_SECONDS", 6, low=1, high=10)
        try:
            resolve_profile(profile, segment_seconds=segment_seconds)
        except InvalidRequest as err:
            raise SettingsError("TC_ALERT_CARD_PROFILE", err.reason) from err
        languages = split_list(env_str(env, "TC_ALERT_CARD_AUDIO_LANGUAGES", ""))
        try:
            validate_languages("audio_languages", languages, limit=MAX_TRACKS)
        except InvalidArgument as err:
            raise SettingsError("TC_ALERT_CARD_AUDIO_LANGUAGES", err.reason) from err
        return cls(
            api_key=env_secret(env, "TC_ALERTS_API_KEY") or "",
            interval_seconds=env_float(env, "TC_ALERT_CARDS_SECONDS", 2.0, low=0.1, high=300),
            linger_seconds=env_float(
                env, "TC_ALERT_CARD_LINGER_SECONDS", 120.0, low=0, high=86_400
            ),
            profile=profile,
            segment_seconds=segment_seconds,
            audio_languages=languages,
        )


def card_channel(alert: Alert, settings: AlertCardSettings) -> LiveChannel | None:
    """The live channel of a card alert (None for a feed alert)."""
    if alert.card is None:
        return None
    return LiveChannel(
        id=alert.playout_channel_id,
        source="",
        profile=settings.profile,
        segment_seconds=settings.segment_seconds,
        card=Card(alert.card.text, alert.card.audio_uri),
        audio_languages=settings.audio_languages,
    )


def wanted(
    alerts: list[Alert], now: datetime, settings: AlertCardSettings
) -> dict[str, LiveChannel]:
    """The card channels that should run at ``now``, by id: every card alert's that has not
    ended, or ended less than the linger ago."""
    linger = timedelta(seconds=settings.linger_seconds)
    channels = {}
    for alert in alerts:
        channel = card_channel(alert, settings)
        end = alert.ended_at  # pending: when it would expire unconfirmed
        if channel is not None and (end is None or now < end + linger):
            channels[channel.id] = channel
    return channels


class Alerts(Protocol):
    """The emergency alerts (``epg.alerts.client.AlertClient``)."""

    async def list_alerts(self, *, ended_after: datetime | None = None) -> list[Alert]: ...
    async def close(self) -> None: ...


class Channels(Protocol):
    """Live channels, as an operator starts them (``service.TranscodeService``)."""

    async def start_channel(self, principal: Principal, channel: LiveChannel) -> ChannelStatus: ...
    async def stop_channel(self, principal: Principal, channel_id: str) -> ChannelStatus: ...
    async def get_channel(
        self, principal: Principal, channel_id: str, *, api_key: str
    ) -> ChannelStatus: ...
    async def list_channels(self, principal: Principal, *, api_key: str) -> list[ChannelStatus]: ...


class AlertCardMetrics:
    """The card channels running, and the passes that could not read the alerts."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.running = Gauge(
            "transcode_alert_card_channels",
            "Card channels of emergency alerts (alert-{id}) running, as of the last pass.",
            registry=registry,
        )
        self.failures = Counter(
            "transcode_alert_card_failures_total",
            "Reconciler passes that failed (the EPG unreachable, a start or stop refused).",
            registry=registry,
        )


class AlertCards:
    """Keeps a card channel running for every card alert (a server component: ``async
    with`` runs the reconciler until the server stops)."""

    def __init__(
        self,
        settings: AlertCardSettings,
        *,
        channels: Channels,
        alerts: Alerts,
        metrics: AlertCardMetrics,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._settings = settings
        self._channels = channels
        self._alerts = alerts
        self._metrics = metrics
        self._now = now
        # Alert channels seen running; the others are found by a full listing now and then.
        self._known: set[str] = set()
        # Channels the allow-lists refused, by id: not retried until the card changes.
        self._refused: dict[str, LiveChannel] = {}
        self._passes = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AlertCards:
        self._task = asyncio.create_task(self.run(), name="alert-cards")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._alerts.close()

    async def run(self) -> None:
        """A pass every ``interval_seconds`` until cancelled; a failed pass is logged."""
        while True:
            try:
                await self.reconcile()
            except (HeadendError, aioredis.RedisError, OSError) as err:
                self._metrics.failures.inc()
                log.warning("alert cards not reconciled", extra={"error": str(err)})
            except Exception:  # a bug: logged with its trace, and the next pass runs
                self._metrics.failures.inc()
                log.exception("alert cards not reconciled")
            await asyncio.sleep(self._settings.interval_seconds)

    async def reconcile(self) -> None:
        """One pass: read the alerts, start the card channels missing, stop those ended."""
        now = self._now()
        linger = timedelta(seconds=self._settings.linger_seconds)
        alerts = await self._alerts.list_alerts(ended_after=now - linger)
        want = wanted(alerts, now, self._settings)
        running = await self._running(set(want))
        for channel_id, channel in want.items():
            status = running.get(channel_id)
            if self._refused.get(channel_id) == channel or (status and status.channel == channel):
                continue
            if await self._start(channel):
                running[channel_id] = await self._status(channel_id)
        for channel_id in set(running) - set(want):
            await self._channels.stop_channel(ADMIN, channel_id)
            log.info("alert card channel stopped", extra={"channel": channel_id})
            del running[channel_id]
        self._known = set(running)
        self._metrics.running.set(len(running))

    async def _start(self, channel: LiveChannel) -> bool:
        """Start ``channel`` (another configuration of it is stopped first: a changed card);
        False when the allow-lists refuse it."""
        try:
            try:
                await self._channels.start_channel(ADMIN, channel)
            except ChannelRunning:
                await self._channels.stop_channel(ADMIN, channel.id)
                await self._channels.start_channel(ADMIN, channel)
        except InvalidArgument as err:  # the card's audio file, outside TC_MEDIA_ROOTS
            self._refused[channel.id] = channel
            log.error(
                "alert card channel refused",
                extra={"channel": channel.id, "field": err.field, "reason": err.reason},
            )
            return False
        self._refused.pop(channel.id, None)
        log.info("alert card channel started", extra={"channel": channel.id})
        return True

    async def _status(self, channel_id: str) -> ChannelStatus:
        return await self._channels.get_channel(ADMIN, channel_id, api_key="")

    async def _running(self, want: set[str]) -> dict[str, ChannelStatus]:
        """The alert channels not stopped: those wanted or known, or every one in a full
        listing (the first pass, then every ``_LIST_EVERY_PASSES``)."""
        self._passes += 1
        if self._passes % _LIST_EVERY_PASSES == 1:
            found = await self._channels.list_channels(ADMIN, api_key="")
            statuses = [s for s in found if s.channel.id.startswith(CARD_CHANNEL_PREFIX)]
        else:
            statuses = []
            for channel_id in sorted(want | self._known):
                with contextlib.suppress(ChannelNotFound):
                    statuses.append(await self._status(channel_id))
        return {s.channel.id: s for s in statuses if s.state is not ChannelState.STOPPED}


def alert_cards(
    settings: AlertCardSettings,
    epg: OwnersSettings,
    *,
    channels: Channels,
    registry: CollectorRegistry,
) -> AlertCards:
    """The reconciler reading the alerts from the EPG at ``epg.target``."""
    client = AlertClient(
        epg.target,
        settings.api_key,
        tls=epg.tls,
        options=EPG_CHANNEL_OPTIONS,
        timeout_seconds=EPG_CALL_SECONDS,
    )
    return AlertCards(
        settings, channels=channels, alerts=client, metrics=AlertCardMetrics(registry)
    )
