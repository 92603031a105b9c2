"""The tracks of an init segment and the fragments of a media segment."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from transcode.fmp4.boxes import (
    MAX_DEPTH,
    MAX_SAMPLES_PER_RUN,
    Box,
    Buffer,
    Counter,
    MalformedMp4,
    boxes,
    name_of,
)
from transcode.fmp4.codecs import aac_codec_of, avc_codec, hevc_codec

# Sample entries with a VisualSampleEntry / AudioSampleEntry layout before their children.
_VISUAL = frozenset({b"avc1", b"avc3", b"hvc1", b"hev1", b"encv"})
_AUDIO = frozenset({b"mp4a", b"enca"})
_VISUAL_FIXED = 78  # SampleEntry (8) + VisualSampleEntry fields (70)
_AUDIO_FIXED = 28  # SampleEntry (8) + AudioSampleEntry fields (20)

# trun flags, tfhd flags and sample flags (ISO/IEC 14496-12 8.8.7, 8.8.8, 8.8.3.1).
_TRUN_DATA_OFFSET = 0x1
_TRUN_FIRST_FLAGS = 0x4
_TRUN_DURATION = 0x100
_TRUN_SIZE = 0x200
_TRUN_FLAGS = 0x400
_TRUN_CTO = 0x800
_TFHD_BASE_OFFSET = 0x1
_TFHD_DESCRIPTION = 0x2
_TFHD_DURATION = 0x8
_TFHD_SIZE = 0x10
_TFHD_FLAGS = 0x20
_SAMPLE_NON_SYNC = 0x10000


@dataclass(frozen=True, slots=True)
class TrackDefaults:
    """A track's ``trex`` defaults, used where a fragment's ``tfhd``/``trun`` says nothing."""

    duration: int = 0
    size: int = 0
    flags: int = 0


@dataclass(frozen=True, slots=True)
class Track:
    """One track of an init segment."""

    track_id: int
    handler: str  # "vide", "soun", "subt", ...
    timescale: int  # ticks per second of its media time
    codec: str  # RFC 6381, e.g. "avc1.64001f", "mp4a.40.2" ("" when not understood)
    width: int = 0
    height: int = 0
    defaults: TrackDefaults = TrackDefaults()


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample of a fragment."""

    duration: int  # timescale ticks
    size: int  # bytes
    sync: bool  # a random access point (a keyframe)
    composition_offset: int  # ticks from its decode time to its presentation time


@dataclass(frozen=True, slots=True)
class Fragment:
    """One ``moof`` + its data: the track's samples from decode time ``start``."""

    offset: int  # where the moof starts
    data_offset: int  # where its first sample's bytes start
    end: int  # the end of the moof's data (its mdat)
    track_id: int
    start: int  # tfdt: decode time of the first sample, timescale ticks
    samples: tuple[Sample, ...]

    @property
    def duration(self) -> int:
        """Ticks from its first sample's decode time to the end of its last."""
        return sum(s.duration for s in self.samples)

    @property
    def starts_with_sync(self) -> bool:
        """Whether its first sample is a keyframe: it can be decoded on its own."""
        return bool(self.samples) and self.samples[0].sync

    @property
    def first_sample_end(self) -> int:
        """Where the first sample's bytes end (a keyframe's I-frame byte range ends here)."""
        return self.data_offset + (self.samples[0].size if self.samples else 0)


@dataclass(frozen=True, slots=True)
class MediaSegment:
    """The fragments of one media segment, in file order."""

    size: int
    fragments: tuple[Fragment, ...]

    @property
    def start(self) -> int:
        """Decode time of the segment's first sample (the first tfdt), ticks."""
        return self.fragments[0].start if self.fragments else 0

    @property
    def duration(self) -> int:
        """Ticks covered by its samples."""
        return sum(f.duration for f in self.fragments)


def read_init(data: Buffer) -> tuple[Track, ...]:
    """The tracks of an init segment (``ftyp`` + ``moov``), in ``moov`` order."""
    counter = Counter()
    moov = _only(_top(data, counter), b"moov", "init segment")
    tracks: list[Track] = []
    defaults: dict[int, TrackDefaults] = {}
    for box in _children(data, moov, counter):
        if box.type == b"trak":
            tracks.append(_track(data, box, counter))
        elif box.type == b"mvex":
            for trex in _children(data, box, counter):
                if trex.type == b"trex":
                    values = _fields(data, trex, 4, ">IIIII", "trex")
                    defaults[values[0]] = TrackDefaults(values[2], values[3], values[4])
    if not tracks:
        raise MalformedMp4("the init segment has no track")
    return tuple(
        Track(t.track_id, t.handler, t.timescale, t.codec, t.width, t.height,
              defaults.get(t.track_id, TrackDefaults()))
        for t in tracks
    )  # fmt: skip


