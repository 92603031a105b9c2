"""SCTE-35 splice_info_sections decoded (ANSI/SCTE 35 2022, section 9): bytes in, frozen
dataclasses out, no I/O.

The platform ships under Apache-2.0, and the library it used to decode these (threefive)
is GPL v2 / Sleepycat: it stays a test-only reference (``tests/transcode/test_splice.py``
decodes what its encoder builds and compares every field), and this module does the
decoding the live tap (``scte35.py``) needs. A section comes from a live source, so no
byte is trusted: every length is checked against the bytes there are, and a section that
fails raises :class:`SpliceError` whose ``reason`` is the drop reason the tap counts:
``table``, ``length`` (section_length out of range, or bytes after the section),
``truncated`` (fewer bytes than section_length says), ``crc``, ``encrypted`` (we hold no
control words), ``unknown_command`` (splice_schedule included: no channel uses it) and
``undecodable`` (an intact section whose inner lengths or fields do not add up).

Times stay 90 kHz ticks (33 bits; a segmentation_duration 40). Bytes a newer protocol may
add (after a command, after a descriptor's fields, alignment_stuffing before the CRC_32)
are skipped, as the standard asks of decoders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

_TABLE_ID = 0xFC
# Section 9.6: section_length is at most 4093; the 11 bytes from protocol_version to
# splice_command_type, descriptor_loop_length and CRC_32 make the least.
MAX_SECTION_LENGTH = 4093
_MIN_SECTION_LENGTH = 11 + 2 + 4
_UNKNOWN_COMMAND_LENGTH = 0xFFF  # the command's own fields say where it ends
_SEGMENTATION_TAG = 0x02
_CUEI = b"CUEI"
# The segmentation types followed by sub_segment_num and sub_segments_expected, read when
# the descriptor_length leaves room for them (an optional appendix, section 10.3.3.1; 2023r1
# adds 0x30 and 0x32, whose two bytes are then skipped like any newer field).
SUB_SEGMENT_TYPES = frozenset({0x34, 0x36, 0x38, 0x3A, 0x44, 0x46})
_PTS_MASK = (1 << 33) - 1


class SpliceError(Exception):
    """Raised when a section is refused; ``reason`` is the drop reason counted for it."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Component:
    """One elementary stream of a component-mode splice_insert or segmentation descriptor."""

    tag: int
    pts: int | None  # splice_insert: its splice_time (None: immediate or unspecified);
    # segmentation descriptor: its pts_offset


@dataclass(frozen=True, slots=True)
class SpliceNull:
    """splice_null (0x00): a heartbeat."""


@dataclass(frozen=True, slots=True)
class SpliceInsert:
    """splice_insert (0x05); the fields after the cancel indicator are absent on a cancel."""

    splice_event_id: int
    splice_event_cancel_indicator: bool
    out_of_network_indicator: bool = False
    program_splice_flag: bool = False
    duration_flag: bool = False
    splice_immediate_flag: bool = False
    event_id_compliance_flag: bool = False
    pts_time: int | None = None  # programme mode, a splice_time with time_specified_flag
    components: tuple[Component, ...] = ()
    break_auto_return: bool | None = None
    break_duration: int | None = None  # ticks
    unique_program_id: int = 0
    avail_num: int = 0
    avails_expected: int = 0


@dataclass(frozen=True, slots=True)
class TimeSignal:
    """time_signal (0x06): a splice_time for the descriptors that follow."""

    pts_time: int | None  # None: time_specified_flag 0


@dataclass(frozen=True, slots=True)
class BandwidthReservation:
    """bandwidth_reservation (0x07): keeps a bit rate for later commands."""


@dataclass(frozen=True, slots=True)
class PrivateCommand:
    """private_command (0xFF): an owner's identifier (registered, e.g. 'CUEI') and bytes."""

    identifier: int
    private_bytes: bytes


Command = SpliceNull | SpliceInsert | TimeSignal | BandwidthReservation | PrivateCommand


@dataclass(frozen=True, slots=True)
class SegmentationDescriptor:
    """segmentation_descriptor (tag 0x02, 'CUEI'); fields past the cancel indicator are
    absent on a cancel, the delivery sub-flags when delivery_not_restricted_flag is set."""

    segmentation_event_id: int
    segmentation_event_cancel_indicator: bool
    segmentation_event_id_compliance_indicator: bool
    program_segmentation_flag: bool = False
    segmentation_duration_flag: bool = False
    delivery_not_restricted_flag: bool = False
    web_delivery_allowed_flag: bool | None = None
    no_regional_blackout_flag: bool | None = None
    archive_allowed_flag: bool | None = None
    device_restrictions: int | None = None
    components: tuple[Component, ...] = ()
    segmentation_duration: int | None = None  # ticks (40 bits)
    segmentation_upid_type: int = 0
    segmentation_upid: bytes = b""
    segmentation_type_id: int = 0
    segment_num: int = 0
    segments_expected: int = 0
    sub_segment_num: int | None = None
    sub_segments_expected: int | None = None


