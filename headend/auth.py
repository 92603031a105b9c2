"""API keys and principals: ``admin``, ``playback``, ``broadcaster:<id>``, ``carrier:<id>``,
``device:<mac>``, ``emergency:<agency>``.

``playback`` is the least-privilege role of the services on the playback path
(the set-top box front door, the origin): it reads the catalogue and guide and
checks, starts and ends playback leases; it changes nothing else.

``emergency`` is an alerting agency's key: it may call ``AlertService`` and
``KeyService.WhoAmI`` and nothing else. That is enforced once, where every call is
authenticated (:func:`require_method`), not by each service's own role checks, so a
service that reads "any authenticated caller" can never admit it by omission.

A key is ``hk_<key_id>_<secret>``; only SHA-256 of the secret is stored
(``auth:key:<key_id>``). Keys are 256-bit random, so a fast hash is the
right tool (a slow KDF protects guessable passwords, not random tokens).
Verified keys are cached in-process for ``cache_seconds`` so the hot path
makes no Redis round trip; a revocation therefore takes effect everywhere
within that bound.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, cast

from redis.asyncio import Redis

from headend.clock import utc_now
from headend.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated

Role = Literal["admin", "playback", "broadcaster", "carrier", "device", "emergency"]
ROLES: tuple[Role, ...] = ("admin", "playback", "broadcaster", "carrier", "device", "emergency")
# Roles without a tenant.
UNSCOPED: tuple[Role, ...] = ("admin", "playback")
# Roles confined to these gRPC methods (full paths); every other call is refused.
_ALERT_METHODS = ("IssueAlert", "ConfirmAlert", "CancelAlert", "GetAlert", "ListAlerts")
CONFINED: dict[Role, frozenset[str]] = {
    "emergency": frozenset(
        [f"/headend.alerts.v1.AlertService/{name}" for name in _ALERT_METHODS]
        + ["/headend.keys.v1.KeyService/WhoAmI"]
    ),
}
_TENANT = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,62}$")
_KEY = re.compile(r"^hk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_KEY_PREFIX = "auth:key:"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a role and, except for the admin, the tenant it is scoped to."""

    role: Role
    tenant: str = ""

    def __str__(self) -> str:
        return self.role if self.role in UNSCOPED else f"{self.role}:{self.tenant}"

    @property
    def is_admin(self) -> bool:
        """True for the platform operator."""
        return self.role == "admin"

    @classmethod
    def parse(cls, text: str) -> Principal:
        """Read ``admin``, ``playback`` or ``role:tenant``."""
        if text in UNSCOPED:
            return cls(text)
        role, _, tenant = text.partition(":")
        if role not in ROLES or role in UNSCOPED:
            raise InvalidArgument("principal", f"unknown role in {text!r}")
        validate_tenant(tenant)
        return cls(role, tenant)


ADMIN = Principal("admin")
PLAYBACK = Principal("playback")


def validate_tenant(tenant: str) -> str:
    """Check a tenant id (carrier or broadcaster id): lower-case, DNS-like, <= 63 chars."""
    if not _TENANT.match(tenant):
        raise InvalidArgument("tenant", "must match [a-z0-9][a-z0-9._:-]{0,62}")
    return tenant


def require_admin(principal: Principal) -> None:
    """Refuse anyone but the admin."""
    if not principal.is_admin:
        raise PermissionDenied(f"{principal} may not do this; admin only")


def require_tenant(principal: Principal, role: Role, tenant: str) -> None:
    """Allow the admin, or ``role:tenant`` itself; refuse everyone else."""
    if principal.is_admin or (principal.role == role and principal.tenant == tenant):
        return
    raise PermissionDenied(f"{principal} may not act for {role}:{tenant}")


def require_method(principal: Principal, method: str) -> None:
    """Refuse a confined role (:data:`CONFINED`) any gRPC method outside its list."""
    allowed = CONFINED.get(principal.role)
    if allowed is not None and method not in allowed:
        raise PermissionDenied(f"{principal} may not call {method}")


def key_id(token: str) -> str:
    """The key id of a bearer token ``hk_<key_id>_<secret>`` ("" when it is not one): what
    audit records name, never the secret."""
    match = _KEY.match(token)
    return match.group(1) if match else ""


class Authenticator(Protocol):
    """Turns a bearer token into a principal, or raises ``Unauthenticated``."""

    async def authenticate(self, token: str) -> Principal: ...


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A stored key's public facts (never its secret)."""

    key_id: str
    principal: Principal
    created_at: datetime


class KeyStore:
    """API keys in Redis, stored hashed; also the gRPC harness's authenticator."""

    def __init__(self, redis: Redis, *, cache_seconds: float = 5.0) -> None:
        self._redis = redis
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}

    async def create(self, principal: Principal) -> tuple[KeyInfo, str]:
        """Create a key for ``principal``; the returned token is shown once and never stored."""
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = utc_now()
        await self._redis.hset(
            _KEY_PREFIX + key_id,
            mapping={
                "digest": _digest(secret),
                "role": principal.role,
                "tenant": principal.tenant,
                "created_at": now.isoformat(),
            },
        )
        return KeyInfo(key_id, principal, now), f"hk_{key_id}_{secret}"

    async def revoke(self, key_id: str) -> None:
        """Delete a key; cached copies expire within ``cache_seconds``."""
        if not await self._redis.delete(_KEY_PREFIX + key_id):
            raise NotFound(f"no API key {key_id}")

    async def list_keys(self) -> list[KeyInfo]:
        """Every stored key's public facts, oldest first."""
        found = []
        async for name in self._redis.scan_iter(match=_KEY_PREFIX + "*", count=500):
            stored = cast(dict[bytes, bytes], await self._redis.hgetall(name))
            if stored:
                found.append(_info(name.decode().removeprefix(_KEY_PREFIX), stored))
        return sorted(found, key=lambda k: k.created_at)

    async def authenticate(self, token: str) -> Principal:
        """Verify a bearer token against the stored hash."""
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        match = _KEY.match(token)
        if match is None:
            raise Unauthenticated("malformed API key")
        key_id, secret = match.groups()
        stored = cast(dict[bytes, bytes], await self._redis.hgetall(_KEY_PREFIX + key_id))
        if not stored or not hmac.compare_digest(stored[b"digest"].decode(), _digest(secret)):
            raise Unauthenticated("unknown or revoked API key")
        principal = _info(key_id, stored).principal
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token] = (now + self._cache_seconds, principal)
        return principal


def _info(key_id: str, stored: dict[bytes, bytes]) -> KeyInfo:
    principal = Principal(cast(Role, stored[b"role"].decode()), stored[b"tenant"].decode())
    return KeyInfo(key_id, principal, datetime.fromisoformat(stored[b"created_at"].decode()))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
