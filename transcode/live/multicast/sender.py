"""The multicast socket, RTP framing, and the thread that sends the pacer's slots on time.

The sending thread owns the wall clock: datagram ``i`` (seven slots) is due at
``start + i * 7 * 188 * 8 / mux_rate`` seconds, an absolute deadline (no drift however
late one wake-up is). The datagram is built before the deadline; the thread sleeps until
``spin_seconds`` before it and spins the rest (yielding the GIL: ``clock.sleep(0)``),
so the sleep's usual wake-up latency (tens to a couple of hundred microseconds) does not
delay the send (``bench/test_multicast.py`` measures it against sleep-only pacing). A
send later than ``LATE_SECONDS`` is counted; one later than
``REBASE_SECONDS`` (the process was stopped, the host starved) moves the schedule on
instead of sending the backlog in a burst.
"""

from __future__ import annotations

import logging
import secrets
import socket
import struct
import threading
import time
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from transcode.domain import Multicast, MulticastProtocol
from transcode.live.multicast.errors import OutputUnavailable
from transcode.live.multicast.pacer import Pacer
from transcode.live.multicast.ts import TICKS_PER_PTS, TS_PACKET

log = logging.getLogger(__name__)

PACKETS_PER_DATAGRAM = 7  # 7 * 188 = 1316 bytes: fits a 1500-byte MTU with IP/UDP/RTP
RTP_HEADER = 12
RTP_PAYLOAD_MP2T = 33  # RFC 3551
LATE_SECONDS = 0.001
REBASE_SECONDS = 0.2


class Clock(Protocol):
    """Monotonic seconds and sleeping (``sleep(0)`` only yields)."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: ``time.perf_counter`` and ``time.sleep``."""

    def now(self) -> float:
        """Seconds, monotonic, sub-microsecond resolution."""
        return time.perf_counter()

    def sleep(self, seconds: float) -> None:
        """Sleep (0: give other threads the GIL)."""
        time.sleep(seconds)


class DatagramSink(Protocol):
    """Where datagrams go (a connected UDP socket)."""

    def send(self, data: bytes, /) -> int: ...


class MulticastMetrics:
    """Datagrams, packets by kind, late sends, jumps and segments of one output (in a
    process started by a node: files the node's ``/metrics`` reads, ``collect.py``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.datagrams = Counter(
            "transcode_multicast_datagrams_total",
            "Datagrams sent to the channel's multicast group.",
            ["channel"],
            registry=self.registry,
        )
        self.packets = Counter(
            "transcode_multicast_packets_total",
            "TS packets sent, by kind (content, null, psi, pcr).",
            ["channel", "kind"],
            registry=self.registry,
        )
        self.null_share = Gauge(
            "transcode_multicast_null_share",
            "Null packets' share of the packets sent since the start (0..1).",
            ["channel"],
            registry=self.registry,
            # Read by the node from the process's file (``collect.py``): a live process's
            # value only (one per channel; the highest should two overlap in a restart).
            multiprocess_mode="livemax",
        )
        self.late = Counter(
            "transcode_multicast_late_sends_total",
            "Datagrams sent more than 1 ms after their deadline.",
            ["channel"],
            registry=self.registry,
        )
        self.rebased = Counter(
            "transcode_multicast_rebased_total",
            "Times the send schedule moved on after a stall over 200 ms.",
            ["channel"],
            registry=self.registry,
        )
        self.jumps = Counter(
            "transcode_multicast_jumps_total",
            "Jumps to the newest segment after falling behind.",
            ["channel"],
            registry=self.registry,
        )
        self.segments = Counter(
            "transcode_multicast_segments_total",
            "Segments taken from the live window, by outcome (sent, refused, missing).",
            ["channel", "outcome"],
            registry=self.registry,
        )


def open_socket(multicast: Multicast) -> socket.socket:
    """A UDP socket connected to the group: TTL, the sending interface, loopback on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, multicast.ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        if multicast.interface:
            sock.setsockopt(
                socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(multicast.interface)
            )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.connect((multicast.group, multicast.port))
    except OSError as err:
        sock.close()
        raise OutputUnavailable(
            f"cannot send to {multicast.group}:{multicast.port}"
            f"{' on ' + multicast.interface if multicast.interface else ''}: {err}"
        ) from err
    return sock


