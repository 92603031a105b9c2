"""Box tokens: what a set-top box holds after logging in.

A token is a compact HS256 JWT (PyJWT: a well-kept implementation that
handles expiry, clock leeway and algorithm pinning) carrying the box's
carrier, subscriber, MAC, region and the subscriber version at login. The
front door verifies it on every request with no server-side lookup; keys
carry ids so the signing key can rotate with overlap.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from headend.errors import InvalidArgument, Unauthenticated

_ALGORITHM = "HS256"
_AUDIENCE = "headend-stb"
# Clock skew tolerated between replicas for iat/nbf.
LEEWAY = timedelta(seconds=30)
# No token lives longer than this, whatever a (possibly leaked) signing key was used for.
MAX_LIFETIME = timedelta(days=30)


class BoxTokenInvalid(Unauthenticated):
    """Raised when a box token is malformed, tampered with or signed by an unknown key."""


class BoxTokenExpired(Unauthenticated):
    """Raised when a box token's lifetime is over; the box logs in again."""


@dataclass(frozen=True, slots=True)
class BoxToken:
    """A logged-in box: what its verified token says."""

    carrier: str
    subscriber: str
    mac: str
    region: str
    version: int
    expires_at: datetime
    # A random id per token (rate limits, audit) and the address the box logged in from.
    token_id: str = ""
    address: str = ""


class BoxTokenSigner:
    """Issues and verifies box tokens with a keyring of ``kid -> secret``."""

    def __init__(
        self, keys: Mapping[str, bytes], *, active_kid: str, ttl: timedelta = timedelta(hours=12)
    ) -> None:
        if active_kid not in keys:
            raise InvalidArgument("active_kid", f"{active_kid!r} is not in the keyring")
        if any(len(secret) < 32 for secret in keys.values()):
            raise InvalidArgument("keys", "box token signing secrets must be at least 32 bytes")
        self._keys = dict(keys)
        self._active = active_kid
        self.ttl = ttl

    def issue(
        self,
        *,
        carrier: str,
        subscriber: str,
        mac: str,
        region: str,
        version: int,
        now: datetime,
        address: str = "",
    ) -> tuple[str, BoxToken]:
        """A token for a box that has just proved its device secret (from ``address``)."""
        expires = now + self.ttl
        token_id = secrets.token_urlsafe(12)
        claims = {
            "jti": token_id,
            "ip": address,
            "aud": _AUDIENCE,
            "car": carrier,
            "sub": subscriber,
            "mac": mac,
            "reg": region,
            "ver": version,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int(expires.timestamp()),
        }
        token = jwt.encode(
            claims, self._keys[self._active], algorithm=_ALGORITHM, headers={"kid": self._active}
        )
        return token, BoxToken(
            carrier, subscriber, mac, region, version, expires.replace(microsecond=0), token_id,
            address,
        )  # fmt: skip

    def verify(self, token: str, *, now: datetime) -> BoxToken:
        """The box a token stands for; raises ``BoxTokenInvalid`` or ``BoxTokenExpired``."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as err:
            raise BoxTokenInvalid("malformed box token") from err
        secret = self._keys.get(kid) if isinstance(kid, str) else None
        if secret is None:
            raise BoxTokenInvalid("box token signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=[_ALGORITHM],
                audience=_AUDIENCE,
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["exp", "iat", "jti", "sub", "car", "mac"],
                },
            )
        except jwt.PyJWTError as err:
            raise BoxTokenInvalid("box token signature or claims are invalid") from err
        try:
            expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
            issued = datetime.fromtimestamp(int(claims["iat"]), UTC)
            not_before = datetime.fromtimestamp(int(claims.get("nbf", claims["iat"])), UTC)
        except (TypeError, ValueError, OverflowError, OSError) as err:
            raise BoxTokenInvalid("box token times are not epoch seconds") from err
        # Times are checked against the caller's clock so tests and replicas agree.
        if issued > now + LEEWAY or not_before > now + LEEWAY:
            raise BoxTokenInvalid("box token is not valid yet")
        if expires - issued > MAX_LIFETIME:
            raise BoxTokenInvalid("box token lives longer than any token may")
        if expires <= now:
            raise BoxTokenExpired("box token expired; log in again")
        return BoxToken(
            carrier=str(claims["car"]),
            subscriber=str(claims["sub"]),
            mac=str(claims["mac"]),
            region=str(claims.get("reg", "")),
            version=int(claims.get("ver", 0)),
            expires_at=expires,
            token_id=str(claims["jti"]),
            address=str(claims.get("ip", "")),
        )
