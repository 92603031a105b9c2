"""Player links in Redis: one long-lived, revocable playlist credential per box.

Third-party players (Kodi, TiviMate, VLC) cannot log in with JSON and keep a
URL for months, while a box token dies after hours. A player link is a random
credential (256 bits) a logged-in box asks for once; the front door serves the
box's lineup and guide to whoever holds it, minting a fresh box token into
every answer. Only its SHA-256 digest is stored, so a copy of Redis cannot be
replayed as a playlist URL.

Two keys, two slots, written in an order every reader tolerates:

- ``fd:pl:{<digest>}`` (string, JSON): the link a credential stands for;
- ``fd:pl:{<carrier>}:<mac>`` (string): the digest of the box's one live link,
  in the box's carrier tag like the subscriber keys.

A credential works only while the box's key still names its digest, so creating
a link (record first, then the box's key) revokes the old one in the same write
that enables the new one, and revoking is one ``DEL``; the old record is then
deleted as cleanup, and one left behind by a crash is harmless.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError

from cdn_ctl.errors import FrontDoorError, UpstreamUnavailable
from headend.errors import NotFound

# token_urlsafe(32): 43 characters, longer than any rung name (so /live/<u>/<p>/<id>.ts
# never reads as a variant path).
CREDENTIAL_BYTES = 32
CREDENTIAL_LENGTH = 43
HANDLE_PREFIX = "p"


class PlayerLinkUnknown(FrontDoorError, NotFound):
    """Raised when a player credential is unknown, revoked or replaced (never which)."""


@dataclass(frozen=True, slots=True)
class PlayerLink:
    """Whose box a player link plays as, and since when."""

    handle: str  # the Xtream username: short, not secret
    carrier: str
    subscriber: str
    mac: str
    region: str
    version: int
    created_ms: int
    # The box's device profile as its token carries it (``cdn_ctl.boxtoken`` ``dp`` claim;
    # "" the platform's, as for links made before profiles): the link plays as the box.
    profile: str = ""


def digest(credential: str) -> str:
    """What is stored for a credential (never the credential itself)."""
    return hashlib.sha256(credential.encode()).hexdigest()


def _link_key(hashed: str) -> str:
    return f"fd:pl:{{{hashed}}}"


def _box_key(carrier: str, mac: str) -> str:
    return f"fd:pl:{{{carrier}}}:{mac.lower()}"


def _unavailable() -> UpstreamUnavailable:
    return UpstreamUnavailable("player links are unavailable", reason="store_unavailable")


class PlayerLinks:
    """Create, find and revoke player links (``fd:pl:`` keys)."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def create(
        self,
        *,
        carrier: str,
        subscriber: str,
        mac: str,
        region: str,
        version: int,
        now: datetime,
        profile: str = "",
    ) -> tuple[str, PlayerLink]:
        """A new credential for the box; its previous link stops working in the same step."""
        credential = secrets.token_urlsafe(CREDENTIAL_BYTES)
        link = PlayerLink(
            handle=HANDLE_PREFIX + secrets.token_hex(5),
            carrier=carrier,
            subscriber=subscriber,
            mac=mac.lower(),
            region=region,
            version=version,
            created_ms=int(now.timestamp() * 1000),
            profile=profile,
        )
        hashed = digest(credential)
        try:
            await self._redis.set(_link_key(hashed), json.dumps(asdict(link)))
            old = await self._redis.set(_box_key(carrier, mac), hashed, get=True)
            if old is not None and old != hashed:
                await self._redis.delete(_link_key(_text(old)))
        except (RedisError, OSError) as err:
            raise _unavailable() from err
        return credential, link

    async def find(self, credential: str) -> PlayerLink | None:
        """The live link a credential stands for, or None (unknown, revoked or replaced)."""
        if len(credential) != CREDENTIAL_LENGTH:
            return None
        hashed = digest(credential)
        try:
            raw = await self._redis.get(_link_key(hashed))
            if raw is None:
                return None
            link = PlayerLink(**json.loads(raw))
            current = await self._redis.get(_box_key(link.carrier, link.mac))
        except (RedisError, OSError) as err:
            raise _unavailable() from err
        if current is None or _text(current) != hashed:
            return None
        return link

    async def revoke(self, carrier: str, mac: str) -> bool:
        """End the box's link at once; False when it had none."""
        try:
            old = await self._redis.getdel(_box_key(carrier, mac))
            if old is not None:
                await self._redis.delete(_link_key(_text(old)))
        except (RedisError, OSError) as err:
            raise _unavailable() from err
        return old is not None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
