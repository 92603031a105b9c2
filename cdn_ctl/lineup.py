"""The channel lineup as extended M3U, the way IPTV players read it.

Pure: entries in, text out. Attribute names follow the de-facto standard
(`tvg-id`, `tvg-name`, `tvg-logo`, `tvg-chno`, `group-title`, `catchup`,
`catchup-days`, `catchup-source`) understood by Kodi IPTV Simple, TiviMate,
VLC and most set-top box middleware.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LineupEntry:
    """One channel in a box's lineup."""

    channel_id: str
    number: int
    name: str
    logo_url: str
    group: str
    catchup_days: int


def _attr(value: str) -> str:
    # Quotes and line breaks would end the attribute or the line early.
    return value.replace('"', "'").replace("\r", " ").replace("\n", " ")


def render_m3u(
    entries: Iterable[LineupEntry], *, base_url: str, guide_url: str, query: str = ""
) -> str:
    """Extended M3U with catch-up templates (``{utc}``/``{utcend}`` are player placeholders).

    ``query`` (e.g. ``token=...``) is appended to every URL for players that
    cannot send headers.
    """
    suffix = f"?{query}" if query else ""
    joiner = "&" if query else "?"
    lines = [f'#EXTM3U x-tvg-url="{_attr(guide_url + suffix)}"']
    for e in sorted(entries, key=lambda e: (e.number, e.channel_id)):
        attrs = [
            f'tvg-id="{_attr(e.channel_id)}"',
            f'tvg-name="{_attr(e.name)}"',
            f'tvg-logo="{_attr(e.logo_url)}"',
            f'tvg-chno="{e.number}"',
            f'group-title="{_attr(e.group)}"',
        ]
        if e.catchup_days > 0:
            source = (
                f"{base_url}/catchup/{e.channel_id}/master.m3u8{suffix}"
                f"{joiner}utc={{utc}}&utcend={{utcend}}"
            )
            attrs += [
                'catchup="default"',
                f'catchup-days="{e.catchup_days}"',
                f'catchup-source="{_attr(source)}"',
            ]
        lines.append(f"#EXTINF:-1 {' '.join(attrs)},{e.name.replace(chr(10), ' ')}")
        lines.append(f"{base_url}/live/{e.channel_id}/master.m3u8{suffix}")
    return "\n".join(lines) + "\n"
