"""SegmentTemplate URLs derived from an HLS media playlist's segment URIs (pure).

A CMAF track's segments are named after their HLS media sequence number
(``seg_00042.m4s`` in a VOD rung, ``0000012345.m4s`` in a live window), so one
``$Number$`` template addresses them all: the number is found in the first segment's URI,
and every segment's URI must be exactly what the template gives for its own number, or
:class:`InvalidPlaylist` (a player would fetch other files than the HLS view lists).
URIs are resolved against the playlist's URI as the master gives it, since the MPD sits
beside the master; ``$`` in a literal part is written ``$$`` (ISO/IEC 23009-1 5.3.9.4.4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from operator import attrgetter
from urllib.parse import urljoin

from transcode import hls
from transcode.errors import InvalidPlaylist

_URI = attrgetter("uri")
_DIGITS = re.compile(r"[0-9]+")
# Stands for the number while resolving (a private-use character: urljoin keeps it where it
# is, while it strips control characters; a URI holding it is refused).
_SLOT = "\ue000"


@dataclass(frozen=True, slots=True)
class NumberTemplate:
    """A track's media template and how its init URIs are written."""

    key: str  # the playlist's URI, which segment and init URIs are relative to
    media: str
    representation_id: str

    def init(self, uri: str) -> str:
        """The ``initialization`` attribute for an EXT-X-MAP URI of this playlist."""
        return _with_id(
            _literal(_resolve(self.key, uri, "segments.map.uri")), self.representation_id
        )


# Segment URI lists (and the first number) already matched in one MPD, to their pattern:
# every rung of a live window names its segments alike, so one check serves them all.
Matched = dict[tuple[int, tuple[str, ...]], tuple[str, int, str]]


def number_template(
    key: str, playlist: hls.MediaPlaylist, representation_id: str, matched: Matched
) -> NumberTemplate:
    """The ``$Number$`` template every segment URI of ``playlist`` follows (see the module
    docstring); ``representation_id`` replaces the directory of that name."""
    segments = playlist.segments
    uris = tuple(map(_URI, segments))
    number = playlist.media_sequence
    known = matched.get((number, uris))
    if known is not None:
        return _template(key, *known, representation_id)
    first = segments[0].uri
    if _SLOT in first:
        raise InvalidPlaylist("segments.uri", f"{key!r}: U+E000 in {first!r}")
    path_end = len(first.split("?", 1)[0].split("#", 1)[0])
    for match in reversed(list(_DIGITS.finditer(first, 0, path_end))):
        run = match.group()
        if int(run) != number:
            continue
        width = len(run) if run.startswith("0") and len(run) > 1 else 0
        prefix, suffix = first[: match.start()], first[match.end() :]
        name = prefix.replace("%", "%%") + f"%0{width}d" + suffix.replace("%", "%%")
        if uris == (*map(name.__mod__, range(number, number + len(segments))),):
            matched[number, uris] = (prefix, width, suffix)
            return _template(key, prefix, width, suffix, representation_id)
    bad = next(
        (f"{n}: {s.uri!r}" for n, s in enumerate(segments, number) if str(n) not in s.uri),
        f"{number}: {first!r}",
    )
    raise InvalidPlaylist(
        "segments.uri",
        f"{key!r}: segment URIs do not follow one $Number$ template of their media sequence "
        f"numbers (segment {bad})",
    )


def _template(
    key: str, prefix: str, width: int, suffix: str, representation_id: str
) -> NumberTemplate:
    resolved = _resolve(key, f"{prefix}{_SLOT}{suffix}", "segments.uri")
    before, _, after = resolved.partition(_SLOT)
    number = f"$Number%0{width}d$" if width else "$Number$"
    media = _with_id(_literal(before), representation_id) + number + _literal(after)
    return NumberTemplate(key, media, representation_id)


def _resolve(key: str, uri: str, field: str) -> str:
    if not uri:
        raise InvalidPlaylist(field, f"{key!r}: an empty URI")
    return urljoin(key, uri)


def _literal(text: str) -> str:
    return text.replace("$", "$$")


def _with_id(template: str, representation_id: str) -> str:
    """``template`` with its last directory named ``representation_id`` written as
    ``$RepresentationID$`` (so Representations may share one template)."""
    path, sep, rest = template.partition("?")
    parts = path.split("/")
    for i in range(len(parts) - 2, -1, -1):  # directories only, never the file name
        if parts[i] == representation_id:
            parts[i] = "$RepresentationID$"
            return "/".join(parts) + sep + rest
    return template
