"""What the origin serves and to whom: peer allow-list, files under the root, live reach.

- :func:`peer_allowed`: only peers inside ``ORIGIN_ALLOWED_NETWORKS`` (edges
  and mid-tiers) get anything but ``/healthz``. The TCP peer address is used,
  never ``X-Forwarded-For``: nothing sits between an edge and the origin.
- :func:`open_under`: a file is opened one path component at a time with
  ``O_NOFOLLOW`` from the (resolved) origin root, so no symlink inside the
  root can lead out of it, and the file served is the file checked (no race
  between a check and an open). FIFOs and devices are refused.
- :class:`PlaylistLiveWindows` and :data:`LIVE_BEHIND_SEGMENTS`: the live segment
  route serves a segment only while it is in the rung's live window or at most
  that many segments behind it (a player that read the playlist just before it
  slid). The window's first sequence number is the live playlist's own
  ``EXT-X-MEDIA-SEQUENCE``: one ``fstat`` per request, a read when it changed.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

from aiohttp import web

from headend.settings import Network
from transcode.errors import ContentNotFound
from transcode.origin.http import etag_stat

# A player may ask for a segment that slid out of the window after it read the playlist.
LIVE_BEHIND_SEGMENTS = 3
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
# Live and archived segments are named by their channel-wide sequence number.
# A live or archived segment: a rung's or audio rendition's .ts, a subtitle rendition's .vtt.
_SEQUENCE_SEGMENT = re.compile(r"([0-9]{10,15})(\.ts|\.vtt)", re.ASCII)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must not hang the thread; it is refused below anyway.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_NOT_THERE = {errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EISDIR, errno.ENXIO}


def peer_allowed(request: web.BaseRequest, networks: tuple[Network, ...]) -> bool:
    """True when the TCP peer of ``request`` is inside one of ``networks``."""
    remote = (request.remote or "").partition("%")[0]  # an IPv6 zone is not part of it
    try:
        addr = ipaddress.ip_address(remote)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr.version == net.version and addr in net for net in networks)


def name(value: str) -> str:
    """A path component the origin will look up: no dot files, no traversal, <= 128 chars."""
    if not _NAME.fullmatch(value) or ".." in value:
        raise ContentNotFound(f"no such content: {value[:64]}")
    return value


def segment_sequence(segment: str) -> int:
    """The sequence number a live or archived segment's file name carries."""
    match = _SEQUENCE_SEGMENT.fullmatch(segment)
    if match is None or f"{int(match.group(1)):010d}{match.group(2)}" != segment:
        raise ContentNotFound(f"no such segment: {segment[:64]}")
    return int(match.group(1))


@dataclass(frozen=True, slots=True)
class OpenFile:
    """A regular file opened under the root: its descriptor, size and validator."""

    fd: int
    size: int
    etag: str


def open_under(root: Path, parts: Sequence[str]) -> OpenFile:
    """Open ``root/parts...`` for reading, following no symlink below ``root``."""
    shown = "/".join(parts)[-128:]
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError as err:
        raise ContentNotFound(f"no such content: {shown}") from err
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
        file_fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
    except OSError as err:
        if err.errno in _NOT_THERE:
            raise ContentNotFound(f"no such content: {shown}") from err
        raise
    finally:
        os.close(fd)
    st = os.fstat(file_fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(file_fd)
        raise ContentNotFound(f"no such content: {shown}")
    return OpenFile(file_fd, st.st_size, etag_stat(st))


class LiveHead(NamedTuple):
    """What a rung's live playlist says in its head: its first number, how many
    discontinuities slid out before it, and its (pinned) target duration."""

    media_sequence: int
    discontinuity_sequence: int
    target_duration: int


class LiveWindows(Protocol):
    """The head of a rung's live window (``PlaylistLiveWindows``)."""

    async def first_sequence(self, channel: str, rung: str) -> int | None: ...

    async def head(self, channel: str, rung: str) -> LiveHead | None: ...


_MEDIA_SEQUENCE = re.compile(rb"^#EXT-X-MEDIA-SEQUENCE:([0-9]{1,15})\r?$", re.MULTILINE)
_DISCONTINUITY_SEQUENCE = re.compile(
    rb"^#EXT-X-DISCONTINUITY-SEQUENCE:([0-9]{1,15})\r?$", re.MULTILINE
)
_TARGET_DURATION = re.compile(rb"^#EXT-X-TARGETDURATION:([0-9]{1,6})\r?$", re.MULTILINE)
# The media sequence tag sits in a playlist's head: never read more than this.
_PLAYLIST_HEAD_BYTES = 4096


class PlaylistLiveWindows:
    """Reads the head of the rung's live playlist on disk (``EXT-X-MEDIA-SEQUENCE`` and, for
    cut views, the discontinuity sequence and target duration), re-read only when the file
    changes. The playlist is what players see and the live supervisor keeps writing it
    through a Redis outage, so segments keep flowing while the store is away."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._cache: dict[tuple[str, str], tuple[str, LiveHead | None]] = {}

    def _read(self, channel: str, rung: str) -> LiveHead | None:
        try:
            opened = open_under(self._root, ("live", channel, rung, "index.m3u8"))
        except ContentNotFound:
            return None
        try:
            key = (channel, rung)
            cached = self._cache.get(key)
            if cached is not None and cached[0] == opened.etag:
                return cached[1]
            head = os.pread(opened.fd, _PLAYLIST_HEAD_BYTES, 0)
        finally:
            os.close(opened.fd)
        match = _MEDIA_SEQUENCE.search(head)
        found = None
        if match is not None:
            discontinuity = _DISCONTINUITY_SEQUENCE.search(head)
            target = _TARGET_DURATION.search(head)
            found = LiveHead(
                int(match.group(1)),
                int(discontinuity.group(1)) if discontinuity else 0,
                int(target.group(1)) if target else 0,
            )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (opened.etag, found)
        return found

    async def first_sequence(self, channel: str, rung: str) -> int | None:
        """The live window's media sequence, or None for a rung that is not live."""
        head = self._read(channel, rung)
        return None if head is None else head.media_sequence

    async def head(self, channel: str, rung: str) -> LiveHead | None:
        """The live playlist's head, or None for a rung that is not live."""
        return self._read(channel, rung)


async def check_live_segment(windows: LiveWindows, channel: str, rung: str, sequence: int) -> None:
    """Refuse (404) a live segment that is further behind the live window than the slack."""
    first = await windows.first_sequence(channel, rung)
    if first is None or sequence < first - LIVE_BEHIND_SEGMENTS:
        raise ContentNotFound(f"segment {sequence} is not in the live window of {channel}")
