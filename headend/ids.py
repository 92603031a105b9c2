"""Identifier syntax shared by every package.

A channel id is DNS-like, as XMLTV suggests (``cctv1.cn``,
``gdtv-pearl.gd.cn``): dot-separated labels of letters, digits, ``-`` and
``_``, each starting with a letter or digit, at most 128 characters. The
same id names the channel in the EPG, the live transcoder, the origin's
paths and the CDN's signed scopes, so it is also safe in a URL path (no
empty or ``..`` segment, nothing that needs escaping).

A lease id names one stream lease (a box playing one channel): the
subscriber service issues it, the front door carries it in the ``lease_id``
query parameter, and the routing ledger counts it on an edge.

A record id names what a caller creates and may choose the id of (an emergency alert, a
cue), so that retrying a create with the same id finds the first one.
"""

from __future__ import annotations

import re
import secrets

CHANNEL_ID_MAX = 128
CHANNEL_ID_RULE = "dot-separated labels of [A-Za-z0-9_-], each starting with a letter or digit"
_CHANNEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9][A-Za-z0-9_-]*)*$")


def is_channel_id(text: str) -> bool:
    """True when ``text`` is a well-formed channel id."""
    return len(text) <= CHANNEL_ID_MAX and _CHANNEL_ID.match(text) is not None


LEASE_ID_RULE = "16 lower-case hex digits"
_LEASE_ID = re.compile(r"[0-9a-f]{16}")


def new_lease_id() -> str:
    """A fresh, unguessable lease id (64 random bits)."""
    return secrets.token_hex(8)


def is_lease_id(text: str) -> bool:
    """True when ``text`` is a well-formed lease id."""
    return _LEASE_ID.fullmatch(text) is not None


# The id a caller may choose for a record it creates (an alert, a cue): lower-case letters,
# digits and dashes, at most 40, safe in a resource name and a URL.
RECORD_ID_RULE = "[a-z0-9][a-z0-9-]{0,39}"
_RECORD_ID = re.compile(RECORD_ID_RULE)
_BASE32_LOWER = "abcdefghijklmnopqrstuvwxyz234567"


def is_record_id(text: str) -> bool:
    """True when ``text`` fits :data:`RECORD_ID_RULE`."""
    return _RECORD_ID.fullmatch(text) is not None


def new_record_id(prefix: str) -> str:
    """``prefix`` (a sortable time, ``20270801-``) and six random base32 letters:
    unguessable enough for an id the server makes when the caller gave none."""
    return prefix + "".join(secrets.choice(_BASE32_LOWER) for _ in range(6))
