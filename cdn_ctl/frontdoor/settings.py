"""The front door's settings (``FRONTDOOR_*``), part of :class:`cdn_ctl.settings.CdnSettings`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from cdn_ctl.session import SessionSigner
from cdn_ctl.signing import b64url_decode
from headend.errors import HeadendError
from headend.settings import Env, SettingsError, env_float, env_int, env_optional, env_str


@dataclass(frozen=True, slots=True)
class FrontDoorSettings:
    """Where the EPG and subscriber services are, the session keys, and cache bounds."""

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
    heartbeat_seconds: float = 20.0
    master_ttl_seconds: float = 5.0
    guide_past_days: int = 1
    guide_future_days: int = 7
    catchup_max_hours: int = 6
    public_url: str = ""

    def signer(self) -> SessionSigner:
        """The session token signer/verifier for these keys."""
        return SessionSigner(
            dict(self.session_keys),
            active_kid=self.session_active_kid,
            ttl=timedelta(seconds=self.session_ttl_seconds),
        )

    @classmethod
    def from_env(cls, env: Env) -> FrontDoorSettings | None:
        """``None`` unless ``FRONTDOOR_SESSION_KEYS`` is set (the front door is off)."""
        raw = env_optional(env, "FRONTDOOR_SESSION_KEYS")
        if raw is None:
            return None
        keys = []
        for item in filter(None, (p.strip() for p in raw.split(","))):
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
        api_key = env_optional(env, "FRONTDOOR_API_KEY")
        if api_key is None:
            raise SettingsError(
                "FRONTDOOR_API_KEY", "required: an admin API key for EPG/subscriber"
            )
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
            heartbeat_seconds=env_float(
                env, "FRONTDOOR_HEARTBEAT_SECONDS", 20.0, low=0.05, high=3600
            ),
            master_ttl_seconds=env_float(
                env, "FRONTDOOR_MASTER_TTL_SECONDS", 5.0, low=0, high=3600
            ),
            guide_past_days=env_int(env, "FRONTDOOR_GUIDE_PAST_DAYS", 1, low=0, high=30),
            guide_future_days=env_int(env, "FRONTDOOR_GUIDE_FUTURE_DAYS", 7, low=1, high=30),
            catchup_max_hours=env_int(env, "FRONTDOOR_CATCHUP_MAX_HOURS", 6, low=1, high=24),
            public_url=env_str(env, "FRONTDOOR_PUBLIC_URL", "").rstrip("/"),
        )
        try:
            settings.signer()
        except HeadendError as err:
            raise SettingsError("FRONTDOOR_SESSION_KEYS", err.message) from err
        return settings
