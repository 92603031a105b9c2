"""SCTE-35 splice_info_sections built (ANSI/SCTE 35 2022, section 9): the signals the farm
puts into a live channel's playlists for a scheduled cue (``transcode.cueq``).

Only what a cue signals is built, always the same way: table_id 0xFC, sap_type 3 (not
specified), protocol_version 0, not encrypted, pts_adjustment 0, tier 0xFFF (any), and the
command's length given. A splice_insert is in programme mode and immediate (the node puts
it on a segment boundary: the signal's time is the boundary, not a PTS); a time_signal
carries no time for the same reason and one segmentation descriptor. The CRC_32 is
``splice.crc32``, the decoder's own, and ``splice.decode`` reads back every field written
here (the tests also compare with threefive, the reference the decoder replaced).

Arguments a field cannot hold raise ``ValueError``: nothing is clipped or wrapped.
"""

from __future__ import annotations

import math

from transcode.live.splice import SUB_SEGMENT_TYPES, crc32
from transcode.measure import PTS_HZ

_TABLE_ID = 0xFC
_SAP_UNSPECIFIED = 3
_TIER_ANY = 0xFFF
_SPLICE_INSERT = 0x05
_TIME_SIGNAL = 0x06
_SEGMENTATION_TAG = 0x02
_CUEI = b"CUEI"
_UPID_MPU = 0x0C
_UPID_NONE = 0x00
_MAX_BREAK_TICKS = (1 << 33) - 1
_MAX_SEGMENT_TICKS = (1 << 40) - 1
# An MPU upid starts with its owner's format_identifier: ours, read downstream as opaque.
MPU_FORMAT_IDENTIFIER = b"HEND"
# A descriptor's length is one byte: its other bytes ('CUEI' to sub_segments_expected, 22
# with a duration and the sub-segment pair) and the format_identifier leave this.
MAX_UPID_BYTES = 255 - 22 - len(MPU_FORMAT_IDENTIFIER)


def _event(event_id: int) -> bytes:
    if not 0 <= event_id <= 0xFFFFFFFF:
        raise ValueError(f"event id {event_id} is not 32 bits")
    return event_id.to_bytes(4, "big")


def _ticks(seconds: float, most: int, what: str) -> int:
    if not 0 <= seconds < math.inf:  # also refuses NaN
        raise ValueError(f"{what} {seconds} is not a duration")
    ticks = round(seconds * PTS_HZ)
    if ticks > most:
        raise ValueError(f"{what} {seconds} s does not fit its field")
    return ticks


def _section(command_type: int, command: bytes, descriptors: bytes = b"") -> bytes:
    """The whole section around one command and its descriptor loop, CRC_32 made."""
    body = (
        bytes([0, 0])  # protocol_version; encrypted_packet 0, algorithm 0, pts_adjustment's top bit
        + bytes(4)  # the rest of pts_adjustment
        + bytes([0])  # cw_index
        + (_TIER_ANY << 12 | len(command)).to_bytes(3, "big")
        + bytes([command_type])
        + command
        + len(descriptors).to_bytes(2, "big")
        + descriptors
    )
    length = len(body) + 4
    head = bytes([_TABLE_ID, (_SAP_UNSPECIFIED << 4) | (length >> 8), length & 0xFF])
    section = head + body
    return section + crc32(section).to_bytes(4, "big")


def splice_insert(
    event_id: int, *, out: bool, duration: float | None = None, immediate: bool = True
) -> bytes:
    """A programme-mode splice_insert: out of the network (with a break_duration and
    auto_return when ``duration`` is given) or back into it; splice_immediate, as the node
    places it on a segment boundary (``immediate`` False is refused: no time is known)."""
    if not immediate:
        raise ValueError("a splice_insert is built immediate: the node places it at a boundary")
    # programme splice, immediate; event_id_compliance_flag and the reserved bits 1 (no
    # claim that event ids follow section 9.3.3.1: they are derived, never coordinated)
    flags = 0x40 | 0x10 | 0x08 | 0x07 | (0x80 if out else 0)
    tail = b""
    if duration is not None:
        flags |= 0x20
        ticks = _ticks(duration, _MAX_BREAK_TICKS, "break duration")
        tail = (1 << 39 | 0x3F << 33 | ticks).to_bytes(5, "big")  # auto_return, reserved
    command = (
        _event(event_id)
        + bytes([0x7F])  # splice_event_cancel_indicator 0, reserved
        + bytes([flags])
        + tail
        + bytes(4)  # unique_program_id 0, avail_num 0, avails_expected 0
    )
    return _section(_SPLICE_INSERT, command)


def time_signal(
    event_id: int,
    segmentation_type_id: int,
    *,
    duration: float | None = None,
    blackout: bool = False,
    upid: bytes = b"",
) -> bytes:
    """A time_signal with no time and one programme-wide segmentation descriptor of
    ``segmentation_type_id`` (``duration``: its segmentation_duration; ``blackout``:
    delivery restricted by regional blackout, web and archive allowed; ``upid``: an MPU
    upid's private data, none when empty)."""
    if not 0 <= segmentation_type_id <= 0xFF:
        raise ValueError(f"segmentation type {segmentation_type_id} is not a byte")
    if len(upid) > MAX_UPID_BYTES:
        raise ValueError(f"upid of {len(upid)} bytes: at most {MAX_UPID_BYTES}")
    flags = 0x80 | 0x1F  # program_segmentation_flag; reserved bits when unrestricted
    if duration is not None:
        flags |= 0x40
    if blackout:
        # web_delivery_allowed 1, no_regional_blackout 0, archive_allowed 1, devices 3
        flags = flags & ~0x3F | 0x10 | 0x04 | 0x03
    else:
        flags |= 0x20  # delivery_not_restricted_flag
    # not cancelled; segmentation_event_id_compliance_indicator 1, as splice_insert's flag
    fields = _event(event_id) + bytes([0x7F, flags])
    if duration is not None:
        fields += _ticks(duration, _MAX_SEGMENT_TICKS, "segmentation duration").to_bytes(5, "big")
    if upid:
        mpu = MPU_FORMAT_IDENTIFIER + upid
        fields += bytes([_UPID_MPU, len(mpu)]) + mpu
    else:
        fields += bytes([_UPID_NONE, 0])
    fields += bytes([segmentation_type_id, 0, 0])  # segment_num, segments_expected
    if segmentation_type_id in SUB_SEGMENT_TYPES:
        fields += bytes([0, 0])  # sub_segment_num, sub_segments_expected
    descriptor = bytes([_SEGMENTATION_TAG, 4 + len(fields)]) + _CUEI + fields
    return _section(_TIME_SIGNAL, bytes([0x7F]), descriptor)  # time_specified_flag 0
