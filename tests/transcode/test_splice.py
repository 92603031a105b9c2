"""The SCTE-35 decoder (``transcode/live/splice.py``) against threefive, the reference it
replaced: sections threefive's encoder builds decode to every field threefive's decoder reads
from the same bytes (named cases and a few hundred seeded random cues); component mode,
which threefive neither builds nor reads, from bytes built here; and every refusal, with
its reason, for truncation at every byte, a bad CRC, lengths past the bytes and the rest."""

from __future__ import annotations

import random
import string
from dataclasses import replace
from typing import Any

import pytest
import threefive
from threefive.descriptors import AvailDescriptor
from threefive.descriptors import SegmentationDescriptor as RefSegmentation
from threefive.segmentation import table20

from tests.support.scte35 import (
    PTS_HZ,
    bad_crc,
    huge_length,
    splice_insert,
    time_signal,
    unknown_command,
    with_crc,
)
from transcode.live.scte35 import Refused, read_section
from transcode.live.splice import (
    BandwidthReservation,
    Component,
    Descriptor,
    PrivateCommand,
    SegmentationDescriptor,
    SpliceError,
    SpliceInfo,
    SpliceInsert,
    SpliceNull,
    TimeSignal,
    crc32,
    decode,
)

SECOND = PTS_HZ
_CLASSES = {0x00: SpliceNull, 0x05: SpliceInsert, 0x06: TimeSignal,
            0x07: BandwidthReservation, 0xFF: PrivateCommand}  # fmt: skip
# upid types threefive reads as text, and as a hex number.
_TEXT_UPIDS = {0x03: 12, 0x09: None, 0x0F: None}  # AdID (12 bytes), ADI, URI
_HEX_UPIDS = {0x06: 12, 0x08: 8}  # ISAN, AiringID
_SUB_SEGMENT_TYPES = (0x34, 0x36, 0x38, 0x3A, 0x44, 0x46)
_OTHER_TYPES = (0x01, 0x10, 0x11, 0x20, 0x22, 0x23, 0x35, 0x37, 0x40, 0x50, 0x51)


# -- building with threefive's encoder ------------------------------------------------------


def _ref_seconds(ticks: int) -> float:
    return ticks / PTS_HZ


def _ticks(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * PTS_HZ)


def _encode(
    command: Any, descriptors: list[Any] | None = None, *, adjustment: int = 0,
    tier: int = 0xFFF, cw_index: int = 0, sap: int = 3,
) -> bytes:  # fmt: skip
    cue = threefive.Cue()
    cue.command = command
    cue.descriptors = descriptors or []
    cue.info_section.pts_adjustment = _ref_seconds(adjustment)
    cue.info_section.tier = hex(tier)
    cue.info_section.cw_index = hex(cw_index)
    cue.info_section.sap_type = f"0x{sap:02x}"
    cue.encode()
    return bytes(cue.bytes())


def _insert(rng: random.Random) -> Any:
    command = threefive.SpliceInsert()
    command.splice_event_id = rng.getrandbits(32)
    command.splice_event_cancel_indicator = rng.random() < 0.1
    command.out_of_network_indicator = rng.random() < 0.5
    command.program_splice_flag = True  # threefive builds programme mode only
    command.duration_flag = rng.random() < 0.5
    command.break_auto_return = rng.random() < 0.5
    command.break_duration = _ref_seconds(rng.randrange(1, 1 << 33))
    command.splice_immediate_flag = rng.random() < 0.3
    command.time_specified_flag = rng.random() < 0.9
    command.pts_time = _ref_seconds(rng.randrange(1, 1 << 33))
    command.event_id_compliance_flag = rng.random() < 0.5
    command.unique_program_id = rng.getrandbits(16)
    command.avail_num, command.avails_expected = rng.getrandbits(8), rng.getrandbits(8)
    return command


def _time_signal(rng: random.Random) -> Any:
    command = threefive.TimeSignal()
    command.time_specified_flag = rng.random() < 0.9
    command.pts_time = _ref_seconds(rng.randrange(1, 1 << 33))
    return command


def _private(rng: random.Random) -> Any:
    command = threefive.PrivateCommand()
    command.identifier = rng.getrandbits(32)
    command.private_bytes = rng.randbytes(rng.randrange(0, 40))
    return command


