"""A simulated set-top box: the front door journey as a box walks it.

Used by the end-to-end tests, the load benchmark and ``headend demo``::

    async with aiohttp.ClientSession() as http:
        box = SetTopBox(http, "http://127.0.0.1:8000", mac="aa:bb:cc:dd:ee:01", secret="...")
        await box.login()
        channels = await box.lineup()
        guide = await box.guide()
        stats = await box.play_live(channels[0].channel_id, seconds=20)
        vod = await box.play_catchup(channels[0].channel_id, start, stop)

The player is a minimal HLS client that behaves like real players on failure:
it polls the variant playlist through the front door every target duration
(each poll is a 302 to the lease's edge), fetches new segments relative to
the edge's playlist, and when the edge fails (refused connection, 5xx, a
403/410 from the edge) it goes back to the front door's URL, which re-routes
it to a healthy edge once the controller has marked the old one down.

Encrypted segments (``#EXT-X-KEY:METHOD=AES-128``) are decrypted and checked
to be MPEG-TS, each key fetched once from its URI (the front door) with the box
token. A refused key ends the playback (asking again would be refused again);
the stats count it and name the front door's reason.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urljoin

import aiohttp
from lxml import etree

from cdn_ctl.domain import LEASE_PARAM
from headend.contentkeys.cipher import decrypt_segment

Event = Callable[[str], None]


class BoxRefused(Exception):
    """Raised when the front door or an edge refuses a request (status, reason, Retry-After)."""

    def __init__(self, status: int, reason: str, message: str, retry_after: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


class KeyRefused(BoxRefused):
    """The front door refused a content key (counted in :attr:`PlayStats.key_refusals`)."""


@dataclass(frozen=True, slots=True)
class LineupChannel:
    """One ``#EXTINF`` entry of the lineup."""

    channel_id: str
    name: str
    number: int
    url: str
    catchup_days: int
    catchup_source: str


@dataclass(frozen=True, slots=True)
class Guide:
    """What the box read from the XMLTV guide."""

    channels: tuple[str, ...]
    programmes: tuple[tuple[str, str, str], ...]  # (channel, start, title)
    size_bytes: int


@dataclass(frozen=True, slots=True)
class SegmentKey:
    """The ``#EXT-X-KEY`` a segment is encrypted under (``METHOD=AES-128``, whole segment)."""

    uri: str
    iv: int | None  # the tag's IV=, else None: the segment's media sequence number


Segment = tuple[int, float, str, SegmentKey | None]  # (sequence, duration, uri, key)


@dataclass
class PlayStats:
    """What one playback did."""

    lease: str = ""
    polls: int = 0
    segments: int = 0
    bytes: int = 0
    media_seconds: float = 0.0
    edges: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # X-Route-Reason per edge change
    failovers: int = 0
    # Segments of the live window the box never fetched (it fell further behind than the
    # playlist reaches back): a gap a viewer sees.
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    cache: Counter[str] = field(default_factory=Counter)
    front_door_seconds: list[float] = field(default_factory=list)
    # Encrypted channels: the key URIs fetched (in order), segments decrypted to MPEG-TS,
    # and keys the front door refused (each also an error naming its reason).
    key_uris: list[str] = field(default_factory=list)
    decrypted: int = 0
    key_refusals: int = 0
    # The edge URL of the last media playlist fetched.
    playlist: str = ""
    # When (epoch seconds) and from which URL each segment was played, in order: what the
    # viewer saw, e.g. whether the picture was switched to an emergency alert.
    played: list[tuple[float, str]] = field(default_factory=list)
    # Set after every segment played (another task may wait on it and clear it).
    progress: asyncio.Event = field(default_factory=asyncio.Event)


def parse_m3u(text: str) -> list[LineupChannel]:
    """The channels of an extended M3U lineup."""
    out = []
    attrs: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        if line.startswith("#EXTINF"):
            head, _, name = line.partition(",")
            attrs = {}
            for part in head.split('" '):
                key, sep, value = part.partition('="')
                if sep:
                    attrs[key.rsplit(" ", 1)[-1]] = value.rstrip('"')
        elif line and not line.startswith("#"):
            out.append(
                LineupChannel(
                    attrs.get("tvg-id", ""),
                    name,
                    int(attrs.get("tvg-chno", "0") or 0),
                    line,
                    int(attrs.get("catchup-days", "0") or 0),
                    attrs.get("catchup-source", ""),
                )
            )
    return out


