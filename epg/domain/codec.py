"""The stored forms of channels, programmes and rights (compact JSON for Redis)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from epg.domain.model import DEFAULT_RIGHTS, Channel, Programme, Rating, Rights, Text

# Compact JSON for the store: positional arrays keep each programme small and
# quick to decode on the NowNext/Range hot path.


# The stdlib's C string encoder, exactly what json.dumps(ensure_ascii=False) uses.
_jstr: Callable[[str], str] = json.encoder.encode_basestring


def _tx(items: Iterable[Text]) -> list[list[str]]:
    return [[t.lang, t.text] for t in items]


def _xt(items: Any) -> tuple[Text, ...]:
    return tuple(Text(a, b) for a, b in items)


def _jtx(items: Sequence[Text]) -> str:
    if not items:
        return ""
    if len(items) == 1:
        t = items[0]
        return f"[{_jstr(t.lang)},{_jstr(t.text)}]"
    return ",".join([f"[{_jstr(t.lang)},{_jstr(t.text)}]" for t in items])


def encode_programme(p: Programme) -> str:
    """The stored form of a programme's guide data (bounds and rights are kept apart).

    Byte-for-byte what ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))``
    gives for the positional array (the unchanged check compares stored strings),
    built by hand because the generic encoder was a large share of bulk-import time.
    Audio and subtitle languages are two more entries, present only when the programme
    has either: a programme without them is stored as it always was, so re-importing a
    guide stored before they existed finds it unchanged.
    """
    ratings = ",".join([f"[{_jstr(r.system)},{_jstr(r.value)}]" for r in p.ratings])
    icons = ",".join([_jstr(i) for i in p.icons])
    languages = ""
    if p.audio_languages or p.subtitle_languages:
        audio = ",".join([_jstr(a) for a in p.audio_languages])
        subtitles = ",".join([_jstr(s) for s in p.subtitle_languages])
        languages = f",[{audio}],[{subtitles}]"
    return (
        f"[[{_jtx(p.titles)}],[{_jtx(p.sub_titles)}],[{_jtx(p.descriptions)}],"
        f"[{_jtx(p.categories)}],[{_jtx(p.keywords)}],{_jstr(p.episode_xmltv_ns)},"
        f"{_jstr(p.episode_onscreen)},[{ratings}],{int(p.previously_shown)},"
        f"{int(p.premiere)},[{icons}]{languages}]"
    )


def decode_programme(
    pid: str, channel_id: str, start_s: int, stop_s: int, data: str, rights: Rights = DEFAULT_RIGHTS
) -> Programme:
    """Rebuild a programme from its stored form."""
    t, st, d, c, k, ens, eos, r, ps, pr, ic, *languages = json.loads(data)
    audio, subtitles = languages or ((), ())
    return Programme(
        id=pid,
        channel_id=channel_id,
        start=datetime.fromtimestamp(start_s, UTC),
        stop=datetime.fromtimestamp(stop_s, UTC),
        titles=_xt(t),
        sub_titles=_xt(st),
        descriptions=_xt(d),
        categories=_xt(c),
        keywords=_xt(k),
        episode_xmltv_ns=ens,
        episode_onscreen=eos,
        ratings=tuple(Rating(a, b) for a, b in r),
        previously_shown=bool(ps),
        premiere=bool(pr),
        icons=tuple(ic),
        rights=rights,
        audio_languages=tuple(audio),
        subtitle_languages=tuple(subtitles),
    )


def encode_rights(r: Rights) -> str:
    """The stored form of a programme's rights."""
    return json.dumps(
        [int(r.catchup_allowed), list(r.blackout_regions), r.blackout_slate], separators=(",", ":")
    )


def decode_rights(data: str | None) -> Rights:
    """Rebuild rights; ``None`` means the defaults."""
    if not data:
        return DEFAULT_RIGHTS
    ca, regions, slate = json.loads(data)
    return Rights(bool(ca), tuple(regions), slate)


def encode_channel(c: Channel) -> str:
    """The stored form of a channel."""
    return json.dumps(
        {
            "id": c.id,
            "number": c.number,
            "names": _tx(c.names),
            "owner": c.owner,
            "timezone": c.timezone,
            "logo_url": c.logo_url,
            "catchup_days": c.catchup_days,
            "group": c.group,
            "active": c.active,
            "version": c.version,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def decode_channel(data: str | bytes) -> Channel:
    """Rebuild a channel from its stored form."""
    d = json.loads(data)
    return Channel(
        id=d["id"],
        number=d["number"],
        names=_xt(d["names"]),
        owner=d["owner"],
        timezone=d["timezone"],
        logo_url=d["logo_url"],
        catchup_days=d["catchup_days"],
        group=d["group"],
        active=d["active"],
        version=d["version"],
    )


def with_version(channel: Channel, version: int) -> Channel:
    """A copy of ``channel`` at ``version``."""
    return replace(channel, version=version)
