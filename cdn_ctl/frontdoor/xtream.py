"""The Xtream Codes player API's JSON, for players that speak nothing else.

Pure: a player link and channels in, JSON-ready values out. There is no
formal specification. The endpoints and actions follow the Xtream Codes player
API list (https://xtream-masters.com/api-doc/player_api.php) and tuliprox's
write-up of it (https://mintlify.wiki/euzu/tuliprox/api/xtream); the field
shapes follow what Xtream-UI panels answer and TiviMate, Kodi and IPTVnator
read: numbers inside ``user_info`` are strings, ids in the stream list are
numbers, category ids are strings. Stream ids are the channels' numbers
(``tvg-chno``), so a player's favourites survive entitlement changes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cdn_ctl.lineup import logo
from cdn_ctl.playerlinks import PlayerLink
from epg.domain import Channel

# What a failed login answers on player_api.php (the panels' own shape).
AUTH_FAILED: dict[str, Any] = {"user_info": {"auth": 0}}
# The stream formats a player may ask for: HLS is what is served (a ``.ts`` URL
# answers the same HLS master; players sniff the playlist).
OUTPUTS = ("m3u8", "ts")


def category_id(group: str) -> str:
    """A stable id for a channel group (the same group always gets the same id)."""
    return str(zlib.crc32(group.encode()) % 1_000_000 + 1)


def account(link: PlayerLink, password: str, *, base: str, now: datetime) -> dict[str, Any]:
    """``player_api.php`` without an action: ``user_info`` and ``server_info``."""
    url = urlsplit(base)
    https = url.scheme == "https"
    port = str(url.port or (443 if https else 80))
    return {
        "user_info": {
            "username": link.handle,
            "password": password,
            "message": "",
            "auth": 1,
            "status": "Active",
            "exp_date": None,  # never expires by time; revoked instead
            "is_trial": "0",
            "active_cons": "0",
            "created_at": str(link.created_ms // 1000),
            "max_connections": "1",  # one stream per box (a new one replaces it)
            "allowed_output_formats": list(OUTPUTS),
        },
        "server_info": {
            "url": url.hostname or "",
            "port": "80" if https else port,
            "https_port": port if https else "443",
            "server_protocol": url.scheme,
            "rtmp_port": "0",
            "timezone": "UTC",
            "timestamp_now": int(now.timestamp()),
            "time_now": now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        },
    }


def categories(channels: Iterable[Channel]) -> list[dict[str, Any]]:
    """``get_live_categories``: one entry per channel group, in lineup order."""
    seen: dict[str, dict[str, Any]] = {}
    for c in channels:
        if c.group not in seen:
            seen[c.group] = {
                "category_id": category_id(c.group),
                "category_name": c.group,
                "parent_id": 0,
            }
    return list(seen.values())


def streams(
    channels: Iterable[Channel], *, category: str = "", direct: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """``get_live_streams`` (only ``category``'s when one is given); ``direct``: the
    multicast URL of each channel the box plays from its group, as ``direct_source`` (what
    players open instead of the stream path; the stream path itself stays HLS, as an HTTP
    redirect cannot hand a player to RTP)."""
    direct = direct or {}
    out = []
    for c in channels:
        group = category_id(c.group)
        if category and category != group:
            continue
        out.append({
            "num": c.number,
            "name": c.name(),
            "stream_type": "live",
            "stream_id": c.number,
            "stream_icon": logo(c.logo_url),
            "epg_channel_id": c.id,
            "added": "0",
            "category_id": group,
            "custom_sid": "",
            "tv_archive": 1 if c.catchup_days > 0 else 0,
            "direct_source": direct.get(c.id, ""),
            "tv_archive_duration": c.catchup_days,
        })  # fmt: skip
    return out