def _uris(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')
_TS_PACKET, _TS_SYNC = 188, 0x47


def _key(attributes: str) -> SegmentKey | None:
    """An ``#EXT-X-KEY`` tag's key (None: ``METHOD=NONE``, the segments after it are clear)."""
    attrs = {name: value.strip('"') for name, value in _ATTRIBUTE.findall(attributes)}
    method = attrs.get("METHOD", "")
    if method == "NONE":
        return None
    if method != "AES-128":
        raise ValueError(f"this box plays METHOD=AES-128 only, not {method!r}")
    iv = attrs.get("IV")
    return SegmentKey(attrs["URI"], int(iv, 16) if iv else None)


def _media(text: str) -> tuple[int, float, list[Segment], bool]:
    """Media sequence, target duration, (seq, duration, uri, key) segments, endlist."""
    seq, target, segments, duration, ended = 0, 6.0, [], 0.0, False
    index = 0
    key: SegmentKey | None = None
    for line in text.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            seq = index = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            target = float(line.split(":", 1)[1])
        elif line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",", 1)[0])
        elif line.startswith("#EXT-X-KEY:"):
            key = _key(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-ENDLIST"):
            ended = True
        elif line and not line.startswith("#"):
            segments.append((index, duration, line.strip(), key))
            index += 1
    return seq, target, segments, ended


def _mpeg_ts(data: bytes) -> bool:
    """Do ``data`` start as MPEG-TS (a sync byte every 188 bytes, its first 8 packets)?"""
    return len(data) >= _TS_PACKET and set(data[: 8 * _TS_PACKET : _TS_PACKET]) == {_TS_SYNC}


class SetTopBox:
    """One box: its credentials, its box token, and an HLS player."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        front_door: str,
        *,
        mac: str,
        secret: str,
        on_event: Event | None = None,
        token_in_query: bool = False,
    ) -> None:
        self.http = http
        self.front_door = front_door.rstrip("/")
        self.mac = mac
        self.secret = secret
        self.token = ""
        self.token_in_query = token_in_query
        self._event = on_event or (lambda _text: None)
        self._keys: dict[str, bytes] = {}  # content keys by URI, each fetched once

    # ---- requests

    def _auth(self) -> dict[str, str]:
        # A box that can only pass ?token= sends no header (the front door copies a
        # query token into the URLs it gives out only when that is the token it verified).
        if not self.token or self.token_in_query:
            return {}
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, path: str) -> str:
        """A front door URL (with ``?token=`` when this box cannot send headers)."""
        return self._with_token(f"{self.front_door}{path}")

    def _with_token(self, url: str) -> str:
        if self.token_in_query and self.token:
            url += ("&" if "?" in url else "?") + f"token={self.token}"
        return url

    @staticmethod
    async def _refused(resp: aiohttp.ClientResponse) -> BoxRefused:
        reason, message = "", resp.reason or ""
        try:
            body = await resp.json(content_type=None)
            reason, message = body.get("reason", ""), body.get("message", message)
        except (ValueError, aiohttp.ContentTypeError):
            pass
        return BoxRefused(resp.status, reason, message, resp.headers.get("Retry-After", ""))

    async def login(self) -> dict[str, str]:
        """``POST /api/login``; keeps the token."""
        async with self.http.post(
            f"{self.front_door}/api/login", json={"mac": self.mac, "secret": self.secret}
        ) as resp:
            if resp.status != 200:
                raise await self._refused(resp)
            body: dict[str, str] = await resp.json()
        self.token = body["token"]
        self._event(f"login ok: token until {body['expires_at']}")
        return body

    async def _get_text(self, path: str) -> str:
        async with self.http.get(self.url(path), headers=self._auth()) as resp:
            if resp.status != 200:
                raise await self._refused(resp)
            return await resp.text()

    async def lineup(self) -> list[LineupChannel]:
        """``GET /lineup.m3u``, parsed."""
        channels = parse_m3u(await self._get_text("/lineup.m3u"))
        self._event(f"lineup: {', '.join(c.channel_id for c in channels)}")
        return channels

    async def guide(self) -> Guide:
        """``GET /guide.xml.gz``, decompressed and read."""
        async with self.http.get(self.url("/guide.xml.gz"), headers=self._auth()) as resp:
            if resp.status != 200:
                raise await self._refused(resp)
            data = await resp.read()
        root = etree.fromstring(gzip.decompress(data))
        channels = tuple(str(c.get("id")) for c in root.iter("channel"))
        programmes = tuple(
            (str(p.get("channel")), str(p.get("start")), p.findtext("title") or "")
            for p in root.iter("programme")
        )
        self._event(f"guide: {len(channels)} channels, {len(programmes)} programmes")
        return Guide(channels, programmes, len(data))

    # ---- live playback

    async def open_master(self, channel: str, *, lease: str = "") -> tuple[str, str, str]:
        """``GET /live/{ch}/master.m3u8`` -> (lease, the master's URL, its text)."""
        path = f"/live/{channel}/master.m3u8" + (f"?{LEASE_PARAM}={lease}" if lease else "")
        async with self.http.get(self.url(path), headers=self._auth()) as resp:
            if resp.status != 200:
                raise await self._refused(resp)
            return resp.headers.get("X-Lease-Id", ""), str(resp.url), await resp.text()

    async def open_live(self, channel: str, *, lease: str = "") -> tuple[str, str]:
        """``GET /live/{ch}/master.m3u8`` -> (lease, absolute URL of the lowest variant)."""
        lease, base, text = await self.open_master(channel, lease=lease)
        return lease, urljoin(base, _uris(text)[0])

    async def _variant(self, url: str, stats: PlayStats) -> tuple[str, str]:
        """The front door's 302 for a variant poll, then the edge's playlist."""
        start = time.perf_counter()
        async with self.http.get(url, headers=self._auth(), allow_redirects=False) as resp:
            stats.front_door_seconds.append(time.perf_counter() - start)
            if resp.status != 302:
                raise await self._refused(resp)
            location = resp.headers["Location"]
            edge = resp.headers.get("X-Route-Edge", "")
            reason = resp.headers.get("X-Route-Reason", "")
        if not stats.edges or stats.edges[-1] != edge:
            stats.edges.append(edge)
            stats.reasons.append(reason)
            self._event(f"front door sent us to {edge}: {reason}")
        async with self.http.get(location) as resp:
            stats.cache[resp.headers.get("X-Cache", "-")] += 1
            if resp.status != 200:
                raise await self._refused(resp)
            stats.playlist = location
            return location, await resp.text()

    async def play_live(
        self,
        channel: str,
        *,
        seconds: float,
        retry_seconds: float = 0.25,
        stop: asyncio.Event | None = None,
        fetch_segments: bool = True,
        stats: PlayStats | None = None,
    ) -> PlayStats:
        """Play ``channel`` for ``seconds`` of wall time, failing over through the front door
        (``stats``, if given, is filled in as playback goes: watch it from another task)."""
        stats = stats if stats is not None else PlayStats()
        stats.lease, variant = await self.open_live(channel)
        self._event(f"play {channel}: lease {stats.lease}")
        deadline = time.monotonic() + seconds
        next_seq = -1
        while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            try:
                stats.polls += 1
                location, text = await self._variant(variant, stats)
                _seq, target, segments, _ = _media(text)
                if next_seq < 0 and segments:
                    next_seq = segments[max(0, len(segments) - 2)][0]
                for index, duration, uri, key in segments:
                    if index < next_seq:
                        continue
                    stats.skipped += index - next_seq
                    if fetch_segments:
                        await self._segment(location, uri, index, key, stats)
                    stats.played.append((time.time(), urljoin(location, uri)))
                    stats.segments += 1
                    stats.media_seconds += duration
                    stats.progress.set()
                    next_seq = index + 1
                await asyncio.sleep(min(target, max(0.0, deadline - time.monotonic())))
            except KeyRefused:
                break  # counted and explained in the stats
            except BoxRefused as err:
                if err.status in (401, 403, 404, 429) and err.reason:
                    raise  # a front door verdict: retrying will not help
                await self._failover(stats, str(err), retry_seconds)
            except (aiohttp.ClientError, TimeoutError) as err:
                await self._failover(stats, f"{type(err).__name__}: {err}", retry_seconds)
        return stats

    async def _failover(self, stats: PlayStats, why: str, retry_seconds: float) -> None:
        stats.errors.append(why)
        stats.failovers += 1
        self._event(f"edge failed ({why}); asking the front door again")
        await asyncio.sleep(retry_seconds)

    async def _segment(
        self, base: str, uri: str, sequence: int, key: SegmentKey | None, stats: PlayStats
    ) -> None:
        """Fetch one segment (relative to its playlist ``base``), decrypted when ``key``."""
        url = urljoin(base, uri)
        content_key = await self._content_key(urljoin(base, key.uri), stats) if key else None
        async with self.http.get(url) as resp:
            stats.cache[resp.headers.get("X-Cache", "-")] += 1
            if resp.status != 200:
                raise await self._refused(resp)
            data = await resp.read()
        stats.bytes += len(data)
        if key is None or content_key is None:
            return
        try:
            clear = decrypt_segment(data, content_key, sequence if key.iv is None else key.iv)
        except ValueError as err:
            stats.errors.append(f"segment {sequence} does not decrypt: {err}")
            return
        if not _mpeg_ts(clear):
            stats.errors.append(f"segment {sequence} is not MPEG-TS once decrypted")
            return
        stats.decrypted += 1

    async def _content_key(self, uri: str, stats: PlayStats) -> bytes:
        """The key at ``uri`` (the front door), fetched once with the box token (a wrong
        length fails decryption); :class:`KeyRefused`, counted and explained, if refused."""
        key = self._keys.get(uri)
        if key is not None:
            return key
        async with self.http.get(self._with_token(uri), headers=self._auth()) as resp:
            if resp.status != 200:
                refused = await self._refused(resp)
                stats.key_refusals += 1
                stats.errors.append(f"key refused: {refused}")
                self._event(f"key {uri} refused: {refused}")
                raise KeyRefused(refused.status, refused.reason, refused.message)
            key = await resp.read()
        self._keys[uri] = key
        stats.key_uris.append(uri)
        return key

    async def stop(self, lease: str) -> None:
        """``POST /api/stop``: give the stream slot back."""
        async with self.http.post(
            self.url(f"/api/stop?{LEASE_PARAM}={lease}"), headers=self._auth()
        ) as resp:
            if resp.status != 204:
                raise await self._refused(resp)

    # ---- catch-up

    async def open_catchup(self, channel: str, start: datetime, stop: datetime) -> str:
        """``GET /catchup/{ch}/master.m3u8?utc=&utcend=`` -> the edge's signed master URL."""
        query = f"utc={int(start.timestamp())}&utcend={int(stop.timestamp())}"
        return await self._granted(f"/catchup/{channel}/master.m3u8?{query}")

    async def _granted(self, path: str) -> str:
        """The edge's signed master URL the front door's 302 for ``path`` names."""
        async with self.http.get(
            self.url(path), headers=self._auth(), allow_redirects=False
        ) as resp:
            if resp.status != 302:
                raise await self._refused(resp)
            return resp.headers["Location"]

    async def play_catchup(self, channel: str, start: datetime, stop: datetime) -> PlayStats:
        """Fetch a catch-up window's master, lowest variant and every segment."""
        master_url = await self.open_catchup(channel, start, stop)
        stats = await self.play_media(
            await self._first_variant(master_url), ended="catch-up playlist has no ENDLIST"
        )
        self._event(f"catch-up {channel}: {stats.segments} segments, {stats.media_seconds:.0f} s")
        return stats

    async def play_startover(self, channel: str) -> PlayStats:
        """``GET /startover/{ch}/master.m3u8``: the programme on air from its start, every
        segment archived so far (the playlist grows until the programme ends)."""
        master_url = await self._granted(f"/startover/{channel}/master.m3u8")
        stats = await self.play_media(await self._first_variant(master_url))
        self._event(f"start-over {channel}: {stats.segments} segments from the programme's "
                    f"start, {stats.media_seconds:.0f} s so far")  # fmt: skip
        return stats

    async def _first_variant(self, master_url: str) -> str:
        async with self.http.get(master_url) as resp:
            if resp.status != 200:
                raise await self._refused(resp)
            return urljoin(master_url, _uris(await resp.text())[0])

    async def play_media(self, url: str, *, ended: str = "") -> PlayStats:
        """Fetch the media playlist at ``url`` once and every segment in it (``ended``: the
        error noted if it lacks ENDLIST). A URL handed on by another box plays, but its keys
        are refused: this box holds no lease."""
        stats = PlayStats()
        async with self.http.get(url) as resp:
            if resp.status != 200:
                raise await self._refused(resp)
            text = await resp.text()
        stats.playlist = url
        _, _, segments, finished = _media(text)
        if ended and not finished:
            stats.errors.append(ended)
        for index, duration, uri, key in segments:
            try:
                await self._segment(url, uri, index, key, stats)
            except KeyRefused:
                break  # counted and explained in the stats
            stats.segments += 1
            stats.media_seconds += duration
        return stats