def _upid(rng: random.Random) -> tuple[int, int, Any]:
    """A upid: type, length and the value threefive's encoder takes."""
    kind = rng.choice([0x00, *_TEXT_UPIDS, *_HEX_UPIDS])
    if kind in _TEXT_UPIDS:
        size = _TEXT_UPIDS[kind] or rng.randrange(1, 60)
        return kind, size, "".join(rng.choices(string.ascii_letters + string.digits, k=size))
    if kind in _HEX_UPIDS:
        size = _HEX_UPIDS[kind]
        return kind, size, f"0x{rng.getrandbits(8 * size):0{2 * size}x}"
    return 0, 0, ""


def _segmentation(rng: random.Random) -> Any:
    d = RefSegmentation()
    d.segmentation_event_id = f"{rng.getrandbits(32):#010x}"
    d.segmentation_event_cancel_indicator = rng.random() < 0.1
    d.segmentation_event_id_compliance_indicator = rng.random() < 0.5
    d.program_segmentation_flag = True  # threefive builds no component loop
    d.segmentation_duration_flag = rng.random() < 0.5
    d.segmentation_duration = _ref_seconds(rng.randrange(1, 1 << 40))
    d.delivery_not_restricted_flag = rng.random() < 0.5
    d.web_delivery_allowed_flag = rng.random() < 0.5
    d.no_regional_blackout_flag = rng.random() < 0.5
    d.archive_allowed_flag = rng.random() < 0.5
    d.device_restrictions = table20[rng.randrange(4)]
    d.segmentation_upid_type, d.segmentation_upid_length, d.segmentation_upid = _upid(rng)
    d.segmentation_type_id = rng.choice(_SUB_SEGMENT_TYPES + _OTHER_TYPES)
    d.segment_num, d.segments_expected = rng.getrandbits(8), rng.getrandbits(8)
    # Sent only with both non-zero, and only for the types that carry them.
    with_sub = d.segmentation_type_id in _SUB_SEGMENT_TYPES and rng.random() < 0.7
    d.sub_segment_num = rng.randrange(1, 256) if with_sub else 0
    d.sub_segments_expected = rng.randrange(1, 256) if with_sub else 0
    return d


def _avail(rng: random.Random) -> Any:
    d = AvailDescriptor()
    d.provider_avail_id = rng.getrandbits(32)
    return d


def _random_section(rng: random.Random) -> bytes:
    make = rng.choice([_insert, _time_signal, _private, lambda _r: threefive.SpliceNull(),
                       lambda _r: threefive.BandwidthReservation()])  # fmt: skip
    descriptors = [rng.choice([_segmentation, _segmentation, _avail])(rng)
                   for _ in range(rng.randrange(0, 4))]  # fmt: skip
    return _encode(make(rng), descriptors, adjustment=rng.randrange(0, 1 << 33),
                   tier=rng.getrandbits(12), cw_index=rng.getrandbits(8),
                   sap=rng.randrange(4))  # fmt: skip


# -- comparing with threefive's decoder -----------------------------------------------------


def _same_command(mine: object, ref: Any) -> None:
    assert type(mine) is _CLASSES[ref.command_type]
    if isinstance(mine, SpliceInsert):
        assert (mine.splice_event_id, mine.splice_event_cancel_indicator) == (
            ref.splice_event_id, ref.splice_event_cancel_indicator)  # fmt: skip
        if mine.splice_event_cancel_indicator:
            assert mine == SpliceInsert(mine.splice_event_id, splice_event_cancel_indicator=True)
            return
        names = ("out_of_network_indicator", "program_splice_flag", "duration_flag",
                 "splice_immediate_flag", "event_id_compliance_flag", "break_auto_return",
                 "unique_program_id", "avail_num", "avails_expected")  # fmt: skip
        assert [getattr(mine, n) for n in names] == [getattr(ref, n) for n in names]
        assert mine.pts_time == _ticks(ref.pts_time)
        assert mine.break_duration == _ticks(ref.break_duration)
        assert mine.components == ()
    elif isinstance(mine, TimeSignal):
        assert mine.pts_time == _ticks(ref.pts_time)
    elif isinstance(mine, PrivateCommand):
        assert (mine.identifier, mine.private_bytes) == (ref.identifier, ref.private_bytes)


