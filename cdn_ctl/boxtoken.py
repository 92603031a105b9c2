"""Box tokens: what a set-top box holds after logging in.

A token is a compact HS256 JWT (PyJWT: a well-kept implementation that
handles expiry, clock leeway and algorithm pinning) carrying the box's
carrier, subscriber, MAC, region and the subscriber version at login, and the
box's device profile (what it plays) when that is not the platform's. The
front door verifies it on every request with no server-side lookup; keys
carry ids so the signing key can rotate with overlap.

The profile rides on every URL a box holds, so it is one short claim,
``"dp": "{formats}.{codecs}.{max_height}"`` with a letter per format and codec in
the profile's order (``"mt.a.720"``: multicast then HLS-TS, H.264, at most 720
lines; :data:`FORMAT_LETTERS`, :data:`CODEC_LETTERS`), and no claim at all for
:data:`~subscriber.domain.PLATFORM_PROFILE`: a token minted before profiles (no
claim) means the platform's profile, which is what the box had then. A claim that
does not parse is refused like a bad signature (only a holder of the signing key
could have written it).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from headend.errors import InvalidArgument, Unauthenticated
from subscriber.domain import PLATFORM_PROFILE, DeliveryFormat, DeviceProfile, VideoCodec
from subscriber.domain.profiles import MAX_HEIGHT_LIMIT

_ALGORITHM = "HS256"
_AUDIENCE = "headend-stb"
# Clock skew tolerated between replicas for iat/nbf.
LEEWAY = timedelta(seconds=30)
# No token lives longer than this, whatever a (possibly leaked) signing key was used for.
MAX_LIFETIME = timedelta(days=30)
# The profile claim's letters (one per format and codec; the order is the profile's).
FORMAT_LETTERS: dict[DeliveryFormat, str] = {
    "hls-ts": "t", "hls-cmaf": "c", "dash": "d", "multicast": "m",
}  # fmt: skip
CODEC_LETTERS: dict[VideoCodec, str] = {"h264": "a", "hevc": "h"}
_FORMATS_BY_LETTER = {letter: fmt for fmt, letter in FORMAT_LETTERS.items()}
_CODECS_BY_LETTER = {letter: codec for codec, letter in CODEC_LETTERS.items()}
_PROFILE_CLAIM = "dp"


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
    # What the box plays (formats, codecs, max_height only: :func:`carried`).
    profile: DeviceProfile = PLATFORM_PROFILE


def carried(profile: DeviceProfile) -> DeviceProfile:
    """``profile`` as a token carries it: what the box plays, without the carrier's ids,
    names and models (so the platform's profile compares equal to
    :data:`~subscriber.domain.PLATFORM_PROFILE` whoever defined it)."""
    return DeviceProfile("", "", "", (), profile.formats, profile.codecs, profile.max_height)


def profile_claim(profile: DeviceProfile) -> str:
    """The ``dp`` claim for ``profile``; "" (no claim) for the platform's profile."""
    if carried(profile) == PLATFORM_PROFILE:
        return ""
    formats = "".join(FORMAT_LETTERS[f] for f in profile.formats)
    codecs = "".join(CODEC_LETTERS[c] for c in profile.codecs)
    return f"{formats}.{codecs}.{profile.max_height}"


def parse_profile_claim(claim: object) -> DeviceProfile:
    """The profile a ``dp`` claim names (None: the platform's); ``BoxTokenInvalid`` for
    anything a login could not have written (unknown or repeated letters, none, a height
    out of range)."""
    if claim is None:
        return PLATFORM_PROFILE
    if not isinstance(claim, str) or len(claim) > 16:
        raise BoxTokenInvalid("box token profile claim is malformed")
    parts = claim.split(".")
    if len(parts) != 3:
        raise BoxTokenInvalid("box token profile claim is malformed")
    formats_text, codecs_text, height_text = parts
    formats = tuple(_FORMATS_BY_LETTER.get(ch) for ch in formats_text)
    codecs = tuple(_CODECS_BY_LETTER.get(ch) for ch in codecs_text)
    if (
        not formats
        or not codecs
        or len(set(formats)) != len(formats)
        or len(set(codecs)) != len(codecs)
        or not height_text.isascii()
        or not height_text.isdigit()
        or len(height_text) > 4
        or int(height_text) > MAX_HEIGHT_LIMIT
    ):
        raise BoxTokenInvalid("box token profile claim is malformed")
    known_formats = tuple(f for f in formats if f is not None)
    known_codecs = tuple(c for c in codecs if c is not None)
    if len(known_formats) != len(formats) or len(known_codecs) != len(codecs):
        raise BoxTokenInvalid("box token profile claim names an unknown format or codec")
    return DeviceProfile("", "", "", (), known_formats, known_codecs, int(height_text))


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
        profile: DeviceProfile = PLATFORM_PROFILE,
    ) -> tuple[str, BoxToken]:
        """A token for a box that has just proved its device secret (from ``address``),
        playing what ``profile`` says."""
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
        claim = profile_claim(profile)
        if claim:
            claims[_PROFILE_CLAIM] = claim
        token = jwt.encode(
            claims, self._keys[self._active], algorithm=_ALGORITHM, headers={"kid": self._active}
        )
        return token, BoxToken(
            carrier, subscriber, mac, region, version, expires.replace(microsecond=0), token_id,
            address, carried(profile),
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
        profile = parse_profile_claim(claims.get(_PROFILE_CLAIM))
        return BoxToken(
            carrier=str(claims["car"]),
            subscriber=str(claims["sub"]),
            mac=str(claims["mac"]),
            region=str(claims.get("reg", "")),
            version=int(claims.get("ver", 0)),
            expires_at=expires,
            token_id=str(claims["jti"]),
            address=str(claims.get("ip", "")),
            profile=profile,
        )
