"""The front door's settings (``FRONTDOOR_*``), part of :class:`cdn_ctl.settings.CdnSettings`."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import timedelta

from cdn_ctl.boxtoken import BoxTokenSigner
from cdn_ctl.signing import b64url_decode
from headend.errors import HeadendError
from headend.ids import CHANNEL_ID_RULE, is_channel_id
from headend.languages import is_language_tag, player_language
from headend.regions import covers, is_region, level
from headend.rpc import ClientTls
from headend.settings import (
    Env,
    Network,
    SettingsError,
    env_choice,
    env_float,
    env_int,
    env_networks,
    env_secret,
    env_str,
    split_list,
)

BINDINGS = ("none", "prefix", "address")


@dataclass(frozen=True, slots=True)
class TokenBinding:
    """Whether a box token works only from the address (or network) it logged in from.

    ``address`` is strictest; ``prefix`` (the same /24 or /56) survives a home router's
    re-dial; ``none`` suits carrier-grade NAT and mobile boxes whose address moves,
    where the token-sharing check (several addresses at once) is the defence.
    """

    mode: str = "none"

    def admits(self, login_address: str, client: str) -> bool:
        """May a token issued to ``login_address`` be used from ``client``?"""
        if self.mode == "none" or not login_address:
            return True
        if self.mode == "address":
            return login_address == client
        try:
            first, now = ipaddress.ip_address(login_address), ipaddress.ip_address(client)
        except ValueError:
            return False
        bits = 24 if first.version == 4 else 56
        if first.version != now.version:
            return False
        net = ipaddress.ip_network(f"{first}/{bits}", strict=False)
        return now in net


@dataclass(frozen=True, slots=True)
class FrontDoorSettings:
    """Where the EPG, subscriber and transcode services are, the box token keys, and cache
    bounds."""

    epg_target: str
    subscriber_target: str
    api_key: str
    session_keys: tuple[tuple[str, bytes], ...]
    session_active_kid: str
    session_ttl_seconds: int = 43_200
    # The bound on how long a suspension or revocation takes to reach a playing box.
    entitlement_ttl_seconds: float = 10.0
    # Safety net behind the EPG change feed.
    guide_ttl_seconds: float = 300.0
    # While the EPG or subscriber service cannot answer (its store is down), expired
    # cached answers keep being used for up to this long, so playing boxes keep playing;
    # the suspension bound grows to this for the length of such an outage.
    stale_if_error_seconds: float = 120.0
    heartbeat_seconds: float = 20.0
    master_ttl_seconds: float = 5.0
    guide_past_days: int = 1
    guide_future_days: int = 7
    catchup_max_hours: int = 6
    # How far back live can be paused or rewound (timeshift): the default, and per channel
    # (``(channel, hours)``; 0 turns timeshift off for that channel).
    timeshift_hours: float = 2.0
    timeshift_channel_hours: tuple[tuple[str, float], ...] = ()
    # The default audio language of boxes in a region (``(region code, language)``, any
    # level of the 6-digit hierarchy; the narrowest that covers a box wins), where a live
    # channel has an audio rendition in it; elsewhere the channel's own default.
    audio_languages: tuple[tuple[str, str], ...] = ()
    public_url: str = ""
    # Who may set X-Forwarded-For (load balancers in front of the front door).
    trusted_proxies: tuple[Network, ...] = ()
    token_binding: TokenBinding = field(default_factory=TokenBinding)
    # A token seen from more addresses than this within the window is refused.
    max_addresses_per_token: int = 3
    address_window_seconds: float = 60.0
    # Requests per box token per minute, summed over replicas (a box polls every 2-6 s).
    fetches_per_minute: int = 600
    # Failed logins: per box (MAC) and per address, then a lockout an operator can clear.
    login_failures_per_mac: int = 5
    login_failures_per_address: int = 100
    login_window_seconds: float = 900.0
    login_lockout_seconds: float = 900.0
    # Open connections, in total and per address (carrier NAT puts many boxes on one).
    max_connections: int = 20_000
    max_connections_per_address: int = 1_000
    # An idle connection, or one still sending its request head, is closed after this.
    idle_timeout_seconds: float = 15.0
    # Content key requests per box token per minute (each also counts as a fetch).
    key_requests_per_minute: int = 60
    # How long a content key stays in this replica's memory: the bound on a revocation.
    key_cache_seconds: float = 5.0
    # A live lease opens the channel's keys whose span is this close to now (the live
    # window and the next key announced ahead); older ones need a catch-up grant.
    live_key_window_seconds: float = 1800.0
    # A live channel (the slate) that boxes in a blacked-out region see instead of the
    # blacked-out programme; empty: the programme is refused (403 blacked_out).
    blackout_channel: str = ""
    # How long after an emergency alert ends its boxes keep the playlist that has it, so
    # a player crosses the join back to its channel before it returns to the plain one.
    alert_linger_seconds: float = 120.0
    # The safety net behind the change feed: the alerts are re-read at least this often.
    alert_refresh_seconds: float = 30.0
    # TLS/mTLS towards EPG, subscriber and transcode (GRPC_CLIENT_*; None: plaintext).
    grpc_tls: ClientTls | None = None
    # The transcode control service, asked with ``api_key`` for the channels' multicast
    # outputs every ``multicast_refresh_seconds`` ("": none; every box gets HLS).
    transcode_target: str = ""
    multicast_refresh_seconds: float = 30.0

    def timeshift_depth(self, channel: str) -> timedelta:
        """How far back ``channel``'s live can be rewound (zero: no timeshift)."""
        hours = dict(self.timeshift_channel_hours).get(channel, self.timeshift_hours)
        return timedelta(hours=hours)

    def audio_language(self, region: str) -> str:
        """The default audio language of boxes in ``region`` ("" when none is set)."""
        covering = [(r, lang) for r, lang in self.audio_languages if covers(r, region)]
        if not covering:
            return ""
        return max(covering, key=lambda item: level(item[0]).value)[1]

    def signer(self) -> BoxTokenSigner:
        """The box token signer/verifier for these keys."""
        return BoxTokenSigner(
            dict(self.session_keys),
            active_kid=self.session_active_kid,
            ttl=timedelta(seconds=self.session_ttl_seconds),
        )

    @classmethod
    def from_env(cls, env: Env) -> FrontDoorSettings | None:
        """``None`` unless ``FRONTDOOR_SESSION_KEYS`` is set (the front door is off)."""
        raw = env_secret(env, "FRONTDOOR_SESSION_KEYS")
        if raw is None:
            return None
        keys = []
        for item in split_list(raw):
            kid, sep, encoded = item.partition(":")
            if not sep or not kid:
                raise SettingsError("FRONTDOOR_SESSION_KEYS", "each key must be kid:base64url")
            try:
                keys.append((kid, b64url_decode(encoded)))
            except HeadendError as err:
                raise SettingsError("FRONTDOOR_SESSION_KEYS", err.message) from err
        if not keys:
            raise SettingsError("FRONTDOOR_SESSION_KEYS", "at least one key")
        active = env_str(env, "FRONTDOOR_SESSION_ACTIVE_KID", keys[-1][0])
        api_key = env_secret(env, "FRONTDOOR_API_KEY")
        if api_key is None:
            raise SettingsError(
                "FRONTDOOR_API_KEY",
                "required: a playback-role API key for EPG/subscriber/transcode",
            )
        proxies = env_networks(env, "FRONTDOOR_TRUSTED_PROXIES", "")
        settings = cls(
            epg_target=env_str(env, "FRONTDOOR_EPG_TARGET", "127.0.0.1:50051"),
            subscriber_target=env_str(env, "FRONTDOOR_SUBSCRIBER_TARGET", "127.0.0.1:50052"),
            api_key=api_key,
            session_keys=tuple(keys),
            session_active_kid=active,
            session_ttl_seconds=env_int(
                env, "FRONTDOOR_SESSION_TTL_SECONDS", 43_200, low=60, high=30 * 86_400
            ),
            entitlement_ttl_seconds=env_float(
                env, "FRONTDOOR_ENTITLEMENT_TTL_SECONDS", 10.0, low=0.1, high=3600
            ),
            guide_ttl_seconds=env_float(
                env, "FRONTDOOR_GUIDE_TTL_SECONDS", 300.0, low=1, high=86_400
            ),
            stale_if_error_seconds=env_float(
                env, "FRONTDOOR_STALE_IF_ERROR_SECONDS", 120.0, low=0, high=86_400
            ),
            heartbeat_seconds=env_float(
                env, "FRONTDOOR_HEARTBEAT_SECONDS", 20.0, low=0.05, high=3600
            ),
            master_ttl_seconds=env_float(
                env, "FRONTDOOR_MASTER_TTL_SECONDS", 5.0, low=0, high=3600
            ),
            guide_past_days=env_int(env, "FRONTDOOR_GUIDE_PAST_DAYS", 1, low=0, high=30),
            guide_future_days=env_int(env, "FRONTDOOR_GUIDE_FUTURE_DAYS", 7, low=1, high=30),
            catchup_max_hours=env_int(env, "FRONTDOOR_CATCHUP_MAX_HOURS", 6, low=1, high=24),
            timeshift_hours=env_float(env, "FRONTDOOR_TIMESHIFT_HOURS", 2.0, low=0, high=24),
            timeshift_channel_hours=_channel_hours(env, "FRONTDOOR_TIMESHIFT_CHANNEL_HOURS"),
            audio_languages=_region_languages(env, "FRONTDOOR_AUDIO_LANGUAGES"),
            public_url=env_str(env, "FRONTDOOR_PUBLIC_URL", "").rstrip("/"),
            trusted_proxies=proxies,
            token_binding=TokenBinding(
                env_choice(env, "FRONTDOOR_TOKEN_BINDING", "none", BINDINGS)
            ),
            max_addresses_per_token=env_int(
                env, "FRONTDOOR_MAX_ADDRESSES_PER_TOKEN", 3, low=1, high=1000
            ),
            address_window_seconds=env_float(
                env, "FRONTDOOR_ADDRESS_WINDOW_SECONDS", 60.0, low=1, high=86_400
            ),
            fetches_per_minute=env_int(
                env, "FRONTDOOR_FETCHES_PER_MINUTE", 600, low=10, high=1_000_000
            ),
            login_failures_per_mac=env_int(
                env, "FRONTDOOR_LOGIN_FAILURES_PER_MAC", 5, low=1, high=10_000
            ),
            login_failures_per_address=env_int(
                env, "FRONTDOOR_LOGIN_FAILURES_PER_ADDRESS", 100, low=1, high=1_000_000
            ),
            login_window_seconds=env_float(
                env, "FRONTDOOR_LOGIN_WINDOW_SECONDS", 900.0, low=1, high=86_400
            ),
            login_lockout_seconds=env_float(
                env, "FRONTDOOR_LOGIN_LOCKOUT_SECONDS", 900.0, low=1, high=86_400
            ),
            max_connections=env_int(
                env, "FRONTDOOR_MAX_CONNECTIONS", 20_000, low=10, high=1_000_000
            ),
            max_connections_per_address=env_int(
                env, "FRONTDOOR_MAX_CONNECTIONS_PER_ADDRESS", 1_000, low=1, high=1_000_000
            ),
            idle_timeout_seconds=env_float(
                env, "FRONTDOOR_IDLE_TIMEOUT_SECONDS", 15.0, low=1, high=3600
            ),
            key_requests_per_minute=env_int(
                env, "FRONTDOOR_KEY_REQUESTS_PER_MINUTE", 60, low=1, high=1_000_000
            ),
            key_cache_seconds=env_float(env, "FRONTDOOR_KEY_CACHE_SECONDS", 5.0, low=0, high=300),
            live_key_window_seconds=env_float(
                env, "FRONTDOOR_LIVE_KEY_WINDOW_SECONDS", 1800.0, low=60, high=86_400
            ),
            blackout_channel=_channel(env, "FRONTDOOR_BLACKOUT_CHANNEL"),
            alert_linger_seconds=env_float(
                env, "FRONTDOOR_ALERT_LINGER_SECONDS", 120.0, low=0, high=3600
            ),
            alert_refresh_seconds=env_float(
                env, "FRONTDOOR_ALERT_REFRESH_SECONDS", 30.0, low=1, high=3600
            ),
            grpc_tls=ClientTls.from_env(env),
            transcode_target=env_str(env, "FRONTDOOR_TRANSCODE_TARGET", ""),
            multicast_refresh_seconds=env_float(
                env, "FRONTDOOR_MULTICAST_REFRESH_SECONDS", 30.0, low=1, high=3600
            ),
        )
        try:
            settings.signer()
        except HeadendError as err:
            raise SettingsError("FRONTDOOR_SESSION_KEYS", err.message) from err
        return settings


