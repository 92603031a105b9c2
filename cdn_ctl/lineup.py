"""The channel lineup as extended M3U, the way IPTV players read it.

Pure: entries in, text out. Attribute names follow the de-facto standard
(`tvg-id`, `tvg-name`, `tvg-logo`, `tvg-chno`, `group-title`, `catchup`,
`catchup-days`, `catchup-source`) understood by Kodi IPTV Simple, TiviMate,
VLC and most set-top box middleware.

M3U has no escaping, and every line of it is either a directive or a URL a
player will fetch, so whatever a broadcaster stored (older data may predate
the platform's text rule) is written so it cannot end a line, an attribute or
the ``#EXTINF`` title early: one channel is always exactly two lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from headend.text import sanitize

# RFC 3986 reserved and unreserved characters stay; "%" keeps existing escapes.
# Quotes, commas, spaces, braces and everything non-ASCII are percent-encoded.
_URL_SAFE = "!#$&'()*+/:;=?@[]~%"


@dataclass(frozen=True, slots=True)
class LineupEntry:
    """One channel in a box's lineup."""

    channel_id: str
    number: int
    name: str
    logo_url: str
    group: str
    catchup_days: int
    # Where the box plays the channel live when not through the front door: its multicast
    # group (``rtp://@239.1.1.1:5000``, no token: the managed network admits the box).
    # "": the front door's ``/live/{channel}/{manifest}``.
    live_url: str = ""
    # The front door manifest the box plays the channel's live and catch-up URLs as, by its
    # device profile: the MPEG-TS HLS master, the CMAF-HLS one (master-cmaf.m3u8) or the
    # DASH MPD (manifest.mpd). A multicast box's catch-up is MPEG-TS HLS.
    manifest: str = "master.m3u8"


def _attr(value: str) -> str:
    # Quotes and line breaks would end the attribute or the line early; many
    # parsers (cdn_ctl.sim.stb's included) split #EXTINF at its first comma.
    return sanitize(value).replace('"', "'").replace(",", " ")


def _title(value: str) -> str:
    # Everything after the comma is the title, up to the end of the line; parsers
    # that look for the comma after the last quote must not find one in here.
    return sanitize(value).replace('"', "'")


def _url(value: str, safe: str = _URL_SAFE) -> str:
    """``value`` as one M3U token: every break, quote, comma or space is percent-encoded."""
    # surrogatepass: even a lone surrogate becomes %-escapes rather than an error.
    return quote(value, safe=safe, errors="surrogatepass")


def logo(value: str) -> str:
    """A logo URL a player may fetch: web URLs only (never javascript: or file:)."""
    return _url(value) if value.startswith(("http://", "https://")) else ""


def render_m3u(
    entries: Iterable[LineupEntry], *, base_url: str, guide_url: str, query: str = ""
) -> str:
    """Extended M3U with catch-up templates (``{utc}``/``{utcend}`` are player placeholders).

    Those two are the only placeholders every player fills, from the guide's times, in
    catch-up, start-over and timeshift alike. ``{catchup-id}`` is left out: players fill
    it only from a ``catchup-id`` attribute on XMLTV ``<programme>``, which the DTD does
    not allow and the guide therefore does not write (it carries the id as
    ``<episode-num system="catchup-id">``, for players and operators that read it).

    ``query`` (e.g. ``token=...``) is appended to every URL for players that
    cannot send headers.
    """
    suffix = f"?{query}" if query else ""
    joiner = "&" if query else "?"
    base = _url(base_url)
    lines = [f'#EXTM3U x-tvg-url="{_url(guide_url + suffix)}"']
    for e in sorted(entries, key=lambda e: (e.number, e.channel_id)):
        # The id is one path segment of each URL: "/" or "?" in it must not move the path.
        segment = _url(e.channel_id, safe="")
        attrs = [
            f'tvg-id="{_attr(e.channel_id)}"',
            f'tvg-name="{_attr(e.name)}"',
            f'tvg-logo="{logo(e.logo_url)}"',
            f'tvg-chno="{int(e.number)}"',
            f'group-title="{_attr(e.group)}"',
        ]
        if e.catchup_days > 0:
            # The placeholders stay literal: players substitute them.
            source = (
                _url(f"{base_url}/catchup/{segment}/{_url(e.manifest, safe='')}{suffix}")
                + f"{joiner}utc={{utc}}&utcend={{utcend}}"
            )
            attrs += [
                'catchup="default"',
                f'catchup-days="{int(e.catchup_days)}"',
                f'catchup-source="{source}"',
            ]
        lines.append(f"#EXTINF:-1 {' '.join(attrs)},{_title(e.name)}")
        if e.live_url:
            lines.append(_url(e.live_url))
        else:
            lines.append(f"{base}/live/{segment}/{_url(e.manifest, safe='')}{_url(suffix)}")
    return "\n".join(lines) + "\n"
