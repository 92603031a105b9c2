"""Key-encryption keys (KEKs): how content keys are stored without being stored in clear.

A content key is kept in Redis only wrapped with AES-256-GCM under a KEK from the
platform secrets (``CONTENT_KEKS``, read with :func:`headend.settings.env_secret`, so
``CONTENT_KEKS_FILE`` works too). The ring has the same ``kid:base64url[,kid:...]`` form
as the CDN signing keys: the last KEK wraps new keys, every KEK unwraps, so a KEK rotates
by appending a new one and dropping the old once no record names it. The AAD binds the
wrapped bytes to the scope, key id and period they were made for, and to the KEK id, so a
record copied to another key id, scope or period fails to unwrap instead of serving the
wrong key. Nothing here ever shows a secret: reprs name KEK ids and lengths only.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from headend.contentkeys.domain import (
    DEFAULT_ROTATION_SECONDS,
    MAX_ROTATION_SECONDS,
    MIN_ROTATION_SECONDS,
)
from headend.contentkeys.errors import ContentKeyUnreadable
from headend.settings import (
    Env,
    SettingsError,
    env_choice,
    env_int,
    env_secret,
    env_str,
    split_list,
)

KEKS_VAR = "CONTENT_KEKS"
KEK_BYTES = 32
NONCE_BYTES = 12
_KID = re.compile(r"[A-Za-z0-9_-]{1,32}")
PROVIDERS = ("local", "cpix")
DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Kek:
    """One AES-256 key-encryption key and its id."""

    kid: str
    secret: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"Kek(kid={self.kid!r}, secret=<{len(self.secret)} bytes>)"


@dataclass(frozen=True, slots=True)
class KekRing:
    """The KEKs that unwrap (all of them) and the one that wraps (the last, ``active``)."""

    keks: tuple[Kek, ...]
    _by_kid: dict[str, Kek] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keks:
            raise ValueError("at least one KEK is required")
        for kek in self.keks:
            if not _KID.fullmatch(kek.kid):
                raise ValueError(f"bad KEK id {kek.kid!r}: 1-32 of [A-Za-z0-9_-]")
            if len(kek.secret) != KEK_BYTES:
                raise ValueError(f"KEK {kek.kid} is {len(kek.secret)} bytes, not {KEK_BYTES}")
        by_kid = {k.kid: k for k in self.keks}
        if len(by_kid) != len(self.keks):
            raise ValueError("duplicate KEK id")
        object.__setattr__(self, "_by_kid", by_kid)

    @classmethod
    def parse(cls, text: str) -> KekRing:
        """Read ``kid:base64url-32-bytes[,kid:...]``; ``ValueError`` names the bad entry
        (never its secret)."""
        keks = []
        for number, item in enumerate(split_list(text), 1):
            kid, sep, encoded = item.partition(":")
            if not sep:  # the entry may be a bare secret: never quote it
                raise ValueError(f"entry {number} is not kid:base64url-secret")
            try:
                secret = _b64url_decode(encoded)
            except ValueError as err:
                raise ValueError(f"KEK {kid!r}: the secret is not base64url") from err
            keks.append(Kek(kid, secret))
        return cls(tuple(keks))

    @classmethod
    def generate(cls, kid: str) -> KekRing:
        """A ring of one new random KEK (``headend up`` keeps one under its var dir)."""
        return cls((Kek(kid, os.urandom(KEK_BYTES)),))

    def render(self) -> str:
        """The inverse of :meth:`parse` (for key files and the environment)."""
        return ",".join(
            f"{k.kid}:{base64.urlsafe_b64encode(k.secret).rstrip(b'=').decode()}" for k in self.keks
        )

    def rotated(self, new: Kek) -> KekRing:
        """A ring that wraps with ``new`` and still unwraps with every current KEK."""
        return KekRing((*self.keks, new))

    @property
    def active(self) -> Kek:
        """The KEK new keys are wrapped with."""
        return self.keks[-1]

    def wrap(self, clear: bytes, aad: bytes) -> tuple[str, bytes]:
        """``(kek id, nonce + ciphertext + tag)`` of ``clear`` under the active KEK; the
        KEK id is part of the authenticated data."""
        kek = self.active
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(kek.secret).encrypt(nonce, clear, _aad(aad, kek.kid))
        return kek.kid, nonce + sealed

    def unwrap(self, kid: str, wrapped: bytes, aad: bytes) -> bytes:
        """The clear bytes; :class:`ContentKeyUnreadable` when the KEK is not in the ring or
        the bytes, the AAD or the KEK id were changed."""
        kek = self._by_kid.get(kid)
        if kek is None:
            raise ContentKeyUnreadable(
                f"the record is wrapped under KEK {kid!r}, which {KEKS_VAR} no longer holds"
            )
        try:
            return AESGCM(kek.secret).decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _aad(aad, kid)
            )
        except (InvalidTag, ValueError) as err:
            raise ContentKeyUnreadable(
                "the record does not unwrap: it was altered or moved to another key id or scope"
            ) from err


def _aad(aad: bytes, kid: str) -> bytes:
    return aad + b"|" + kid.encode()


@dataclass(frozen=True, slots=True)
class ContentKeySettings:
    """What every role that makes, serves or stores content keys reads from the environment."""

    keks: KekRing | None = field(default=None, repr=False)
    rotation_seconds: int = DEFAULT_ROTATION_SECONDS
    base_url: str = DEFAULT_BASE_URL
    provider: str = "local"
    cpix_url: str | None = None
    cpix_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Env) -> ContentKeySettings:
        """Read and check every ``CONTENT_KEY*`` setting; :class:`SettingsError` names it."""
        raw = env_secret(env, KEKS_VAR)
        keks = None
        if raw is not None:
            try:
                keks = KekRing.parse(raw)
            except ValueError as err:
                raise SettingsError(KEKS_VAR, str(err)) from err
        provider = env_choice(env, "CONTENT_KEY_PROVIDER", "local", PROVIDERS)
        cpix_url = env_str(env, "CONTENT_KEY_CPIX_URL", "") or None
        cpix_token = env_secret(env, "CONTENT_KEY_CPIX_TOKEN")
        if provider == "cpix" and not (cpix_url and cpix_token):
            raise SettingsError(
                "CONTENT_KEY_CPIX_URL",
                "CONTENT_KEY_PROVIDER=cpix needs CONTENT_KEY_CPIX_URL and CONTENT_KEY_CPIX_TOKEN",
            )
        if cpix_url is not None and not cpix_url.startswith(("http://", "https://")):
            raise SettingsError("CONTENT_KEY_CPIX_URL", f"not an http(s) URL: {cpix_url!r}")
        base_url = env_str(env, "CONTENT_KEY_BASE_URL", DEFAULT_BASE_URL).rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise SettingsError("CONTENT_KEY_BASE_URL", f"not an http(s) URL: {base_url!r}")
        return cls(
            keks=keks,
            rotation_seconds=env_int(
                env,
                "CONTENT_KEY_ROTATION_SECONDS",
                DEFAULT_ROTATION_SECONDS,
                low=MIN_ROTATION_SECONDS,
                high=MAX_ROTATION_SECONDS,
            ),
            base_url=base_url,
            provider=provider,
            cpix_url=cpix_url,
            cpix_token=cpix_token,
        )

    def require_keks(self) -> KekRing:
        """The KEK ring; :class:`SettingsError` when ``CONTENT_KEKS`` is not set."""
        if self.keks is None:
            raise SettingsError(
                KEKS_VAR, "required to store or serve content keys (or set CONTENT_KEKS_FILE)"
            )
        return self.keks
