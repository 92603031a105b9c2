"""A small fragmented-MP4 (CMAF) writer: one track's init segment and its media segments.

Pure: bytes in, bytes out. It writes only what a CMAF track needs (ISO/IEC 14496-12 and
23000-19): an init segment ``ftyp`` + ``moov`` (``mvhd``, one ``trak`` with empty sample
tables, ``mvex``/``trex``) and media segments ``styp`` + one ``moof``/``mdat`` pair per
fragment (``mfhd``, ``traf`` with ``tfhd`` default-base-is-moof, ``tfdt`` version 1 and a
version 1 ``trun`` carrying every sample's duration, size, flags and signed composition
offset). Live CMAF writes it from each published MPEG-TS segment (``transcode.live.remux``)
because FFmpeg's mp4 muxer, run per segment, restarts ``tfdt`` at 0 and, fed ADTS with
``empty_moov``, leaves the AudioSpecificConfig out of ``esds``. Everything written is read
back by :mod:`transcode.fmp4` in the tests.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

VIDEO_TIMESCALE = 90_000
_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
_LANGUAGE_UND = 0x55C4  # "und", ISO 639-2/T packed in 5-bit letters
_TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
# trun: data-offset, sample duration, size, flags and composition offset present.
_TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800
_SYNC_FLAGS = 0x02000000  # sample_depends_on = 2: depends on no other sample
_NON_SYNC_FLAGS = 0x01010000  # sample_depends_on = 1, sample_is_non_sync_sample
_AAC_OTI = 0x40
_AUDIO_STREAM_TYPE = 0x05 << 2 | 1


@dataclass(frozen=True, slots=True)
class AvcConfig:
    """An H.264 track's parameter sets and picture size (what its ``avc1`` entry says)."""

    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class AacConfig:
    """An AAC track's AudioSpecificConfig, sample rate and channel count."""

    audio_specific_config: bytes
    sample_rate: int
    channels: int


@dataclass(frozen=True, slots=True)
class OutSample:
    """One sample to write: its bytes (length-prefixed NAL units, or a raw AAC frame)."""

    data: bytes
    duration: int  # timescale ticks
    sync: bool
    composition_offset: int = 0  # ticks, may be negative (trun version 1)


@dataclass(frozen=True, slots=True)
class OutFragment:
    """One ``moof``/``mdat`` pair: samples from decode time ``start`` (timescale ticks)."""

    start: int
    samples: tuple[OutSample, ...]


def box(kind: bytes, *parts: bytes) -> bytes:
    """A box of ``kind`` holding ``parts``."""
    payload = b"".join(parts)
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full_box(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    """A full box (version and 24-bit flags first)."""
    return box(kind, struct.pack(">I", version << 24 | flags), *parts)


def init_segment(track_id: int, config: AvcConfig | AacConfig) -> bytes:
    """The init segment of one track (video at 90 kHz, audio at its sample rate)."""
    video = isinstance(config, AvcConfig)
    timescale = config.sample_rate if isinstance(config, AacConfig) else VIDEO_TIMESCALE
    ftyp = box(b"ftyp", b"cmfc", struct.pack(">I", 0), b"cmfc", b"iso6", b"mp41")
    mvhd = full_box(
        b"mvhd", 0, 0,
        struct.pack(">IIII", 0, 0, 1000, 0),
        struct.pack(">IH", 0x10000, 0x0100), b"\0" * 10, _MATRIX, b"\0" * 24,
        struct.pack(">I", track_id + 1),
    )  # fmt: skip
    width, height = (config.width, config.height) if isinstance(config, AvcConfig) else (0, 0)
    tkhd = full_box(
        b"tkhd", 0, 0x000003,
        struct.pack(">IIIII", 0, 0, track_id, 0, 0), b"\0" * 8,
        struct.pack(">hhhH", 0, 0, 0 if video else 0x0100, 0), _MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )  # fmt: skip
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, 0, _LANGUAGE_UND, 0))
    handler, name = (b"vide", b"VideoHandler\0") if video else (b"soun", b"SoundHandler\0")
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I", 0), handler, b"\0" * 12, name)
    media_header = (
        full_box(b"vmhd", 0, 1, b"\0" * 8) if video else full_box(b"smhd", 0, 0, b"\0" * 4)
    )
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    entry = _avc1(config) if isinstance(config, AvcConfig) else _mp4a(config)
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), entry),
        full_box(b"stts", 0, 0, struct.pack(">I", 0)),
        full_box(b"stsc", 0, 0, struct.pack(">I", 0)),
        full_box(b"stsz", 0, 0, struct.pack(">II", 0, 0)),
        full_box(b"stco", 0, 0, struct.pack(">I", 0)),
    )
    trak = box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, box(b"minf", media_header, dinf, stbl)))
    trex = full_box(b"trex", 0, 0, struct.pack(">IIIII", track_id, 1, 0, 0, 0))
    return ftyp + box(b"moov", mvhd, trak, box(b"mvex", trex))