def init_end(data: Buffer) -> int:
    """Where an init segment's ``ftyp`` + ``moov`` end (FFmpeg's HLS muxer may write the first
    media fragments after them into the same file)."""
    counter = Counter()
    return _only(_top(data, counter), b"moov", "init segment").end


def read_segment(data: Buffer, tracks: tuple[Track, ...]) -> MediaSegment:
    """The fragments of a media segment (``styp``/``sidx`` and other boxes are skipped)."""
    counter = Counter()
    by_id = {t.track_id: t for t in tracks}
    fragments: list[Fragment] = []
    top = _top(data, counter)
    for index, box in enumerate(top):
        if box.type != b"moof":
            continue
        following = top[index + 1] if index + 1 < len(top) else None
        end = following.end if following is not None and following.type == b"mdat" else box.end
        fragments.extend(_fragments(data, box, end, by_id, counter))
    return MediaSegment(len(data), tuple(fragments))


def _top(data: Buffer, counter: Counter) -> list[Box]:
    found = []
    for box in boxes(data):
        counter.add()
        found.append(box)
    return found


def _children(data: Buffer, parent: Box, counter: Counter, depth: int = 1) -> list[Box]:
    if depth > MAX_DEPTH:
        raise MalformedMp4(f"boxes nested deeper than {MAX_DEPTH}")
    found = []
    for box in boxes(data, parent.payload, parent.end):
        counter.add()
        found.append(box)
    return found


def _only(found: list[Box], kind: bytes, where: str) -> Box:
    for box in found:
        if box.type == kind:
            return box
    raise MalformedMp4(f"{where}: no {name_of(kind)} box")


def _find(data: Buffer, parent: Box, path: tuple[bytes, ...], counter: Counter) -> Box:
    box = parent
    for depth, kind in enumerate(path, 1):
        box = _only(_children(data, box, counter, depth), kind, name_of(parent.type))
    return box


def _fields(data: Buffer, box: Box, skip: int, fmt: str, name: str) -> tuple[int, ...]:
    start = box.payload + skip
    size = struct.calcsize(fmt)
    if start + size > box.end:
        raise MalformedMp4(f"{name} at {box.offset} is too short ({box.end - box.offset} bytes)")
    values: tuple[int, ...] = struct.unpack(fmt, data[start : start + size])
    return values


def _track(data: Buffer, trak: Box, counter: Counter) -> Track:
    tkhd = _find(data, trak, (b"tkhd",), counter)
    version = _fields(data, tkhd, 0, ">B", "tkhd")[0]
    track_id = _fields(data, tkhd, 20 if version == 1 else 12, ">I", "tkhd")[0]
    mdia = _find(data, trak, (b"mdia",), counter)
    mdhd = _find(data, mdia, (b"mdhd",), counter)
    mdhd_version = _fields(data, mdhd, 0, ">B", "mdhd")[0]
    timescale = _fields(data, mdhd, 20 if mdhd_version == 1 else 12, ">I", "mdhd")[0]
    if timescale == 0:
        raise MalformedMp4(f"track {track_id}: timescale 0")
    handler = bytes(_fields(data, _find(data, mdia, (b"hdlr",), counter), 8, ">4B", "hdlr"))
    stsd = _find(data, mdia, (b"minf", b"stbl", b"stsd"), counter)
    codec, width, height = "", 0, 0
    entries = list(boxes(data, stsd.payload + 8, stsd.end)) if stsd.end >= stsd.payload + 8 else []
    counter.add(len(entries))
    if entries:
        codec, width, height = _sample_entry(data, entries[0], counter)
    return Track(track_id, handler.decode("latin-1"), timescale, codec, width, height)


def _sample_entry(data: Buffer, entry: Box, counter: Counter) -> tuple[str, int, int]:
    if entry.type in _VISUAL:
        width, height = _fields(data, entry, 24, ">HH", name_of(entry.type))
        children = _entry_children(data, entry, _VISUAL_FIXED, counter)
        if b"avcC" in children:
            return avc_codec(entry.type, children[b"avcC"]), width, height
        if b"hvcC" in children:
            return hevc_codec(entry.type, children[b"hvcC"]), width, height
        return "", width, height
    if entry.type in _AUDIO:
        children = _entry_children(data, entry, _AUDIO_FIXED, counter)
        if b"esds" in children:
            return aac_codec_of(children[b"esds"][4:]), 0, 0
    return "", 0, 0