@dataclass(frozen=True, slots=True)
class Descriptor:
    """Any other splice descriptor: its tag and the bytes after its length (identifier on)."""

    tag: int
    data: bytes


@dataclass(frozen=True, slots=True)
class SpliceInfo:
    """A decoded splice_info_section (the CRC_32 checked; never an encrypted one)."""

    section_syntax_indicator: bool
    private_indicator: bool
    sap_type: int
    section_length: int
    protocol_version: int
    encryption_algorithm: int
    pts_adjustment: int  # ticks
    cw_index: int
    tier: int
    splice_command_length: int  # as sent: 0xFFF when the encoder left it unknown
    splice_command_type: int
    command: Command
    descriptor_loop_length: int
    descriptors: tuple[SegmentationDescriptor | Descriptor, ...]
    crc_32: int


class _Reader:
    """Reads bytes in order within [position, end); reading past the end is refused."""

    __slots__ = ("_data", "_end", "_pos", "_what")

    def __init__(self, data: bytes, start: int, end: int, what: str) -> None:
        self._data, self._pos, self._end, self._what = data, start, end, what

    @property
    def left(self) -> int:
        return self._end - self._pos

    def take(self, count: int) -> bytes:
        if count > self.left:
            raise SpliceError(
                "undecodable", f"{self._what} needs {count} bytes at {self._pos}, has {self.left}"
            )
        self._pos += count
        return self._data[self._pos - count : self._pos]

    def uint(self, count: int) -> int:
        return int.from_bytes(self.take(count), "big")

    def part(self, count: int, what: str) -> _Reader:
        """A reader of the next ``count`` bytes, which this one skips."""
        start = self._pos
        self.take(count)
        return _Reader(self._data, start, start + count, what)


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = (crc << 1 ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32(data: bytes) -> int:
    """MPEG-2 CRC-32 (ISO/IEC 13818-1 annex A: 0x04C11DB7, from 0xFFFFFFFF, unreflected);
    over a section and its own CRC_32 it is 0."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = (crc << 8 & 0xFFFFFFFF) ^ _CRC_TABLE[crc >> 24 ^ byte]
    return crc


def decode(section: bytes) -> SpliceInfo:
    """Check and decode one whole splice_info_section; :class:`SpliceError` says why not."""
    if section[:1] not in (b"", bytes([_TABLE_ID])):
        raise SpliceError("table", f"table_id {section[0]:#04x}")
    if len(section) < 3:
        raise SpliceError("truncated", f"{len(section)} bytes")
    length = (section[1] & 0x0F) << 8 | section[2]
    if not _MIN_SECTION_LENGTH <= length <= MAX_SECTION_LENGTH:
        raise SpliceError("length", f"section_length {length}")
    if len(section) != 3 + length:
        reason = "truncated" if len(section) < 3 + length else "length"
        raise SpliceError(reason, f"section_length {length}, {len(section) - 3} bytes")
    if crc32(section):
        raise SpliceError("crc")
    if section[4] & 0x80:
        raise SpliceError("encrypted")
    command_type = section[13]
    parse = _COMMANDS.get(command_type)
    if parse is None:
        raise SpliceError("unknown_command", f"splice_command_type {command_type:#04x}")
    body = _Reader(section, 14, len(section) - 4, "section")
    command_length = (section[11] & 0x0F) << 8 | section[12]
    if command_length == _UNKNOWN_COMMAND_LENGTH:
        if command_type == 0xFF:
            raise SpliceError("undecodable", "private_command of unknown length")
        command = parse(body)
    else:
        command = parse(body.part(command_length, "splice command"))
    loop_length = body.uint(2)
    loop = body.part(loop_length, "descriptor loop")
    descriptors = []
    while loop.left:
        tag = loop.uint(1)
        descriptors.append(_descriptor(tag, loop.take(loop.uint(1))))
    return SpliceInfo(
        section_syntax_indicator=bool(section[1] & 0x80),
        private_indicator=bool(section[1] & 0x40),
        sap_type=section[1] >> 4 & 0x03,
        section_length=length,
        protocol_version=section[3],
        encryption_algorithm=section[4] >> 1 & 0x3F,
        pts_adjustment=int.from_bytes(section[4:9], "big") & _PTS_MASK,
        cw_index=section[9],
        tier=int.from_bytes(section[10:12], "big") >> 4,
        splice_command_length=command_length,
        splice_command_type=command_type,
        command=command,
        descriptor_loop_length=loop_length,
        descriptors=tuple(descriptors),
        crc_32=int.from_bytes(section[-4:], "big"),
    )


def _splice_time(reader: _Reader) -> int | None:
    """splice_time(): pts_time when time_specified_flag is set (5 bytes), else None (1)."""
    first = reader.uint(1)
    if not first & 0x80:
        return None
    return (first & 0x01) << 32 | reader.uint(4)


def _splice_insert(reader: _Reader) -> SpliceInsert:
    event_id = reader.uint(4)
    if reader.uint(1) & 0x80:
        return SpliceInsert(event_id, splice_event_cancel_indicator=True)
    flags = reader.uint(1)
    program, has_duration, immediate = bool(flags & 0x40), bool(flags & 0x20), bool(flags & 0x10)
    pts_time = _splice_time(reader) if program and not immediate else None
    components: tuple[Component, ...] = ()
    if not program:
        components = tuple(
            Component(reader.uint(1), None if immediate else _splice_time(reader))
            for _ in range(reader.uint(1))
        )
    auto_return, duration = None, None
    if has_duration:  # break_duration(): auto_return, 6 reserved bits, 33 bits of ticks
        raw = reader.uint(5)
        auto_return, duration = bool(raw >> 39), raw & _PTS_MASK
    return SpliceInsert(
        event_id,
        splice_event_cancel_indicator=False,
        out_of_network_indicator=bool(flags & 0x80),
        program_splice_flag=program,
        duration_flag=has_duration,
        splice_immediate_flag=immediate,
        event_id_compliance_flag=bool(flags & 0x08),
        pts_time=pts_time,
        components=components,
        break_auto_return=auto_return,
        break_duration=duration,
        unique_program_id=reader.uint(2),
        avail_num=reader.uint(1),
        avails_expected=reader.uint(1),
    )


def _time_signal(reader: _Reader) -> TimeSignal:
    return TimeSignal(_splice_time(reader))


def _private_command(reader: _Reader) -> PrivateCommand:
    identifier = reader.uint(4)
    return PrivateCommand(identifier, reader.take(reader.left))


_COMMANDS: dict[int, Callable[[_Reader], Command]] = {
    0x00: lambda _reader: SpliceNull(),
    0x05: _splice_insert,
    0x06: _time_signal,
    0x07: lambda _reader: BandwidthReservation(),
    0xFF: _private_command,
}


def _descriptor(tag: int, data: bytes) -> SegmentationDescriptor | Descriptor:
    if tag != _SEGMENTATION_TAG or data[:4] != _CUEI:
        return Descriptor(tag, data)
    return _segmentation(_Reader(data, 4, len(data), "segmentation_descriptor"))


def _segmentation(reader: _Reader) -> SegmentationDescriptor:
    event_id = reader.uint(4)
    cancel_byte = reader.uint(1)
    cancel, compliance = bool(cancel_byte & 0x80), bool(cancel_byte & 0x40)
    if cancel:
        return SegmentationDescriptor(event_id, True, compliance)
    flags = reader.uint(1)
    program, has_duration, unrestricted = bool(flags & 0x80), bool(flags & 0x40), bool(flags & 0x20)
    restrictions: tuple[bool | None, bool | None, bool | None, int | None] = (None,) * 4
    if not unrestricted:
        restrictions = (bool(flags & 0x10), bool(flags & 0x08), bool(flags & 0x04), flags & 0x03)
    components: tuple[Component, ...] = ()
    if not program:  # component_tag, 7 reserved bits, a 33-bit pts_offset
        components = tuple(
            Component(reader.uint(1), reader.uint(5) & _PTS_MASK) for _ in range(reader.uint(1))
        )
    duration = reader.uint(5) if has_duration else None
    upid_type = reader.uint(1)
    upid = reader.take(reader.uint(1))
    type_id, segment_num, expected = reader.take(3)
    sub_num, sub_expected = None, None
    if type_id in SUB_SEGMENT_TYPES and reader.left >= 2:
        sub_num, sub_expected = reader.take(2)
    web, blackout, archive, devices = restrictions
    return SegmentationDescriptor(
        event_id,
        segmentation_event_cancel_indicator=False,
        segmentation_event_id_compliance_indicator=compliance,
        program_segmentation_flag=program,
        segmentation_duration_flag=has_duration,
        delivery_not_restricted_flag=unrestricted,
        web_delivery_allowed_flag=web,
        no_regional_blackout_flag=blackout,
        archive_allowed_flag=archive,
        device_restrictions=devices,
        components=components,
        segmentation_duration=duration,
        segmentation_upid_type=upid_type,
        segmentation_upid=upid,
        segmentation_type_id=type_id,
        segment_num=segment_num,
        segments_expected=expected,
        sub_segment_num=sub_num,
        sub_segments_expected=sub_expected,
    )