def media_segment(track_id: int, sequence: int, fragments: Sequence[OutFragment]) -> bytes:
    """A media segment: ``styp``, then one ``moof`` (numbered from ``sequence``) + ``mdat``
    per fragment."""
    out = [box(b"styp", b"msdh", struct.pack(">I", 0), b"msdh", b"msix", b"cmfs")]
    for number, fragment in enumerate(fragments, sequence):
        out.append(_fragment(track_id, number, fragment))
    return b"".join(out)


def _fragment(track_id: int, number: int, fragment: OutFragment) -> bytes:
    samples = fragment.samples
    rows = b"".join(
        struct.pack(
            ">IIIi",
            s.duration,
            len(s.data),
            _SYNC_FLAGS if s.sync else _NON_SYNC_FLAGS,
            s.composition_offset,
        )
        for s in samples
    )

    def moof(data_offset: int) -> bytes:
        trun = full_box(
            b"trun", 1, _TRUN_FLAGS, struct.pack(">Ii", len(samples), data_offset), rows
        )
        traf = box(
            b"traf",
            full_box(b"tfhd", 0, _TFHD_DEFAULT_BASE_IS_MOOF, struct.pack(">I", track_id)),
            full_box(b"tfdt", 1, 0, struct.pack(">Q", fragment.start)),
            trun,
        )
        return box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", number)), traf)

    # The data offset counts from the moof's start to the first sample, past mdat's header.
    size = len(moof(0))
    return moof(size + 8) + box(b"mdat", *(s.data for s in samples))


def _avc1(config: AvcConfig) -> bytes:
    if not config.sps or not config.pps:
        raise ValueError("an avc1 entry needs a sequence and a picture parameter set")
    sps = config.sps[0]
    avcc = bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE0 | len(config.sps)])
    avcc += b"".join(struct.pack(">H", len(p)) + p for p in config.sps)
    avcc += bytes([len(config.pps)]) + b"".join(struct.pack(">H", len(p)) + p for p in config.pps)
    return box(
        b"avc1",
        b"\0" * 6, struct.pack(">H", 1), b"\0" * 16,
        struct.pack(">HHIII", config.width, config.height, 0x480000, 0x480000, 0),
        struct.pack(">H", 1), b"\0" * 32, struct.pack(">Hh", 0x18, -1),
        box(b"avcC", avcc),
    )  # fmt: skip


def _mp4a(config: AacConfig) -> bytes:
    asc = config.audio_specific_config
    decoder_specific = _descriptor(0x05, asc)
    decoder_config = _descriptor(
        0x04, bytes([_AAC_OTI, _AUDIO_STREAM_TYPE]) + b"\0" * 11 + decoder_specific
    )
    es = _descriptor(0x03, struct.pack(">HB", 0, 0) + decoder_config + _descriptor(0x06, b"\x02"))
    return box(
        b"mp4a",
        b"\0" * 6, struct.pack(">H", 1), b"\0" * 8,
        struct.pack(">HHHHI", config.channels, 16, 0, 0, config.sample_rate << 16),
        full_box(b"esds", 0, 0, es),
    )  # fmt: skip


def _descriptor(tag: int, body: bytes) -> bytes:
    """An MPEG-4 descriptor with a 4-byte length (the form every reader accepts)."""
    n = len(body)
    size = bytes(
        [0x80 | (n >> 21 & 0x7F), 0x80 | (n >> 14 & 0x7F), 0x80 | (n >> 7 & 0x7F), n & 0x7F]
    )
    return bytes([tag]) + size + body
