"""The constant-rate multiplex: one packet per slot at the mux rate, nulls between.

Slot ``k`` is at ``k * 188 * 8 / mux_rate`` seconds on the output's 27 MHz clock. Each
slot takes, in this order: a PCR-only packet when the last PCR is ``pcr_interval`` old
(so a PCR goes out at least that often whatever the content); the next packet of a
PAT/PMT repetition when ``psi_interval`` has passed; the next content packet if it is
due (its restamped time is not after the slot's); else a null packet (PID 0x1FFF). Every
PCR is rewritten to its slot's time, and continuity counters are numbered per PID here,
so they run on across segments, switches and jumps. Pure logic: the sender maps slots to
the wall clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from transcode.live.multicast.ts import (
    NULL_PACKET,
    PAT_PID,
    PCR_HZ,
    PCR_PID,
    PMT_PID,
    TS_PACKET,
    OutPacket,
    pcr_of,
    pcr_only_packet,
    pid_of,
    set_pcr,
)

PCR_INTERVAL_SECONDS = 0.030  # DVB (TR 101 290 1.x) wants one at least every 40 ms
PSI_INTERVAL_SECONDS = 0.100  # PAT and PMT at least every 100 ms: a box joining tunes fast


@dataclass
class PacerCounts:
    """Packets put in slots since the start, by kind."""

    content: int = 0
    null: int = 0
    psi: int = 0
    pcr: int = 0
    dropped: int = 0  # content packets dropped by a jump

    @property
    def total(self) -> int:
        """Every slot filled."""
        return self.content + self.null + self.psi + self.pcr


class Pacer:
    """Fills constant-rate slots from a queue of due packets (see module)."""

    def __init__(
        self,
        mux_rate_bps: int,
        *,
        pcr_interval_seconds: float = PCR_INTERVAL_SECONDS,
        psi_interval_seconds: float = PSI_INTERVAL_SECONDS,
    ) -> None:
        if mux_rate_bps <= 0:
            raise ValueError(f"mux rate must be positive, got {mux_rate_bps}")
        self.mux_rate_bps = mux_rate_bps
        self.slot_ticks = TS_PACKET * 8 * PCR_HZ / mux_rate_bps
        self.slot = 0
        self.counts = PacerCounts()
        self._queue: deque[OutPacket] = deque()
        self._cc: dict[int, int] = {}
        self._pcr_every = int(pcr_interval_seconds * PCR_HZ)
        self._psi_every = int(psi_interval_seconds * PCR_HZ)
        self._last_pcr: int | None = None
        self._last_psi: int | None = None
        self._psi: dict[int, bytes] = {}  # the latest PAT and PMT content brought
        self._repeating: deque[bytes] = deque()

    def time_of(self, slot: int) -> int:
        """Slot ``slot``'s time on the 27 MHz output clock."""
        return round(slot * self.slot_ticks)

    @property
    def now(self) -> int:
        """The next slot's time."""
        return self.time_of(self.slot)

    def feed(self, packets: Iterable[OutPacket]) -> None:
        """Queue a segment's packets (in order, due times not going back)."""
        self._queue.extend(packets)

    def backlog(self) -> int:
        """How far the last queued packet is due after the next slot (27 MHz; 0: none)."""
        return max(0, self._queue[-1].due - self.now) if self._queue else 0

    def queued(self) -> int:
        """Content packets waiting."""
        return len(self._queue)

    def drop(self) -> int:
        """Drop every queued content packet (a jump to the live edge); how many."""
        dropped = len(self._queue)
        self._queue.clear()
        self.counts.dropped += dropped
        return dropped

    def take(self, count: int) -> list[bytes]:
        """The next ``count`` slots' packets."""
        return [self._next() for _ in range(count)]

    def _next(self) -> bytes:
        t = self.time_of(self.slot)
        self.slot += 1
        head = self._queue[0] if self._queue and self._queue[0].due <= t else None
        if self._last_pcr is None or t - self._last_pcr >= self._pcr_every:
            if head is not None and pid_of(head.data) == PCR_PID and pcr_of(head.data) is not None:
                return self._content(t)
            self._last_pcr = t
            self.counts.pcr += 1
            return self._numbered(pcr_only_packet(t))
        if (
            not self._repeating
            and self._psi
            and (self._last_psi is None or t - self._last_psi >= self._psi_every)
        ):
            self._repeating.extend(self._psi[pid] for pid in sorted(self._psi))
            self._last_psi = t
        if self._repeating:
            self.counts.psi += 1
            return self._numbered(bytearray(self._repeating.popleft()))
        if head is not None:
            return self._content(t)
        self.counts.null += 1
        return NULL_PACKET

    def _content(self, t: int) -> bytes:
        packet = self._queue.popleft().data
        pid = pid_of(packet)
        if pid in (PAT_PID, PMT_PID):
            self._psi[pid] = bytes(packet)
            self._last_psi = t
        if pcr_of(packet) is not None:
            set_pcr(packet, t)
            if pid == PCR_PID:
                self._last_pcr = t
        self.counts.content += 1
        return self._numbered(packet)

    def _numbered(self, packet: bytearray) -> bytes:
        """Give a packet its PID's continuity counter: the next one if it carries a payload,
        else the current one (ISO/IEC 13818-1 2.4.3.3: not incremented without payload;
        demuxers such as FFmpeg's compare it all the same)."""
        pid = pid_of(packet)
        if packet[3] & 0x10:
            cc = (self._cc.get(pid, 15) + 1) & 0x0F
            self._cc[pid] = cc
        else:
            cc = self._cc.get(pid, 15)
        packet[3] = (packet[3] & 0xF0) | cc
        return bytes(packet)
