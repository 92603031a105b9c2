"""The SCTE-35 encoder (``transcode/live/splice_encode.py``): every section it builds decodes,
field by field, to what was asked, by our decoder (``splice.decode``) and by threefive (the
test-only reference), and the live tap classifies it as the node places it (out, in or a
command; its pairing key and announced duration). Arguments no field holds are refused."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import threefive

from transcode.live.scte35 import read_section
from transcode.live.splice import (
    SUB_SEGMENT_TYPES,
    SegmentationDescriptor,
    SpliceInfo,
    SpliceInsert,
    TimeSignal,
    crc32,
    decode,
)
from transcode.live.splice_encode import (
    MAX_UPID_BYTES,
    MPU_FORMAT_IDENTIFIER,
    splice_insert,
    time_signal,
)

HZ = 90_000


def _reference(section: bytes) -> threefive.Cue:
    cue = threefive.Cue(section)
    cue.decode()
    return cue


def _same_header(info: SpliceInfo, section: bytes) -> None:
    """The fixed header, as we read it and as threefive does."""
    assert (info.section_syntax_indicator, info.private_indicator, info.sap_type,
            info.protocol_version, info.encryption_algorithm, info.pts_adjustment,
            info.cw_index, info.tier) == (False, False, 3, 0, 0, 0, 0, 0xFFF)  # fmt: skip
    assert info.section_length == len(section) - 3
    assert crc32(section) == 0
    ref = _reference(section).info_section
    assert (ref.table_id, ref.sap_type, ref.tier, ref.cw_index) == ("0xfc", "0x03", "0x0fff",
                                                                    "0x00")  # fmt: skip
    assert int(ref.crc, 16) == info.crc_32
    assert (ref.section_length, ref.protocol_version, ref.encrypted_packet,
            ref.pts_adjustment, ref.splice_command_length, ref.splice_command_type,
            ref.descriptor_loop_length) == (
        info.section_length, 0, False, 0.0, info.splice_command_length,
        info.splice_command_type, info.descriptor_loop_length)  # fmt: skip


@pytest.mark.parametrize(
    ("event_id", "out", "duration"),
    [
        pytest.param(0xBEEF, True, 30.0, id="out-with-a-break"),
        pytest.param(0xFFFFFFFF, True, None, id="out-open-ended"),
        pytest.param(0, False, None, id="return"),
        pytest.param(7, True, 0.0, id="out-zero-break"),
        pytest.param(9, True, ((1 << 33) - 1) / HZ, id="longest-break"),
        pytest.param(11, False, 12.345678, id="return-with-duration"),
    ],
)
def test_a_splice_insert_reads_back_as_built(
    event_id: int, out: bool, duration: float | None
) -> None:
    section = splice_insert(event_id, out=out, duration=duration)
    info = decode(section)
    _same_header(info, section)
    ticks = None if duration is None else round(duration * HZ)
    assert info.command == SpliceInsert(
        event_id, splice_event_cancel_indicator=False, out_of_network_indicator=out,
        program_splice_flag=True, duration_flag=duration is not None,
        splice_immediate_flag=True, event_id_compliance_flag=True, pts_time=None,
        break_auto_return=None if duration is None else True, break_duration=ticks,
        unique_program_id=0, avail_num=0, avails_expected=0,
    )  # fmt: skip
    assert info.descriptors == ()
    ref = _reference(section).command
    assert (ref.command_type, ref.splice_event_id, ref.splice_event_cancel_indicator,
            ref.out_of_network_indicator, ref.program_splice_flag, ref.duration_flag,
            ref.splice_immediate_flag, ref.event_id_compliance_flag, ref.unique_program_id,
            ref.avail_num, ref.avails_expected) == (
        5, event_id, False, out, True, duration is not None, True, True, 0, 0, 0)  # fmt: skip
    if duration is not None:
        assert ref.break_auto_return is True
        assert round(ref.break_duration * HZ) == ticks
    splice = read_section(section, now_pts=1234)
    assert (splice.kind, splice.key, splice.pts, splice.section) == (
        "out" if out else "in", f"splice-{event_id:08X}", 1234, section)  # fmt: skip
    assert splice.duration == (None if ticks is None else ticks / HZ)


_TYPES = (0x01, 0x10, 0x11, 0x22, 0x30, 0x34, 0x35, 0x36, 0x38, 0x3A, 0x44, 0x46, 0x50, 0xFF)


@pytest.mark.parametrize(
    ("type_id", "duration", "blackout", "upid"),
    [
        pytest.param(t, d, b, u, id=f"{t:#04x}-{'dur' if d else 'nodur'}-"
                                    f"{'blackout' if b else 'free'}-{'upid' if u else 'noupid'}")
        for t, (d, b, u) in itertools.product(
            _TYPES, [(60.0, True, b"prog-1"), (None, False, b""), (1.5, False, b"\x00\xff" * 9)])
    ],
)  # fmt: skip
def test_a_time_signal_reads_back_as_built(
    type_id: int, duration: float | None, blackout: bool, upid: bytes
) -> None:
    section = time_signal(0x2A, type_id, duration=duration, blackout=blackout, upid=upid)
    info = decode(section)
    _same_header(info, section)
    assert info.command == TimeSignal(None)
    (d,) = info.descriptors
    assert isinstance(d, SegmentationDescriptor)
    ticks = None if duration is None else round(duration * HZ)
    subs = 0 if type_id in SUB_SEGMENT_TYPES else None
    restricted = (True, False, True, 3) if blackout else (None, None, None, None)
    assert d == SegmentationDescriptor(
        0x2A, segmentation_event_cancel_indicator=False,
        segmentation_event_id_compliance_indicator=True, program_segmentation_flag=True,
        segmentation_duration_flag=duration is not None, delivery_not_restricted_flag=not blackout,
        web_delivery_allowed_flag=restricted[0], no_regional_blackout_flag=restricted[1],
        archive_allowed_flag=restricted[2], device_restrictions=restricted[3],
        segmentation_duration=ticks, segmentation_upid_type=0x0C if upid else 0,
        segmentation_upid=MPU_FORMAT_IDENTIFIER + upid if upid else b"",
        segmentation_type_id=type_id, segment_num=0, segments_expected=0,
        sub_segment_num=subs, sub_segments_expected=subs,
    )  # fmt: skip
    _same_as_threefive(section, d)


def _same_as_threefive(section: bytes, mine: SegmentationDescriptor) -> None:
    cue = _reference(section)
    assert cue.command.command_type == 6
    assert cue.command.time_specified_flag is False
    (ref,) = cue.descriptors
    assert (ref.tag, ref.identifier) == (2, "CUEI")
    names = ["segmentation_event_cancel_indicator", "segmentation_event_id_compliance_indicator",
             "program_segmentation_flag", "segmentation_duration_flag",
             "delivery_not_restricted_flag", "segmentation_upid_type", "segmentation_type_id",
             "segment_num", "segments_expected"]  # fmt: skip
    assert [getattr(ref, n) for n in names] == [getattr(mine, n) for n in names]
    assert int(ref.segmentation_event_id, 16) == mine.segmentation_event_id
    if mine.segmentation_duration is None:
        assert not ref.segmentation_duration_flag
    else:
        assert round(ref.segmentation_duration * HZ) == mine.segmentation_duration
    if not mine.delivery_not_restricted_flag:
        assert (ref.web_delivery_allowed_flag, ref.no_regional_blackout_flag,
                ref.archive_allowed_flag, ref.device_restrictions) == (
            True, False, True, "No Restrictions")  # fmt: skip
    assert ref.segmentation_upid_length == len(mine.segmentation_upid)
    upid: Any = ref.segmentation_upid
    if mine.segmentation_upid:
        assert upid["format_identifier"] == MPU_FORMAT_IDENTIFIER.decode()
        # a hex number: leading zero bytes are not shown
        assert int(upid["private_data"], 16) == int.from_bytes(mine.segmentation_upid[4:], "big")
    else:
        assert upid == b""
    if mine.sub_segment_num is not None:
        assert (ref.sub_segment_num, ref.sub_segments_expected) == (0, 0)


@pytest.mark.parametrize(
    ("type_id", "kind"),
    [
        pytest.param(0x34, "out", id="opportunity-start"),
        pytest.param(0x35, "in", id="opportunity-end"),
        pytest.param(0x10, "out", id="programme-start"),
        pytest.param(0x11, "in", id="programme-end"),
        pytest.param(0x01, "cmd", id="identification"),
    ],
)
def test_the_tap_classifies_a_time_signal_as_the_node_places_it(type_id: int, kind: str) -> None:
    section = time_signal(0x2A, type_id, duration=8.0)
    splice = read_section(section, now_pts=None)
    assert splice.kind == kind
    assert splice.pts is None
    if kind == "cmd":
        assert splice.key == f"cmd-{decode(section).crc_32:08X}"
    else:
        assert (splice.key, splice.duration) == ("seg-0000002A", 8.0)


def test_the_longest_upid_fits_and_a_longer_one_is_refused() -> None:
    section = time_signal(1, 0x34, duration=1.0, blackout=True, upid=b"u" * MAX_UPID_BYTES)
    (d,) = decode(section).descriptors
    assert isinstance(d, SegmentationDescriptor)
    assert d.segmentation_upid == MPU_FORMAT_IDENTIFIER + b"u" * MAX_UPID_BYTES
    assert d.sub_segment_num == 0  # the fields after the upid are all there
    _same_as_threefive(section, d)
    with pytest.raises(ValueError, match="upid"):
        time_signal(1, 0x34, upid=b"u" * (MAX_UPID_BYTES + 1))


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: splice_insert(-1, out=True), id="negative-event"),
        pytest.param(lambda: splice_insert(1 << 32, out=True), id="event-over-32-bits"),
        pytest.param(lambda: splice_insert(1, out=True, duration=-1.0), id="negative-break"),
        pytest.param(lambda: splice_insert(1, out=True, duration=math.nan), id="nan-break"),
        pytest.param(lambda: splice_insert(1, out=True, duration=(1 << 33) / HZ),
                     id="break-over-33-bits"),
        pytest.param(lambda: splice_insert(1, out=True, immediate=False), id="not-immediate"),
        pytest.param(lambda: time_signal(1 << 32, 0x34), id="segment-event-over-32-bits"),
        pytest.param(lambda: time_signal(1, 0x100), id="type-over-a-byte"),
        pytest.param(lambda: time_signal(1, -1), id="negative-type"),
        pytest.param(lambda: time_signal(1, 0x34, duration=(1 << 40) / HZ),
                     id="segment-over-40-bits"),
        pytest.param(lambda: time_signal(1, 0x34, duration=math.inf), id="infinite-segment"),
    ],
)  # fmt: skip
def test_arguments_no_field_holds_are_refused(build: Any) -> None:
    with pytest.raises(ValueError, match=r"."):
        build()
