"""HLS playlists read back into :mod:`transcode.hls`'s dataclasses, through the ``m3u8``
library (an independent reader: the tests check the renderer against it).

Every field the renderer writes is read (segments with their keys, byte ranges and
date ranges; masters with renditions, I-frame variants and content steering); what the
dataclasses cannot hold (an unknown playlist type, a key method other than AES-128, a
date range without a zoned START-DATE) is ``InvalidPlaylist``. No file or network I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import m3u8

from transcode import tags
from transcode.errors import InvalidPlaylist
from transcode.hls import (
    ContentSteering,
    DateRange,
    IFrameVariant,
    MasterPlaylist,
    MediaPlaylist,
    Rendition,
    Segment,
    SegmentKey,
    SegmentMap,
    Variant,
)


def parse_media(text: str) -> MediaPlaylist:
    """Read a media playlist with ``m3u8`` into the dataclasses (target duration as declared)."""
    parsed = m3u8.loads(text)
    if parsed.is_variant:
        raise InvalidPlaylist("playlist", "expected a media playlist, got a master playlist")
    segments: list[Segment] = []
    next_offset: dict[str, int] = {}
    media_sequence = int(parsed.media_sequence or 0)
    for position, seg in enumerate(parsed.segments, start=media_sequence):
        byterange: tuple[int, int] | None = None
        if seg.byterange:
            length_text, _, offset_text = seg.byterange.partition("@")
            length = int(length_text)
            # Without an offset the range starts where the previous one on this URI ended.
            offset = int(offset_text) if offset_text else next_offset.get(seg.uri, 0)
            next_offset[seg.uri] = offset + length
            byterange = (length, offset)
        segments.append(
            Segment(
                uri=seg.uri,
                duration=float(seg.duration),
                program_date_time=seg.program_date_time,
                discontinuity=bool(seg.discontinuity),
                byterange=byterange,
                title=seg.title or "",
                key=_parsed_key(seg.key, position),
                dateranges=tuple(_parsed_daterange(d) for d in seg.dateranges or ()),
                map=_parsed_map(seg.init_section),
            )
        )
    playlist_type = (parsed.playlist_type or "").upper() or None
    if playlist_type not in (None, tags.PLAYLIST_TYPE_VOD, tags.PLAYLIST_TYPE_EVENT):
        raise InvalidPlaylist("playlist_type", f"unknown playlist type {playlist_type!r}")
    return MediaPlaylist(
        segments=tuple(segments),
        media_sequence=media_sequence,
        discontinuity_sequence=int(parsed.discontinuity_sequence or 0),
        playlist_type=playlist_type,  # type: ignore[arg-type]  # narrowed by the check above
        endlist=bool(parsed.is_endlist),
        iframes_only=bool(parsed.is_i_frames_only),
        independent_segments=bool(parsed.is_independent_segments),
        target_duration=None if parsed.target_duration is None else int(parsed.target_duration),
        start_offset_seconds=None if parsed.start is None else float(parsed.start.time_offset),
    )


def parse_master(text: str) -> MasterPlaylist:
    """Read a master playlist with ``m3u8`` into the dataclasses."""
    parsed = m3u8.loads(text)
    if not parsed.is_variant:
        raise InvalidPlaylist("playlist", "expected a master playlist, got a media playlist")
    variants = tuple(
        Variant(
            uri=p.uri,
            frame_rate=float(p.stream_info.frame_rate or 0.0),
            audio=p.stream_info.audio,
            subtitles=p.stream_info.subtitles,
            **_parsed_stream(p.stream_info),
        )
        for p in parsed.playlists
    )
    renditions = tuple(
        Rendition(
            type=m.type,
            group_id=m.group_id,
            name=m.name,
            uri=m.uri or "",
            language=m.language or "",
            default=m.default == "YES",
            autoselect=m.autoselect == "YES",
            channels=int(m.channels or 0),
        )
        for m in parsed.media
    )
    iframes = tuple(
        IFrameVariant(uri=p.uri, **_parsed_stream(p.iframe_stream_info))
        for p in parsed.iframe_playlists
    )
    steering = None
    if parsed.content_steering is not None:
        steering = ContentSteering(
            server_uri=parsed.content_steering.uri,
            pathway_id=parsed.content_steering.pathway_id,
        )
    return MasterPlaylist(
        variants=variants,
        iframe_variants=iframes,
        steering=steering,
        independent_segments=bool(parsed.is_independent_segments),
        renditions=renditions,
    )


def _parsed_map(init: Any) -> SegmentMap | None:
    if init is None:
        return None
    byterange: tuple[int, int] | None = None
    if init.byterange:
        length_text, _, offset_text = str(init.byterange).partition("@")
        byterange = (int(length_text), int(offset_text or 0))
    return SegmentMap(uri=init.uri, byterange=byterange)


def _parsed_key(key: Any, position: int) -> SegmentKey | None:
    """What ``m3u8`` read of the key in force for the segment at ``position``."""
    if key is None or key.method == tags.METHOD_NONE:
        return None
    if key.method != tags.METHOD_AES_128 or not key.uri:
        raise InvalidPlaylist("segments.key", f"unsupported key method {key.method!r}")
    return SegmentKey(uri=key.uri, sequence=int(key.iv, 16) if key.iv else position)


def _parsed_daterange(daterange: Any) -> DateRange:
    """What ``m3u8`` read of an EXT-X-DATERANGE (START-DATE required, SCTE-35 in hex)."""
    if not daterange.start_date:
        raise InvalidPlaylist("dateranges.start_date", f"missing in {daterange.id!r}")
    try:
        start = datetime.fromisoformat(daterange.start_date)
        payloads = {
            name: bytes.fromhex(value[2:]) if value else b""
            for name, value in (("scte35_out", daterange.scte35_out),
                                ("scte35_in", daterange.scte35_in),
                                ("scte35_cmd", daterange.scte35_cmd))
        }  # fmt: skip
    except ValueError as err:
        raise InvalidPlaylist("dateranges", f"unreadable {daterange.id!r}: {err}") from err
    if start.tzinfo is None:
        raise InvalidPlaylist("dateranges.start_date", "must carry a time zone")
    return DateRange(
        id=daterange.id,
        start_date=start,
        duration=None if daterange.duration is None else float(daterange.duration),
        planned_duration=None
        if daterange.planned_duration is None
        else float(daterange.planned_duration),
        **payloads,
    )


def _parsed_stream(info: Any) -> dict[str, Any]:
    """What ``m3u8`` read of the attributes a variant and an I-frame variant share."""
    return {
        "bandwidth": int(info.bandwidth),
        "average_bandwidth": int(info.average_bandwidth or 0),
        "codecs": info.codecs or "",
        "resolution": tuple(info.resolution or (0, 0)),
        "pathway_id": info.pathway_id,
    }