def _same_upid(mine: SegmentationDescriptor, ref: object) -> None:
    """Our upid bytes against the value threefive gives (text, a hex number, or bytes)."""
    if mine.segmentation_upid_type in _HEX_UPIDS:
        assert isinstance(ref, str)
        assert int.from_bytes(mine.segmentation_upid, "big") == int(ref, 16)
    elif mine.segmentation_upid_type in _TEXT_UPIDS:
        assert mine.segmentation_upid.decode("ascii") == ref
    else:
        assert mine.segmentation_upid == ref == b""


def _same_descriptor(mine: SegmentationDescriptor | Descriptor, ref: Any) -> None:
    assert (mine.tag if isinstance(mine, Descriptor) else 0x02) == ref.tag
    if isinstance(mine, Descriptor):  # an avail_descriptor: 'CUEI', provider_avail_id
        assert mine.data == b"CUEI" + ref.provider_avail_id.to_bytes(4, "big")
        return
    assert mine.segmentation_event_id == int(ref.segmentation_event_id, 16)
    names = ["segmentation_event_cancel_indicator", "segmentation_event_id_compliance_indicator"]
    if not mine.segmentation_event_cancel_indicator:
        names += ["program_segmentation_flag", "segmentation_duration_flag",
                  "delivery_not_restricted_flag", "web_delivery_allowed_flag",
                  "no_regional_blackout_flag", "archive_allowed_flag", "segmentation_upid_type",
                  "segmentation_type_id", "segment_num", "segments_expected", "sub_segment_num",
                  "sub_segments_expected"]  # fmt: skip
        assert mine.segmentation_duration == _ticks(ref.segmentation_duration)
        _same_upid(mine, ref.segmentation_upid)
        devices = mine.device_restrictions
        assert (None if devices is None else table20[devices]) == ref.device_restrictions
    assert [getattr(mine, n) for n in names] == [getattr(ref, n) for n in names]


def _same(info: SpliceInfo, section: bytes) -> None:
    cue = threefive.Cue(section)
    ref = cue.info_section
    assert (info.section_syntax_indicator, info.private_indicator, info.section_length,
            info.protocol_version, info.encryption_algorithm, info.splice_command_length,
            info.splice_command_type) == (
        ref.section_syntax_indicator, ref.private, ref.section_length, ref.protocol_version,
        ref.encryption_algorithm, ref.splice_command_length, ref.splice_command_type)  # fmt: skip
    hexes = (ref.sap_type, ref.cw_index, ref.tier, ref.crc)
    assert (info.sap_type, info.cw_index, info.tier, info.crc_32) == tuple(
        int(h, 16) for h in hexes
    )
    assert info.pts_adjustment == _ticks(ref.pts_adjustment)
    _same_command(info.command, cue.command)
    assert info.descriptor_loop_length == ref.descriptor_loop_length
    assert len(info.descriptors) == len(cue.descriptors)
    for mine, theirs in zip(info.descriptors, cue.descriptors, strict=True):
        _same_descriptor(mine, theirs)


def _with_segmentation(**fields: Any) -> Any:
    d = _segmentation(random.Random(0))
    for name, value in fields.items():
        setattr(d, name, value)
    return d


def _seg_signal(*descriptors: Any) -> bytes:
    command = threefive.TimeSignal()
    command.time_specified_flag, command.pts_time = True, 12.5
    return _encode(command, list(descriptors))


@pytest.mark.parametrize(
    "section",
    [
        pytest.param(splice_insert(0x6FFFFFF0, 10 * SECOND, out=True, duration=30.0),
                     id="insert-out-duration-auto-return"),
        pytest.param(splice_insert(0x6FFFFFF0, 40 * SECOND, out=False), id="insert-in"),
        pytest.param(splice_insert(7, None, out=True), id="insert-immediate"),
        pytest.param(time_signal(5 * SECOND, segmentation_type=0x34, event_id=42, duration=60),
                     id="time-signal-one-descriptor-duration"),
        pytest.param(time_signal(5 * SECOND, segmentation_type=0x35, event_id=42),
                     id="time-signal-one-descriptor"),
        pytest.param(_seg_signal(
            _with_segmentation(segmentation_upid_type=0x08, segmentation_upid_length=8,
                               segmentation_upid="0x2cb2d79d00000001", segmentation_type_id=0x22),
            _with_segmentation(segmentation_upid_type=0x0F, segmentation_upid_length=21,
                               segmentation_upid="urn:uuid:0123456789a", segmentation_type_id=0x36,
                               segmentation_duration_flag=False, sub_segment_num=1,
                               sub_segments_expected=2)), id="time-signal-two-descriptors"),
        pytest.param(_encode(threefive.SpliceNull()), id="splice-null"),
        pytest.param(_encode(threefive.BandwidthReservation()), id="bandwidth-reservation"),
        pytest.param(_encode(_private(random.Random(1))), id="private-command"),
    ],
)  # fmt: skip
def test_sections_threefive_builds_decode_to_what_it_reads(section: bytes) -> None:
    _same(decode(section), section)