def _region_languages(env: Env, name: str) -> tuple[tuple[str, str], ...]:
    """``region=language,...``, e.g. ``440000=yue,540000=bo`` (a province, city or county
    code; a language tag)."""
    pairs = []
    for item in split_list(env_str(env, name, "")):
        region, _, language = item.partition("=")
        if not is_region(region) or not is_language_tag(language):
            raise SettingsError(
                name, f"each item must be region=language (e.g. 440000=yue), got {item!r}"
            )
        pairs.append((region, player_language(language)))
    return tuple(pairs)


def _channel(env: Env, name: str) -> str:
    """A channel id, or empty."""
    value = env_str(env, name, "")
    if value and not is_channel_id(value):
        raise SettingsError(name, f"must be a channel id ({CHANNEL_ID_RULE})")
    return value


def _channel_hours(env: Env, name: str) -> tuple[tuple[str, float], ...]:
    """``channel=hours,...`` (hours 0-24, as the default's), e.g. ``news1.cn=4,sport.cn=0``."""
    pairs = []
    for item in split_list(env_str(env, name, "")):
        channel, sep, raw = item.partition("=")
        try:
            hours = float(raw) if sep and channel else -1.0
        except ValueError:
            hours = -1.0
        if not 0 <= hours <= 24:
            raise SettingsError(name, f"each item must be channel=hours (0-24), got {item!r}")
        pairs.append((channel, hours))
    return tuple(pairs)
