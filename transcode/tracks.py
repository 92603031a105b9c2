"""Audio and subtitle renditions: which tracks of a source a ladder keeps, named and grouped
the way players choose among them.

A source with one audio track keeps it muxed into every rung, as every player has always
had it (in MPEG-TS; CMAF tracks are single-track, so there even one audio track is a
rendition of its own). A source with several keeps each of them (up to the profile's
``max_audio_tracks``) as its own audio-only rendition, encoded once rather than once per
rung; the rungs then carry video only and every variant names one ``AUDIO`` group
(RFC 8216 section 4.3.4.1.1). Text subtitles become WebVTT renditions in one
``SUBTITLES`` group. A rendition is a directory beside the rungs (``audio-zh``,
``subs-en``): segment *k* of every rung and rendition covers the same media, so they
share sequence numbers, discontinuities and archive windows.

The language is the track's tag (a PMT language descriptor, a ``language`` tag) or what
the channel's configuration says, in the BCP-47 form players match against the viewer's
language (:mod:`headend.languages`); the name is the track's title or the language's own
name. One audio track is the ``DEFAULT``: the channel's default language where a track
has it, else the source's default-disposition track, else the first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from headend.languages import language_name, player_language
from transcode import hls, tags
from transcode.domain import MAX_TRACKS
from transcode.jobs import SubtitleFile
from transcode.probe import SourceInfo, StreamTags

AUDIO_GROUP = "audio"
SUBTITLES_GROUP = "subs"
MAX_AUDIO_TRACKS = MAX_TRACKS
MAX_SUBTITLE_TRACKS = MAX_TRACKS
# An attached subtitle file's place: no stream of the source.
ATTACHED = -1
# Renditions' directories start so; rung names may not (``transcode.ladder``).
_PREFIX = {"audio": "audio-", "subtitles": "subs-"}
TRACK_PREFIXES = tuple(_PREFIX.values())

TrackKind = Literal["audio", "subtitles"]


@dataclass(frozen=True, slots=True)
class Track:
    """One audio or subtitle rendition: its directory and what the master says of it."""

    kind: TrackKind
    name: str  # directory beside the rungs, e.g. "audio-zh"
    index: int  # the source's n-th stream of its kind (``a:n`` / ``s:n``), or ATTACHED
    language: str  # BCP-47, "" when unknown
    title: str  # NAME in the master
    default: bool = False
    uri: str = ""  # an attached subtitle file


def plan_tracks(
    source: SourceInfo,
    *,
    max_audio: int,
    subtitle_files: Sequence[SubtitleFile] = (),
    default_language: str = "",
    separate_audio: bool = False,
) -> tuple[Track, ...]:
    """The renditions of a probed source: its audio tracks when it has several (or any, with
    ``separate_audio``: CMAF), its text subtitle streams, then the attached subtitle files."""
    audio: tuple[Track, ...] = ()
    if len(source.audio_streams) > 1 or (separate_audio and source.audio_streams):
        audio = _audio(source.audio_streams[:max_audio], default_language)
    subtitles = [_track("subtitles", s.index, s.language, s.title) for s in source.subtitle_streams]
    subtitles += [_track("subtitles", ATTACHED, f.language, f.title, f.uri) for f in subtitle_files]
    return _named((*audio, *subtitles[:MAX_SUBTITLE_TRACKS]))


def live_tracks(
    audio_languages: Sequence[str],
    subtitle_languages: Sequence[str],
    *,
    default_language: str = "",
) -> tuple[Track, ...]:
    """The renditions a live channel's configuration names: its source's audio streams in
    order when there are several, and its subtitle streams in order."""
    audio: tuple[Track, ...] = ()
    if len(audio_languages) > 1:
        streams = [StreamTags(i, "", lang, "", False) for i, lang in enumerate(audio_languages)]
        audio = _audio(streams, default_language)
    subtitles = tuple(_track("subtitles", i, lang, "") for i, lang in enumerate(subtitle_languages))
    return _named((*audio, *subtitles))


def first_audio() -> Track:
    """The one audio rendition of a CMAF stream copy, whose source is not probed beforehand:
    the first audio stream, ``audio-1``, the default."""
    return _named((_track("audio", 0, "", "", default=True),))[0]


def audio_of(tracks: Sequence[Track]) -> tuple[Track, ...]:
    """The audio renditions (none: the rungs carry their audio themselves)."""
    return tuple(t for t in tracks if t.kind == "audio")


def subtitles_of(tracks: Sequence[Track]) -> tuple[Track, ...]:
    """The subtitle renditions."""
    return tuple(t for t in tracks if t.kind == "subtitles")


def renditions(tracks: Sequence[Track], uri: Callable[[Track], str]) -> tuple[hls.Rendition, ...]:
    """The master playlist's EXT-X-MEDIA entries of ``tracks`` (``uri`` gives each one's media
    playlist)."""
    return tuple(
        hls.Rendition(
            type=tags.MEDIA_AUDIO if t.kind == "audio" else tags.MEDIA_SUBTITLES,
            group_id=AUDIO_GROUP if t.kind == "audio" else SUBTITLES_GROUP,
            name=t.title,
            uri=uri(t),
            language=t.language,
            default=t.default,
            # Subtitles are chosen by the viewer, never switched on by the player's locale.
            autoselect=t.kind == "audio" or t.default,
        )
        for t in tracks
    )


def _audio(streams: Sequence[StreamTags], default_language: str) -> tuple[Track, ...]:
    chosen = player_language(default_language) if default_language else ""
    languages = [player_language(s.language) for s in streams]
    if chosen and chosen in languages:
        default = languages.index(chosen)
    else:
        default = next((i for i, s in enumerate(streams) if s.default), 0)
    return tuple(
        _track("audio", s.index, s.language, s.title, default=i == default)
        for i, s in enumerate(streams)
    )


def _track(
    kind: TrackKind, index: int, language: str, title: str, uri: str = "", *, default: bool = False
) -> Track:
    lang = player_language(language)
    name = title or (language_name(lang) if lang else f"{kind} {index + 1}")
    return Track(kind, "", index, lang, name, default, uri)


def _named(tracks: Sequence[Track]) -> tuple[Track, ...]:
    """Give each track its directory: ``audio-zh``, ``subs-en``; a repeated or unknown language
    is told apart by its position (``audio-2``, ``subs-en-2``)."""
    named: list[Track] = []
    taken: set[str] = set()
    for position, track in enumerate(tracks, 1):
        prefix = _PREFIX[track.kind]
        base = f"{prefix}{track.language.lower() or position}"
        name = base if base not in taken else f"{base}-{position}"
        taken.add(name)
        named.append(replace(track, name=name))
    return tuple(named)