def test_the_named_fields_come_out_as_sent() -> None:
    info = decode(splice_insert(0x6FFFFFF0, 10 * SECOND, out=True, duration=30.0))
    assert info.command == SpliceInsert(
        0x6FFFFFF0, splice_event_cancel_indicator=False, out_of_network_indicator=True,
        program_splice_flag=True, duration_flag=True, event_id_compliance_flag=True,
        pts_time=10 * SECOND, break_auto_return=True, break_duration=30 * SECOND,
        unique_program_id=1,
    )  # fmt: skip
    (seg,) = decode(time_signal(5 * SECOND, segmentation_type=0x34, event_id=42)).descriptors
    assert isinstance(seg, SegmentationDescriptor)
    assert (seg.segmentation_event_id, seg.segmentation_type_id, seg.segmentation_duration,
            seg.sub_segment_num) == (42, 0x34, None, None)  # fmt: skip


def test_a_few_hundred_random_cues_decode_as_threefive_reads_them() -> None:
    rng = random.Random(35)
    kinds = set()
    for _ in range(400):
        section = _random_section(rng)
        info = decode(section)
        _same(info, section)
        kinds.add(type(info.command))
    assert kinds == set(_CLASSES.values())


# -- bytes built here: component mode and what threefive does not build -------------------


def _section(
    command_type: int, command: bytes, loop: bytes = b"", *, header: bytes = bytes(7),
    command_length: int | None = None,
) -> bytes:  # fmt: skip
    """A section of ``header`` (protocol_version to cw_index), tier 0xFFF, the command and
    the descriptor loop; section_length and CRC_32 made right."""
    size = len(command) if command_length is None else command_length
    body = header + bytes([0xFF, 0xF0 | size >> 8, size & 0xFF, command_type]) + command
    body += len(loop).to_bytes(2, "big") + loop
    length = len(body) + 4
    return with_crc(bytes([0xFC, 0x30 | length >> 8, length & 0xFF]) + body)


def _time(pts: int) -> bytes:
    """33 bits of ``pts`` after a set flag and 6 reserved bits (splice_time, break_duration)."""
    return (0xFE << 32 | pts).to_bytes(5, "big")


def _descriptor(tag: int, data: bytes) -> bytes:
    return bytes([tag, len(data)]) + data


_EVENT = (0x12345678).to_bytes(4, "big")
_TAIL = b"\x00\x07\x01\x02"  # unique_program_id 7, avail_num 1, avails_expected 2
# out, not programme mode, a duration, not immediate, compliant, 3 reserved bits
_COMPONENTS = _EVENT + b"\x7f\xaf\x02" + b"\x11" + _time((1 << 32) + 5) + b"\x12\x7f"
_BREAK = _time(30 * SECOND)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        pytest.param(_COMPONENTS + _BREAK + _TAIL, SpliceInsert(
            0x12345678, splice_event_cancel_indicator=False, out_of_network_indicator=True,
            duration_flag=True, event_id_compliance_flag=True,
            components=(Component(0x11, (1 << 32) + 5), Component(0x12, None)),
            break_auto_return=True, break_duration=30 * SECOND, unique_program_id=7,
            avail_num=1, avails_expected=2), id="components-timed"),
        pytest.param(_EVENT + b"\x7f\x1f\x03\x01\x02\x03" + _TAIL, SpliceInsert(
            0x12345678, splice_event_cancel_indicator=False, splice_immediate_flag=True,
            event_id_compliance_flag=True,
            components=(Component(1, None), Component(2, None), Component(3, None)),
            unique_program_id=7, avail_num=1, avails_expected=2), id="components-immediate"),
        pytest.param(_EVENT + b"\xff", SpliceInsert(0x12345678, splice_event_cancel_indicator=True),
                     id="cancel"),
    ],
)  # fmt: skip
def test_component_mode_splice_inserts_are_read_component_by_component(
    command: bytes, expected: SpliceInsert
) -> None:
    # The descriptor after the command shows the components were skipped exactly.
    loop = _descriptor(0x00, b"CUEI\x00\x00\x00\x09")
    info = decode(_section(0x05, command, loop))
    assert info.command == expected
    assert info.descriptors == (Descriptor(0x00, b"CUEI\x00\x00\x00\x09"),)


