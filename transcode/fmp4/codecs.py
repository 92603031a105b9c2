"""RFC 6381 ``CODECS`` strings from an init segment's codec configuration boxes."""

from __future__ import annotations

from transcode.fmp4.boxes import MalformedMp4

_AAC_OTI = 0x40  # MPEG-4 audio objectTypeIndication in esds


def avc_codec(entry: bytes, avcc: bytes) -> str:
    """``avc1.PPCCLL`` (RFC 6381) from an ``avcC`` payload."""
    if len(avcc) < 4:
        raise MalformedMp4("avcC is shorter than its 4-byte header")
    return f"{entry.decode()}.{avcc[1:4].hex()}"


def hevc_codec(entry: bytes, hvcc: bytes) -> str:
    """``hvc1.P.C.TL.B`` (ISO/IEC 14496-15 annex E) from an ``hvcC`` payload."""
    if len(hvcc) < 13:
        raise MalformedMp4("hvcC is shorter than its 13-byte header")
    space = ("", "A", "B", "C")[hvcc[1] >> 6]
    tier = "H" if hvcc[1] & 0x20 else "L"
    profile = hvcc[1] & 0x1F
    # The 32 compatibility flags, bit-reversed, in hex without leading zeros.
    compat = int(f"{int.from_bytes(hvcc[2:6], 'big'):032b}"[::-1], 2)
    constraints = hvcc[6:12].rstrip(b"\x00")
    parts = [f"{entry.decode()}", f"{space}{profile}", f"{compat:X}", f"{tier}{hvcc[12]}"]
    parts += [f"{b:02X}" for b in constraints]
    return ".".join(parts)


def aac_codec_of(esds: bytes) -> str:
    """``mp4a.40.N`` (``mp4a.OO`` for non-AAC) from an ``esds`` payload (after version/flags)."""
    pos, end = _descriptor(esds, 0, 0x03)  # ES_Descriptor
    if end - pos < 3:
        raise MalformedMp4("esds: ES_Descriptor too short")
    flags = esds[pos + 2]
    pos += 3
    if flags & 0x80:  # streamDependenceFlag
        pos += 2
    if flags & 0x40:  # URL_Flag
        if pos >= end:
            raise MalformedMp4("esds: URL length past the descriptor")
        pos += 1 + esds[pos]
    if flags & 0x20:  # OCRstreamFlag
        pos += 2
    pos, config_end = _descriptor(esds, pos, 0x04)  # DecoderConfigDescriptor
    if config_end - pos < 13:
        raise MalformedMp4("esds: DecoderConfigDescriptor too short")
    oti = esds[pos]
    if oti != _AAC_OTI:
        return f"mp4a.{oti:02x}"
    pos, info_end = _descriptor(esds, pos + 13, 0x05)  # DecoderSpecificInfo
    if info_end - pos < 1:
        raise MalformedMp4("esds: empty AudioSpecificConfig")
    aot = esds[pos] >> 3
    if aot == 31:  # escape: 6 more bits
        if info_end - pos < 2:
            raise MalformedMp4("esds: AudioSpecificConfig too short for its object type")
        aot = 32 + (((esds[pos] & 0x07) << 3) | (esds[pos + 1] >> 5))
    return f"mp4a.40.{aot}"


def _descriptor(esds: bytes, pos: int, tag: int) -> tuple[int, int]:
    """The payload (start, end) of the MPEG-4 descriptor with ``tag`` at ``pos``."""
    if pos >= len(esds) or esds[pos] != tag:
        raise MalformedMp4(f"esds: descriptor {tag:#04x} missing")
    pos += 1
    size = 0
    for _ in range(4):  # expandable size: at most 4 bytes of 7 bits
        if pos >= len(esds):
            raise MalformedMp4("esds: descriptor size past the end")
        byte = esds[pos]
        pos += 1
        size = (size << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    if pos + size > len(esds):
        raise MalformedMp4(f"esds: descriptor {tag:#04x} claims {size} bytes past the end")
    return pos, pos + size
