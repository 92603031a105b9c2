"""Pure rules on a master playlist's rungs for a box's device profile: which variants it
is offered (pixel height at most the profile's ``max_height``, HEVC only to a box that
decodes it), and a master's relative URIs made absolute for a master the front door
answers in an edge's place.

A rung whose ``CODECS`` names HEVC (``hvc1``/``hev1``) is HEVC whatever else it names;
a variant without ``RESOLUTION`` or ``CODECS`` is kept (nothing says the box cannot play
it). A master is never emptied: when no variant fits, the lowest one stays (the smallest
height, then bandwidth, among those of a codec the box decodes if any), as a picture
too big for the box's screen beats a channel that will not start. I-frame playlists
(trick play) follow the same rule but are only dropped, never kept as a last resort.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from subscriber.domain import DeviceProfile

_STREAM_INF = "#EXT-X-STREAM-INF:"
_IFRAME_INF = "#EXT-X-I-FRAME-STREAM-INF:"
_RESOLUTION = re.compile(r"(?:^|,)RESOLUTION=([0-9]{1,5})x([0-9]{1,5})")
_CODECS = re.compile(r'(?:^|,)CODECS="([^"]*)"')
_BANDWIDTH = re.compile(r"(?:^|,)BANDWIDTH=([0-9]{1,12})")
_URI_ATTR = re.compile(r'URI="([^"]*)"')
# RFC 6381 sample entries of HEVC video.
HEVC_ENTRIES = ("hvc1", "hev1")


@dataclass(frozen=True, slots=True)
class Offer:
    """A master as a profile offers it: its text, how many variants (and I-frame
    playlists) were left out, and whether none fitted (the lowest was kept)."""

    text: str
    dropped: int
    lowest_only: bool


def unrestricted(profile: DeviceProfile) -> bool:
    """Does ``profile`` play every rung (any height, HEVC too)? Then no master changes."""
    return profile.max_height == 0 and "hevc" in profile.codecs


def _height(attrs: str) -> int:
    match = _RESOLUTION.search(attrs)
    return int(match[2]) if match else 0


def _is_hevc(attrs: str) -> bool:
    match = _CODECS.search(attrs)
    if match is None:
        return False
    return any(entry.strip().startswith(HEVC_ENTRIES) for entry in match[1].split(","))


def _codec_fits(attrs: str, profile: DeviceProfile) -> bool:
    return "hevc" in profile.codecs or not _is_hevc(attrs)


def fits(attrs: str, profile: DeviceProfile) -> bool:
    """Does a variant with these attributes suit ``profile`` (height and codec)?"""
    height = _height(attrs)
    tall = profile.max_height and height > profile.max_height
    return not tall and _codec_fits(attrs, profile)


def _lowest(variants: list[str], profile: DeviceProfile) -> str:
    """The attributes of the variant kept when none fits (see the module's docstring)."""
    decodable = [v for v in variants if _codec_fits(v, profile)] or variants
    return min(decodable, key=lambda v: (_height(v), _bandwidth(v)))


def _bandwidth(attrs: str) -> int:
    match = _BANDWIDTH.search(attrs)
    return int(match[1]) if match else 0


def offer(text: str, profile: DeviceProfile) -> Offer:
    """``text`` with only the variants ``profile`` plays (see the module's docstring)."""
    if unrestricted(profile) or _STREAM_INF not in text:
        return Offer(text, 0, False)
    if not profile.max_height and not any(entry in text for entry in HEVC_ENTRIES):
        return Offer(text, 0, False)  # the common case: any height, no HEVC rung
    lines = text.splitlines()
    variants = [line[len(_STREAM_INF) :] for line in lines if line.startswith(_STREAM_INF)]
    kept = {v for v in variants if fits(v, profile)}
    lowest_only = not kept
    if lowest_only:
        kept = {_lowest(variants, profile)}
    out: list[str] = []
    dropped = 0
    skip_uri = False
    for line in lines:
        if skip_uri:
            if not line.strip():
                continue
            skip_uri = False
            if not line.startswith("#"):
                continue
        if line.startswith(_STREAM_INF) and line[len(_STREAM_INF) :] not in kept:
            dropped += 1
            skip_uri = True
            continue
        if line.startswith(_IFRAME_INF) and not fits(line[len(_IFRAME_INF) :], profile):
            dropped += 1
            continue
        out.append(line)
    if not dropped:
        return Offer(text, 0, False)
    return Offer("\n".join(out) + "\n", dropped, lowest_only)


def _absolute(uri: str, base: str) -> str:
    return uri if "://" in uri or uri.startswith("/") else base + uri


def absolute_master(text: str, *, base: str) -> str:
    """``text`` with every relative URI (variant lines, ``URI=`` attributes) resolved
    against ``base`` (a directory URL ending in ``/``), as a player resolves them against
    the URL it fetched the master from; absolute ones (a steering server) stay."""
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            line = _URI_ATTR.sub(lambda m: f'URI="{_absolute(m[1], base)}"', line)
        elif line.strip():
            line = _absolute(line.strip(), base)
        out.append(line)
    return "\n".join(out) + "\n"
