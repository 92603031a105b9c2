"""A CMAF channel's files on the node's disk, as a pusher reads them (``transcode.live.cmaf``).

Beside each TS segment N a CMAF channel has, per track directory (video rungs, ``audio``),
``{N}.m4s`` and the content-named ``init-{sha8}.mp4`` it starts from; per track its
``cmaf.m3u8`` (and a video track's ``cmaf-iframes.m3u8``); per channel ``master-cmaf.m3u8``
and the live ``manifest.mpd``. The init segment a ``.m4s`` needs is named only by a
playlist, which an old segment has left: a segment is pushed after every init segment of
its track this origin has not had (they are few, tiny, and written before the segment).

The channel's CMAF texts are read MPD and master first, then each track's I-frame then
media playlist, the reverse of the order the publisher writes them: a media playlist read
last is at least as new as the MPD and masters read before it, so pushing every segment it
names before them leaves no name on the origin without its file. Pure reads: no network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from transcode import hls_parse
from transcode.errors import InvalidPlaylist
from transcode.names import CMAF_IFRAMES, CMAF_INIT, CMAF_MASTER, CMAF_PLAYLIST, MPD_NAME

_M4S = ".m4s"


@dataclass(frozen=True, slots=True)
class TrackSegment:
    """One track's CMAF segment file and the init segments beside it."""

    track: str
    inits: tuple[str, ...]
    name: str  # ``{sequence}.m4s``


@dataclass(frozen=True, slots=True)
class TrackLists:
    """One track's CMAF playlists and what they name."""

    media: bytes
    iframes: bytes | None
    inits: tuple[str, ...]  # EXT-X-MAP URIs, in order, once each
    sequences: tuple[int, ...]  # the ``.m4s`` numbers, ascending, once each


@dataclass(frozen=True, slots=True)
class CmafLists:
    """A channel's CMAF texts, read once (what is pushed is what was checked)."""

    tracks: dict[str, TrackLists]
    master: bytes | None
    mpd: bytes | None


def segment_files(root: Path, channel: str, sequence: int) -> list[TrackSegment]:
    """Every track of ``channel`` holding CMAF segment ``sequence``, with its init segments."""
    directory = root / "live" / channel
    name = f"{sequence}{_M4S}"
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    out: list[TrackSegment] = []
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False) or entry.name.startswith("."):
            continue
        if os.path.exists(os.path.join(entry.path, name)):
            out.append(TrackSegment(entry.name, inits_in(Path(entry.path)), name))
    return out


def inits_in(directory: Path) -> tuple[str, ...]:
    """The init segments in a track's directory, by name."""
    try:
        return tuple(sorted(n for n in os.listdir(directory) if CMAF_INIT.fullmatch(n)))
    except (FileNotFoundError, NotADirectoryError):
        return ()


def read_lists(channel_dir: Path) -> CmafLists:
    """The channel's CMAF texts, MPD and master before the playlists they name (see above);
    a track whose ``cmaf.m3u8`` cannot be read or parsed is left out."""
    mpd = _read(channel_dir / MPD_NAME)
    master = _read(channel_dir / CMAF_MASTER)
    tracks: dict[str, TrackLists] = {}
    try:
        entries = sorted(os.scandir(channel_dir), key=lambda e: e.name)
    except FileNotFoundError:
        entries = []
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False) or entry.name.startswith("."):
            continue
        iframes = _read(Path(entry.path) / CMAF_IFRAMES)
        media = _read(Path(entry.path) / CMAF_PLAYLIST)
        if media is None:
            continue
        named = _named(media)
        if named is None:
            continue  # unreadable: pushed once a later one reads
        # The I-frame playlist names byte ranges of the media playlist's segments, but was
        # read first: an older one may still name a segment the media playlist has left.
        trick = None if iframes is None else _named(iframes)
        inits, seqs = named if trick is None else (trick[0] + named[0], trick[1] + named[1])
        tracks[entry.name] = TrackLists(
            media, iframes, tuple(dict.fromkeys(inits)), tuple(sorted(set(seqs)))
        )
    return CmafLists(tracks, master, mpd)


def _named(body: bytes) -> tuple[list[str], list[int]] | None:
    """The init segments and ``.m4s`` numbers a CMAF playlist names (None: unreadable)."""
    try:
        playlist = hls_parse.parse_media(body.decode())
    except (InvalidPlaylist, UnicodeDecodeError, ValueError):
        return None
    inits = [s.map.uri for s in playlist.segments if s.map and CMAF_INIT.fullmatch(s.map.uri)]
    stems = [s.uri.removesuffix(_M4S) for s in playlist.segments if s.uri.endswith(_M4S)]
    return inits, [int(s) for s in stems if s.isdigit()]


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
