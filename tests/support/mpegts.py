"""An MPEG-TS analyzer for the multicast tests: continuity errors, PCRs, PTS by PID,
written independently of ``transcode.live.multicast.ts`` (only the bit layouts agree)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tests.support.media import ffmpeg

TS = 188


@dataclass
class Analysis:
    """What a transport stream holds, packet by packet."""

    packets: int = 0
    nulls: int = 0
    cc_errors: list[tuple[int, int, int, int]] = field(default_factory=list)  # pid, idx, want, got
    pcrs: list[tuple[int, int]] = field(default_factory=list)  # packet index, 27 MHz (unwrapped)
    pts: dict[int, list[int]] = field(default_factory=dict)  # pid -> PTS in stream order
    pids: set[int] = field(default_factory=set)
    sync_errors: int = 0

    def pcr_gaps_seconds(self) -> list[float]:
        """Seconds between consecutive PCRs."""
        return [(b - a) / 27e6 for (_, a), (_, b) in zip(self.pcrs, self.pcrs[1:], strict=False)]

    def pcr_rate_bps(self) -> float:
        """The mux rate the PCRs imply: bits between the first and last over their time."""
        (i0, t0), (i1, t1) = self.pcrs[0], self.pcrs[-1]
        return (i1 - i0) * TS * 8 / ((t1 - t0) / 27e6)


def _ts(b: bytes) -> int:
    return (b[0] >> 1 & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


def analyze(data: bytes, *, pcr_pid: int = 0x100) -> Analysis:
    """Read every packet; PCRs of ``pcr_pid``; PES PTS per PID (33-bit wraps unwrapped)."""
    a = Analysis()
    last_cc: dict[int, int] = {}
    pcr_lap = 0
    previous_pcr: int | None = None
    for index in range(len(data) // TS):
        p = data[index * TS : (index + 1) * TS]
        a.packets += 1
        if p[0] != 0x47:
            a.sync_errors += 1
            continue
        pid = (p[1] & 0x1F) << 8 | p[2]
        a.pids.add(pid)
        if pid == 0x1FFF:
            a.nulls += 1
            continue
        afc = p[3] >> 4 & 3
        cc = p[3] & 0x0F
        # ISO/IEC 13818-1 2.4.3.3: +1 per packet with payload; unchanged without one.
        if pid in last_cc:
            want = (last_cc[pid] + 1) & 0x0F if afc & 1 else last_cc[pid]
            if cc != want:
                a.cc_errors.append((pid, index, want, cc))
        last_cc[pid] = cc
        start = 4
        if afc & 2:
            if pid == pcr_pid and p[4] >= 7 and p[5] & 0x10:
                base = p[6] << 25 | p[7] << 17 | p[8] << 9 | p[9] << 1 | p[10] >> 7
                pcr = base * 300 + ((p[10] & 1) << 8 | p[11])
                if previous_pcr is not None and pcr < previous_pcr - (1 << 40):
                    pcr_lap += (1 << 33) * 300
                previous_pcr = pcr
                a.pcrs.append((index, pcr + pcr_lap))
            start += 1 + p[4]
        if afc & 1 and p[1] & 0x40 and start + 14 <= TS and p[start : start + 3] == b"\0\0\1":
            if p[start + 7] & 0x80:
                a.pts.setdefault(pid, []).append(_ts(p[start + 9 : start + 14]))
    return a


def strip_rtp(datagram: bytes) -> bytes:
    """An RTP datagram's payload (fixed 12-byte header, as the sender writes)."""
    return datagram[12:]


def hls_segments(
    out: Path,
    prefix: str,
    seconds: int,
    *,
    source: str,
    rate: int,
    ts_offset: float = 0.0,
    size: str = "320x180",
    video_kbps: int = 600,
) -> list[Path]:
    """Real FFmpeg TS segments (2 s, closed 1 s GOPs, H.264 + AAC) of a lavfi ``source``,
    their timestamps starting at ``ts_offset`` seconds."""
    ffmpeg(
        *("-f", "lavfi", "-i", f"{source}=s={size}:r={rate}"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
        *("-t", str(seconds), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast"),
        *("-g", str(rate), "-keyint_min", str(rate), "-sc_threshold", "0"),
        *("-b:v", f"{video_kbps}k", "-maxrate", f"{video_kbps}k", "-bufsize", f"{video_kbps}k"),
        *("-c:a", "aac", "-b:a", "64k", "-output_ts_offset", str(ts_offset)),
        *("-f", "hls", "-hls_time", "2", "-hls_list_size", "0"),
        *("-hls_segment_filename", str(out / f"{prefix}%03d.ts"), str(out / f"{prefix}.m3u8")),
    )
    return sorted(out.glob(f"{prefix}[0-9][0-9][0-9].ts"))


class LiveWindowWriter:
    """Publishes segments one by one into ``channel_dir/rung`` as the node lays them out:
    numbered files, a sliding media playlist (EXT-X-DISCONTINUITY where told) and a master
    whose BANDWIDTH is the measured peak."""

    def __init__(self, channel_dir: Path, rung: str = "720p", *, window: int = 6) -> None:
        self.rung_dir = channel_dir / rung
        self.rung_dir.mkdir(parents=True, exist_ok=True)
        self._channel_dir = channel_dir
        self._rung = rung
        self._window = window
        self._listed: list[tuple[int, bool]] = []
        self._sequence = 0
        self._peak = 0

    def publish(self, segment: Path, *, discontinuity: bool = False) -> None:
        """Publish one 2 s segment."""
        seq = self._sequence
        self._sequence += 1
        data = segment.read_bytes()
        (self.rung_dir / f"{seq:010d}.ts").write_bytes(data)
        self._peak = max(self._peak, len(data) * 8 // 2)
        self._listed.append((seq, discontinuity))
        self._listed = self._listed[-self._window :]
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2",
                 f"#EXT-X-MEDIA-SEQUENCE:{self._listed[0][0]}"]  # fmt: skip
        for number, disc in self._listed:
            if disc:
                lines.append("#EXT-X-DISCONTINUITY")
            lines += ["#EXTINF:2.000,", f"{number:010d}.ts"]
        _atomic(self.rung_dir / "index.m3u8", "\n".join(lines) + "\n")
        master = ["#EXTM3U",
                  f"#EXT-X-STREAM-INF:BANDWIDTH={self._peak},RESOLUTION=320x180",
                  f"{self._rung}/index.m3u8"]  # fmt: skip
        _atomic(self._channel_dir / "master.m3u8", "\n".join(master) + "\n")


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def whole_pes_only(data: bytes, pid: int = 0x100) -> bytes:
    """``data`` cut before the last PES that starts on ``pid``: a capture stopped at an
    arbitrary datagram ends in a partial frame, which a decoder reports as corrupt."""
    for index in range(len(data) // TS - 1, -1, -1):
        p = data[index * TS : (index + 1) * TS]
        if (p[1] & 0x1F) << 8 | p[2] == pid and p[1] & 0x40:
            return data[: index * TS]
    return data
