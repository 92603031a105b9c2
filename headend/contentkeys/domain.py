"""The content keys' values and naming rules (pure: no Redis, no I/O).

A scope names what a key protects: ``channel/<id>`` (live and catch-up of one channel)
or ``asset/<id>`` (one VOD asset). A key id is 128 random bits as 32 lower-case hex
digits, unique platform-wide, and names its key in HLS key URIs and CPIX ``kid``s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from headend.contentkeys.errors import InvalidScope
from headend.ids import CHANNEL_ID_MAX, CHANNEL_ID_RULE, is_channel_id

SCOPE_KINDS = ("channel", "asset")
_KEY_ID = re.compile(r"[0-9a-f]{32}")
# A key's rotation period: at least two long segments, at most a day of media.
MIN_ROTATION_SECONDS = 2
MAX_ROTATION_SECONDS = 86400
DEFAULT_ROTATION_SECONDS = 600


def scope_for_channel(channel_id: str) -> str:
    """``"channel/cctv1"``: the scope of a live channel's keys (live and catch-up)."""
    return check_scope(f"channel/{channel_id}")


def scope_for_asset(asset_id: str) -> str:
    """``"asset/film-001"``: the scope of a VOD asset's keys."""
    return check_scope(f"asset/{asset_id}")


def check_scope(scope: str) -> str:
    """``scope`` when it is ``channel/<id>`` or ``asset/<id>``; :class:`InvalidScope` else.
    Ids follow the platform's URL-safe id rule (``headend.ids``), which every asset id
    (a stricter rule) also satisfies."""
    kind, _, ident = scope.partition("/")
    if kind not in SCOPE_KINDS:
        raise InvalidScope("scope", f"must be channel/<id> or asset/<id>, got {scope[:80]!r}")
    if not is_channel_id(ident):
        raise InvalidScope("scope", f"the id must be {CHANNEL_ID_RULE}, <= {CHANNEL_ID_MAX} chars")
    return scope


def key_uri(base_url: str, scope: str, key_id: str) -> str:
    """Where boxes fetch a key: the front door's ``/keys/{channel}/{key_id}`` for a
    channel's, ``/keys/asset/{asset}/{key_id}`` for an asset's (``base_url``:
    ``CONTENT_KEY_BASE_URL``, the front door as boxes reach it)."""
    kind, _, ident = check_scope(scope).partition("/")
    path = ident if kind == "channel" else f"asset/{ident}"
    return f"{base_url}/keys/{path}/{key_id}"


def is_key_id(text: str) -> bool:
    """True when ``text`` is a well-formed key id (32 lower-case hex digits)."""
    return _KEY_ID.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class DrmSignal:
    """One DRM system's signalling for a key, as a CPIX key server returns it (base64 text)."""

    system_id: str  # the DRM system's UUID, e.g. "94ce86fb-07ff-4f43-adb8-93d2fa968ca2"
    pssh: str = ""
    uri_ext_x_key: str = ""


@dataclass(frozen=True, slots=True)
class ProvidedKey:
    """A new content key: its id (32 lower-case hex digits), its clear bytes, DRM signalling."""

    key_id: str
    key: bytes = field(repr=False)
    drm_systems: tuple[DrmSignal, ...] = ()


@dataclass(frozen=True, slots=True)
class ContentKey:
    """One content key with its clear bytes (in memory only; never in its repr)."""

    scope: str
    key_id: str
    period: int
    key: bytes = field(repr=False)
    not_before: datetime
    not_after: datetime
    revoked: bool = False
    drm_systems: tuple[DrmSignal, ...] = ()


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What an operator sees of a stored key: everything but the key."""

    scope: str
    key_id: str
    period: int
    generation: int
    not_before: datetime
    not_after: datetime
    created: datetime
    kek_id: str
    revoked: bool
    current: bool  # the key new segments of its period are encrypted with


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded change: who did what to which scope and key, and when."""

    at: datetime
    principal: str
    action: str
    scope: str
    key_id: str  # empty for a change to the whole scope
    detail: str = ""  # e.g. delete_before's cut-off