_SEGMENTATION = SegmentationDescriptor(
    0x0000002A, segmentation_event_cancel_indicator=False,
    segmentation_event_id_compliance_indicator=True, segmentation_duration_flag=True,
    web_delivery_allowed_flag=True, no_regional_blackout_flag=False, archive_allowed_flag=True,
    device_restrictions=2, components=(Component(0x21, 900),),
    segmentation_duration=(1 << 40) - 1, segmentation_upid_type=0x0C,
    segmentation_upid=b"RTLN\x01\x02\x03\x04", segmentation_type_id=0x34, segment_num=1,
    segments_expected=2, sub_segment_num=3, sub_segments_expected=4,
)  # fmt: skip
# event 42; not cancelled, compliant; component mode, a duration, restricted: web, no
# blackout override, archive, device group 2; one component; the duration; an MPU upid.
_SEGMENTATION_BYTES = (
    b"CUEI\x00\x00\x00\x2a\x7f\x56\x01\x21" + (0xFE << 32 | 900).to_bytes(5, "big")
    + b"\xff" * 5 + b"\x0c\x08RTLN\x01\x02\x03\x04\x34\x01\x02"
)  # fmt: skip


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(_SEGMENTATION_BYTES + b"\x03\x04", _SEGMENTATION,
                     id="components-sub-segments"),
        pytest.param(_SEGMENTATION_BYTES, replace(_SEGMENTATION, sub_segment_num=None,
                     sub_segments_expected=None), id="sub-segments-left-out"),
        pytest.param(_SEGMENTATION_BYTES[:-3] + b"\x30\x01\x02\x03\x04",
                     replace(_SEGMENTATION, segmentation_type_id=0x30, sub_segment_num=None,
                             sub_segments_expected=None), id="newer-appendix-skipped"),
        pytest.param(b"CUEI\x00\x00\x00\x2a\xff", SegmentationDescriptor(
            42, segmentation_event_cancel_indicator=True,
            segmentation_event_id_compliance_indicator=True), id="cancel"),
        pytest.param(b"ABCD\x00\x00\x00\x2a\x7f", Descriptor(0x02, b"ABCD\x00\x00\x00\x2a\x7f"),
                     id="not-cuei"),
    ],
)  # fmt: skip
def test_segmentation_descriptors_threefive_cannot_build(
    data: bytes, expected: SegmentationDescriptor | Descriptor
) -> None:
    loop = _descriptor(0x02, data) + _descriptor(0x01, b"CUEI\x00\x01\x02\x03")
    info = decode(_section(0x06, b"\x7f", loop))
    assert info.command == TimeSignal(None)
    assert info.descriptors == (expected, Descriptor(0x01, b"CUEI\x00\x01\x02\x03"))


def test_the_header_fields_and_an_unknown_command_length() -> None:
    # protocol_version 0, not encrypted, algorithm 0, pts_adjustment 2**32 + 5, cw_index 9
    header = b"\x00\x01\x00\x00\x00\x05\x09"
    info = decode(_section(0x06, _time(SECOND), header=header, command_length=0xFFF))
    assert (info.pts_adjustment, info.cw_index, info.tier) == ((1 << 32) + 5, 9, 0xFFF)
    assert (info.splice_command_length, info.command) == (0xFFF, TimeSignal(SECOND))


def test_the_tap_refuses_a_timed_splice_insert_without_a_time() -> None:
    # programme mode, not immediate, a splice_time whose time_specified_flag is 0
    section = _section(0x05, _EVENT + b"\x7f\xcf\x7f" + _TAIL)
    assert decode(section).command == SpliceInsert(
        0x12345678, splice_event_cancel_indicator=False, out_of_network_indicator=True,
        program_splice_flag=True, event_id_compliance_flag=True, unique_program_id=7,
        avail_num=1, avails_expected=2,
    )  # fmt: skip
    with pytest.raises(Refused) as refused:
        read_section(section, now_pts=SECOND)
    assert refused.value.reason == "undecodable"


