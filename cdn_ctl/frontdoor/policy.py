"""Pure front door rules: the guide's slate and alert entries, the lineup's alert entry,
how a box plays a channel live (its multicast group or HLS, by its device profile and
region), the served master, the catch-up window a box asks for, and the access log line."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from cdn_ctl.errors import BadPlayRequest
from cdn_ctl.lineup import LineupEntry
from epg.alerts.domain import Alert
from epg.domain import Programme, Text
from headend.regions import covers
from subscriber.domain import DeliveryFormat, DeviceProfile
from transcode.outputs import MulticastOutput

SLATE_TITLE = "Not available in your region"
# The lineup group and guide category of an emergency alert, and a drill's mark.
ALERT_GROUP = "Emergency"
DRILL_MARK = "[DRILL 演习] "
_URI_ATTR = re.compile(r'URI="([^"]*)"')
_PATHWAY = re.compile(r'PATHWAY-ID="[^"]*",?')
_AUDIO_MEDIA = "#EXT-X-MEDIA:TYPE=AUDIO,"
_DEFAULT_ATTR = re.compile(r"DEFAULT=(?:YES|NO)")
_EPOCH = re.compile(r"^[0-9]{1,12}$")
_SECONDS = re.compile(r"^[0-9]{1,9}$")
# A player link credential as a path segment (cdn_ctl.playerlinks: 43 URL-safe characters).
_CREDENTIAL_SEGMENT = re.compile(r"(?<=/)[A-Za-z0-9_-]{43}(?=/|$)")
# A content key id at the end of a key request's path (``/keys/.../<32 hex>``).
_KEY_ID_SEGMENT = re.compile(r"(?<=/)[0-9a-f]{32}$")
# Instants a catch-up window may name (datetime cannot go past year 9999).
_EPOCH_MAX = int(datetime(9999, 1, 1, tzinfo=UTC).timestamp())


def slate_for(programme: Programme) -> Programme:
    """The guide entry shown instead of a blacked-out programme (same slot, no details)."""
    return Programme(
        id=programme.id,
        channel_id=programme.channel_id,
        start=programme.start,
        stop=programme.stop,
        titles=(Text("", SLATE_TITLE),),
        icons=(programme.rights.blackout_slate,) if programme.rights.blackout_slate else (),
    )


def alert_title(alert: Alert) -> str:
    """What a box shows for an alert: a warning sign, the drill mark, the headline."""
    return f"⚠ {DRILL_MARK if alert.drill else ''}{alert.headline}"


def alert_entry(alert: Alert, channel_id: str) -> LineupEntry:
    """The lineup's first entry while ``alert`` reaches a box: ``channel_id`` (one of the
    box's channels it replaces, so playing it plays the alert) under the alert's title."""
    return LineupEntry(channel_id, 0, alert_title(alert), "", ALERT_GROUP, 0)


# What a channel offers live, whatever the box: MPEG-TS HLS through the front door (live
# CMAF and DASH come later; VOD does not pass the front door).
LIVE_FORMATS: tuple[DeliveryFormat, ...] = ("hls-ts",)
# The format a box gets when its profile lists none the channel offers.
FALLBACK_FORMAT: DeliveryFormat = "hls-ts"


@dataclass(frozen=True, slots=True)
class Delivery:
    """How a box plays a channel live: ``format``, the multicast group's ``url`` ("" for the
    front door's HLS master), and ``fallback``, the reason it got HLS-TS though its profile
    lists no format the channel offers it (``"{format}_not_offered"`` naming the profile's
    first; "" when it got one it lists)."""

    format: DeliveryFormat
    url: str = ""
    fallback: str = ""


HLS_TS = Delivery("hls-ts")


def delivery(
    output: MulticastOutput | None,
    *,
    profile: DeviceProfile,
    region: str,
    offered: tuple[DeliveryFormat, ...] = LIVE_FORMATS,
) -> Delivery:
    """How a box in ``region`` with device ``profile`` plays a channel live.

    The one rule deciding the delivery for a box and a channel: every answer that names a
    live URL (the lineup, the player links' copy of it, Xtream's ``direct_source``) and
    the live master (which counts fallbacks) ask it.

    - **Multicast** when the profile lists ``multicast`` (the box can join a group), the
      channel's group runs and one of its regions covers the box's (the managed network
      carries it there): both, as either alone hands the box a URL that stays black,
      while HLS plays everywhere. It wins over the profile's unicast formats wherever it
      lists it: a group carries a channel once for every box on the network. A profile
      without ``multicast`` (the platform's too) never gets a group.
    - Else the first of the profile's formats the channel ``offered`` (most preferred
      first); else HLS-TS with ``fallback`` set: a box whose profile lists only formats
      live does not have (``dash``, ``hls-cmaf``; ``multicast`` out of a group's reach)
      still gets the one thing live is, rather than a refusal that plays nothing."""
    formats = profile.formats
    if (
        "multicast" in formats
        and output is not None
        and output.running
        and region
        and any(covers(area, region) for area in output.multicast.regions)
    ):
        return Delivery("multicast", output.url)
    for fmt in formats:
        if fmt in offered:
            return HLS_TS if fmt == "hls-ts" else Delivery(fmt)
    first = formats[0] if formats else FALLBACK_FORMAT
    return Delivery(FALLBACK_FORMAT, "", f"{first}_not_offered")


def alert_programme(programme: Programme, alert: Alert) -> Programme:
    """The guide entry shown instead of a programme the alert replaces (same slot)."""
    language = alert.language
    return Programme(
        id=programme.id,
        channel_id=programme.channel_id,
        start=programme.start,
        stop=programme.stop,
        titles=(Text(language, alert_title(alert)),),
        descriptions=(Text(language, alert.description),) if alert.description else (),
        categories=(Text("en", ALERT_GROUP),),
    )


def _with_query(uri: str, query: str) -> str:
    path = uri.split("?", 1)[0]
    return f"{path}?{query}" if query else path


def rewrite_master(text: str, *, query: str, audio_language: str = "") -> str:
    """The edge's master playlist as the front door serves it: variant URIs stay relative
    (so they resolve to the front door) and carry ``query``; steering is dropped (the
    front door re-routes variant reloads itself). With ``audio_language`` (the box's
    region's) and an audio rendition in it, that rendition is the DEFAULT one instead of
    the channel's."""
    lines = text.splitlines()
    audio = [line for line in lines if line.startswith(_AUDIO_MEDIA)]
    wanted = f'LANGUAGE="{audio_language}"'
    regional = bool(audio_language) and any(wanted in line for line in audio)
    out = []
    for line in lines:
        if line.startswith("#EXT-X-CONTENT-STEERING"):
            continue
        if line.startswith("#"):
            line = _PATHWAY.sub("", line)
            line = _URI_ATTR.sub(lambda m: f'URI="{_with_query(m[1], query)}"', line)
            if regional and line.startswith(_AUDIO_MEDIA):
                default = "YES" if wanted in line else "NO"
                line = _DEFAULT_ATTR.sub(f"DEFAULT={default}", line)
        elif line.strip():
            line = _with_query(line.strip(), query)
        out.append(line)
    return "\n".join(out) + "\n"


def epoch(query: Mapping[str, str], name: str) -> datetime:
    """An epoch-seconds query parameter (ASCII digits, a real date) as a UTC instant."""
    raw = query.get(name, "")
    if not _EPOCH.match(raw) or int(raw) >= _EPOCH_MAX:
        raise BadPlayRequest(name, "must be epoch seconds", reason="bad_window")
    return datetime.fromtimestamp(int(raw), tz=UTC)


def seconds(query: Mapping[str, str], name: str) -> int:
    """Whole seconds from a query parameter (ASCII digits only; the rights rules bound the
    window it makes)."""
    raw = query.get(name, "")
    if not _SECONDS.match(raw):
        raise BadPlayRequest(name, "must be whole seconds", reason="bad_window")
    return int(raw)


def redacted_path(path: str) -> str:
    """``path`` as the access log shows it: credentials and key ids blanked."""
    if path.startswith("/keys/"):
        path = _KEY_ID_SEGMENT.sub("-", path)
    return _CREDENTIAL_SEGMENT.sub("-", path)


class RedactedAccessLogger(AbstractAccessLogger):
    """Access log lines with the path only: no query string (tokens), no headers, no
    player credential (``/p/<credential>/...``, ``/live/<user>/<credential>/...``) and no
    content key id (``/keys/<channel>/-``)."""

    @property
    def enabled(self) -> bool:
        """Whether its lines are written at all (aiohttp asks once per connection): when
        the logger is above INFO, a request costs no line to build and drop."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """One JSON-friendly line per request."""
        self.logger.info(
            "http",
            extra={
                "method": request.method,
                "path": redacted_path(request.path),
                "status": response.status,
                "seconds": round(time, 4),
                "client": request.remote,
            },
        )
