"""Signed URLs as path tokens: ``/t/{exp}/{kid}/{ip_or_dash}/{sig}/{scope}{rest}``.

The token sits in the path, not the query, so that relative URIs inside HLS
playlists inherit it and stay authorized. The signature is
HMAC-SHA256(secret[kid], ``"{exp}|{kid}|{ip}|{scope}"``) in base64url without
padding; ``scope`` is a path prefix (``live/ch1/``) and a request is covered
when its path after the token starts with the scope, unless the rest holds a cut
view's directories (``x/{feed}/{start}-{end}/``): those only a scope naming them
covers. ``ip`` is ``-`` when the URL is not bound to a client address.

Keys carry ids so the signing key can rotate with overlap: the ring signs with
its active key and accepts every key it holds; an old key is removed once the
longest-lived URL it signed has expired. Edges run the same check in njs
(``cdn_ctl/edge_verify.js``) against the same test vectors.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from dataclasses import dataclass, field

from cdn_ctl.errors import InvalidRouteRequest, TokenExpired, TokenInvalid, TokenWrongClient
from headend.settings import split_list

TOKEN_PREFIX = "/t/"
_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_SCOPE = re.compile(r"^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*/?$")
_IP = re.compile(r"^[0-9A-Fa-f.:]{2,45}$")
_SIG = re.compile(r"^[A-Za-z0-9_-]{43}$")
# A covered path is only tried against this many candidate scopes (its '/'
# prefixes), which bounds the HMACs a request can cost the edge. The deepest scope
# signed, a catch-up window's cut view, is 8 deep.
MAX_SCOPE_DEPTH = 8
# A cut view's directories (``x/{feed}/{start}-{end}/``, ``cdn_ctl.domain.Cut``), wherever
# they sit below a scope. A scope never covers a cut below it: the view shows another
# channel (the feed), so only a grant that names the cut reaches it.
# Zero-width, so every place one starts is found (overlapping ones too).
_CUT_BELOW = re.compile(r"(?<![^/])(?=x/[^/]+/[^/]+/)")
MIN_SECRET_BYTES = 16
# Token prefixes a ring remembers (see KeyRing.prefix_cache); cleared wholesale when full.
PREFIX_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One HMAC key and its id."""

    kid: str
    secret: bytes
    _mac: hmac.HMAC = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The keyed HMAC state, copied per signature (cheaper than re-keying each time).
        object.__setattr__(self, "_mac", hmac.new(self.secret, digestmod=hashlib.sha256))

    def __reduce__(self) -> tuple[type[SigningKey], tuple[str, bytes]]:
        # The HMAC state does not pickle (worker processes get the ring); rebuild it.
        return (SigningKey, (self.kid, self.secret))

    def mac(self, message: bytes) -> bytes:
        """HMAC-SHA256 of ``message`` under this key."""
        mac = self._mac.copy()
        mac.update(message)
        return mac.digest()

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, secret=<{len(self.secret)} bytes>)"


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The keys an issuer signs with (``active``) and a verifier accepts (all of them)."""

    keys: tuple[SigningKey, ...]
    active_kid: str
    _by_kid: dict[str, SigningKey] = field(init=False, repr=False, compare=False)
    # Prefixes signed by the active key, keyed by the exact (scope, expires_at, ip) they
    # cover: redirects for one channel and client within the same second reuse one
    # signature instead of an HMAC each. Exact keys, so every prefix is what signing
    # afresh would give; a rotated ring is a new object with an empty cache.
    prefix_cache: dict[tuple[str, int, str], str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kids = [k.kid for k in self.keys]
        if not kids:
            raise InvalidRouteRequest("signing_keys", "at least one key is required")
        if len(set(kids)) != len(kids):
            raise InvalidRouteRequest("signing_keys", "duplicate key id")
        for key in self.keys:
            if not _KID.match(key.kid):
                raise InvalidRouteRequest("signing_keys", f"bad key id {key.kid!r}")
            if len(key.secret) < MIN_SECRET_BYTES:
                raise InvalidRouteRequest(
                    "signing_keys", f"key {key.kid} is shorter than {MIN_SECRET_BYTES} bytes"
                )
        if self.active_kid not in kids:
            raise InvalidRouteRequest("signing_active_kid", f"no key {self.active_kid!r}")
        # Lookups on every signed URL: index once (frozen, hence object.__setattr__).
        object.__setattr__(self, "_by_kid", {k.kid: k for k in self.keys})
        object.__setattr__(self, "prefix_cache", {})

    def __reduce__(self) -> tuple[type[KeyRing], tuple[tuple[SigningKey, ...], str]]:
        # Worker processes get the ring: rebuild the index, start with an empty cache.
        return (KeyRing, (self.keys, self.active_kid))

    @property
    def active(self) -> SigningKey:
        """The key new URLs are signed with."""
        return self._by_kid[self.active_kid]

    def get(self, kid: str) -> SigningKey | None:
        """The accepted key with this id, if any."""
        return self._by_kid.get(kid)

    @classmethod
    def parse(cls, text: str, active_kid: str = "") -> KeyRing:
        """Read ``kid:base64url-secret[,kid:secret...]``; the active key defaults to the last."""
        keys = []
        for item in split_list(text):
            kid, sep, encoded = item.partition(":")
            if not sep:
                raise InvalidRouteRequest("signing_keys", "each key must be kid:base64url-secret")
            keys.append(SigningKey(kid, b64url_decode(encoded)))
        if not keys:
            raise InvalidRouteRequest("signing_keys", "at least one key is required")
        return cls(tuple(keys), active_kid or keys[-1].kid)

    def render(self) -> str:
        """The inverse of :meth:`parse` (for key files and env)."""
        return ",".join(f"{k.kid}:{b64url(k.secret)}" for k in self.keys)

    def rotated(self, new: SigningKey) -> KeyRing:
        """A ring that signs with ``new`` and still accepts the current keys (overlap)."""
        return KeyRing((*self.keys, new), new.kid)

    def retired(self, kid: str) -> KeyRing:
        """A ring without ``kid`` (after the overlap window); the active key cannot retire."""
        if kid == self.active_kid:
            raise InvalidRouteRequest("kid", "cannot retire the active signing key")
        return KeyRing(tuple(k for k in self.keys if k.kid != kid), self.active_kid)


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified token allows: the scope, until when, for whom, signed by which key."""

    scope: str
    rest: str
    expires_at: int
    kid: str
    client_ip: str | None