def _entry_children(data: Buffer, entry: Box, fixed: int, counter: Counter) -> dict[bytes, bytes]:
    start = entry.payload + fixed
    if start > entry.end:
        raise MalformedMp4(f"sample entry {name_of(entry.type)} is too short")
    found = {}
    for box in boxes(data, start, entry.end):
        counter.add()
        found[box.type] = bytes(data[box.payload : box.end])
    return found


def _fragments(
    data: Buffer, moof: Box, end: int, tracks: dict[int, Track], counter: Counter
) -> Iterator[Fragment]:
    for traf in _children(data, moof, counter):
        if traf.type != b"traf":
            continue
        parts = {b.type: b for b in _children(data, traf, counter, 2)}
        if b"tfhd" not in parts or b"trun" not in parts:
            raise MalformedMp4(f"traf at {traf.offset} lacks tfhd or trun")
        tfhd = parts[b"tfhd"]
        flags, track_id = _fields(data, tfhd, 0, ">II", "tfhd")
        flags &= 0xFFFFFF
        track = tracks.get(track_id)
        if track is None:
            raise MalformedMp4(f"fragment at {moof.offset} is of track {track_id}, not in the init")
        base, pos = moof.offset, tfhd.payload + 8
        known = track.defaults
        duration, size, sample_flags = known.duration, known.size, known.flags
        for flag, width in ((_TFHD_BASE_OFFSET, 8), (_TFHD_DESCRIPTION, 4)):
            if flags & flag:
                if flag == _TFHD_BASE_OFFSET:
                    base = _fields(data, tfhd, 8, ">Q", "tfhd")[0]
                pos += width
        for flag in (_TFHD_DURATION, _TFHD_SIZE, _TFHD_FLAGS):
            if flags & flag:
                if pos + 4 > tfhd.end:
                    raise MalformedMp4(f"tfhd at {tfhd.offset} is too short for its flags")
                (value,) = struct.unpack(">I", data[pos : pos + 4])
                pos += 4
                if flag == _TFHD_DURATION:
                    duration = value
                elif flag == _TFHD_SIZE:
                    size = value
                else:
                    sample_flags = value
        start = 0
        if b"tfdt" in parts:
            tfdt = parts[b"tfdt"]
            version = _fields(data, tfdt, 0, ">B", "tfdt")[0]
            start = _fields(data, tfdt, 4, ">Q" if version == 1 else ">I", "tfdt")[0]
        data_offset, samples = _run(data, parts[b"trun"], (duration, size, sample_flags))
        first = base + data_offset
        total = sum(s.size for s in samples)
        if first < moof.end or first + total > end:
            raise MalformedMp4(
                f"fragment at {moof.offset}: samples at {first}..{first + total} lie outside "
                f"its data ({moof.end}..{end})"
            )
        yield Fragment(moof.offset, first, end, track_id, start, samples)


def _run(data: Buffer, trun: Box, defaults: tuple[int, int, int]) -> tuple[int, tuple[Sample, ...]]:
    version_flags, count = _fields(data, trun, 0, ">II", "trun")
    version, flags = version_flags >> 24, version_flags & 0xFFFFFF
    if count > MAX_SAMPLES_PER_RUN:
        raise MalformedMp4(f"trun at {trun.offset} claims {count} samples")
    pos = trun.payload + 8
    data_offset = first_flags = None
    if flags & _TRUN_DATA_OFFSET:
        (data_offset,) = struct.unpack(">i", _take(data, trun, pos, 4))
        pos += 4
    if flags & _TRUN_FIRST_FLAGS:
        (first_flags,) = struct.unpack(">I", _take(data, trun, pos, 4))
        pos += 4
    fields = [f for f in (_TRUN_DURATION, _TRUN_SIZE, _TRUN_FLAGS, _TRUN_CTO) if flags & f]
    width = 4 * len(fields)
    raw = _take(data, trun, pos, width * count)
    cto_format = "i" if version else "I"
    row = ">" + "".join(cto_format if f == _TRUN_CTO else "I" for f in fields)
    duration, size, sample_flags = defaults
    samples = []
    for index, values in enumerate(struct.iter_unpack(row, raw) if fields else [()] * count):
        got = dict(zip(fields, values, strict=True))
        flag = got.get(_TRUN_FLAGS, sample_flags)
        if index == 0 and first_flags is not None:
            flag = first_flags
        samples.append(
            Sample(
                got.get(_TRUN_DURATION, duration),
                got.get(_TRUN_SIZE, size),
                not flag & _SAMPLE_NON_SYNC,
                got.get(_TRUN_CTO, 0),
            )
        )
    return data_offset or 0, tuple(samples)


def _take(data: Buffer, box: Box, pos: int, length: int) -> bytes:
    if pos + length > box.end:
        raise MalformedMp4(f"{name_of(box.type)} at {box.offset} is shorter than its entries")
    return data[pos : pos + length]
