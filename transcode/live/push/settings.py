"""Push settings: where a node mirrors its published files, and the root it may use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from headend.settings import (
    Env,
    SettingsError,
    env_float,
    env_int,
    env_secret,
    split_list,
)
from transcode import ingest

_MIN_SECRET_BYTES = ingest.MIN_SECRET_BYTES


@dataclass(frozen=True, slots=True)
class PushSettings:
    """Where a node mirrors its published files; empty ``origins`` = push off (shared root)."""

    origins: tuple[str, ...] = ()
    secret: bytes = b""
    queue_segments: int = 256
    timeout_seconds: float = 10.0
    retry_first_seconds: float = 0.2
    retry_max_seconds: float = 5.0
    keep_local_seconds: float = 3600.0

    @property
    def enabled(self) -> bool:
        """True when files are pushed."""
        return bool(self.origins)

    @classmethod
    def from_env(cls, env: Env) -> PushSettings:
        """Read ``TC_ORIGIN_PUSH_URLS`` (comma list of origin base URLs), the shared
        ``ORIGIN_INGEST_SECRET`` (the first of its list signs), ``TC_ORIGIN_PUSH_QUEUE_SEGMENTS``,
        ``TC_ORIGIN_PUSH_TIMEOUT_SECONDS``, ``TC_ORIGIN_PUSH_RETRY_MAX_SECONDS`` and
        ``TC_ORIGIN_PUSH_KEEP_LOCAL_SECONDS``."""
        origins = tuple(u.rstrip("/") for u in split_list(env.get("TC_ORIGIN_PUSH_URLS", "")))
        for url in origins:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise SettingsError("TC_ORIGIN_PUSH_URLS", f"not an http(s) URL: {url[:80]}")
        secret = (env_secret(env, "ORIGIN_INGEST_SECRET") or "").split(",")[0].strip().encode()
        if origins and len(secret) < _MIN_SECRET_BYTES:
            raise SettingsError(
                "ORIGIN_INGEST_SECRET",
                f"needed with TC_ORIGIN_PUSH_URLS, at least {_MIN_SECRET_BYTES} bytes",
            )
        return cls(
            origins=origins,
            secret=secret,
            queue_segments=env_int(env, "TC_ORIGIN_PUSH_QUEUE_SEGMENTS", 256, low=1, high=100_000),
            timeout_seconds=env_float(
                env, "TC_ORIGIN_PUSH_TIMEOUT_SECONDS", 10.0, low=0.1, high=600.0
            ),
            retry_max_seconds=env_float(
                env, "TC_ORIGIN_PUSH_RETRY_MAX_SECONDS", 5.0, low=0.01, high=600.0
            ),
            keep_local_seconds=env_float(
                env, "TC_ORIGIN_PUSH_KEEP_LOCAL_SECONDS", 3600.0, low=0.0, high=365 * 86400.0
            ),
        )


def check_root(settings: PushSettings, root: Path) -> None:
    """Refuse (``SettingsError`` naming ``ORIGIN_ROOT``) an origin's root as a pushing node's
    own: the node's local trim would delete that origin's archive."""
    if settings.enabled and (root / ingest.ROOT_MARKER).exists():
        raise SettingsError(
            "ORIGIN_ROOT",
            f"{root} is an origin's root ({ingest.ROOT_MARKER}); with TC_ORIGIN_PUSH_URLS "
            "a node needs a directory of its own",
        )
