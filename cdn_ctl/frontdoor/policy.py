"""Pure front door rules: the guide's slate and alert entries, the lineup's alert entry,
how a box plays a channel live (its multicast group, CMAF-HLS, DASH or MPEG-TS HLS, by its
device profile and region), the served master and MPD, the catch-up window a box asks
for, and the access log line."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from cdn_ctl.domain import Scope
from cdn_ctl.errors import BadPlayRequest, FormatUnavailable, UpstreamUnavailable
from cdn_ctl.lineup import LineupEntry
from epg.alerts.domain import Alert
from epg.domain import Programme, Text
from headend.regions import covers
from subscriber.domain import DeliveryFormat, DeviceProfile
from transcode.names import CMAF_IFRAMES, CMAF_MASTER, CMAF_PLAYLIST, MPD_NAME
from transcode.outputs import LiveOutput

SLATE_TITLE = "Not available in your region"
# The lineup group and guide category of an emergency alert, and a drill's mark.
ALERT_GROUP = "Emergency"
DRILL_MARK = "[DRILL 演习] "
_URI_ATTR = re.compile(r'URI="([^"]*)"')
# An MPD's root element (its attribute values never hold ">"), within the head of the text.
_MPD_START = re.compile(r"<MPD\s[^>]*>")
_MPD_HEAD = 4096
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


# What every live channel offers: MPEG-TS HLS (also the format a box gets when its
# profile lists none the channel offers); one published as CMAF also offers these.
HLS_TS_ONLY: tuple[DeliveryFormat, ...] = ("hls-ts",)
CMAF_FORMATS: tuple[DeliveryFormat, ...] = ("hls-ts", "hls-cmaf", "dash")
FALLBACK_FORMAT: DeliveryFormat = "hls-ts"
# The front door's live URL of each unicast format, below ``/live/{channel}/``.
LIVE_NAMES: dict[DeliveryFormat, str] = {
    "hls-ts": "master.m3u8",
    "hls-cmaf": CMAF_MASTER,
    "dash": MPD_NAME,
}


# A CMAF track's variant playlists (the other live variant names are MPEG-TS).
CMAF_VARIANTS = frozenset({CMAF_PLAYLIST, CMAF_IFRAMES})
# Why a box may not have a channel as CMAF-HLS or DASH, by reason.
_HLS_TS_ONLY = {
    "format_not_offered": "this channel is not published as CMAF",
    "picture_switched": "this channel's picture is switched (an emergency alert or a"
    " blackout), which only its MPEG-TS HLS master shows",
}


# Each manifest name's format (the front door's live and catch-up URLs end with one).
FORMAT_OF: dict[str, DeliveryFormat] = {name: fmt for fmt, name in LIVE_NAMES.items()}


def hls_ts_only(channel: str, reason: str, *, kind: str = "live") -> FormatUnavailable:
    """The refusal of a CMAF-HLS or DASH request for ``reason`` (a key of the rule above),
    naming the channel's MPEG-TS master (``kind``: live or catchup), which plays."""
    hls = f"/{kind}/{channel}/{LIVE_NAMES['hls-ts']}"
    return FormatUnavailable(f"{_HLS_TS_ONLY[reason]}: play {hls}", reason=reason, hls=hls)


def require_offered(
    output: LiveOutput | None, channel: str, fmt: DeliveryFormat, *, kind: str = "live"
) -> None:
    """Refuse ``fmt`` (CMAF-HLS, DASH) for a channel whose ``output`` does not offer it,
    naming its MPEG-TS master (``kind``: live or catchup)."""
    if fmt not in offered(output):
        raise hls_ts_only(channel, "format_not_offered", kind=kind)


def unswitched(scope: Scope, now: datetime) -> Scope:
    """A CMAF or DASH request's live scope: cut views are MPEG-TS only, so one in force is
    refused (``picture_switched``, naming the MPEG-TS master, which shows it); one that
    ended and only lingers (for MPEG-TS players crossing its join back, which a CMAF box
    never took) gives way to the channel's own."""
    cut = scope.cut
    if cut is None:
        return scope
    at = now.timestamp()
    if cut.start <= at and (cut.end == 0 or at < cut.end):
        raise hls_ts_only(scope.channel, "picture_switched")
    return Scope("live", scope.channel)


def offered(output: LiveOutput | None) -> tuple[DeliveryFormat, ...]:
    """The unicast formats a channel with ``output`` offers live: CMAF-HLS and DASH while
    it runs published as CMAF, MPEG-TS HLS always (before the directory's first read too)."""
    if output is not None and output.running and output.cmaf:
        return CMAF_FORMATS
    return HLS_TS_ONLY


@dataclass(frozen=True, slots=True)
class Delivery:
    """How a box plays a channel live: ``format``, the multicast group's ``url`` ("" for a
    front door URL: :attr:`name` below ``/live/{channel}/``), and ``fallback``, the reason it
    got HLS-TS though its profile lists no format the channel offers it
    (``"{format}_not_offered"`` naming the profile's first; "" when it got one it lists)."""

    format: DeliveryFormat
    url: str = ""
    fallback: str = ""

    @property
    def name(self) -> str:
        """The front door's live URL's last part (master.m3u8, master-cmaf.m3u8,
        manifest.mpd); "" for a multicast group."""
        return LIVE_NAMES.get(self.format, "")


HLS_TS = Delivery("hls-ts")


def delivery(output: LiveOutput | None, *, profile: DeviceProfile, region: str) -> Delivery:
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
    - Else the first of the profile's formats the channel :func:`offered` (most preferred
      first); else HLS-TS with ``fallback`` set: a box whose profile lists only formats
      the channel does not have (``dash``, ``hls-cmaf`` of a channel not published as
      CMAF; ``multicast`` out of a group's reach) still gets the one thing every channel
      is, rather than a refusal that plays nothing."""
    formats = profile.formats
    multicast = output.multicast if output is not None else None
    if (
        "multicast" in formats
        and output is not None
        and multicast is not None
        and output.running
        and region
        and any(covers(area, region) for area in multicast.regions)
    ):
        return Delivery("multicast", multicast.url)
    live = offered(output)
    for fmt in formats:
        if fmt in live:
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


def rewrite_mpd(text: str, *, base_url: str, location: str) -> str:
    """An edge's live MPD as the front door serves a box: with a ``BaseURL`` (the lease's
    edge, signed: segments resolve there) and a ``Location`` (the front door again, with
    the lease: every reload comes back, as HLS variant reloads do) first in the ``MPD``
    element, where ISO/IEC 23009-1 puts them. Anything but an MPD element is an
    ``UpstreamUnavailable``: the front door never hands a box a document it cannot read."""
    match = _MPD_START.search(text, 0, _MPD_HEAD)
    if match is None or "<BaseURL" in text or "<Location" in text:
        raise UpstreamUnavailable("the edge's MPD was not one to serve", reason="bad_manifest")
    head = f"\n<BaseURL>{escape(base_url)}</BaseURL>\n<Location>{escape(location)}</Location>"
    return text[: match.end()] + head + text[match.end() :]


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
