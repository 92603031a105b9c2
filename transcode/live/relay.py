"""The splice relay: a channel's udp/rtp source read by the node, passed on to FFmpeg.

For a channel named in ``TC_SCTE35_CHANNELS`` the node binds the source's address itself
(joining its multicast group, on ``localaddr`` when given; ``sources``/``block`` filter the
senders here) and forwards every datagram, unchanged, to a loopback port the epoch's
FFmpeg reads instead: the video path gains one copy in this process and nothing else, and
FFmpeg's own options (timeouts, FIFO) stay on its URL. Each datagram then goes to the
epoch's :class:`~transcode.live.scte35.SpliceTap`; nothing it does can stop the forwarding
(a datagram the tap fails on is counted ``malformed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from transcode.live.metrics import LiveMetrics
from transcode.live.scte35 import SpliceTap
from transcode.sources import SourceInput

log = logging.getLogger(__name__)

SCHEMES = ("udp", "rtp")
# Options that name the sender or the interface: the relay applies them, FFmpeg (reading
# loopback) must not.
_RELAY_ONLY = frozenset({"localaddr", "sources", "block", "reuse", "reuse_socket"})
_RECEIVE_BUFFER = 4 * 1024 * 1024


class SpliceRelay(asyncio.DatagramProtocol):
    """Binds a udp/rtp source's address, forwards every datagram to a loopback port
    unchanged and feeds the tap; ``input`` is what FFmpeg reads instead of the source."""

    def __init__(
        self, source: SourceInput, *, channel: str, metrics: LiveMetrics | None = None
    ) -> None:
        self.tap = SpliceTap(channel=channel, rtp=source.scheme == "rtp", metrics=metrics)
        parts = urlsplit(source.url)
        query = dict(parse_qsl(parts.query))
        self._sources = frozenset(filter(None, query.get("sources", "").split(",")))
        self._blocked = frozenset(filter(None, query.get("block", "").split(",")))
        self._source = parts
        self._query = query
        self._out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._out.setblocking(False)
        self._out.bind(("127.0.0.1", 0))
        self.port = _free_loopback_port()
        kept = urlencode({k: v for k, v in query.items() if k not in _RELAY_ONLY})
        loopback = urlunsplit((source.scheme, f"127.0.0.1:{self.port}", "", kept, ""))
        self.input = SourceInput(source.scheme, loopback, source.options)
        self._transport: asyncio.DatagramTransport | None = None
        self.forwarded = 0

    async def start(self) -> SpliceRelay:
        """Bind the source's address (joining its group if multicast) and start relaying."""
        sock = _bound(self._source.hostname or "", self._source.port or 0,
                      self._query.get("localaddr", ""))  # fmt: skip
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
        except BaseException:
            sock.close()
            raise
        self._transport = transport
        return self

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        """Forward, then read (a failure to read never holds the video back)."""
        sender = str(addr[0])
        if (self._sources and sender not in self._sources) or sender in self._blocked:
            return
        with contextlib.suppress(OSError):  # a full loopback buffer drops, as UDP does
            self._out.sendto(data, ("127.0.0.1", self.port))
            self.forwarded += 1
        try:
            self.tap.feed(data)
        except Exception:  # a raise here would close the transport: the video with it
            if not self.tap.sections["malformed"]:
                log.exception("scte-35 tap skipped a datagram", extra={"channel": self.tap.channel})
            self.tap.count("malformed")

    def close(self) -> None:
        """Stop relaying (idempotent); the tap counts what it still held."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._out.close()
        self.tap.close()
        if self.tap.sections:
            sections = dict(self.tap.sections)
            log.info("scte-35 relay closed",
                     extra={"channel": self.tap.channel, "sections": sections})  # fmt: skip


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _bound(host: str, port: int, interface: str) -> socket.socket:
    """A UDP socket bound as FFmpeg binds a udp input: the port (on ``interface`` when
    given, else every address), or a multicast group joined (on ``interface``)."""
    address = ipaddress.ip_address(host) if host else None
    family = socket.AF_INET6 if address is not None and address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
        if address is not None and address.is_multicast:
            sock.bind((host, port))
            if family == socket.AF_INET:
                local = socket.inet_aton(interface or "0.0.0.0")
                membership = socket.inet_aton(host) + local
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            else:
                membership = socket.inet_pton(family, host) + struct.pack("@I", 0)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, membership)
        else:
            sock.bind((interface or ("::" if family == socket.AF_INET6 else ""), port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def wanted(channels: frozenset[str], channel_id: str, scheme: str) -> bool:
    """True when ``channel_id`` reads its ``scheme`` source through a relay
    (``channels``: ``TC_SCTE35_CHANNELS``, ``"*"`` for every channel)."""
    return scheme in SCHEMES and ("*" in channels or channel_id in channels)