def rtp_header(sequence: int, timestamp: int, ssrc: int) -> bytes:
    """RFC 3550's fixed 12-byte header: version 2, payload type 33, no marker."""
    return struct.pack(
        "!BBHII", 0x80, RTP_PAYLOAD_MP2T, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc
    )


class Sender:
    """Sends the pacer's slots, seven packets a datagram, on the wall clock."""

    def __init__(
        self,
        sink: DatagramSink,
        pacer: Pacer,
        lock: threading.Lock,
        *,
        protocol: MulticastProtocol,
        channel: str,
        metrics: MulticastMetrics,
        clock: Clock | None = None,
        spin_seconds: float = 0.0002,
        ssrc: int | None = None,
    ) -> None:
        self._sink = sink
        self._pacer = pacer
        self._lock = lock
        self._rtp = protocol is MulticastProtocol.RTP
        self._clock = clock or SystemClock()
        self._spin = spin_seconds
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        self.sequence = secrets.randbits(16)  # RFC 3550: a random first sequence number
        self.period = PACKETS_PER_DATAGRAM * TS_PACKET * 8 / pacer.mux_rate_bps
        self.sent = 0
        self.late = 0
        self._metrics = metrics
        self._channel = channel
        self._send_errors = 0
        self._counted: dict[str, int] = {}

    def datagram(self) -> bytes:
        """The next datagram: seven slots, behind an RTP header for RTP."""
        with self._lock:
            first = self._pacer.now
            payload = b"".join(self._pacer.take(PACKETS_PER_DATAGRAM))
        if not self._rtp:
            return payload
        header = rtp_header(self.sequence, first // TICKS_PER_PTS, self.ssrc)
        self.sequence = (self.sequence + 1) & 0xFFFF
        return header + payload

    def run(self, stop: threading.Event) -> None:
        """Send until ``stop`` is set (the sending thread's body)."""
        clock = self._clock
        start = clock.now()
        index = 0
        labels = self._channel
        datagrams, late = self._metrics.datagrams.labels(labels), self._metrics.late.labels(labels)
        while not stop.is_set():
            deadline = start + index * self.period
            data = self.datagram()  # built before the deadline: only the send is after it
            wait = deadline - clock.now()
            if wait > self._spin:
                clock.sleep(wait - self._spin)
            while clock.now() < deadline:
                clock.sleep(0)
            behind = clock.now() - deadline
            if behind > REBASE_SECONDS:
                start += behind  # no burst: the schedule moves on from now
                self._metrics.rebased.labels(labels).inc()
                stalled = round(behind * 1e3, 1)
                log.warning("multicast send stalled",
                            extra={"channel": labels, "stalled_ms": stalled})  # fmt: skip
            elif behind > LATE_SECONDS:
                self.late += 1
                late.inc()
            try:
                self._sink.send(data)
            except OSError as err:  # no route for a moment: count it, keep the schedule
                self._send_errors += 1
                if self._send_errors in (1, 100, 10_000):
                    log.warning("multicast send failed",
                                extra={"channel": labels, "error": str(err)})  # fmt: skip
            self.sent += 1
            datagrams.inc()
            index += 1

    def publish_counts(self) -> None:
        """Copy the pacer's counts into the metrics (called now and then, not per packet)."""
        with self._lock:
            counts = self._pacer.counts
            figures = {"content": counts.content, "null": counts.null, "psi": counts.psi,
                       "pcr": counts.pcr}  # fmt: skip
        for kind, value in figures.items():
            self._metrics.packets.labels(self._channel, kind).inc(
                value - self._counted.get(kind, 0)
            )
            self._counted[kind] = value
        total = sum(figures.values())
        self._metrics.null_share.labels(self._channel).set(figures["null"] / total if total else 0)
