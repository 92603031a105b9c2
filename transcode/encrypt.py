"""Encrypting a packaged VOD ladder in its staging directory: AES-128, keys rotating with media.

Runs after FFmpeg wrote every rung and :mod:`transcode.measure` measured it, before the
staging tree is published, so a failed or cancelled job never leaves a clear copy at the
destination (the whole staging tree is discarded). Segment ``i`` of every rung starts at
the same media time (the ladder cuts every rung at the same keyframes), so its key is the
same in every rung: the key of period ``floor(start / rotation_seconds)``, the start
counted from the beginning of the asset. Its IV is ``i``, its media sequence number.

I-frame playlists cannot keep their byte ranges: a range inside a segment encrypted
whole in CBC mode cannot be decrypted on its own. An encrypted asset therefore gets one
small file per I-frame (``iframe_<n>.ts``): the segment's PAT and PMT (so a player needs
nothing else to find the video) followed by the clear bytes of the I-frame's range, read
before the segment is encrypted, and encrypted as entry ``n`` of the I-frame playlist
with the key of the segment it came from.

Keys: the asset's scope is emptied (``delete_scope``) right before its new keys are made,
once FFmpeg's work is done and checked, so an asset only ever holds the keys of the output
being published; the earlier output's keys stop being served for the seconds the
encryption and the swap take.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from headend.contentkeys import ContentKey, key_uri, scope_for_asset
from headend.contentkeys.cipher import encrypt_segment
from transcode.hls import Segment, SegmentKey
from transcode.measure import TS_PACKET, VIDEO_PID, RungMeasurement, bits_per_second

# Media start times are sums of durations rounded to the microsecond; a segment starting
# within a millisecond of a period boundary belongs to the period it rounds into.
_START_DIGITS = 3
_PAT_PID = 0x0000


class AssetKeys(Protocol):
    """Content keys of assets (``headend.contentkeys.ContentKeyStore``)."""

    async def key_for(self, scope: str, period: int, *, rotation_seconds: int) -> ContentKey: ...
    async def delete_scope(self, scope: str, *, principal: str = ...) -> int: ...


@dataclass(frozen=True, slots=True)
class AssetEncryption:
    """How one asset is encrypted: its keys' scope and store, rotation and key URI base."""

    asset: str
    rotation_seconds: int
    keys: AssetKeys
    key_base_url: str  # CONTENT_KEY_BASE_URL: the front door as boxes reach it
    principal: str  # who replaces the asset's keys (audited), e.g. "job/<id>"


def iframe_name(number: int) -> str:
    """The file of I-frame ``number`` of an encrypted rung."""
    return f"iframe_{number:05d}.ts"


def segment_periods(rungs: Sequence[Sequence[Segment]], rotation_seconds: int) -> list[int]:
    """The key period of each segment index: from the longest rung's media start times."""
    longest = max(rungs, key=len, default=())
    periods = []
    start = 0.0
    for segment in longest:
        periods.append(math.floor(round(start, _START_DIGITS) / rotation_seconds))
        start += segment.duration
    return periods


async def encrypt_ladder(
    temp: Path, rungs: Sequence[tuple[str, RungMeasurement]], encryption: AssetEncryption
) -> list[RungMeasurement]:
    """Encrypt every rung under ``temp`` in place; their measurements as the playlists need
    them (keys set, I-frames as files, bitrates of the encrypted bytes)."""
    periods = segment_periods([m.segments for _, m in rungs], encryption.rotation_seconds)
    scope = scope_for_asset(encryption.asset)
    await encryption.keys.delete_scope(scope, principal=encryption.principal)
    keys: dict[int, ContentKey] = {}
    for period in sorted(set(periods)):
        keys[period] = await encryption.keys.key_for(
            scope, period, rotation_seconds=encryption.rotation_seconds
        )
    by_index = [keys[p] for p in periods]
    return list(
        await asyncio.gather(
            *(
                asyncio.to_thread(_encrypt_rung, temp / name, measured, by_index, encryption)
                for name, measured in rungs
            )
        )
    )


def _encrypt_rung(
    folder: Path,
    measured: RungMeasurement,
    keys: Sequence[ContentKey],
    encryption: AssetEncryption,
) -> RungMeasurement:
    scope = scope_for_asset(encryption.asset)
    uris = [key_uri(encryption.key_base_url, scope, k.key_id) for k in keys]
    # (duration, length, offset) of each segment's I-frames, by segment file.
    iframes_of: dict[str, list[tuple[float, int, int]]] = {}
    for iframe in measured.iframes:
        if iframe.byterange is not None:  # measure gives every I-frame its range
            iframes_of.setdefault(iframe.uri, []).append((iframe.duration, *iframe.byterange))
    segments: list[Segment] = []
    sizes: list[int] = []
    iframes: list[Segment] = []
    iframe_sizes: list[int] = []
    for index, segment in enumerate(measured.segments):
        key = keys[index]
        path = folder / segment.uri
        clear = path.read_bytes()
        header = _psi_packets(clear)
        for duration, length, offset in iframes_of.get(segment.uri, ()):
            number = len(iframes)
            data = encrypt_segment(header + clear[offset : offset + length], key.key, number)
            (folder / iframe_name(number)).write_bytes(data)
            iframe_sizes.append(len(data))
            iframes.append(
                Segment(iframe_name(number), duration, key=SegmentKey(uris[index], number))
            )
        data = encrypt_segment(clear, key.key, index)
        path.write_bytes(data)
        sizes.append(len(data))
        segments.append(replace(segment, key=SegmentKey(uris[index], index)))
    peak, average = bits_per_second(sizes, [s.duration for s in segments])
    iframe_peak, iframe_average = bits_per_second(iframe_sizes, [f.duration for f in iframes])
    return replace(
        measured,
        segments=tuple(segments),
        iframes=tuple(iframes),
        peak_bps=peak,
        average_bps=average,
        iframe_peak_bps=iframe_peak,
        iframe_average_bps=iframe_average,
    )


def _psi_packets(segment: bytes) -> bytes:
    """The segment's PAT and PMT packets ahead of its first video packet (FFmpeg's muxer
    writes them first in every segment)."""
    out = []
    pmt_pids: set[int] = set()
    for offset in range(0, len(segment) - TS_PACKET + 1, TS_PACKET):
        packet = segment[offset : offset + TS_PACKET]
        pid = (packet[1] & 0x1F) << 8 | packet[2]
        if pid == VIDEO_PID:
            break
        if pid == _PAT_PID:
            pmt_pids |= _pmt_pids(packet)
            out.append(packet)
        elif pid in pmt_pids:
            out.append(packet)
    return b"".join(out)


def _pmt_pids(packet: bytes) -> set[int]:
    """The PMT PIDs a PAT packet lists (its section starts in this packet)."""
    start = 4
    if packet[3] & 0x20:  # an adaptation field comes first
        start += 1 + packet[4]
    section = start + 1 + packet[start]  # skip the pointer field
    length = (packet[section + 1] & 0x0F) << 8 | packet[section + 2]
    # After the 8 header bytes, 4 bytes per programme, then the 4-byte CRC.
    first, end = section + 8, min(section + 3 + length - 4, TS_PACKET)
    pids = set()
    for entry in range(first, end - 3, 4):
        programme = packet[entry] << 8 | packet[entry + 1]
        if programme:  # programme 0 names the network PID, not a PMT
            pids.add((packet[entry + 2] & 0x1F) << 8 | packet[entry + 3])
    return pids