def test_the_crc_is_mpeg2s() -> None:
    assert crc32(b"123456789") == 0x0376E6E7  # the CRC-32/MPEG-2 check value
    section = splice_insert(1, SECOND, out=True)
    assert crc32(section) == 0


# -- refusals -------------------------------------------------------------------------------


def _reason(section: bytes) -> str:
    with pytest.raises(SpliceError) as refused:
        decode(section)
    return refused.value.reason


def test_a_section_cut_at_any_byte_is_truncated() -> None:
    rng = random.Random(7)
    sections = [_seg_signal(_segmentation(rng), _segmentation(rng)),
                *(_random_section(rng) for _ in range(20))]  # fmt: skip
    for section in sections:
        for cut in range(len(section)):
            assert _reason(section[:cut]) == "truncated", (section.hex(), cut)


def test_any_bit_flipped_after_the_length_fails_the_crc() -> None:
    section = time_signal(5 * SECOND, segmentation_type=0x34, event_id=42, duration=60)
    for bit in range(3 * 8, len(section) * 8):
        flipped = bytearray(section)
        flipped[bit // 8] ^= 0x80 >> bit % 8
        assert _reason(bytes(flipped)) == "crc", bit


_INSERT = splice_insert(1, SECOND, out=True)
_LOOP_PAST = _section(0x06, b"\x7f", _descriptor(0x00, b"CUEI\x00\x00\x00\x01"))


def _loop_length(section: bytes, length: int) -> bytes:
    """``section`` (a time_signal without a time) with descriptor_loop_length ``length``."""
    return with_crc(section[:15] + length.to_bytes(2, "big") + section[17:-4])


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        pytest.param(b"", "truncated", id="empty"),
        pytest.param(b"\x02" + _INSERT[1:], "table", id="not-scte35"),
        pytest.param(bad_crc(_INSERT), "crc", id="bad-crc"),
        pytest.param(huge_length(_INSERT), "length", id="length-over-4093"),
        pytest.param(bytes([0xFC, 0x30, 16]) + bytes(16), "length", id="length-under-17"),
        pytest.param(_INSERT + b"\x00", "length", id="bytes-after-the-section"),
        pytest.param(_INSERT[:-1], "truncated", id="section-length-past-the-bytes"),
        pytest.param(_section(0x05, _EVENT + b"\x7f", header=b"\x00\x80" + bytes(5)),
                     "encrypted", id="encrypted"),
        pytest.param(unknown_command(_INSERT), "unknown_command", id="unknown-command"),
        pytest.param(_section(0x04, b"\x00"), "unknown_command", id="splice-schedule"),
        pytest.param(_section(0x05, _EVENT + b"\x7f\xcf"), "undecodable",
                     id="insert-cut-short"),
        pytest.param(_section(0x05, _INSERT[14:-6], command_length=40), "undecodable",
                     id="command-length-past-the-section"),
        pytest.param(_section(0xFF, b"CUEI", command_length=0xFFF), "undecodable",
                     id="private-command-of-unknown-length"),
        pytest.param(_section(0x06, b"\x7f", b"\x00\x09CUEI\x00\x00\x00\x01"), "undecodable",
                     id="descriptor-length-past-the-loop"),
        pytest.param(_loop_length(_LOOP_PAST, 11), "undecodable",
                     id="loop-length-past-the-section"),
        pytest.param(_section(0x06, b"\x7f", _descriptor(0x00, b"CUEI") + b"\x00"),
                     "undecodable", id="a-tag-without-a-length"),
        pytest.param(_section(0x06, b"\x7f", _descriptor(0x02, _SEGMENTATION_BYTES[:21])),
                     "undecodable", id="segmentation-upid-past-the-descriptor"),
    ],
)  # fmt: skip
def test_broken_sections_are_refused_with_the_reason_the_tap_counts(
    section: bytes, reason: str
) -> None:
    assert _reason(section) == reason


def test_damage_under_a_right_crc_is_refused_never_raised_otherwise() -> None:
    rng = random.Random(11)
    reasons = set()
    for _ in range(1500):
        section = bytearray(_random_section(rng))
        for _ in range(rng.randrange(1, 4)):
            section[rng.randrange(13, len(section) - 4)] = rng.getrandbits(8)
        try:
            decode(with_crc(bytes(section[:-4])))
        except SpliceError as err:
            reasons.add(err.reason)
    assert reasons == {"undecodable", "unknown_command"}
