"""HTTP semantics of the origin in one place: types, caching, validators, ranges, gzip.

:func:`respond` applies conditional requests (strong ETags, ``If-None-Match``
-> 304), single byte ranges on segments (206/416; multi-range or malformed
ranges get the whole body, as RFC 9110 allows) and gzip for playlists when
accepted. What the origin parses is bounded: a query string or a ``Range`` or
``If-None-Match`` header longer than its limit is refused with 400 before any
work; an overlong ``Accept-Encoding`` just means no gzip.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import re
from dataclasses import dataclass

from aiohttp import web

from transcode import tags
from transcode.errors import InvalidRequest

TYPES = {
    ".m3u8": tags.MIME_PLAYLIST,
    ".ts": tags.MIME_TS,
    # CMAF media and init segments: what MSE players (hls.js, dash.js) are given for fMP4.
    ".m4s": tags.MIME_MP4,
    ".mp4": tags.MIME_MP4,
    ".mpd": tags.MIME_MPD,
    ".aac": "audio/aac",
    ".vtt": tags.MIME_WEBVTT,
}
IMMUTABLE = "public, max-age=31536000, immutable"
VOD_PLAYLIST = "public, max-age=86400"
# ASCII digits only (``\d`` would take other scripts' digits, which ``int`` then chokes
# on); 18 digits cover any file size.
_RANGE = re.compile(r"bytes=([0-9]{0,18})-([0-9]{0,18})", re.ASCII)
# Longest value the origin reads for each header, and for the query string.
HEADER_LIMITS = {"Range": 128, "If-None-Match": 1024}
MAX_ACCEPT_ENCODING_CHARS = 512
MAX_QUERY_CHARS = 2048
_MAX_TAGS = 32


@dataclass(frozen=True, slots=True)
class Body:
    """What to send: bytes or an open file (``fd``, closed by :func:`respond`), and policy."""

    content_type: str
    cache_control: str
    etag: str
    data: bytes | None = None
    fd: int | None = None
    size: int = 0


def etag_bytes(data: bytes) -> str:
    """A strong validator of ``data``."""
    return '"' + hashlib.blake2b(data, digest_size=12).hexdigest() + '"'


def etag_stat(st: os.stat_result) -> str:
    """A strong validator of a file's identity, size and modification time."""
    raw = f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}".encode()
    return '"' + hashlib.blake2b(raw, digest_size=12).hexdigest() + '"'


def playlist(text: str, cache_control: str) -> Body:
    """A rendered playlist as a body."""
    data = text.encode()
    return Body(tags.MIME_PLAYLIST, cache_control, etag_bytes(data), data=data)


def check_bounds(request: web.Request) -> None:
    """Refuse (400) a query string or a parsed header longer than the origin reads."""
    if len(request.query_string) > MAX_QUERY_CHARS:
        raise InvalidRequest("query", f"longer than {MAX_QUERY_CHARS} characters")
    for name, limit in HEADER_LIMITS.items():
        if len(request.headers.get(name, "")) > limit:
            raise InvalidRequest(name, f"header longer than {limit} characters")


def _matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    tags_ = [t.strip().removeprefix("W/") for t in header.split(",", _MAX_TAGS)[:_MAX_TAGS]]
    return etag in tags_


def _accepts_gzip(header: str) -> bool:
    if len(header) > MAX_ACCEPT_ENCODING_CHARS:
        return False
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=") if params.strip().startswith("q=") else "1"
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


def byte_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """(start, end inclusive); None to ignore the header; False if unsatisfiable."""
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None  # multi-range or malformed: RFC 9110 lets us send the whole body
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        length = int(last)
        if length == 0:
            return False
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None
    if start >= size:
        return False
    return start, end


def _pread(fd: int, start: int, length: int) -> bytes:
    chunks = []
    while length > 0:
        chunk = os.pread(fd, min(length, 1 << 20), start)
        if not chunk:
            break
        chunks.append(chunk)
        start += len(chunk)
        length -= len(chunk)
    return b"".join(chunks)


async def _slice(body: Body, start: int, length: int) -> bytes:
    if body.data is not None:
        return body.data[start : start + length]
    assert body.fd is not None  # a Body has data or an open file
    return await asyncio.to_thread(_pread, body.fd, start, length)


async def respond(request: web.Request, body: Body) -> web.StreamResponse:
    """Send ``body`` with conditional requests, byte ranges and gzip applied."""
    try:
        return await _respond(request, body)
    finally:
        if body.fd is not None:
            os.close(body.fd)


async def _respond(request: web.Request, body: Body) -> web.StreamResponse:
    headers = {"Cache-Control": body.cache_control, "Content-Type": body.content_type}
    # A DASH manifest is text like a playlist: compressed, and never cut into ranges.
    is_playlist = body.content_type in (tags.MIME_PLAYLIST, tags.MIME_MPD)
    size = len(body.data) if body.data is not None else body.size
    gzip_ok = is_playlist and _accepts_gzip(request.headers.get("Accept-Encoding", ""))
    if is_playlist:
        headers["Vary"] = "Accept-Encoding"
    else:
        headers["Accept-Ranges"] = "bytes"
    etag = body.etag[:-1] + '-gz"' if gzip_ok else body.etag
    headers["ETag"] = etag
    inm = request.headers.get("If-None-Match")
    if inm is not None and _matches(inm, etag):
        del headers["Content-Type"]
        return web.Response(status=304, headers=headers)
    range_header = request.headers.get("Range")
    if range_header and not is_playlist:
        wanted = byte_range(range_header, size)
        if wanted is False:
            headers["Content-Range"] = f"bytes */{size}"
            del headers["Content-Type"]
            return web.Response(status=416, headers=headers)
        if isinstance(wanted, tuple):
            start, end = wanted
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            data = await _slice(body, start, end - start + 1)
            return web.Response(status=206, body=data, headers=headers)
    data = await _slice(body, 0, size)
    if gzip_ok:
        data = gzip.compress(data, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return web.Response(status=200, body=data, headers=headers)
