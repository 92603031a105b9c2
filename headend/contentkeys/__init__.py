"""Content keys for encrypted HLS: made per scope and rotation period, kept in Redis
wrapped under the platform's KEKs, handed to packagers and (through the front door) boxes.

``cipher`` encrypts segments; ``domain`` names keys and scopes; ``store`` keeps keys in
Redis; ``kek`` wraps them (and reads the ``CONTENT_KEY*`` settings); ``provider`` makes them,
locally or from a DRM vendor's key server over CPIX (``cpix`` documents; ``keyserver`` is a
stand-in for the vendor's, for tests); ``cli`` is the operator's ``headend content-keys``.
"""

from __future__ import annotations

from headend.contentkeys.domain import (
    DEFAULT_ROTATION_SECONDS,
    MAX_ROTATION_SECONDS,
    MIN_ROTATION_SECONDS,
    AuditEntry,
    ContentKey,
    DrmSignal,
    KeyInfo,
    ProvidedKey,
    check_scope,
    is_key_id,
    key_uri,
    scope_for_asset,
    scope_for_channel,
)
from headend.contentkeys.errors import (
    ContentKeyError,
    ContentKeyNotFound,
    ContentKeyRevoked,
    ContentKeyStoreUnavailable,
    ContentKeyUnreadable,
    InvalidCpixDocument,
    InvalidScope,
    KeyProviderUnavailable,
)
from headend.contentkeys.kek import ContentKeySettings, Kek, KekRing
from headend.contentkeys.provider import CpixKeyProvider, KeyProvider, LocalKeyProvider
from headend.contentkeys.store import ContentKeyStore

__all__ = [
    "DEFAULT_ROTATION_SECONDS",
    "MAX_ROTATION_SECONDS",
    "MIN_ROTATION_SECONDS",
    "AuditEntry",
    "ContentKey",
    "ContentKeyError",
    "ContentKeyNotFound",
    "ContentKeyRevoked",
    "ContentKeySettings",
    "ContentKeyStore",
    "ContentKeyStoreUnavailable",
    "ContentKeyUnreadable",
    "CpixKeyProvider",
    "DrmSignal",
    "InvalidCpixDocument",
    "InvalidScope",
    "Kek",
    "KekRing",
    "KeyInfo",
    "KeyProvider",
    "KeyProviderUnavailable",
    "LocalKeyProvider",
    "ProvidedKey",
    "check_scope",
    "is_key_id",
    "key_uri",
    "scope_for_asset",
    "scope_for_channel",
]
