"""Identifier syntax shared by every package.

A channel id is DNS-like, as XMLTV suggests (``cctv1.cn``,
``gdtv-pearl.gd.cn``): dot-separated labels of letters, digits, ``-`` and
``_``, each starting with a letter or digit, at most 128 characters. The
same id names the channel in the EPG, the live transcoder, the origin's
paths and the CDN's signed scopes, so it is also safe in a URL path (no
empty or ``..`` segment, nothing that needs escaping).
"""

from __future__ import annotations

import re

CHANNEL_ID_MAX = 128
CHANNEL_ID_RULE = "dot-separated labels of [A-Za-z0-9_-], each starting with a letter or digit"
_CHANNEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9][A-Za-z0-9_-]*)*$")


def is_channel_id(text: str) -> bool:
    """True when ``text`` is a well-formed channel id."""
    return len(text) <= CHANNEL_ID_MAX and _CHANNEL_ID.match(text) is not None