def b64url(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as err:
        raise InvalidRouteRequest("signing_keys", "secret is not base64url") from err


def signature(secret: bytes, expires_at: int, kid: str, ip: str, scope: str) -> str:
    """HMAC-SHA256 over ``exp|kid|ip|scope``, base64url without padding."""
    message = f"{expires_at}|{kid}|{ip}|{scope}".encode()
    return b64url(hmac.digest(secret, message, "sha256"))


def _sign(key: SigningKey, expires_at: int, ip: str, scope: str) -> str:
    return b64url(key.mac(f"{expires_at}|{key.kid}|{ip}|{scope}".encode()))


@functools.lru_cache(maxsize=4096)
def validate_scope(scope: str) -> str:
    """A relative path prefix without ``..`` segments, e.g. ``live/ch1/``."""
    if not _SCOPE.match(scope) or any(part in {".", ".."} for part in scope.split("/")):
        raise InvalidRouteRequest("scope", f"not a relative path prefix: {scope!r}")
    return scope


def token_prefix(ring: KeyRing, *, scope: str, expires_at: int, client_ip: str | None) -> str:
    """``/t/{exp}/{kid}/{ip}/{sig}/`` for ``scope``; prepend it to any path under the scope."""
    ip = client_ip or "-"
    cache = ring.prefix_cache
    cache_key = (scope, expires_at, ip)
    # Only int expiries are cached: 5.0 == 5 as a key but renders differently.
    cacheable = type(expires_at) is int
    if cacheable:
        prefix = cache.get(cache_key)
        if prefix is not None:
            # Only prefixes whose scope and address passed the checks below are cached.
            return prefix
    validate_scope(scope)
    if ip != "-" and not _IP.match(ip):
        raise InvalidRouteRequest("client_ip", f"not an IP address: {ip!r}")
    prefix = _prefix(ring.active, scope, expires_at, ip)
    if cacheable:
        if len(cache) >= PREFIX_CACHE_SIZE:
            cache.clear()
        cache[cache_key] = prefix
    return prefix


def _prefix(key: SigningKey, scope: str, expires_at: int, ip: str) -> str:
    return f"{TOKEN_PREFIX}{expires_at}/{key.kid}/{ip}/{_sign(key, expires_at, ip, scope)}/"


def sign_path(
    ring: KeyRing, *, scope: str, path: str, expires_at: int, client_ip: str | None = None
) -> str:
    """A signed absolute path for ``path`` (relative, under ``scope``)."""
    if not path.startswith(scope):
        raise InvalidRouteRequest("path", f"{path!r} is not under the scope {scope!r}")
    return token_prefix(ring, scope=scope, expires_at=expires_at, client_ip=client_ip) + path


def verify_path(ring: KeyRing, path: str, *, client_ip: str, now: float) -> Grant:
    """Check a signed path; raise ``TokenInvalid`` (403), ``TokenExpired`` (410) or
    ``TokenWrongClient`` (403) in that order, as the edges do."""
    if not path.startswith(TOKEN_PREFIX):
        raise TokenInvalid("not a signed path")
    parts = path[len(TOKEN_PREFIX) :].split("/", 4)
    if len(parts) != 5:
        raise TokenInvalid("malformed token")
    exp_text, kid, ip, sig, rest = parts
    if any(part in {".", ".."} for part in rest.split("/")):
        raise TokenInvalid("path escapes its scope")
    if not exp_text.isdigit() or len(exp_text) > 12 or not _SIG.match(sig):
        raise TokenInvalid("malformed token")
    key = ring.get(kid)
    if key is None:
        raise TokenInvalid("unknown signing key", details={"kid": kid[:32]})
    expires_at = int(exp_text)
    scope = _matching_scope(key, expires_at, ip, sig, rest)
    if scope is None:
        raise TokenInvalid("bad signature")
    if now >= expires_at:
        raise TokenExpired("signed URL expired", details={"expired_at": str(expires_at)})
    if ip != "-" and ip != client_ip:
        raise TokenWrongClient("signed URL is bound to another client address")
    return Grant(scope, rest, expires_at, kid, None if ip == "-" else ip)


def scope_candidates(rest: str) -> list[str]:
    """The scopes a path after the token is tried against: its first ``MAX_SCOPE_DEPTH``
    '/'-prefixes that leave no cut below them, then the whole path."""
    last_cut = max((m.start() for m in _CUT_BELOW.finditer(rest)), default=-1)
    candidates = [rest[: i + 1] for i, ch in enumerate(rest) if ch == "/"][:MAX_SCOPE_DEPTH]
    # A scope ending at or before the last cut's start would cover that cut.
    candidates = [c for c in candidates if len(c) > last_cut]
    if rest and not rest.endswith("/"):
        candidates.append(rest)
    return candidates


def _matching_scope(key: SigningKey, expires_at: int, ip: str, sig: str, rest: str) -> str | None:
    for scope in scope_candidates(rest):
        expected = _sign(key, expires_at, ip, scope)
        if hmac.compare_digest(expected, sig):
            return scope
    return None
