"""The local stack's secrets (``headend up``, the demo, ``headend seed``).

Secrets the local stack needs (CDN URL-signing keys, box session keys, the
key-encryption keys content keys are stored under, an admin API key for seeding
and operating, and the least-privilege ``playback`` key the front door and the
origin call the other services with) are made
once and kept in ``<var>/secrets.env`` (mode 0600), so a restart keeps
issued URLs and sessions valid. With ``--tls`` a private CA under
``<var>/pki/`` (also made once) gives every gRPC server a certificate and
requires callers to present one (mTLS); every child gets the client pair.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from headend.auth import ADMIN, PLAYBACK, KeyStore, Principal
from headend.errors import Unauthenticated
from headend.pki import LocalPki, local_pki
from headend.redisconn import RedisSettings, connect
from headend.settings import environ
from headend.stack import StackSettings


@dataclass(frozen=True, slots=True)
class LocalSecrets:
    """Keys shared by the local stack's processes."""

    cdn_signing_keys: str
    session_keys: str
    service_api_key: str  # admin: the demo's seeding, the operator's CLI
    playback_api_key: str  # the front door and the origin
    content_keks: str = ""  # CONTENT_KEKS: what encrypted HLS's content keys are wrapped under


def _random_key(kid: str) -> str:
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return f"{kid}:{secret}"


async def _valid(redis_url: str, token: str) -> bool:
    client = connect(redis_url, RedisSettings.from_env(environ()), name="headend-up")
    try:
        await KeyStore(client).authenticate(token)
        return True
    except Unauthenticated:
        return False
    finally:
        await client.aclose()


async def _new_key(redis_url: str, principal: Principal) -> str:
    client = connect(redis_url, RedisSettings.from_env(environ()), name="headend-up")
    try:
        _, token = await KeyStore(client).create(principal)
        return token
    finally:
        await client.aclose()


def saved_secrets(var_dir: Path) -> dict[str, str]:
    """What ``<var>/secrets.env`` holds (empty when it does not exist)."""
    path = var_dir / "secrets.env"
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, value = line.partition("=")
            values[name] = value
    return values


def save_secrets(var_dir: Path, values: Mapping[str, str]) -> None:
    """Write ``<var>/secrets.env`` (mode 0600) with ``values``."""
    var_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(var_dir / "secrets.env", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(f"{k}={v}\n" for k, v in sorted(values.items()))


def load_secrets(var_dir: Path, redis_url: str) -> LocalSecrets:
    """Read ``secrets.env``, making whatever is missing (or no longer valid in Redis); the
    entries it does not make (the demo's) are kept."""
    values = saved_secrets(var_dir)
    values.setdefault("CDN_SIGNING_KEYS", _random_key("k1"))
    values.setdefault("SESSION_KEYS", _random_key("s1"))
    values.setdefault("CONTENT_KEKS", _random_key("kek1"))  # 32 bytes: an AES-256 KEK
    for name, principal in (("SERVICE_API_KEY", ADMIN), ("PLAYBACK_API_KEY", PLAYBACK)):
        token = values.get(name, "")
        if not token or not asyncio.run(_valid(redis_url, token)):
            values[name] = asyncio.run(_new_key(redis_url, principal))
    save_secrets(var_dir, values)
    return LocalSecrets(
        values["CDN_SIGNING_KEYS"],
        values["SESSION_KEYS"],
        values["SERVICE_API_KEY"],
        values["PLAYBACK_API_KEY"],
        values["CONTENT_KEKS"],
    )


def load_pki(settings: StackSettings) -> LocalPki:
    """The local stack's CA and certificates under ``<var>/pki/``, made on first use."""
    return local_pki(settings.var_dir / "pki", hosts=[settings.host])


def tls_client_env(pki: LocalPki) -> dict[str, str]:
    """The ``GRPC_CLIENT_*`` variables that make a caller dial the local stack over mTLS."""
    return {
        "GRPC_CLIENT_CA_FILE": str(pki.ca_file),
        "GRPC_CLIENT_CERT_FILE": str(pki.client.cert_file),
        "GRPC_CLIENT_KEY_FILE": str(pki.client.key_file),
    }
